/**
 * Throw this from a handler (or call `ctx.retryAfter(ms)`, which throws it)
 * when the downstream says "not now" (a 429 or a 503 with Retry-After): the
 * message goes back to its mailbox uncharged (the same attempt, no backoff,
 * never a dead letter), and the whole mailbox starts nothing new for `ms`
 * (the start gate, runtime/shared/limit.ts). Recognised by `name` and
 * `retryAfterMs` too, so a copy of the class from another bundle works.
 */
import { ErrorCodes, RingpoolError, describeValue } from '../runtime/shared/errors.js';
import { MAX_PAUSE_MS } from '../runtime/shared/limit.js';

/** Thrown by a handler (or `ctx.retryAfter(ms)`) when the downstream said "not now": the message goes back uncharged and the mailbox pauses for `ms`. */
export class RetryAfterError extends Error {
  override name = 'RetryAfterError';
  readonly code = ErrorCodes.RETRY_AFTER;
  /** How long the mailbox pauses (ms, 0 to 30 min). */
  readonly retryAfterMs: number;

  constructor(ms: number, message?: string) {
    if (typeof ms !== 'number' || !(ms >= 0) || ms > MAX_PAUSE_MS) {
      throw new RingpoolError(ErrorCodes.INVALID_OPTION, `retryAfter(ms): ms must be a number from 0 to ${MAX_PAUSE_MS} (30 min), got ${describeValue(ms)}`, { option: 'ms' });
    }
    super(message ?? `the downstream asked to retry after ${ms} ms`);
    this.retryAfterMs = ms;
  }
}

/** The pause a thrown value asks for (ms), or -1 when it is not a RetryAfterError. */
export function retryAfterOf(err: unknown): number {
  if (err instanceof RetryAfterError) return err.retryAfterMs;
  if (typeof err !== 'object' || err === null || (err as { name?: unknown }).name !== 'RetryAfterError') return -1;
  const ms = (err as { retryAfterMs?: unknown }).retryAfterMs;
  return typeof ms === 'number' && ms >= 0 && ms <= MAX_PAUSE_MS ? ms : -1;
}
