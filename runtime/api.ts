/**
 * The runtime's public call options and events (types only; runtime.ts is
 * the class that takes and emits them).
 */
import type { BreakerEvent } from './mailbox/breaker.js';
import type { DeadLetter } from './dead-letters.js';
import type { HandlerTimeoutEvent, ScaleEvent, WorkerCrashEvent } from './mailbox/index.js';
import type { BatchOptions, SendOptions } from './shared/producer.js';

/** What every send that may wait for room takes besides its send options. */
export interface WaitOptions {
  /** Abort the wait for room; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Give up waiting for room after this long: RINGPOOL_TIMEOUT. */
  timeoutMs?: number;
}

/** Options of `sendAsync`: a send's and a wait's. */
export interface SendAsyncOptions extends SendOptions, WaitOptions {}

export interface SendBatchAsyncOptions extends BatchOptions, WaitOptions {}

/** `rt.close(options)`. */
export interface CloseOptions {
  /** How long close() drains (queued, in-flight and delayed messages) before it stops the threads. @default 30000 */
  timeoutMs?: number;
}

/** What `close()` and `destroy()` resolve with: whether everything drained, and what was left per mailbox. */
export interface CloseReport {
  /** True when everything accepted was processed or dead-lettered before the deadline. */
  drained: boolean;
  /**
   * What was left per mailbox when the threads stopped: lost with the process
   * for an in-memory mailbox; in the journal for a durable one (run at the
   * next start); pending in the stream for a Redis one (claimed by another
   * consumer after claimIdleMs), where `ready` also counts entries its last
   * read brought back while closing.
   */
  left: Record<string, { ready: number; inFlight: number; delayed: number }>;
}

/** The `'dead-letter'` event. */
export interface DeadLetterEvent {
  mailbox: string;
  letter: DeadLetter;
}

/** Events of a runtime. */
export type { BreakerEvent } from './mailbox/breaker.js';

/** The runtime's events and their arguments (`rt.on(event, listener)` is typed by it). */
export interface RuntimeEvents {
  /** A message went to the dead-letter store. */
  'dead-letter': [DeadLetterEvent];
  /** A consumer thread died (exit, uncaught error, OOM); it was replaced and its messages put back. */
  'worker-crash': [WorkerCrashEvent];
  /** A handler ran past leaseMs; its thread was terminated and replaced, the message retried. */
  'handler-timeout': [HandlerTimeoutEvent];
  /** Something went wrong inside ringpool itself (never a handler failure). Emitted only when listened to. */
  error: [Error];
  /** The runtime finished closing (or was destroyed); its threads are gone. */
  close: [CloseReport];
  /** The desired thread count (or per-thread concurrency) of a mailbox changed, with the reason. */
  scale: [ScaleEvent];
  /** A mailbox's circuit breaker opened, went half-open (one probe), or closed. */
  breaker: [BreakerEvent];
}
