/**
 * The options of a Redis Streams mailbox (`source: { redis: {...} }`),
 * checked and given their defaults. Plain data: this file does not load the
 * Redis client, so a runtime without a Redis mailbox never imports it.
 */
import { hostname } from 'node:os';
import { invalidOption } from '../../shared/errors.js';
import { fleetDefaults } from '../../fleet-policy.js';
import { MAX_PARTITIONS } from '../../shared/partition.js';
import type { RedisSourceOptions } from '../stream.js';
import { checkTaggable, partitionKeys } from './keys.js';
import { resolveTarget, type RedisTarget } from './target.js';

export type { RedisSourceOptions } from '../stream.js';

export interface ResolvedRedisSource {
  /** Where it connects, for messages (the URL, `cluster <first node>`, 'an existing client'). */
  url: string;
  target: RedisTarget;
  stream: string;
  group: string;
  consumer: string;
  claimIdleMs: number;
  readCount: number;
  blockMs: number;
  keepAckedMs: number | false;
  sendBufferBytes: number;
  /** 0: unbounded. */
  maxDeadLetters: number;
  /** `<stream>:dead`: where dead letters go. */
  deadStream: string;
  /** The key whose lease says a live process runs this consumer name. */
  leaseKey: string;
  /** 0: one stream; else P partition streams (keys.ts names them). */
  partitions: number;
  ownerLeaseMs: number;
  ownerRenewMs: number;
  fleet: { targetLagSeconds: number; scaleDownWindowMs: number };
}

/** Default sendBufferBytes, of a Redis mailbox and of redisProducer. */
export const SEND_BUFFER_BYTES = 64 << 20;

const KNOWN = ['url', 'cluster', 'client', 'clientOptions', 'stream', 'group', 'consumer', 'claimIdleMs', 'readCount', 'blockMs', 'keepAckedMs', 'sendBufferBytes', 'maxDeadLetters', 'partitions', 'ownerLeaseMs', 'ownerRenewMs', 'fleet'];


export function resolveRedisSource(path: string, v: unknown, leaseMs: number): ResolvedRedisSource {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalidOption(path, `an object { ${KNOWN.join(', ')} }`, v);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KNOWN.includes(k)) throw invalidOption(`${path}.${k}`, `one of ${KNOWN.join(', ')} (unknown option)`, o[k]);
  const name = (k: string, def: string | undefined): string => {
    const x = o[k] === undefined ? def : o[k];
    // Well-formed: a lone surrogate would reach Redis as U+FFFD (two names, one key).
    if (typeof x !== 'string' || x === '' || /[\s]/.test(x) || !x.isWellFormed()) throw invalidOption(`${path}.${k}`, 'a non-empty, well-formed string without spaces', x);
    return x;
  };
  const int = (k: string, def: number, min: number, max: number): number => {
    const x = o[k] === undefined ? def : o[k];
    if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) throw invalidOption(`${path}.${k}`, `an integer from ${min} to ${max}`, x);
    return x;
  };
  const stream = name('stream', undefined);
  const group = name('group', 'ringpool');
  const consumer = name('consumer', `${hostname()}-${process.pid}`);
  const partitions = o.partitions === undefined ? 0 : int('partitions', 0, 1, MAX_PARTITIONS);
  if (partitions > 0) checkTaggable(path, stream);
  const ownerLeaseMs = int('ownerLeaseMs', 5_000, 100, 600_000);
  const ownerRenewMs = int('ownerRenewMs', Math.min(1_000, Math.floor(ownerLeaseMs / 2)), 10, Math.floor(ownerLeaseMs / 2));
  const keys = partitions > 0 ? partitionKeys(stream, group) : null;
  const target = resolveTarget(path, o, stream, partitions > 0);
  return {
    url: target.label,
    target,
    stream,
    group,
    consumer,
    claimIdleMs: int('claimIdleMs', Math.max(10, Math.ceil(leaseMs)), 10, 2 ** 31 - 1),
    readCount: int('readCount', 256, 1, 65_536),
    blockMs: int('blockMs', 1_000, 1, 60_000),
    keepAckedMs: keepAcked(path, o.keepAckedMs),
    sendBufferBytes: int('sendBufferBytes', SEND_BUFFER_BYTES, 1, Number.MAX_SAFE_INTEGER),
    maxDeadLetters: o.maxDeadLetters === undefined ? 0 : int('maxDeadLetters', 0, 1, 2 ** 31 - 1),
    deadStream: keys?.dead ?? `${stream}:dead`,
    leaseKey: keys?.consumer(consumer) ?? `${stream}:ringpool:consumer:${group}:${consumer}`,
    partitions,
    ownerLeaseMs,
    ownerRenewMs,
    fleet: fleetOption(`${path}.fleet`, o.fleet),
  };
}

function fleetOption(path: string, x: unknown): { targetLagSeconds: number; scaleDownWindowMs: number } {
  if (x === undefined) return { targetLagSeconds: fleetDefaults.targetLagSeconds, scaleDownWindowMs: fleetDefaults.scaleDownWindowMs };
  if (x === null || typeof x !== 'object' || Array.isArray(x)) throw invalidOption(path, 'an object { targetLagSeconds?, scaleDownWindowMs? }', x);
  const o = x as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'targetLagSeconds' && k !== 'scaleDownWindowMs') throw invalidOption(`${path}.${k}`, 'one of targetLagSeconds, scaleDownWindowMs (unknown option)', o[k]);
  const lag = o.targetLagSeconds ?? fleetDefaults.targetLagSeconds;
  if (typeof lag !== 'number' || !Number.isFinite(lag) || lag <= 0 || lag > 86_400) throw invalidOption(`${path}.targetLagSeconds`, 'a number of seconds above 0, at most 86400', lag);
  const win = o.scaleDownWindowMs ?? fleetDefaults.scaleDownWindowMs;
  if (typeof win !== 'number' || !Number.isInteger(win) || win < 0 || win > 86_400_000) throw invalidOption(`${path}.scaleDownWindowMs`, 'an integer from 0 to 86400000 (ms)', win);
  return { targetLagSeconds: lag, scaleDownWindowMs: win };
}

function keepAcked(path: string, x: unknown): number | false {
  if (x === undefined) return 0;
  if (x === false || (typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) return x;
  throw invalidOption(`${path}.keepAckedMs`, 'false or an integer >= 0 (ms)', x);
}
