/**
 * The board of a pool of consumer threads shared by mailboxes (issue #28;
 * layout in layout.ts, "pool board"). Thread-neutral. Each mailbox served
 * by the pool is a lane with a READY bit: a producer that publishes sets it,
 * a pool thread that finds the lane's ring empty clears it, and the pool's
 * idle threads sleep on one wake word. Finding work costs one load per 32
 * lanes, not one per mailbox, and a send pays one load when the bit is set.
 *
 * Ordering (as a ring's SLEEPERS and WAKE): a producer publishes its record,
 * then sets the bit and reads SLEEPERS; a thread clears the bit, then looks at
 * the ring once more; a parking thread raises SLEEPERS, then looks at the bits
 * once more. Each pair is sequentially consistent, so either side sees the other.
 */
import { PB_READY, PB_SLEEPERS, PB_WAKE, PB_WAKE_PENDING } from './layout.js';

export class PoolBoard {
  readonly i32: Int32Array;
  /** Lanes the board has room for. */
  readonly lanes: number;

  static allocate(lanes: number): SharedArrayBuffer {
    if (!Number.isInteger(lanes) || lanes < 1) throw new RangeError(`a pool board needs at least one lane, got ${lanes}`);
    return new SharedArrayBuffer((PB_READY + Math.ceil(lanes / 32)) * 4);
  }

  constructor(sab: SharedArrayBuffer) {
    this.i32 = new Int32Array(sab);
    this.lanes = (this.i32.length - PB_READY) * 32;
  }

  /** Producer, after publishing to lane `lane`'s ring: set its bit, wake one parked thread. True when it woke one. */
  markReady(lane: number): boolean {
    const i32 = this.i32;
    const w = PB_READY + (lane >>> 5);
    const bit = 1 << (lane & 31);
    if ((Atomics.load(i32, w) & bit) === 0) Atomics.or(i32, w, bit);
    if (Atomics.load(i32, PB_SLEEPERS) === 0) return false;
    // A wake-up already on its way finds this lane too (the woken thread looks at every bit before it parks again).
    if (Atomics.compareExchange(i32, PB_WAKE_PENDING, 0, 1) !== 0) return false;
    Atomics.add(i32, PB_WAKE, 1);
    if (Atomics.notify(i32, PB_WAKE, 1) === 0) Atomics.store(i32, PB_WAKE_PENDING, 0);
    return true;
  }

  /** Pool thread: lane `lane` looked empty. Clear its bit; the caller then looks at the ring once more. */
  clearReady(lane: number): void {
    Atomics.and(this.i32, PB_READY + (lane >>> 5), ~(1 << (lane & 31)));
  }

  isReady(lane: number): boolean {
    return (Atomics.load(this.i32, PB_READY + (lane >>> 5)) & (1 << (lane & 31))) !== 0;
  }

  /** The first lane with its bit set at or after `from`, going round past the last lane; -1 when none is. */
  nextReady(from: number): number {
    const i32 = this.i32;
    const words = i32.length - PB_READY;
    const start = (from >>> 0) % this.lanes;
    const w0 = start >>> 5;
    const below = (start & 31) === 0 ? 0 : -1 >>> (32 - (start & 31)); // the bits of w0 under `start`
    let bits = Atomics.load(i32, PB_READY + w0) & ~below;
    if (bits !== 0) return (w0 << 5) + lowestBit(bits);
    for (let k = 1; k < words; k++) {
      const w = (w0 + k) % words;
      bits = Atomics.load(i32, PB_READY + w);
      if (bits !== 0) return (w << 5) + lowestBit(bits);
    }
    bits = Atomics.load(i32, PB_READY + w0) & below;
    return bits !== 0 ? (w0 << 5) + lowestBit(bits) : -1;
  }

  /** Pool thread, about to park: count itself a sleeper, then look at the bits once more (nextReady). */
  announce(): number {
    Atomics.add(this.i32, PB_SLEEPERS, 1);
    return Atomics.load(this.i32, PB_WAKE);
  }

  /** Park until a producer marks a lane (or `ms` pass); `seen` is what announce() returned. */
  wait(seen: number, ms: number): 'ok' | 'not-equal' | 'timed-out' {
    return Atomics.wait(this.i32, PB_WAKE, seen, ms);
  }

  /** Pool thread, awake again: no longer a sleeper; a later mark may wake another. */
  leave(): void {
    Atomics.sub(this.i32, PB_SLEEPERS, 1);
    Atomics.store(this.i32, PB_WAKE_PENDING, 0);
  }
}

/** The index of the lowest set bit of a non-zero word. */
const lowestBit = (bits: number): number => 31 - Math.clz32(bits & -bits);
