/**
 * The message source seam (main thread): records that come from somewhere
 * other than local send(), such as a Redis Streams consumer group. A source
 * reads only while the ring has room (the engine keeps the backlog) and
 * learns each message's final outcome from the outcome feed, to acknowledge
 * it upstream.
 *
 * Call order, per mailbox:
 *   1. start(intake, timeoutMs)  at rt.start(), once the consumer threads
 *                          run; a rejection fails rt.start()
 *   2. intake.offer()...   while the ring has room; -1 means full: wait on
 *      offerBytes()...     intake.whenRoom(), then offer again
 *   3. outcomes(batch)...  ACKED or DEAD_LETTERED is final for an id the
 *                          source offered (RETRY is not: it runs again here)
 *   4. stop()              at close()/destroy(), before the threads stop:
 *                          stop reading; the feed's last batch still
 *                          reaches outcomes()
 *   5. close()             (optional) after that last batch: write what is
 *                          left upstream, disconnect
 *
 * Local sends may share the mailbox: a source matches outcomes by the ids
 * offer() returned. Nothing here is called for a mailbox without a source.
 */
import type { SendOptions } from '../shared/producer.js';
import type { OutcomeListener } from '../outcome.js';

export interface SourceIntake {
  readonly mailbox: string;
  /** Put one message into the ring now: its id, or -1 when there is no room (nothing written). Bad input throws as send() does. */
  offer(payload: unknown, opts?: SendOptions): number;
  /**
   * Put one message the engine holds already encoded (by the mailbox's codec)
   * into the ring, at `attempt` (the engine's delivery count), sent at
   * `sentAt` (clock.now() ms): its id, or -1 when there is no room. Unkeyed;
   * the caller checks maxMessageBytes. Throws RINGPOOL_CLOSED once closed.
   */
  offerBytes(bytes: Uint8Array, attempt: number, sentAt: number): number;
  /** Resolves at the next sign of freed space, or at once when the mailbox is stopping. */
  whenRoom(): Promise<void>;
  /** False once the mailbox stops taking messages. */
  readonly open: boolean;
}

export interface MessageSource extends OutcomeListener {
  start(intake: SourceIntake, timeoutMs?: number): void | Promise<void>;
  stop(): Promise<void>;
  close?(): Promise<void>;
}
