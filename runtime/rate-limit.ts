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
  /** 'process': this process's threads share it (the only scope yet). @default 'process' */
  scope?: 'process';
}

export interface ResolvedRateLimit {
  max: number;
  perMs: number;
}

const KEYS = ['max', 'perMs', 'scope'];

export function resolveRateLimit(path: string, v: unknown): ResolvedRateLimit | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw invalidOption(path, '{ max, perMs }', v);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KEYS.includes(k)) throw invalidOption(`${path}.${k}`, `one of ${KEYS.join(', ')} (unknown option)`, o[k]);
  const { max, perMs, scope } = o;
  if (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > 1_000_000) throw invalidOption(`${path}.max`, 'an integer from 1 to 1000000 (starts a window)', max);
  if (typeof perMs !== 'number' || !Number.isInteger(perMs) || perMs < 1 || perMs > MAX_PER_MS) throw invalidOption(`${path}.perMs`, `an integer from 1 to ${MAX_PER_MS} (ms)`, perMs);
  // A window shorter than a start's spacing the clock can tell (1 µs) cannot be kept.
  if ((perMs * 1000) / max < 1) throw invalidOption(`${path}.max`, `at most ${perMs * 1000} for perMs ${perMs} (one start a microsecond)`, max);
  if (scope !== undefined && scope !== 'process') throw invalidOption(`${path}.scope`, "'process' (a limit shared by a Redis group, 'group', is not built yet)", scope);
  return { max, perMs };
}
