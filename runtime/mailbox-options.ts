/**
 * Mailbox options: the documented defaults (`mailboxDefaults`, which the
 * docs' config table is checked against), the types, and one validation per
 * option whose error names the option's path and the value.
 */
import { resolveRateLimit, type RateLimitOptions, type ResolvedRateLimit } from './rate-limit.js';
import { resolveBreaker, type BreakerOptions } from './mailbox/breaker.js';
import { resolveAdaptive, type AdaptiveOptions } from './adaptive-policy.js';
import { MAX_TIMER_MS } from './shared/clock.js';
import { availableParallelism } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { checkResourceLimits, threadsOption } from './pool/options.js';
import { pathToFileURL } from 'node:url';
import type { ResourceLimits } from 'node:worker_threads';
import type { Codec, CodecOption } from './shared/codec.js';
import type { TracingSpec } from './shared/protocol.js';
import { ErrorCodes, RingpoolError, describeValue, invalidOption } from './shared/errors.js';
import { autoscaleDefaults } from './autoscale-policy.js';
import type { MessageStore } from './store/store.js';
import type { MessageSource } from './source/source.js';
import type { RedisSourceOptions } from './source/stream.js';
import { isBuiltInSource, resolveBuiltInSource, type BuiltInSource } from './source/index.js';
import {
  MAX_CAPACITY_BYTES,
  MAX_CONSUMERS,
  META_MAX_BYTES,
  RECORD_HEADER_BYTES,
  nextPowerOfTwo,
} from './shared/layout.js';

/** Retry backoff: full jitter between 0 and min(maxMs, baseMs * 2^(attempt - 1)). */
export interface BackoffOptions {
  /** First retry waits up to this long (full jitter: a random time in [0, min(maxMs, baseMs * 2^(attempt-1))]). @default 100 */
  baseMs?: number;
  /** Cap of the backoff. @default 30000 */
  maxMs?: number;
}

/** One mailbox: its handler and how it runs. */
export interface MailboxOptions {
  /** Handler module (path, file: URL string or URL). Its default export is `(payload, ctx) => result | Promise`. */
  handler: string | URL;
  /** Consumer threads kept running. @default 1 */
  minThreads?: number;
  /** Consumer threads at most (Piscina's maxThreads for this mailbox). @default os.availableParallelism() */
  maxThreads?: number;
  /** Ring size in bytes, rounded up to a power of two. Must hold two records of maxMessageBytes. @default 8388608 (8 MiB) */
  capacityBytes?: number;
  /** Largest encoded message (payload + key), in bytes; larger sends throw RINGPOOL_MESSAGE_TOO_LARGE. Up to 64 MiB. @default 262144 (256 KiB) */
  maxMessageBytes?: number;
  /** Deliveries before a message is dead-lettered. @default 5 */
  maxAttempts?: number;
  /** Retry backoff. @default { baseMs: 100, maxMs: 30000 } */
  backoff?: BackoffOptions;
  /** Time a handler may run, from its start; then its thread is replaced and the message retried. @default 30000 */
  leaseMs?: number;
  /** What `sendAsync` does when the ring is full: wait for room, or throw RINGPOOL_QUEUE_FULL. `send` always throws. @default 'wait' */
  overflow?: 'wait' | 'reject';
  /** Payload codec. @default 'json' */
  codec?: CodecOption;
  /** Most messages one claim takes (the loop adapts below it to about 1 ms of handler time). @default 64 */
  batchSize?: number;
  /** Dead letters kept; past it the oldest are dropped (and counted). @default 10000 */
  deadLetterLimit?: number;
  /** Worker resourceLimits for this mailbox's threads (an OOM under them is a crash); they make its threads its own. @default undefined */
  resourceLimits?: ResourceLimits;
  /** 'shared': its loops run on the runtime's pool of threads; 'dedicated': on threads of its own. @default 'shared' ('dedicated' with resourceLimits) */
  threads?: 'shared' | 'dedicated';
  /**
   * Messages in flight per thread, for async handlers that wait (on a database, ...); the autoscaler may raise it for I/O-bound handlers.
   * 'adaptive': handlers running at once across the mailbox, bounded by a limit learned from their latency (tuned by `adaptive`). @default 1
   */
  concurrency?: number | 'adaptive';
  /** With concurrency 'adaptive': the limit's bounds and start. @default { min: 1, max: 256, initial: 4 } */
  adaptive?: Partial<AdaptiveOptions>;
  /** At most `max` handler starts in any window of `perMs`, across the mailbox's threads; a message held back waits in the ring, uncharged. @default undefined (none) */
  rateLimit?: RateLimitOptions;
  /** A circuit breaker: when `failureRatio` of at least `minCalls` attempts in `windowMs` failed, start nothing for `cooldownMs`, then one probe. @default undefined (none) */
  breaker?: Partial<BreakerOptions>;
  /** Thread count from backlog and drain rate, between minThreads and maxThreads; `false` keeps minThreads (or what `rt.resize()` pins). @default {} (on, with the defaults below) */
  autoscale?: AutoscaleOptions | false;
  /**
   * Where the mailbox keeps its messages beyond memory (runtime/store/store.ts):
   * told every outcome in batches, asked at start() what to deliver again.
   * @default undefined (in memory only)
   */
  store?: MessageStore;
  /**
   * Where records come from besides local sends (runtime/source/source.ts):
   * fed while the ring has room, told each message's outcome.
   * `{ redis: {...} }`: a Redis Streams consumer group, shared by processes
   * on several hosts (runtime/source/redis/).
   * @default undefined (local sends only)
   */
  source?: MessageSource | { redis: RedisSourceOptions };
  /**
   * `'memory'` (today's in-memory mailbox) or an on-disk journal that survives
   * a crash (runtime/store/journal/). @default 'memory'
   */
  durability?: 'memory' | DurabilityOptions;
}

export interface DurabilityOptions {
  /** The journal's directory, one per mailbox; created if missing. */
  dir: string;
  /**
   * `'always'`: a send is durable once fdatasynced (group commit); `'interval'`:
   * written at once, fdatasynced every intervalMs; `'never'`: written, the OS
   * decides when it reaches the disk (survives a process crash only). @default 'always'
   */
  fsync?: 'always' | 'interval' | 'never';
  /** fsync 'interval': how often. @default 5 */
  intervalMs?: number;
  /** A segment file is rolled over at this size. @default 64 MiB */
  segmentBytes?: number;
}

export interface ResolvedDurability {
  dir: string;
  fsync: 'always' | 'interval' | 'never';
  intervalMs: number;
  segmentBytes: number;
}

/** The `autoscale` option: how the autoscaler sizes a mailbox's threads. */
export interface AutoscaleOptions {
  /** Backlog the pool should clear in this many seconds. @default 1 */
  targetLagSeconds?: number;
  /** How often the autoscaler decides. @default 1000 */
  tickMs?: number;
  /** Scale down only to the highest recommendation of this window. @default 30000 */
  scaleDownWindowMs?: number;
  /** Relative change ignored. @default 0.1 */
  tolerance?: number;
  /** Most threads added in one decision. @default 4 */
  maxStepUp?: number;
  /** Highest per-thread concurrency the autoscaler sets for I/O-bound handlers. @default 64 */
  maxConcurrency?: number;
  /** Below this mean event-loop utilisation of the consumer threads, they count as I/O-bound. @default 0.6 */
  busyElu?: number;
}

/** The defaults of a mailbox's options (docs/getting-started.md's table is checked against it). */
export const mailboxDefaults = Object.freeze({
  minThreads: 1,
  maxThreads: availableParallelism(),
  capacityBytes: 8 << 20,
  maxMessageBytes: 256 << 10,
  maxAttempts: 5,
  backoff: Object.freeze({ baseMs: 100, maxMs: 30_000 }),
  leaseMs: 30_000,
  overflow: 'wait' as const,
  codec: 'json' as const,
  batchSize: 64,
  deadLetterLimit: 10_000,
  resourceLimits: undefined,
  threads: 'shared' as const,
  concurrency: 1,
  autoscale: Object.freeze({}),
});

/** Largest maxMessageBytes accepted. */
export const MAX_MESSAGE_BYTES_LIMIT = 64 << 20;

export interface ResolvedMailbox {
  name: string;
  handlerUrl: string;
  minThreads: number;
  maxThreads: number;
  capacityBytes: number;
  maxMessageBytes: number;
  maxAttempts: number;
  backoff: { baseMs: number; maxMs: number };
  leaseMs: number;
  overflow: 'wait' | 'reject';
  codec: CodecOption;
  batchSize: number;
  deadLetterLimit: number;
  resourceLimits: ResourceLimits | undefined;
  threads: 'shared' | 'dedicated';
  /** How its consumer threads trace (the runtime's `tracing`, with this mailbox's maxAttempts); null: `tracing: false`. */
  tracing: TracingSpec | null;
  /** Per thread (with adaptive concurrency: adaptive.max, the mailbox-wide limit bounds it). */
  concurrency: number;
  /** Adaptive concurrency, or null (fixed). */
  adaptive: AdaptiveOptions | null;
  autoscale: ResolvedAutoscale | false;
  rateLimit: ResolvedRateLimit | null;
  breaker: BreakerOptions | null;
  store: MessageStore | null;
  source: MessageSource | null;
  /** `source: { redis }`, its options checked (the source itself is built with the mailbox, runtime/source/index.ts). */
  builtInSource: BuiltInSource | null;
  /** null: in memory. */
  durability: ResolvedDurability | null;
}

export interface ResolvedAutoscale {
  targetLagSeconds: number;
  tickMs: number;
  scaleDownWindowMs: number;
  tolerance: number;
  maxStepUp: number;
  maxConcurrency: number;
  busyElu: number;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function int(path: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER, what?: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalidOption(path, what ?? (max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`), v);
  }
  return v;
}

export function handlerUrl(path: string, v: unknown): string {
  if (v instanceof URL) return v.href;
  if (typeof v !== 'string' || v.length === 0) throw invalidOption(path, 'a module path, file: URL string or URL', v);
  if (/^[a-z][a-z0-9+.-]*:/i.test(v) && !/^[a-z]:[\\/]/i.test(v)) return v; // already a URL (file:, data:, ...)
  return pathToFileURL(isAbsolute(v) ? v : resolve(v)).href;
}

function codec(path: string, v: unknown): CodecOption {
  if (v === 'json' || v === 'msgpack' || v === 'v8' || v === 'raw') return v;
  if (isPlainObject(v) || (typeof v === 'object' && v !== null)) {
    const c = v as Partial<Codec>;
    if (typeof c.encode !== 'function' || typeof c.decode !== 'function' || typeof c.name !== 'string') {
      throw invalidOption(path, "'json', 'msgpack', 'v8', 'raw' or a Codec { name, encode, decode, url }", v);
    }
    if (c.url === undefined) {
      throw invalidOption(`${path}.url`, 'the URL of a module whose default export is this codec (worker threads load it)', c.url);
    }
    return v as Codec;
  }
  throw invalidOption(path, "'json', 'msgpack', 'v8', 'raw' or a Codec { name, encode, decode, url }", v);
}

export function resolveMailbox(name: string, o: unknown): ResolvedMailbox {
  const p = `mailboxes.${name}`;
  if (!isPlainObject(o)) throw invalidOption(p, 'an object', o);
  const known = new Set([...Object.keys(mailboxDefaults), 'handler', 'adaptive', 'rateLimit', 'breaker', 'store', 'source', 'durability']);
  for (const k of Object.keys(o)) if (!known.has(k)) throw invalidOption(`${p}.${k}`, `one of ${[...known].join(', ')} (unknown option)`, o[k]);
  const d = mailboxDefaults;
  const pick = <T>(k: string, def: T): unknown => (o[k] === undefined ? def : o[k]);

  const minThreads = int(`${p}.minThreads`, pick('minThreads', d.minThreads), 0, MAX_CONSUMERS - 1);
  const maxThreads = int(
    `${p}.maxThreads`,
    pick('maxThreads', Math.max(d.maxThreads, minThreads, 1)),
    1,
    MAX_CONSUMERS - 1,
    `a positive integer up to ${MAX_CONSUMERS - 1}`,
  );
  if (minThreads > maxThreads) {
    throw invalidOption(`${p}.minThreads`, `at most maxThreads (${maxThreads})`, minThreads);
  }
  const maxMessageBytes = int(`${p}.maxMessageBytes`, pick('maxMessageBytes', d.maxMessageBytes), 1, MAX_MESSAGE_BYTES_LIMIT);
  const cap = int(`${p}.capacityBytes`, pick('capacityBytes', d.capacityBytes), 1, MAX_CAPACITY_BYTES);
  const maxRecord = RECORD_HEADER_BYTES + maxMessageBytes + META_MAX_BYTES;
  if (cap < 2 * maxRecord) {
    throw invalidOption(
      `${p}.capacityBytes`,
      `at least ${2 * maxRecord} bytes: room for two records of maxMessageBytes (${maxMessageBytes}) with their header and retry meta, so the largest message always fits`,
      cap,
    );
  }
  const capacityBytes = nextPowerOfTwo(cap);
  const maxAttempts = int(`${p}.maxAttempts`, pick('maxAttempts', d.maxAttempts), 1);
  const b = pick('backoff', d.backoff);
  if (!isPlainObject(b)) throw invalidOption(`${p}.backoff`, 'an object { baseMs, maxMs }', b);
  const baseMs = b.baseMs === undefined ? d.backoff.baseMs : b.baseMs;
  const maxMs = b.maxMs === undefined ? Math.max(d.backoff.maxMs, typeof baseMs === 'number' ? baseMs : 0) : b.maxMs;
  if (typeof baseMs !== 'number' || !(baseMs >= 0) || !Number.isFinite(baseMs)) throw invalidOption(`${p}.backoff.baseMs`, 'a finite number >= 0', baseMs);
  if (typeof maxMs !== 'number' || !(maxMs >= baseMs) || !Number.isFinite(maxMs)) throw invalidOption(`${p}.backoff.maxMs`, `a finite number >= backoff.baseMs (${baseMs})`, maxMs);
  const leaseMs = pick('leaseMs', d.leaseMs);
  if (typeof leaseMs !== 'number' || !(leaseMs > 0) || !(leaseMs <= MAX_TIMER_MS)) throw invalidOption(`${p}.leaseMs`, `a number > 0 and <= ${MAX_TIMER_MS} (setTimeout's limit)`, leaseMs);
  const overflow = pick('overflow', d.overflow);
  if (overflow !== 'wait' && overflow !== 'reject') throw invalidOption(`${p}.overflow`, "'wait' or 'reject'", overflow);
  const resourceLimits = checkResourceLimits(`${p}.resourceLimits`, pick('resourceLimits', d.resourceLimits));
  const adaptive = resolveAdaptive(p, pick('concurrency', d.concurrency), o.adaptive);
  return Object.assign(Object.create(null) as ResolvedMailbox, {
    name,
    handlerUrl: handlerUrl(`${p}.handler`, o.handler),
    minThreads,
    maxThreads,
    capacityBytes,
    maxMessageBytes,
    maxAttempts,
    backoff: { baseMs, maxMs },
    leaseMs,
    overflow,
    codec: codec(`${p}.codec`, pick('codec', d.codec)),
    batchSize: int(`${p}.batchSize`, pick('batchSize', d.batchSize), 1, 4096),
    deadLetterLimit: int(`${p}.deadLetterLimit`, pick('deadLetterLimit', d.deadLetterLimit), 0),
    resourceLimits: resourceLimits as ResourceLimits | undefined,
    threads: threadsOption(`${p}.threads`, pick('threads', resourceLimits === undefined ? 'shared' : 'dedicated'), resourceLimits !== undefined),
    concurrency: adaptive?.max ?? int(`${p}.concurrency`, pick('concurrency', d.concurrency), 1, 1024, "an integer from 1 to 1024, or 'adaptive'"),
    adaptive,
    autoscale: resolveAutoscale(`${p}.autoscale`, pick('autoscale', d.autoscale)),
    rateLimit: resolveRateLimit(`${p}.rateLimit`, o.rateLimit, isBuiltInSource(o.source)),
    breaker: resolveBreaker(`${p}.breaker`, o.breaker),
    store: seam<MessageStore>(`${p}.store`, o.store, ['open', 'outcomes', 'close']),
    source: isBuiltInSource(o.source) ? null : seam<MessageSource>(`${p}.source`, o.source, ['start', 'outcomes', 'stop']),
    builtInSource: builtInSource(p, o, leaseMs),
    durability: durability(`${p}.durability`, o.durability, o.store),
    tracing: { setup: null, process: 'link', maxAttempts } as TracingSpec | null,
  });
}

/** `source: { redis }`: refused beside a store or durability (Redis is where the messages live). */
function builtInSource(p: string, o: Record<string, unknown>, leaseMs: number): BuiltInSource | null {
  if (!isBuiltInSource(o.source)) return null;
  for (const k of ['store', 'durability'] as const) {
    if (o[k] !== undefined && o[k] !== 'memory') throw invalidOption(`${p}.${k}`, 'absent on a Redis mailbox (the stream is where its messages live)', o[k]);
  }
  return resolveBuiltInSource(`${p}.source`, o.source, leaseMs);
}

function durability(path: string, v: unknown, store: unknown): ResolvedDurability | null {
  if (v === undefined || v === 'memory') return null;
  if (!isPlainObject(v)) throw invalidOption(path, "'memory' or an object { dir, fsync, intervalMs, segmentBytes }", v);
  if (store !== undefined) throw invalidOption(path, 'absent when a store is given (the journal is the mailbox\'s store)', v);
  const known = ['dir', 'fsync', 'intervalMs', 'segmentBytes'];
  for (const k of Object.keys(v)) if (!known.includes(k)) throw invalidOption(`${path}.${k}`, `one of ${known.join(', ')} (unknown option)`, v[k]);
  if (typeof v.dir !== 'string' || v.dir === '' || v.dir.includes('\0')) throw invalidOption(`${path}.dir`, 'a directory path (a non-empty string without NUL)', v.dir);
  const fsync = v.fsync === undefined ? 'always' : v.fsync;
  if (fsync !== 'always' && fsync !== 'interval' && fsync !== 'never') throw invalidOption(`${path}.fsync`, "'always', 'interval' or 'never'", fsync);
  const intervalMs = v.intervalMs === undefined ? 5 : v.intervalMs;
  if (typeof intervalMs !== 'number' || !(intervalMs >= 1) || !(intervalMs <= 60_000)) throw invalidOption(`${path}.intervalMs`, 'a number from 1 to 60000', intervalMs);
  const segmentBytes = int(`${path}.segmentBytes`, v.segmentBytes === undefined ? 64 << 20 : v.segmentBytes, 4096, 1 << 30);
  return { dir: resolve(v.dir), fsync, intervalMs, segmentBytes };
}

/** A store or source: undefined, or an object with these methods. */
function seam<T>(path: string, v: unknown, methods: readonly string[]): T | null {
  if (v === undefined) return null;
  if (v === null || typeof v !== 'object') throw invalidOption(path, `an object with ${methods.join(', ')}()`, v);
  for (const k of methods) {
    if (typeof (v as Record<string, unknown>)[k] !== 'function') throw invalidOption(`${path}.${k}`, 'a function', (v as Record<string, unknown>)[k]);
  }
  return v as T;
}

function resolveAutoscale(path: string, v: unknown): ResolvedAutoscale | false {
  if (v === false) return false;
  if (!isPlainObject(v)) throw invalidOption(path, 'false or an object { targetLagSeconds, tickMs, scaleDownWindowMs, tolerance, ... }', v);
  const d = autoscaleDefaults;
  for (const k of Object.keys(v)) if (!(k in d)) throw invalidOption(`${path}.${k}`, `one of ${Object.keys(d).join(', ')} (unknown option)`, v[k]);
  const num = (k: keyof typeof d, ok: (x: number) => boolean, what: string): number => {
    const x = v[k] === undefined ? d[k] : v[k];
    if (typeof x !== 'number' || !Number.isFinite(x) || !ok(x)) throw invalidOption(`${path}.${k}`, what, x);
    return x;
  };
  return {
    targetLagSeconds: num('targetLagSeconds', (x) => x > 0, 'a number > 0'),
    tickMs: num('tickMs', (x) => Number.isInteger(x) && x >= 10, 'an integer >= 10'),
    scaleDownWindowMs: num('scaleDownWindowMs', (x) => x >= 0, 'a number >= 0'),
    tolerance: num('tolerance', (x) => x >= 0 && x < 1, 'a number from 0 to below 1'),
    maxStepUp: num('maxStepUp', (x) => Number.isInteger(x) && x >= 1, 'an integer >= 1'),
    maxConcurrency: num('maxConcurrency', (x) => Number.isInteger(x) && x >= 1 && x <= 1024, 'an integer from 1 to 1024'),
    busyElu: num('busyElu', (x) => x > 0 && x <= 1, 'a number in (0, 1]'),
  };
}
