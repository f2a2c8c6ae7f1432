/**
 * Parking an idle consumer loop: spin briefly, then sleep on the ring's wake
 * word (a blocking futex wait while nothing of the loop runs, an async one
 * while handlers are in flight), and give the event loop its turns.
 */
import { SLEEPERS, WAKE } from '../../runtime/shared/layout.js';
import { handoffReady } from '../../runtime/shared/handoff.js';
import { faultHook } from '../../runtime/shared/faults.js';
import type { Ring } from '../../runtime/shared/ring.js';

/** How long an idle consumer polls the ring before it parks on the wake word. */
const SPIN_MS = 0.05;
/** Parked consumers re-check their slot at least this often (handlers in flight). */
const PARK_TIMEOUT_MS = 200;
/** A loop with nothing in flight blocks in the futex for at most this long before it gives its event loop a turn. */
const PARK_SYNC_MS = 10;
/** Under continuous load, give the event loop (comlink calls, handler timers) a turn this often. */
export const YIELD_EVERY_MS = 5;

export const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The loop's pacing, shared by its parts (plain fields, this thread only):
 * when its event loop last had a turn, whether it parked in the current
 * report window, whether one of its sends woke a parked thread.
 */
export class Pace {
  /** When the event loop last had a turn (performance.now()). */
  lastYield = 0;
  /** The loop parked in the current ~100 ms window (its ELU then says nothing about its handlers). */
  parkedInWindow = true;
  /**
   * A send or reply of this loop woke a parked thread since it last parked.
   * The scheduler tends to run the woken thread on the waker's core, so
   * spinning here would hold it off (an ask's reply came ~60 µs late): park
   * at once instead.
   */
  wokeOther = false;

  /** Give the event loop its turn if one is due (every YIELD_EVERY_MS under load). */
  async yieldIfDue(): Promise<void> {
    if (performance.now() - this.lastYield > YIELD_EVERY_MS) {
      await yieldToLoop();
      this.lastYield = performance.now();
    }
  }
}

/** What a loop parks with: its ring's own wake word (Parker), or its shared pool thread's (workers/pool/parker.ts). */
export interface Parks {
  /** Return when the loop may have work: a producer published, the slot was stopped, or a timeout. */
  park(): Promise<void>;
}

/** What a loop's parker is made from. */
export interface ParkerParts {
  ring: Ring;
  keys: Int32Array;
  c: number;
  pace: Pace;
  running: () => boolean;
  inflight: () => number;
  /** The loop wants a look again soon even if nothing is published (keyed records it holds for their turn). */
  busy: () => boolean;
}

/** Parks one consumer loop: slot `c` of `ring`, its hand-off queue in `keys`. */
export class Parker implements Parks {
  private readonly ring: Ring;
  private readonly keys: Int32Array;
  private readonly c: number;
  private readonly pace: Pace;
  /** Whether the loop still runs (its slot's status and guard, a stop request). */
  private readonly running: () => boolean;
  /** Handlers of the loop running now: with none, the wait may block the thread. */
  private readonly inflight: () => number;

  constructor(p: ParkerParts) {
    this.ring = p.ring;
    this.keys = p.keys;
    this.c = p.c;
    this.pace = p.pace;
    this.running = p.running;
    this.inflight = p.inflight;
  }

  /** Sleep on the wake word until a producer publishes, the slot is stopped, or a timeout. */
  async park(): Promise<void> {
    const { ring, keys, c, pace } = this;
    const i32 = ring.i32;
    if (!this.running()) return;
    pace.parkedInWindow = true;
    ring.reclaim();
    // Messages arriving every few ms would wake the blocking wait below each
    // time, and the event loop (comlink calls, handler timers, ctx.send's
    // delayed posts) would never run: give it its turn first when it is due.
    if (performance.now() - pace.lastYield > YIELD_EVERY_MS) {
      await yieldToLoop();
      pace.lastYield = performance.now();
      if (!this.running()) return;
    }
    // Spin a little first: under a stream of sends the next record is usually
    // microseconds away, and a parked consumer costs the producer a futex wake
    // (tens of µs on a send, and the wake-up latency on the message).
    // Not after waking another thread (pace.wokeOther): it is likely waiting for this core.
    const spinUntil = pace.wokeOther ? 0 : performance.now() + SPIN_MS;
    pace.wokeOther = false;
    for (let k = 1; ; k++) {
      if (ring.hasReady() || handoffReady(keys, c)) return;
      if ((k & 63) === 0 && performance.now() > spinUntil) break;
    }
    Atomics.add(i32, SLEEPERS, 1);
    try {
      const seen = Atomics.load(i32, WAKE);
      // Last look after announcing ourselves: a producer that published before
      // it could see SLEEPERS > 0 left its record for us to find here.
      if (ring.hasReady() || handoffReady(keys, c) || !this.running()) return;
      if (this.inflight() === 0) {
        // Nothing of this loop waits on its event loop: block in the futex.
        // A wake-up then costs the futex alone, not also a task through the
        // event loop (Atomics.waitAsync: ~40 µs more at p50 in bench W4).
        // Back to the event loop every PARK_SYNC_MS, for control calls and timers.
        const r = Atomics.wait(i32, WAKE, seen, PARK_SYNC_MS);
        if (faultHook !== null) faultHook('woken', 0);
        if (r === 'timed-out') {
          await yieldToLoop();
          pace.lastYield = performance.now();
        }
      } else {
        const res = Atomics.waitAsync(i32, WAKE, seen, PARK_TIMEOUT_MS);
        if (res.async) {
          await res.value;
          pace.lastYield = performance.now();
        }
      }
    } finally {
      Atomics.sub(i32, SLEEPERS, 1);
      ring.wakeConsumed();
    }
  }
}
