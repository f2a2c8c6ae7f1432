/**
 * The board of a pool of consumer threads shared by mailboxes (issue #28),
 * and its layout. Thread-neutral. Each mailbox served
 * by the pool is a lane with a READY bit, and each pool thread has a SLEEP
 * flag and a WAKE word of its own. A producer that publishes to a lane's
 * ring sets the bit and wakes the parked threads that host the lane (the
 * ring's POOL_HOSTS mask), and no other: a thread whose lanes are idle is
 * never woken by its neighbours' traffic.
 *
 * Ordering (as a ring's SLEEPERS and WAKE): a producer publishes its record,
 * then sets the bit and reads SLEEP; a thread about to park sets SLEEP, then
 * looks at its lanes' bits once more; a thread that finds a lane's ring empty
 * clears the bit, then looks at the ring once more. Each pair is
 * sequentially consistent, so either side sees the other.
 */

// ---- the board's layout: one Int32 SharedArrayBuffer per shared pool ----
/** Pool thread t's words from PB_THREADS + t * PB_THREAD_WORDS (a cache line each): SLEEP, WAKE, the lane whose handler runs (-1: none), HANDOFF (a keyed record was handed to one of its loops). */
export const PB_THREADS = 16;
export const PB_THREAD_WORDS = 16;
/** A ring's POOL_HOSTS word (layout.ts) is a mask of pool threads: 32 at most. */
export const MAX_POOL_THREADS = 32;
/** From here one READY bit per lane. */
export const PB_READY = PB_THREADS + MAX_POOL_THREADS * PB_THREAD_WORDS;

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

  /**
   * Producer, after publishing to lane `lane`'s ring: set its bit, wake the
   * parked threads among `hosts` (a mask of pool threads). True when it woke one.
   */
  markReady(lane: number, hosts: number): boolean {
    const i32 = this.i32;
    const w = PB_READY + (lane >>> 5);
    const bit = 1 << (lane & 31);
    // Set already: whoever set it wakes the hosts (a thread clears the bit before its last look at the ring,
    // and looks at the bits after raising SLEEP), as WAKE_PENDING spares a ring's producers a notify each.
    if ((Atomics.load(i32, w) & bit) !== 0) return false;
    Atomics.or(i32, w, bit);
    let woke = false;
    for (let h = hosts; h !== 0; h &= h - 1) {
      if (this.wakeIfParked(31 - Math.clz32(h & -h))) woke = true;
    }
    return woke;
  }

  /** Pool thread: lane `lane` looked empty. Clear its bit; the caller then looks at the ring once more. */
  clearReady(lane: number): void {
    Atomics.and(this.i32, PB_READY + (lane >>> 5), ~(1 << (lane & 31)));
  }

  /** READY word `w` (lanes 32w to 32w + 31). */
  wordOf(w: number): number {
    return Atomics.load(this.i32, PB_READY + w);
  }

  isReady(lane: number): boolean {
    return (Atomics.load(this.i32, PB_READY + (lane >>> 5)) & (1 << (lane & 31))) !== 0;
  }

  /** Pool thread `t`, about to park: raise its SLEEP flag, then look at its lanes' bits once more. Returns the WAKE value to wait on. */
  announce(t: number): number {
    const s = PB_THREADS + t * PB_THREAD_WORDS;
    const seen = Atomics.load(this.i32, s + 1);
    Atomics.store(this.i32, s, 1);
    return seen;
  }

  /** Park thread `t` until a producer wakes it (or `ms` pass); `seen` is what announce() returned. */
  wait(t: number, seen: number, ms: number): 'ok' | 'not-equal' | 'timed-out' {
    return Atomics.wait(this.i32, PB_THREADS + t * PB_THREAD_WORDS + 1, seen, ms);
  }

  /** Pool thread `t`, awake again: a producer need not wake it. */
  leave(t: number): void {
    Atomics.store(this.i32, PB_THREADS + t * PB_THREAD_WORDS, 0);
  }

  /** Thread `t`'s word naming the lane whose handler it runs now (-1: none), written by that thread around each handler call. */
  runningWord(t: number): number {
    return PB_THREADS + t * PB_THREAD_WORDS + 2;
  }

  /**
   * A thread handed a keyed record to a loop of thread `t` (a hand-off queue
   * is per slot, not per mailbox: the mailbox's bit would not do, another
   * loop of the mailbox may clear it): raise `t`'s HANDOFF word, then wake
   * it if it is parked. It looks at its waiting loops' hand-off queues.
   */
  handoff(t: number): void {
    const i32 = this.i32;
    const s = PB_THREADS + t * PB_THREAD_WORDS;
    if (Atomics.load(i32, s + 3) === 0) Atomics.store(i32, s + 3, 1);
    this.wakeIfParked(t);
  }

  /** Thread `t`, if parked: the one that turns its SLEEP 1 -> 0 notifies (one futex wake per park). True when it did. */
  private wakeIfParked(t: number): boolean {
    const i32 = this.i32;
    const s = PB_THREADS + t * PB_THREAD_WORDS;
    if (Atomics.load(i32, s) === 0 || Atomics.compareExchange(i32, s, 1, 0) !== 1) return false;
    Atomics.add(i32, s + 1, 1);
    Atomics.notify(i32, s + 1);
    return true;
  }

  /** Thread `t`: whether a hand-off came since it last looked (and lower the word; it then looks at every waiting loop's queue). */
  takeHandoff(t: number): boolean {
    const w = PB_THREADS + t * PB_THREAD_WORDS + 3;
    return Atomics.load(this.i32, w) !== 0 && Atomics.exchange(this.i32, w, 0) !== 0;
  }

  /** A new thread `t`: asleep to no one, running nothing. */
  reset(t: number): void {
    const s = PB_THREADS + t * PB_THREAD_WORDS;
    Atomics.store(this.i32, s, 0);
    Atomics.store(this.i32, s + 2, -1);
    Atomics.store(this.i32, s + 3, 0);
  }

  /** Wake thread `t` whatever its lanes (a new lane, a stop). */
  wake(t: number): void {
    const s = PB_THREADS + t * PB_THREAD_WORDS;
    Atomics.store(this.i32, s, 0);
    Atomics.add(this.i32, s + 1, 1);
    Atomics.notify(this.i32, s + 1);
  }
}
