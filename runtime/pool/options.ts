/**
 * The options of the runtime's shared pool of consumer threads (`pool`) and
 * a mailbox's choice of threads (`threads`) and their `resourceLimits`, checked as the rest of the
 * options are (RINGPOOL_INVALID_OPTION naming the option).
 */
import { availableParallelism } from 'node:os';
import { MAX_POOL_THREADS } from '../shared/pool-board.js';
import { invalidOption } from '../shared/errors.js';
import type { ResourceLimits } from 'node:worker_threads';

/** The runtime's shared pool of consumer threads (`pool`). */
export interface PoolOptions {
  /** Threads the pool grows to at most (it grows with the loops its mailboxes want). @default os.availableParallelism(), at most 32 */
  maxThreads?: number;
  /** A thread that serves no mailbox ends after this long. @default 10000 */
  idleTimeoutMs?: number;
}

export interface ResolvedPool {
  maxThreads: number;
  idleTimeoutMs: number;
}

export function resolvePool(path: string, v: unknown): ResolvedPool {
  const o = v === undefined ? {} : v;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw invalidOption(path, 'an object { maxThreads, idleTimeoutMs }', v);
  const r = o as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (k !== 'maxThreads' && k !== 'idleTimeoutMs') throw invalidOption(`${path}.${k}`, 'one of maxThreads, idleTimeoutMs (unknown option)', r[k]);
  }
  const maxThreads = r.maxThreads === undefined ? Math.min(MAX_POOL_THREADS, availableParallelism()) : r.maxThreads;
  if (typeof maxThreads !== 'number' || !Number.isInteger(maxThreads) || maxThreads < 1 || maxThreads > MAX_POOL_THREADS) {
    throw invalidOption(`${path}.maxThreads`, `an integer from 1 to ${MAX_POOL_THREADS}`, maxThreads);
  }
  const idleTimeoutMs = r.idleTimeoutMs === undefined ? 10_000 : r.idleTimeoutMs;
  if (typeof idleTimeoutMs !== 'number' || !Number.isInteger(idleTimeoutMs) || idleTimeoutMs < 0 || idleTimeoutMs > 3_600_000) {
    throw invalidOption(`${path}.idleTimeoutMs`, 'an integer from 0 to 3600000', idleTimeoutMs);
  }
  return { maxThreads, idleTimeoutMs };
}

export function threadsOption(path: string, v: unknown, limits: boolean): 'shared' | 'dedicated' {
  if (v === 'shared' && limits) throw invalidOption(path, "'dedicated' with resourceLimits (a thread's limits are its own, not a pool's)", v);
  if (v === 'shared' || v === 'dedicated') return v;
  throw invalidOption(path, "'shared' (the runtime's pool) or 'dedicated' (threads of its own)", v);
}

const RESOURCE_LIMITS = ['maxYoungGenerationSizeMb', 'maxOldGenerationSizeMb', 'codeRangeSizeMb', 'stackSizeMb'];

/** worker_threads ResourceLimits: each a number > 0 (Node ignores what is not a number, silently). */
export function checkResourceLimits(path: string, v: unknown): ResourceLimits | undefined {
  if (v === undefined) return undefined;
  if ((typeof v !== 'object' || v === null || Array.isArray(v))) throw invalidOption(path, `an object { ${RESOURCE_LIMITS.join(', ')} } (worker_threads ResourceLimits)`, v);
  const o = v as Record<string, unknown>;
  const out: Record<string, number> = {};
  for (const k of Object.keys(o)) {
    if (!RESOURCE_LIMITS.includes(k)) throw invalidOption(`${path}.${k}`, `one of ${RESOURCE_LIMITS.join(', ')} (unknown option)`, o[k]);
    const x = o[k];
    if (typeof x !== 'number' || !(x > 0) || !Number.isFinite(x)) throw invalidOption(`${path}.${k}`, 'a finite number > 0 (MB)', x);
    out[k] = x;
  }
  return out as ResourceLimits;
}
