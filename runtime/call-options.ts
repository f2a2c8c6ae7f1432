/**
 * The options each call takes (sendAsync, sendBatchAsync, ask, an actor
 * reference, close), read once and checked: a getter or Proxy trap runs once (one
 * that throws is RINGPOOL_INVALID_OPTION, the thrown value as `cause`), and
 * what the call goes on with is a plain copy, so a later read cannot see
 * another value. Main thread.
 */
import { MAX_TIMER_MS } from './shared/clock.js';
import { ErrorCodes, RingpoolError, describeValue, optionThrew } from './shared/errors.js';
import type { BatchOptions, SendOptions } from './shared/producer.js';
import type { WaitOptions } from './api.js';

/**
 * A send's options, each read once (a getter or Proxy trap runs once; one
 * that throws is RINGPOOL_INVALID_OPTION) and the wait options checked:
 * [send options (a plain copy), signal, timeoutMs].
 */
export function splitWait<T extends SendOptions | BatchOptions>(what: string, opts: (T & WaitOptions) | undefined): [T | undefined, AbortSignal | undefined, number | undefined] {
  if (opts === undefined || opts === null) return [undefined, undefined, undefined];
  if (typeof opts !== 'object') {
    throw new RingpoolError(ErrorCodes.INVALID_OPTION, `${what} options must be an object, got ${describeValue(opts)}`, { option: 'options' });
  }
  let key: unknown, delayMs: unknown, headers: unknown, signal: unknown, timeoutMs: unknown;
  try {
    ({ key, delayMs, headers, signal, timeoutMs } = opts as Record<string, unknown>);
  } catch (err) {
    throw optionThrew(`${what} options`, err);
  }
  checkWaitOptions(what, timeoutMs, signal);
  return [(headers === undefined ? { key, delayMs } : { key, delayMs, headers }) as T, signal as AbortSignal | undefined, timeoutMs as number | undefined];
}

/** ask()'s options (also an actor reference's ask calls). */
export interface AskOptions {
  /** Keyed ordering (and, for an actor, the key whose state handles it). Required by actor mailboxes. */
  key?: string;
  /** Reject with RINGPOOL_TIMEOUT after this long (waiting for room included). The message itself still runs. */
  timeoutMs?: number;
  /** Abort the wait: the promise rejects with the signal's reason. The message itself still runs. */
  signal?: AbortSignal;
}

/** Options a typed actor reference applies to each call. */
export interface ActorRefOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

const NO_OPTIONS: AskOptions = Object.freeze({});

/**
 * An ask's (or an actor reference's) options, checked, each read once (a
 * getter or Proxy trap that throws is RINGPOOL_INVALID_OPTION): a plain copy.
 */
export function checkAsk(opts: AskOptions | ActorRefOptions | undefined): AskOptions {
  if (opts === undefined || opts === null) return NO_OPTIONS;
  if (typeof opts !== 'object') throw new RingpoolError(ErrorCodes.INVALID_OPTION, `ask options must be an object, got ${describeValue(opts)}`, { option: 'options' });
  let key: unknown, signal: unknown, timeoutMs: unknown, delayMs: unknown;
  try {
    ({ key, signal, timeoutMs, delayMs } = opts as Record<string, unknown>);
  } catch (err) {
    throw optionThrew('ask options', err);
  }
  checkWaitOptions('ask', timeoutMs, signal);
  if (delayMs !== undefined) {
    throw new RingpoolError(ErrorCodes.INVALID_OPTION, `ask options.delayMs is not supported: an ask is sent now`, { option: 'delayMs' });
  }
  if (key !== undefined && typeof key !== 'string') {
    throw new RingpoolError(ErrorCodes.INVALID_OPTION, `ask options.key must be a string, got ${describeValue(key)}`, { option: 'key' });
  }
  return { key: key as string | undefined, signal: signal as AbortSignal | undefined, timeoutMs: timeoutMs as number | undefined };
}

/** The wait options of sendAsync() and ask(): `timeoutMs` within setTimeout's limit, `signal` an AbortSignal. */
export function checkWaitOptions(what: string, timeoutMs: unknown, signal: unknown): void {
  if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !(timeoutMs >= 0 && timeoutMs <= MAX_TIMER_MS))) {
    throw new RingpoolError(ErrorCodes.INVALID_OPTION, `${what} options.timeoutMs must be a number from 0 to ${MAX_TIMER_MS} (setTimeout's limit), got ${describeValue(timeoutMs)}`, {
      option: 'timeoutMs',
      limit: MAX_TIMER_MS,
    });
  }
  if (signal !== undefined && !isAbortSignal(signal)) {
    throw new RingpoolError(ErrorCodes.INVALID_OPTION, `${what} options.signal must be an AbortSignal, got ${describeValue(signal)}`, { option: 'signal' });
  }
}

/** A real AbortSignal: not a Proxy whose traps throw, nor an object made from AbortSignal.prototype (its getters throw). */
function isAbortSignal(v: unknown): boolean {
  try {
    return v instanceof AbortSignal && typeof v.aborted === 'boolean';
  } catch {
    return false;
  }
}

/** close()'s options: its timeoutMs (default 30 s), checked. */
export function closeTimeout(opts: { timeoutMs?: number } | null | undefined): number {
  let timeoutMs: unknown;
  try {
    if (opts !== null && typeof opts !== 'object') throw new RingpoolError(ErrorCodes.INVALID_OPTION, `close options must be an object { timeoutMs }, got ${describeValue(opts)}`, { option: 'options' });
    timeoutMs = opts?.timeoutMs ?? 30_000;
  } catch (err) {
    throw optionThrew('close options', err);
  }
  if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0 && timeoutMs <= MAX_TIMER_MS)) {
    throw new RingpoolError(ErrorCodes.INVALID_OPTION, `close options.timeoutMs must be a number from 0 to ${MAX_TIMER_MS}, got ${describeValue(timeoutMs)}`, {
      option: 'timeoutMs',
      limit: MAX_TIMER_MS,
    });
  }
  return timeoutMs;
}
