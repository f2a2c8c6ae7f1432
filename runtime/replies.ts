/**
 * ask(): the table of open asks and the reply ring. Main thread.
 *
 * Consumer threads write an ask's result into the mailbox's reply ring (a
 * second Ring: many producers, one consumer, the dispatcher) before they ack
 * the message; a result too large for it, or written while it is full, comes
 * as one `reply` event instead. The pump below runs only while asks are open:
 * it claims replies in batches, settles their asks, and parks on the ring's
 * wake word with Atomics.waitAsync in between (no timer polling).
 *
 * An ask settles exactly once: with its reply, or rejected when its message is
 * dead-lettered (RINGPOOL_DEAD_LETTERED, the last error as cause), when its
 * timeoutMs passes (RINGPOOL_TIMEOUT), when its signal aborts, or when the
 * runtime closes with the message unprocessed (RINGPOOL_CLOSED). A reply for
 * an ask that is no longer open (timed out, or a second run of its message) is
 * dropped.
 */
import type { PayloadCodec } from './shared/codec.js';
import { FLAG_ASCII, SLEEPERS, WAKE } from './shared/layout.js';
import type { Ring } from './shared/ring.js';

/** Capacity of each mailbox's reply ring. */
export const REPLY_RING_BYTES = 1 << 20;
/** The dispatcher's consumer slot in a reply ring. */
const MAIN = 0;

export interface OpenAsk {
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

export class Replies {
  private readonly open = new Map<number, OpenAsk>();
  private pumping = false;
  private readonly out = new Int32Array(256);

  constructor(
    readonly ring: Ring,
    private readonly codec: PayloadCodec,
  ) {}

  get size(): number {
    return this.open.size;
  }

  /** Open an ask for message `id`. Call it in the same synchronous step as the send, before any await. */
  add(id: number, ask: OpenAsk): void {
    this.open.set(id, ask);
    if (!this.pumping) {
      this.pumping = true;
      void this.pump();
    }
  }

  /** Settle the ask of `id` with an error, if it is open. */
  fail(id: number, err: unknown): void {
    const a = this.take(id);
    if (a !== undefined) a.reject(err);
  }

  /** Forget the ask of `id` (its caller gave up: timeout or abort). */
  drop(id: number): OpenAsk | undefined {
    return this.take(id);
  }

  /** A reply that came as an event (it did not fit in the ring). */
  fromEvent(id: number, payload: Uint8Array, ascii: boolean): void {
    const a = this.take(id);
    if (a === undefined) return;
    let value: unknown;
    try {
      value = this.codec.decode(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), payload, 0, payload.byteLength, ascii);
    } catch (err) {
      a.reject(err);
      return;
    }
    a.resolve(value);
  }

  /** Reject every open ask (the runtime closed with their messages unprocessed). Replies already written are delivered first. */
  rejectAll(err: () => unknown): void {
    this.drain();
    for (const [id, a] of [...this.open]) {
      this.open.delete(id);
      a.reject(err());
    }
    this.ring.wakeAll();
  }

  private take(id: number): OpenAsk | undefined {
    const a = this.open.get(id);
    if (a === undefined) return undefined;
    this.open.delete(id);
    // The last one out wakes the pump so it can stop waiting.
    if (this.open.size === 0) this.ring.wakeAll();
    return a;
  }

  /** Read every reply in the ring now. Returns how many were read. */
  private drain(): number {
    const { ring, out, codec } = this;
    let total = 0;
    for (;;) {
      const n = ring.claim(MAIN, out.length, out);
      if (n === 0) return total;
      total += n;
      for (let i = 0; i < n; i++) {
        const u = out[i]!;
        const a = this.take(ring.id(u));
        if (a !== undefined) {
          const start = ring.payloadStart(u);
          let value: unknown;
          let failed = false;
          try {
            value = codec.decode(ring.buf, ring.u8, start, start + ring.payloadBytes(u), (ring.flags(u) & FLAG_ASCII) !== 0);
          } catch (err) {
            failed = true;
            value = err;
          }
          if (failed) a.reject(value);
          else a.resolve(value);
        }
        ring.ack(MAIN, u);
      }
      ring.reclaim();
    }
  }

  private async pump(): Promise<void> {
    const { ring } = this;
    const i32 = ring.i32;
    try {
      for (;;) {
        if (this.drain() > 0) continue;
        if (this.open.size === 0) return;
        Atomics.add(i32, SLEEPERS, 1);
        try {
          const seen = Atomics.load(i32, WAKE);
          if (ring.hasReady() || this.open.size === 0) continue;
          const w = Atomics.waitAsync(i32, WAKE, seen, 1000);
          if (w.async) await w.value;
        } finally {
          Atomics.sub(i32, SLEEPERS, 1);
          ring.wakeConsumed();
        }
      }
    } finally {
      this.pumping = false;
      // An ask opened between the last look and here starts its own pump.
      if (this.open.size > 0 && !this.pumping) {
        this.pumping = true;
        void this.pump();
      }
    }
  }
}
