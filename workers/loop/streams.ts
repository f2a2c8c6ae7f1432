/**
 * A handler's ctx.send() / ctx.sendBatch() to a Redis mailbox (consumer
 * thread; issue #30). Checked and encoded here at once (bad input throws in
 * the handler, as a ring send does; headers encoded for the entry's field
 * `h`), kept on the ctx, and posted to the
 * dispatcher as one group when the handler finishes ('stream-sends';
 * runtime/mailbox/chained.ts XADDs it). The loop then waits, without
 * blocking the thread (Atomics.waitAsync on the slot's CHAIN_DONE word), for
 * Redis to have the group before it acknowledges the handler's message; a
 * failed group, or none answered within the handler's lease, fails the
 * message instead (it runs again: the chained messages are sent at least once).
 */
import { describeValue, ErrorCodes, optionThrew, RingpoolError } from '../../runtime/shared/errors.js';
import type { BatchOptions, SendOptions } from '../../runtime/shared/producer.js';
import { encodeHeaders } from '../../runtime/shared/headers.js';
import { delayOf, keyOf, readOptions } from '../../runtime/shared/producer.js';
import type { RingRef, StreamItem } from '../../runtime/shared/protocol.js';
import type { SlotView } from '../../runtime/shared/slot.js';
import type { MessageContext } from '../context.js';
import type { CodecLookup } from './codecs.js';
import type { Post } from './tally.js';

/** A wait ends this long before the handler's lease would, so that its message fails here rather than by a lease kill. */
const LEASE_MARGIN_MS = 50;

export class StreamSends {
  /** Groups posted with a waiter (CHAIN_DONE counts them). */
  private seq = 0;
  /** What ctx.send() returns for a Redis mailbox: this loop's count of them. */
  private count = 0;

  constructor(
    private readonly codecs: CodecLookup,
    private readonly slot: SlotView,
    private readonly post: Post,
  ) {}

  send(mailbox: string, ref: RingRef, payload: unknown, opts: SendOptions | undefined, from: MessageContext | null): number {
    let key: string | null = null;
    let delayMs = 0;
    let headers: Uint8Array | null = null;
    if (opts !== undefined && opts !== null) {
      const o = readOptions(opts, 'send');
      const k = o.key;
      const h = o.headers;
      delayMs = Math.ceil(delayOf(o.delayMs));
      headers = headerBytes(h);
      if (k !== undefined && k !== null) key = this.keyFor(mailbox, ref, k);
    }
    this.keep(from, [this.item(mailbox, ref, payload, key, delayMs, -1, headers)]);
    return this.count++;
  }

  sendBatch(mailbox: string, ref: RingRef, payloads: readonly unknown[], opts: BatchOptions | undefined, from: MessageContext | null): number[] {
    if (!Array.isArray(payloads)) throw new RingpoolError(ErrorCodes.INVALID_OPTION, `ctx.sendBatch payloads must be an array, got ${describeValue(payloads)}`, { option: 'payloads' });
    let key: unknown = null;
    let delayMs = 0;
    let headers: Uint8Array | null = null;
    if (opts !== undefined && opts !== null) {
      const o = readOptions(opts, 'sendBatch');
      key = o.key ?? null;
      const h = o.headers;
      delayMs = Math.ceil(delayOf(o.delayMs));
      headers = headerBytes(h); // one copy, shared by the batch's items (and by their clones in the post)
    }
    const items: StreamItem[] = [];
    for (let i = 0; i < payloads.length; i++) {
      let k: string | null = null;
      if (typeof key === 'function') {
        let got: unknown;
        try {
          got = (key as (p: unknown, i: number) => unknown)(payloads[i], i);
        } catch (err) {
          throw optionThrew(`sendBatch key(payload, ${i})`, err);
        }
        k = this.keyFor(mailbox, ref, got);
      } else if (key !== null) k = this.keyFor(mailbox, ref, key);
      items.push(this.item(mailbox, ref, payloads[i], k, delayMs, i, headers));
    }
    if (items.length > 0) this.keep(from, items);
    const ids = items.map((_, i) => this.count + i);
    this.count += items.length;
    return ids;
  }

  /**
   * The handler finished: post what it sent to Redis mailboxes as one
   * group. Returns the group's number to wait for, or 0 when it sent none.
   */
  flush(ctx: MessageContext): number {
    ctx.finished = true;
    const items = ctx.streamSends;
    if (items === null) return 0;
    ctx.streamSends = null;
    this.seq = (this.seq + 1) | 0;
    this.post({ type: 'stream-sends', seq: this.seq, items });
    return this.seq;
  }

  /**
   * Wait for group `seq` (from flush) to be in Redis, for at most the
   * handler's lease left (`leftMs`): undefined once it is, else the error to
   * fail the message with.
   */
  async wait(seq: number, leftMs: number): Promise<Error | undefined> {
    const slot = this.slot;
    const end = performance.now() + leftMs - LEASE_MARGIN_MS;
    for (;;) {
      const done = slot.chainDone();
      if (((done - seq) | 0) >= 0) break;
      const left = end - performance.now();
      if (left <= 0) {
        return new RingpoolError(
          ErrorCodes.SOURCE_IO,
          `this handler's ctx.send() to a Redis mailbox was not confirmed by Redis within its lease: the message runs again (its chained messages may be sent twice)`,
          { option: 'leaseMs' },
        );
      }
      const w = Atomics.waitAsync(slot.i32, slot.chainDoneWord, done, Math.min(left, 1_000));
      if (w.async) await w.value;
    }
    if (((slot.chainFailed() - seq) | 0) >= 0) {
      return new RingpoolError(ErrorCodes.SOURCE_IO, `this handler's ctx.send() to a Redis mailbox failed (the runtime's 'error' event says why): the message runs again`, {});
    }
    return undefined;
  }

  /** A key for a Redis mailbox: it needs partitions there. */
  private keyFor(mailbox: string, ref: RingRef, k: unknown): string {
    const key = keyOf(k);
    if (ref.stream!.partitions === 0) {
      throw new RingpoolError(
        ErrorCodes.INVALID_OPTION,
        `ctx.send() to mailbox '${mailbox}', which reads a Redis stream without partitions: a keyed send is refused (per-key order across processes needs source.redis.partitions)`,
        { mailbox, option: 'partitions' },
      );
    }
    return key;
  }

  /** One message encoded by the target's codec (a copy: the codec's buffer is reused). */
  private item(mailbox: string, ref: RingRef, payload: unknown, key: string | null, delayMs: number, index: number, headers: Uint8Array | null): StreamItem {
    const codec = this.codecs.get(mailbox)!;
    const n = codec.prepare(payload);
    if (n > ref.maxMessageBytes) {
      throw new RingpoolError(ErrorCodes.MESSAGE_TOO_LARGE, `message of ${n} bytes is over maxMessageBytes ${ref.maxMessageBytes} of mailbox '${mailbox}'`, {
        size: n,
        limit: ref.maxMessageBytes,
        ...(index >= 0 ? { index } : {}),
      });
    }
    return { mailbox, payload: codec.preparedBytes().slice(), key, delayMs, headers };
  }

  /** On the handler's ctx until it finishes; after that (a timer), posted on its own, waited for by nobody. */
  private keep(from: MessageContext | null, items: StreamItem[]): void {
    if (from !== null && !from.finished) {
      if (from.streamSends === null) from.streamSends = items;
      else for (const it of items) from.streamSends.push(it);
      return;
    }
    this.post({ type: 'stream-sends', seq: 0, items });
  }
}

/**
 * A send's headers, checked and encoded (RINGPOOL_INVALID_OPTION as a ring
 * send gives it), as bytes of their own: posting a view of Buffer's shared
 * pool would copy the whole pool.
 */
function headerBytes(h: unknown): Uint8Array | null {
  const b = encodeHeaders(h);
  return b === null ? null : new Uint8Array(b);
}
