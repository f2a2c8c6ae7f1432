/**
 * What a failed attempt leads to (main thread; a decision, no state): run it
 * again after a backoff with full jitter, or dead-letter it, and why. A
 * function of the attempt, the policy and the time, unit-tested with a fake
 * clock (failures.ts carries it out).
 */
import type { DeadLetterReason } from '../dead-letters.js';
import { backoffDelay } from '../timer-heap.js';

/** What ended an attempt: the handler threw (`error`, or `unrecoverable`), its thread died (`crash`), its lease ran out (`timeout`). */
export type FailureKind = 'error' | 'unrecoverable' | 'crash' | 'timeout';

export interface RetryPolicy {
  maxAttempts: number;
  backoff: { baseMs: number; maxMs: number };
}

export type AfterFailure = { retry: true; attempt: number; dueAt: number } | { retry: false; reason: DeadLetterReason };

/**
 * After attempt `attempt` failed as `kind` at time `now`: retry as attempt
 * + 1 once `dueAt` (full jitter: a random share of the capped exponential
 * backoff), or dead-letter. The reason names the last failure: an error
 * (`max_attempts`), a crash (`poison`), a lease expiry (`timeout`);
 * `unrecoverable` never retries.
 */
export function afterFailure(attempt: number, kind: FailureKind, policy: RetryPolicy, now: number, random: () => number = Math.random): AfterFailure {
  if (kind === 'unrecoverable') return { retry: false, reason: 'unrecoverable' };
  if (attempt >= policy.maxAttempts) return { retry: false, reason: kind === 'error' ? 'max_attempts' : kind === 'crash' ? 'poison' : 'timeout' };
  return { retry: true, attempt: attempt + 1, dueAt: now + backoffDelay(attempt, policy.backoff.baseMs, policy.backoff.maxMs, random) };
}
