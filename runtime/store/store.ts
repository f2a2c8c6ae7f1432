/**
 * The message store seam (main thread): where a mailbox keeps its messages
 * beyond memory. The in-memory mailbox has none. A store learns every moment
 * of a message's life from the outcome feed (runtime/mailbox/outcomes.ts),
 * in batches, and gives back at start() what an earlier run left unfinished.
 *
 * Call order, per mailbox:
 *   1. open(mailbox)       at rt.start(), before any consumer thread: the
 *                          messages to deliver again (each is accepted anew,
 *                          keyed ones at the end of their key's order)
 *   2. outcomes(batch)...  while it runs: ACCEPTED, CLAIMED, ACKED, RETRY
 *                          (due time), DEAD_LETTERED, REDRIVEN, PURGED
 *   3. close()             after the threads stopped and the feed's last
 *                          batch was delivered (close() or destroy())
 *
 * A durable store (the journal, its own folder) writes ACCEPTED records
 * before it lets consumers claim them and replays what has no final outcome
 * (ACKED, DEAD_LETTERED then PURGED) at open(). Nothing here is called for a
 * mailbox without a store.
 */
import type { AcceptedMessage, DeadLetterRecord, OutcomeListener } from '../outcome.js';
import type { ErrorInfo } from '../shared/errors.js';

/** A message a store gives back at open(): delivered again with this attempt (at dueAt, if that is still ahead). */
export interface StoredMessage extends AcceptedMessage {
  /** The attempt it runs as (1 for a message never tried). */
  attempt: number;
  /** FLAG_ASK / FLAG_CALL as it was sent (an actor call's payload is `[method, ...args]`). @default 0 */
  kept?: number;
  /** Its first failure, when it failed before. */
  firstError?: ErrorInfo;
}

export interface MessageStore extends OutcomeListener {
  /** At start(): what survives from before, to deliver again. */
  open(mailbox: string): Promise<readonly StoredMessage[]>;
  /** After the mailbox stopped: flush what is buffered and let go of files. */
  close(): Promise<void>;
  /** Optional: the dead letters it kept, taken once after open(); they go back into the mailbox's dead-letter store. */
  takeDeadLetters?(): readonly DeadLetterRecord[];
  /** Optional: its figures, for `stats().store`. */
  stats?(): StoreStats;
  /**
   * Set by a store that writes the ring's records itself before consumers may
   * claim them (a durable mailbox's journal: its ring is allocated with the
   * barrier, runtime/store/index.ts). `sendAsync` and `sendBatchAsync`
   * resolve once it says the message is written.
   */
  readonly writes?: StoreWrites;
}

/** A store's promise for sends: when a message is written (and synced as the store's mode says). */
export interface StoreWrites {
  /** Resolves with `id` once every ring record before cursor `end` is written; rejects if the store failed or closed first. */
  whenWritten(end: number, id: number): Promise<number>;
  /** Outcome batches handed to the store so far. */
  readonly posted: number;
  /** Resolves with `id` once the store wrote outcome batch number `n` (a delayed send's ACCEPTED is in the next one). */
  whenPosted(n: number, id: number): Promise<number>;
}

/** `stats().store`: what a store reports. The built-in one is a durable mailbox's journal. */
export type StoreStats = JournalStats;

/** `stats().store` of a durable mailbox (also `stats().journal`). */
export interface JournalStats {
  kind: 'journal';
  segments: number;
  bytes: number;
  fsyncs: number;
  lastFsyncMs: number;
  /** Messages (and dead letters) given back by recovery at start(). */
  recovered: number;
  /** Segments deleted or copied forward. */
  compactions: number;
}
