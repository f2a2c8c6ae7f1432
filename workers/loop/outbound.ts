/**
 * What a handler sends from a consumer thread: ctx.send() into any
 * mailbox's ring (one producer per mailbox, its reservations written down in
 * the loop's slot for hole repair), and an ask's reply into the reply ring.
 * It is the host of every MessageContext the loop makes.
 */
import { sendTraced, traceSend } from '../../runtime/shared/tracing.js';
import { ErrorCodes, RingpoolError, describeValue, journalStopped } from '../../runtime/shared/errors.js';
import { JOURNALED, JOURNAL_CLOSED, JOURNAL_FAILED, JOURNAL_SEQ, JOURNAL_WATCHERS, ringTag } from '../../runtime/shared/layout.js';
import type { PayloadCodec } from '../../runtime/shared/codec.js';
import { Producer, type BatchOptions, type SendOptions } from '../../runtime/shared/producer.js';
import type { RingRef } from '../../runtime/shared/protocol.js';
import { Ring } from '../../runtime/shared/ring.js';
import type { SlotView } from '../../runtime/shared/slot.js';
import { acquireGuard, releaseGuard } from '../../runtime/shared/guard.js';
import { DurableMarks, type ContextHost, type MessageContext } from '../context.js';
import { UnrecoverableError } from '../unrecoverable.js';
import type { CodecLookup } from './codecs.js';
import type { Pace } from './park.js';
import type { Post } from './tally.js';
import { StreamSends } from './streams.js';

export class Outbound implements ContextHost {
  private readonly producers = new Map<string, Producer>();
  /** The mailbox's reply ring (ask results). */
  private readonly replies: Ring;
  /** This mailbox's codec (replies are encoded with it). */
  private readonly codec: PayloadCodec;
  private ended = false;
  /** ctx.send() to Redis mailboxes: kept on the ctx, posted as one group when the handler finishes (streams.ts). */
  readonly streams: StreamSends;

  constructor(
    /** The mailbox this loop consumes. */
    readonly mailbox: string,
    readonly leaseMs: number,
    /** Every mailbox of the runtime: a handler may send to any of them. */
    private readonly rings: Readonly<Record<string, RingRef>>,
    /** This mailbox's key table (the other mailboxes' are made on first send). */
    private readonly keys: Int32Array,
    /** The loop's slot: its guard, and the words its reservations are written down in. */
    private readonly slot: SlotView,
    private readonly codecs: CodecLookup,
    private readonly post: Post,
    private readonly pace: Pace,
  ) {
    this.codec = codecs.get(mailbox)!;
    this.streams = new StreamSends(codecs, slot, post);
    const boxIndex = Object.keys(rings).indexOf(mailbox); // ring tags name mailboxes by this index
    this.replies = new Ring(rings[mailbox]!.replies);
    // Reservations this thread makes (ctx.send, replies) are written down in its slot (holes.ts).
    this.replies.markIn(slot.i32, slot.markWord, ringTag(boxIndex, true));
  }

  /** ctx.send(): straight into the target mailbox's ring; a send to a durable one is marked on the sender's ctx; one to a Redis mailbox is kept on it (streams.ts). */
  send(mailbox: string, payload: unknown, opts: SendOptions | undefined, from: MessageContext | null): number {
    if (this.tracing && sendTraced()) return traceSend(mailbox, 1, opts, (o) => this.sendNow(mailbox, payload, o, from));
    return this.sendNow(mailbox, payload, opts, from);
  }

  /** The runtime traces sends (its `tracing` is not false): a `send` span, a child of the running attempt's, when a provider is registered on this thread. */
  tracing = false;

  private sendNow(mailbox: string, payload: unknown, opts: SendOptions | undefined, from: MessageContext | null): number {
    let p = this.producers.get(mailbox);
    if (p === undefined) {
      // A mailbox whose sends go to a Redis stream never gets a producer here: looked up only on this slower path.
      const ref = this.streamRef(mailbox);
      if (ref !== null) return this.streams.send(mailbox, ref, payload, opts, from);
      p = this.producerFor(mailbox);
    }
    const id = p.send(payload, opts);
    const r = p.ring;
    if (r.woke) this.pace.wokeOther = true;
    // lastDelayMs: the options as the send read them (a getter is not asked twice).
    if (r.journaled && from !== null && p.lastDelayMs === 0) (from.marks ??= new DurableMarks()).add(r, r.lastEnd, mailbox);
    return id;
  }

  /** ctx.sendBatch(): every payload or none, into the target's ring in one reservation. */
  sendBatch(mailbox: string, payloads: readonly unknown[], opts: BatchOptions | undefined, from: MessageContext | null): number[] {
    if (this.tracing && sendTraced()) {
      return traceSend(mailbox, Array.isArray(payloads) ? payloads.length : 0, opts, (o) => this.sendBatchNow(mailbox, payloads, o, from));
    }
    return this.sendBatchNow(mailbox, payloads, opts, from);
  }

  private sendBatchNow(mailbox: string, payloads: readonly unknown[], opts: BatchOptions | undefined, from: MessageContext | null): number[] {
    let p = this.producers.get(mailbox);
    if (p === undefined) {
      const ref = this.streamRef(mailbox);
      if (ref !== null) return this.streams.sendBatch(mailbox, ref, payloads, opts, from);
      p = this.producerFor(mailbox);
    }
    const ids = p.sendBatch(payloads, opts);
    const r = p.ring;
    if (ids.length > 0 && r.journaled && from !== null && p.lastDelayMs === 0) (from.marks ??= new DurableMarks()).add(r, r.lastEnd, mailbox);
    return ids;
  }

  /**
   * Wait (blocking this thread: an fdatasync, ~0.5 ms) until the handler's
   * durable sends are journaled. Returns an error to nack the handler's
   * message with when a target's journal failed or closed first: the chained
   * step is not on disk, so the message that made it runs again.
   */
  awaitDurable(marks: DurableMarks): Error | undefined {
    for (let k = 0; k < marks.rings.length; k++) {
      const i32 = marks.rings[k]!.i32;
      const end = marks.ends[k]!;
      while (((Atomics.load(i32, JOURNALED) - end) | 0) < 0) {
        const broken = Atomics.load(i32, JOURNAL_FAILED);
        if (broken !== 0) return journalStopped(broken === JOURNAL_CLOSED, marks.names[k]!, 'a ctx.send() to it was not journaled, so the message that made it runs again');
        const seq = Atomics.load(i32, JOURNAL_SEQ);
        if (((Atomics.load(i32, JOURNALED) - end) | 0) >= 0) break;
        Atomics.add(i32, JOURNAL_WATCHERS, 1);
        Atomics.wait(i32, JOURNAL_SEQ, seq, 10);
        Atomics.sub(i32, JOURNAL_WATCHERS, 1);
      }
    }
    return undefined;
  }

  /** The target's ring ref when its sends go to a Redis stream, else null (unknown names fail in producerFor). */
  private streamRef(mailbox: string): RingRef | null {
    if (typeof mailbox !== 'string' || !Object.hasOwn(this.rings, mailbox)) return null;
    const ref = this.rings[mailbox]!;
    return ref.stream === null ? null : ref;
  }

  private producerFor(mailbox: string): Producer {
    const rings = this.rings;
    // Own keys only: the rings object came through postMessage with a prototype ('__proto__', 'constructor' are not mailboxes).
    if (typeof mailbox !== 'string') {
      throw new RingpoolError(ErrorCodes.INVALID_OPTION, `ctx.send(): the mailbox name must be a string, got ${describeValue(mailbox)}`, { option: 'mailbox' });
    }
    const ref = Object.hasOwn(rings, mailbox) ? rings[mailbox] : undefined;
    if (ref === undefined) {
      const shown = mailbox.length > 80 ? `${mailbox.slice(0, 77)}...` : mailbox;
      throw new RingpoolError(ErrorCodes.UNKNOWN_MAILBOX, `no mailbox named '${shown}'`, { mailbox: shown });
    }
    // A ring of its own even for this mailbox: its reservations are written down (markIn), the loop's claims are not.
    const ring = new Ring(ref.sab);
    if (ref.board !== null) ring.attachBoard(ref.board);
    const slot = this.slot;
    ring.markIn(slot.i32, slot.markWord, ringTag(Object.keys(rings).indexOf(mailbox), false));
    const post = this.post;
    const p = new Producer(
      mailbox,
      ring,
      this.codecs.get(mailbox)!,
      ref.maxMessageBytes,
      // Headers are a view of Buffer's shared pool: copied, so the post clones their bytes, not the pool's 8 KB.
      (_p, bytes, ascii, key, delayMs, id, sentAt, keySlot, keySeq, headers) =>
        post({ type: 'delayed-send', mailbox, payload: bytes, ascii, key, delayMs, id, sentAt, keySlot, keySeq, headers: headers === null ? null : new Uint8Array(headers) }),
      mailbox === this.mailbox ? this.keys : new Int32Array(ref.keys),
    );
    p.guard = { i32: slot.i32, index: slot.guardWord };
    p.closed = this.ended;
    this.producers.set(mailbox, p);
    return p;
  }

  /**
   * A handler's timer may still call ctx.send() after the loop ended: refuse
   * it (RINGPOOL_CLOSED) rather than post to a port that is about to close and lose it.
   */
  end(): void {
    this.ended = true;
    for (const p of this.producers.values()) p.closed = true;
  }

  /**
   * Write an ask's result to the reply ring (or, if it does not fit, post it).
   * Under the guard: a lease kill never leaves a reply half-written. False
   * when this thread is being revoked (the message runs again elsewhere and
   * that run replies). Throws UnrecoverableError when the codec cannot encode it.
   */
  reply(id: number, value: unknown): boolean {
    const codec = this.codec;
    let bytes: number;
    try {
      bytes = codec.prepare(value);
    } catch (err) {
      throw new UnrecoverableError(`the reply cannot be encoded by the ${codec.name} codec: ${(err as Error)?.message ?? err}`, { cause: err });
    }
    const { i32, guardWord } = this.slot;
    if (!acquireGuard(i32, guardWord)) return false;
    let ok = false;
    try {
      ok = this.replies.write(codec, bytes, null, 0, 1, id, 0, 0, codec.ascii);
      if (this.replies.woke) this.pace.wokeOther = true;
    } finally {
      releaseGuard(i32, guardWord);
    }
    if (!ok) this.post({ type: 'reply', id, payload: codec.preparedBytes(), ascii: codec.ascii });
    return true;
  }
}
