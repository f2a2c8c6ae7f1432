/**
 * What the outcome feed says (types and constants, main thread): the kinds
 * of a message's moments, a batch of them, and what listens to batches. The
 * store and source seams (runtime/store/, runtime/source/) speak it; the feed
 * that produces it is runtime/mailbox/outcomes.ts.
 */
import type { DeadLetterReason } from './dead-letters.js';
import type { ErrorInfo } from './shared/errors.js';

/** The kinds of OutcomeBatch entries. */
export const Outcome = Object.freeze({
  /** A first send made it into the mailbox (from any thread; a delayed one when it was accepted). */
  ACCEPTED: 1,
  /** A delivery passed the claim cursor: a consumer took it (each attempt, each redelivery). */
  CLAIMED: 2,
  /** The handler succeeded: final. */
  ACKED: 3,
  /** An attempt failed and will run again: `value` is when (clock.now() ms), `attempt` the next attempt. */
  RETRY: 4,
  /** Moved to the dead-letter store: final unless redriven. `value` is the reason's index in DEAD_LETTER_REASONS; `letter(i)` the letter. */
  DEAD_LETTERED: 5,
  /** A dead letter sent again (attempt 1). */
  REDRIVEN: 6,
  /** A dead letter dropped for good (purged, or pushed out at deadLetterLimit). */
  PURGED: 7,
});
/** One of Outcome's values. */
export type OutcomeKind = (typeof Outcome)[keyof typeof Outcome];
export { DEAD_LETTER_REASONS } from './dead-letters.js';

/** What an ACCEPTED entry carries, for a store that keeps messages (a copy; `message(i)` makes it on demand). */
export interface AcceptedMessage {
  id: number;
  key: string | null;
  payload: Uint8Array;
  /** The payload is 7-bit text (the codec may decode it as latin1). */
  ascii: boolean;
  /** First send, clock.now() ms. */
  sentAt: number;
  /** A delayed send: when it is due (clock.now() ms); 0 otherwise. */
  dueAt: number;
  /**
   * Its headers as encoded (runtime/shared/headers.ts: the JSON of the
   * object, UTF-8), or null (none; a store written before headers existed
   * may leave it out). A store that keeps messages keeps these too, or the
   * messages it gives back at open() come without them.
   */
  headers?: Uint8Array | null;
}

/** One batch of outcomes. The arrays are reused for the next batch: copy what you keep. */
export interface OutcomeBatch {
  readonly mailbox: string;
  /** Entries [0, n) are this batch's. */
  readonly n: number;
  readonly kind: Uint8Array;
  readonly id: Float64Array;
  readonly attempt: Int32Array;
  /** RETRY: due time; DEAD_LETTERED: reason index; else 0. */
  readonly value: Float64Array;
  /** An ACCEPTED entry's message (copied out; only during the call). Null for other kinds. */
  message(i: number): AcceptedMessage | null;
  /** A DEAD_LETTERED entry's letter: the message, its errors, reason and time (copied out; only during the call). Null for other kinds. */
  letter(i: number): DeadLetterRecord | null;
}

/** What a DEAD_LETTERED entry carries, for a store that keeps dead letters (`letter(i)` makes it on demand). */
export interface DeadLetterRecord extends AcceptedMessage {
  /** Deliveries made. */
  attempt: number;
  /** FLAG_ASK / FLAG_CALL as it was sent. */
  kept: number;
  reason: DeadLetterReason;
  /** When it was dead-lettered, ms since the epoch. */
  deadAt: number;
  firstError: ErrorInfo | undefined;
  lastError: ErrorInfo | undefined;
}

/** Anything the feed delivers to: a store, a source. Synchronous; an error it throws goes to the runtime's 'error' event. */
export interface OutcomeListener {
  /** A batch of outcomes (accepted, claimed, acked, retried, dead-lettered, ...), in the order they happened. */
  outcomes(batch: OutcomeBatch): void;
  /**
   * False for a listener that needs only the outcomes that finish ring
   * records (it reads the records from the ring itself, or offered them): the
   * feed then skips the ACCEPTED and CLAIMED entries of ring records.
   * @default true
   */
  readonly ringEntries?: boolean;
}
