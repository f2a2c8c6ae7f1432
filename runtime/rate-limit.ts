/**
 * A mailbox's `rateLimit` option (issue #31), checked: at most `max` handler
 * starts in any window of `perMs`, across the mailbox's threads (the start
 * gate in its ring header, runtime/shared/limit.ts).
 */
import { invalidOption } from './shared/errors.js';
import { MAX_PER_MS } from './shared/limit.js';

export interface RateLimitOptions {
  /** Handler starts in any window of `perMs`, at most. */
  max: number;
  /** The window (ms), at most 600000. */
  perMs: number;
  /**
   * 'process': this process's threads share it. 'group' (a Redis mailbox): every process of its
   * consumer group shares it, and a pause (rt.pause, a handler's ctx.retryAfter) pauses them all
   * (runtime/source/redis/group-gate.ts). Give every process the same max and perMs. @default 'process'
   */
  scope?: 'process' | 'group';
}

export interface ResolvedRateLimit {
  max: number;
  perMs: number;
  scope: 'process' | 'group';
}

const KEYS = ['max', 'perMs', 'scope'];

/** `redis`: the mailbox is a Redis mailbox (source: { redis }), the only kind a 'group' scope has a group on. */
export function resolveRateLimit(path: string, v: unknown, redis: boolean): ResolvedRateLimit | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw invalidOption(path, '{ max, perMs }', v);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KEYS.includes(k)) throw invalidOption(`${path}.${k}`, `one of ${KEYS.join(', ')} (unknown option)`, o[k]);
  const { max, perMs, scope } = o;
  if (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > 1_000_000) throw invalidOption(`${path}.max`, 'an integer from 1 to 1000000 (starts a window)', max);
  if (typeof perMs !== 'number' || !Number.isInteger(perMs) || perMs < 1 || perMs > MAX_PER_MS) throw invalidOption(`${path}.perMs`, `an integer from 1 to ${MAX_PER_MS} (ms)`, perMs);
  // A window shorter than a start's spacing the clock can tell (1 µs) cannot be kept.
  if ((perMs * 1000) / max < 1) throw invalidOption(`${path}.max`, `at most ${perMs * 1000} for perMs ${perMs} (one start a microsecond)`, max);
  if (scope !== undefined && scope !== 'process' && scope !== 'group') throw invalidOption(`${path}.scope`, "'process' or 'group'", scope);
  if (scope === 'group' && !redis) throw invalidOption(`${path}.scope`, "'process' ('group' shares the limit across the processes of a Redis mailbox's group: source: { redis })", scope);
  return { max, perMs, scope: scope ?? 'process' };
}
