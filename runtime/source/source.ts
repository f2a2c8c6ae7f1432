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
import type { DeadLetterSink } from '../dead-letters.js';
import type { RingpoolError } from '../shared/errors.js';
import type { BatchOptions, SendOptions } from '../shared/producer.js';
import type { OutcomeListener } from '../outcome.js';
import type { FenceRef } from '../shared/partition.js';
import type { StreamItem } from '../shared/protocol.js';
import type { StreamStats } from './stream.js';

/** What a source is given at start(): how it puts messages into the mailbox and reports its faults. */
export interface SourceIntake {
  readonly mailbox: string;
  /** Put one message into the ring now: its id, or -1 when there is no room (nothing written). Bad input throws as send() does. */
  offer(payload: unknown, opts?: SendOptions): number;
  /**
   * Put one message the engine holds already encoded (by the mailbox's codec)
   * into the ring, at `attempt` (the engine's delivery count), sent at
   * `sentAt` (clock.now() ms): its id, or -1 when there is no room. `key`:
   * keyed, in the key's order (taken now); `flags`: FLAG_PARTITION for a
   * record of a partition (fenced by `fence`). The caller checks
   * maxMessageBytes. `headers`: the message's headers as encoded
   * (runtime/shared/headers.ts encodeHeaders: JSON, UTF-8), or null. Throws
   * RINGPOOL_CLOSED once closed.
   */
  offerBytes(bytes: Uint8Array, attempt: number, sentAt: number, key?: string | null, flags?: number, headers?: Uint8Array | null): number;
  /** Resolves at the next sign of freed space, or at once when the mailbox is stopping. */
  whenRoom(): Promise<void>;
  /** False once the mailbox stops taking messages. */
  readonly open: boolean;
}

/** The calls a source may refuse for its mailbox (refuses()). */
export type MailboxCall = 'ask' | 'sendBatch' | 'sendBatchAsync' | 'actor';

export interface MessageSource extends OutcomeListener {
  /** Begin reading: messages go into the mailbox through `intake` (after its threads run). */
  start(intake: SourceIntake, timeoutMs?: number): void | Promise<void>;
  /** Stop reading (the mailbox closes); what is held still finishes. */
  stop(): Promise<void>;
  /** After the last outcomes: release what the source holds. */
  close?(): Promise<void>;
  /**
   * Optional: sends to the mailbox go to the source's engine (a Redis
   * stream), not into this process's ring; they come back through it. The
   * number is the source's own count of sends. `closed`: the mailbox takes no
   * more sends (RINGPOOL_CLOSED). `flags`: FLAG_CALL for an actor method
   * call (`tell`), to be run as one where it is read.
   */
  send?(payload: unknown, opts: SendOptions | undefined, closed: boolean, flags?: number): number;
  /** Optional: rt.pause / rt.resume on this process, for a source whose pause is shared by its other processes (a Redis group's). */
  pause?(ms: number | undefined): void;
  /** rt.resume on this process (see pause). */
  resume?(): void;
  /** Optional, with send(): resolves with what the engine names the message (a stream entry id). */
  sendAsync?(payload: unknown, opts: SendOptions | undefined, closed: boolean, signal?: AbortSignal, timeoutMs?: number): Promise<unknown>;
  /**
   * Optional, with send(): rt.sendBatch() to the mailbox goes to the engine,
   * every payload or none, in order. The numbers are the source's own count.
   */
  sendBatch?(payloads: readonly unknown[], opts: BatchOptions | undefined, closed: boolean): number[];
  /** Optional, with sendBatch(): resolves with what the engine names each message (stream entry ids), in order. */
  sendBatchAsync?(payloads: readonly unknown[], opts: BatchOptions | undefined, closed: boolean, signal?: AbortSignal, timeoutMs?: number): Promise<unknown[]>;
  /**
   * Optional, with send(): a handler's chained sends to the mailbox
   * (ctx.send / ctx.sendBatch on a worker, already encoded by the mailbox's
   * codec): to the engine all together, in order; resolves once it has them
   * (its handler's message is acknowledged only then).
   */
  sendEncoded?(items: readonly StreamItem[]): Promise<unknown>;
  /**
   * Optional, with send(): ask() to the mailbox goes to the engine with a
   * reply address and comes back from whichever process ran it; settles as
   * a local ask does (the reply, the final error, RINGPOOL_TIMEOUT, the
   * signal's reason). `flags`: FLAG_CALL for an actor method.
   */
  ask?(payload: unknown, key: string | undefined, flags: number, closed: boolean, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<unknown>;
  /** Optional, with sendEncoded(): the mailbox's partitions (0: none); a keyed chained send needs them. */
  readonly partitions?: number;
  /** Optional: the error a call is refused with on this source's mailbox (with why), or null when it takes it. */
  refuses?(call: MailboxCall): RingpoolError | null;
  /**
   * Optional: where the mailbox's dead letters go, given its local store:
   * a source may keep the letters of its own messages upstream and leave
   * the others (a handler's ctx.send() into this ring) to the local store.
   */
  deadLetters?(local: DeadLetterSink): DeadLetterSink;
  /**
   * Optional: the fence table (runtime/shared/partition.ts) of a source that
   * reads partitions, each owned by one process at a time: consumers start a
   * FLAG_PARTITION record only while its partition's lease here lasts, and
   * its ctx carries the fencing epoch.
   */
  readonly fence?: FenceRef | null;
  /**
   * Optional, with `fence`: a failed or skipped record the source read from
   * a partition this process no longer owns: true when the source drops it
   * here (not retried, not dead-lettered: its new owner runs it).
   */
  fenced?(localId: number): boolean;
  /** Optional: its figures, for `stats().source`. */
  stats?(): SourceStats;
  /**
   * Optional, with `stats()` of kind 'stream': the source reads a group that
   * other processes read too; the mailbox then recommends how many processes
   * the group needs (runtime/mailbox/fleet.ts) with these settings, in
   * `stats().source.fleet`.
   */
  readonly fleet?: { targetLagSeconds: number; scaleDownWindowMs: number; max: number };
  /**
   * True when other processes encode and decode the mailbox's messages too
   * (a Redis stream): codecs share no state between threads then (msgpack
   * keeps its record shapes in each message).
   */
  readonly remote?: boolean;
}

/** `stats().source`: what a source reports. The built-in one is a Redis Streams mailbox's. */
export type SourceStats = StreamStats;
