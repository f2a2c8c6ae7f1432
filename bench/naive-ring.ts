/**
 * The ceiling: a minimal single-producer single-consumer SharedArrayBuffer ring
 * with the same JSON codec, written by hand for the benchmark. Not part of
 * ringpool: no retries, no leases, no crash recovery, no multi-producer, no
 * ack per message (the consumer publishes its read cursor once per batch).
 *
 *   ctl (Int32 words):  0 head (bytes written)   4 tail (bytes read)   8 consumer sleeping
 *                       12 stop                  13 'stamp' samples written
 *   data:               [u32 length][JSON bytes], 4-byte aligned; length 0xffffffff = wrap to 0
 *
 * Cursors are uint32 byte counts that wrap at 2^32; the capacity is a power
 * of two, so `cursor % capacity` is the position across the wrap.
 * The consumer is bench/fixtures/naive-ring-consumer.js.
 */
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { fixture } from './paths.js';
import { tick, type HandlerKind, type Session } from './session.js';

interface FastBuffer extends Buffer {
  latin1Write(s: string, offset: number, length: number): number;
}

const HEAD = 0;
const TAIL = 4;
const SLEEPING = 8;
const STOP = 12;
const STAMPED = 13;

export class NaiveRing {
  readonly sab: SharedArrayBuffer;
  private readonly ctl: Int32Array;
  private readonly buf: FastBuffer;
  private readonly dv: DataView;
  private head = 0;

  constructor(readonly capacity: number) {
    if ((capacity & (capacity - 1)) !== 0) throw new Error(`capacity must be a power of two, got ${capacity}`);
    this.sab = new SharedArrayBuffer(64 + capacity);
    this.ctl = new Int32Array(this.sab, 0, 16);
    this.buf = Buffer.from(this.sab, 64, capacity) as FastBuffer;
    this.dv = new DataView(this.sab, 64, capacity);
  }

  /** Write one JSON text (the workloads' messages are ASCII) if there is room; false if the ring is full. */
  trySend(text: string): boolean {
    const len = Buffer.byteLength(text);
    const need = (4 + len + 3) & ~3;
    const tail = Atomics.load(this.ctl, TAIL) >>> 0;
    const at = this.head % this.capacity;
    const wrap = at + need > this.capacity ? this.capacity - at : 0;
    if (((this.head + wrap + need - tail) >>> 0) > this.capacity) return false;
    if (wrap) {
      this.dv.setUint32(at, 0xffffffff, true);
      this.head = (this.head + wrap) >>> 0;
    }
    const p = this.head % this.capacity;
    this.dv.setUint32(p, len, true);
    this.buf.latin1Write(text, p + 4, len);
    this.head = (this.head + need) >>> 0;
    Atomics.store(this.ctl, HEAD, this.head | 0);
    if (Atomics.load(this.ctl, SLEEPING) === 1) Atomics.notify(this.ctl, HEAD);
    return true;
  }

  /** True when the consumer has read everything written. */
  empty(): boolean {
    return Atomics.load(this.ctl, TAIL) >>> 0 === this.head;
  }

  stamped(): number {
    return Atomics.load(this.ctl, STAMPED);
  }

  stop(): void {
    Atomics.store(this.ctl, STOP, 1);
    Atomics.notify(this.ctl, HEAD);
  }
}

/** A session over a fresh ring and consumer thread. `maxSamples` bounds the 'stamp' sample buffer (W4 at 50 % load on a fast machine takes over a million in its 2 s). */
export async function openNaiveRing(handler: HandlerKind, capacity = 8 << 20, maxSamples = 1 << 22): Promise<Session> {
  const ring = new NaiveRing(capacity);
  const latencies = handler === 'stamp' ? new SharedArrayBuffer(8 * maxSamples) : null;
  const w = new Worker(fixture('naive-ring-consumer.js'), { workerData: { sab: ring.sab, capacity, kind: handler, latencies } });
  await once(w, 'online');
  const exited = once(w, 'exit');
  let taken = 0;

  const waitUntil = async (cond: () => boolean, what: string, timeoutMs = 60_000): Promise<void> => {
    const end = performance.now() + timeoutMs;
    while (!cond()) {
      if (performance.now() > end) throw new Error(`naive ring: timed out waiting for ${what}`);
      await tick();
    }
  };

  return {
    send(message) {
      const text = JSON.stringify(message);
      if (!ring.trySend(text)) return waitUntil(() => ring.trySend(text), 'room');
    },
    drain: () => waitUntil(() => ring.empty(), 'the consumer to catch up'),
    async latencies(count) {
      if (latencies === null) throw new Error('not a stamp session');
      if (count > maxSamples) throw new Error(`at most ${maxSamples} samples, asked for ${count}`);
      const from = taken;
      await waitUntil(() => ring.stamped() >= from + count, `${count} latency samples`);
      taken += count;
      const all = new Float64Array(latencies);
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = all[(from + i) % maxSamples]!;
      return out;
    },
    async close() {
      ring.stop();
      await exited;
    },
  };
}
