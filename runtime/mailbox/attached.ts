/**
 * A mailbox's store and source, through their seams (main thread): the
 * store opened at start (what it gives back is replayed by the wiring), the
 * source started once the threads run, told to stop reading when intake
 * closes, and both closed after the outcome feed's last batch. Also what
 * they answer for the mailbox: refusals, sends that go to the source's
 * engine, their stats. Nothing here is built for the in-memory mailbox.
 */
import type { DeadLetterRecord } from '../outcome.js';
import type { RingpoolError } from '../shared/errors.js';
import type { FenceRef } from '../shared/partition.js';
import type { StreamItem } from '../shared/protocol.js';
import type { BatchOptions, SendOptions } from '../shared/producer.js';
import type { MessageSource, MailboxCall, SourceIntake } from '../source/source.js';
import type { MessageStore, StoredMessage, StoreWrites } from '../store/store.js';
import type { OutcomeFeed } from './outcomes.js';
import type { MailboxStats } from './types.js';
import { Fleet } from './fleet.js';

export interface AttachedDeps {
  mailbox: string;
  store: MessageStore | null;
  source: MessageSource | null;
  /** The feed both listen to (null when neither is attached). */
  outcomes: Pick<OutcomeFeed, 'start' | 'stop'> | null;
  emitError(err: Error): void;
  /** For a source read by a group of processes (fleet.ts): messages waiting in the ring, and what this process could drain per second. */
  waiting: () => number;
  capacity: () => number | undefined;
}

export class Attached {
  /** The source's send(), when sends to this mailbox go to its engine instead of the ring (bound once, not looked up a send). */
  readonly sendOut: NonNullable<MessageSource['send']> | null;
  private sourceStopped: Promise<void> | null = null;
  private storeClosed = false;
  /** The fleet recommendation, for a source read by a group of processes. */
  private readonly fleet: Fleet | null;

  constructor(private readonly d: AttachedDeps) {
    const send = d.source?.send;
    this.sendOut = send === undefined ? null : send.bind(d.source);
    const src = d.source;
    const f = src?.fleet;
    this.fleet =
      src === null || f === undefined || src.stats === undefined
        ? null
        : new Fleet({ figures: () => src.stats?.(), waiting: d.waiting, capacity: d.capacity, targetLagSeconds: f.targetLagSeconds, scaleDownWindowMs: f.scaleDownWindowMs, max: f.max });
  }

  /** Every dispatcher tick. */
  tick(t: number): void {
    this.fleet?.tick(t);
  }

  /** Where consumer threads send ctx.send() to this mailbox: a Redis stream (posted to the dispatcher, chained.ts), or null (the ring). */
  get stream(): { partitions: number } | null {
    const s = this.d.source;
    return s?.sendEncoded === undefined ? null : { partitions: s.partitions ?? 0 };
  }

  /** ask() to a mailbox whose sends go to the source's engine (the reply comes back through it), or undefined when they go to the ring. */
  askOut(payload: unknown, key: string | undefined, flags: number, closed: boolean, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<unknown> | undefined {
    return this.d.source?.ask?.(payload, key, flags, closed, signal, timeoutMs);
  }

  /** A handler's chained sends to this mailbox, to the source's engine (rejects when sends do not go there). */
  sendEncoded(items: readonly StreamItem[]): Promise<unknown> {
    const s = this.d.source;
    if (s?.sendEncoded === undefined) return Promise.reject(new Error(`mailbox '${this.d.mailbox}' does not send to a stream`));
    return s.sendEncoded(items);
  }

  /** The source's fence table, when it reads partitions owned one process at a time (consumers read it). */
  get fence(): FenceRef | null {
    return this.d.source?.fence ?? null;
  }

  /** rt.pause / rt.resume: to a source whose pause its other processes share (a Redis group's with scope 'group'). */
  pauseOut(ms: number | undefined): void {
    this.d.source?.pause?.(ms);
  }
  resumeOut(): void {
    this.d.source?.resume?.();
  }

  /** A failed record the source read from a partition this process lost: dropped here (its new owner runs it). */
  fenced(localId: number): boolean {
    return this.d.source?.fenced?.(localId) ?? false;
  }

  /** rt.sendBatch() to a mailbox whose sends go to the source's engine, or undefined when they go to the ring. */
  sendBatchOut(payloads: readonly unknown[], opts: BatchOptions | undefined, closed: boolean): number[] | undefined {
    return this.d.source?.sendBatch?.(payloads, opts, closed);
  }

  /** rt.sendBatchAsync() likewise. */
  sendBatchAsyncOut(payloads: readonly unknown[], opts: BatchOptions | undefined, closed: boolean, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<unknown[]> | undefined {
    return this.d.source?.sendBatchAsync?.(payloads, opts, closed, signal, timeoutMs);
  }

  /** The store's promise for sends, when it writes the ring's records (a durable mailbox). */
  get writes(): StoreWrites | undefined {
    return this.d.store?.writes;
  }

  /** At start(), before the threads: what the store gives back (messages to run again, dead letters), or null without one. */
  async open(): Promise<{ stored: readonly StoredMessage[]; dead: readonly DeadLetterRecord[] } | null> {
    const store = this.d.store;
    if (store === null) return null;
    const stored = await store.open(this.d.mailbox);
    return { stored, dead: store.takeDeadLetters?.() ?? [] };
  }

  /** Once the threads run: the feed, then the source. */
  async start(intake: SourceIntake, timeoutMs: number): Promise<void> {
    this.d.outcomes?.start();
    if (this.d.source !== null) await this.d.source.start(intake, timeoutMs);
  }

  /** The error a call is refused with on this mailbox (its source cannot keep it), or null. */
  refusal(call: MailboxCall): RingpoolError | null {
    return this.d.source?.refuses?.(call) ?? null;
  }

  /** rt.sendAsync() to a mailbox whose sends go to the source's engine, or undefined when they go to the ring. */
  sendAsyncOut(payload: unknown, opts: SendOptions | undefined, closed: boolean, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<unknown> | undefined {
    return this.d.source?.sendAsync?.(payload, opts, closed, signal, timeoutMs);
  }

  /** Their figures into a stats() snapshot (`store`, `source`, and the older names `journal`, `stream`). */
  addStats(s: MailboxStats): void {
    const st = this.d.store?.stats?.();
    if (st !== undefined) {
      s.store = st;
      if (st.kind === 'journal') s.journal = st;
    }
    const so = this.d.source?.stats?.();
    if (so !== undefined) {
      const fleet = this.fleet?.stats();
      if (fleet != null) so.fleet = fleet;
      s.source = so;
      if (so.kind === 'stream') s.stream = so;
    }
  }

  /** Intake closed: the source stops reading (once). */
  stopReading(): void {
    const source = this.d.source;
    if (source !== null && this.sourceStopped === null) {
      this.sourceStopped = Promise.resolve()
        .then(() => source.stop())
        .catch((err: unknown) => this.d.emitError(err as Error));
    }
  }

  /** stopReading()'s end, waited for at most `ms`. */
  async readingStopped(ms: number): Promise<void> {
    if (this.sourceStopped === null) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.sourceStopped, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }

  /** The feed's last walk reaches them, then the source has stopped and closes, and the store closes (once). */
  async close(): Promise<void> {
    const o = this.d.outcomes;
    if (o === null) return;
    o.stop();
    await this.sourceStopped;
    await this.d.source?.close?.().catch((err: unknown) => this.d.emitError(err as Error));
    const store = this.d.store;
    if (store !== null && !this.storeClosed) {
      this.storeClosed = true;
      await store.close().catch((err: unknown) => this.d.emitError(err as Error));
    }
  }
}
