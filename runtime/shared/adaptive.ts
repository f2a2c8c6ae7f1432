/**
 * Adaptive concurrency in a mailbox's ring header (issue #31): the limit the
 * dispatcher learned (runtime/adaptive-policy.ts), the handlers running
 * across every thread of the mailbox, and the latency the threads measured
 * since the dispatcher last read it. Thread-neutral. A loop reserves before
 * it claims (a CAS on RUNNING below LIMIT: no message to the main thread),
 * releases as each handler ends and adds its latency to SUM/COUNT; the
 * dispatcher reads and zeroes the sums every tick and writes LIMIT.
 *
 * A loop keeps what it holds (reserved or running) in its slot's
 * S_ADAPT_HELD word too: when its thread dies, the dispatcher gives that
 * back (releaseSlot), so a crash does not shrink the mailbox's limit for
 * good.
 */
import { HEADER_BYTES, SLOTS_OFF, SLOT_WORDS, S_ADAPT_HELD } from './layout.js';
import { LIMIT_GROUP, PROBE } from './limit.js';

/** Header words, after the start gate's (limit.ts). LIMIT 0: not adaptive. */
export const ADAPT_LIMIT = PROBE + 1;
export const ADAPT_RUNNING = PROBE + 2;
/** Handler time of the successes (µs) and their count, since the dispatcher last took them. */
export const ADAPT_SUM_US = PROBE + 3;
export const ADAPT_COUNT = PROBE + 4;
/** The most running at once since the dispatcher last took it. */
export const ADAPT_PEAK = PROBE + 5;
/** Times a loop found the limit reached (counted once a wait). */
export const ADAPT_WAITS = PROBE + 6;

if (ADAPT_WAITS >= Math.min(LIMIT_GROUP, HEADER_BYTES >> 2)) throw new Error('adaptive words past their room in the ring header');

function heldWord(slot: number): number {
  return (SLOTS_OFF >> 2) + slot * SLOT_WORDS + S_ADAPT_HELD;
}

/** Reserve up to `want` starts under the limit: how many were reserved (0: the limit is reached). */
export function reserve(i32: Int32Array, slot: number, want: number): number {
  const limit = Atomics.load(i32, ADAPT_LIMIT);
  for (;;) {
    const running = Atomics.load(i32, ADAPT_RUNNING);
    const k = Math.min(want, limit - running);
    if (k <= 0) return 0;
    if (Atomics.compareExchange(i32, ADAPT_RUNNING, running, running + k) === running) {
      Atomics.add(i32, heldWord(slot), k);
      const v = running + k;
      for (let p = Atomics.load(i32, ADAPT_PEAK); v > p; p = Atomics.load(i32, ADAPT_PEAK)) {
        if (Atomics.compareExchange(i32, ADAPT_PEAK, p, v) === p) break;
      }
      return k;
    }
  }
}

/** Give back `n` reserved starts (not used, or their handlers ended). */
export function release(i32: Int32Array, slot: number, n: number): void {
  if (n <= 0) return;
  Atomics.sub(i32, heldWord(slot), n);
  Atomics.sub(i32, ADAPT_RUNNING, n);
}

/** A handler that succeeded ran `ms`: a latency sample. */
export function sample(i32: Int32Array, ms: number): void {
  Atomics.add(i32, ADAPT_SUM_US, Math.round(ms * 1000));
  Atomics.add(i32, ADAPT_COUNT, 1);
}

/** The dispatcher: the samples and the peak since it last took them (the peak starts again from what runs now). */
export function takeSamples(i32: Int32Array): { count: number; sumMs: number; peak: number } {
  const count = Atomics.exchange(i32, ADAPT_COUNT, 0);
  const sumMs = (Atomics.exchange(i32, ADAPT_SUM_US, 0) >>> 0) / 1000;
  const peak = Atomics.exchange(i32, ADAPT_PEAK, Atomics.load(i32, ADAPT_RUNNING));
  return { count, sumMs, peak };
}

/** The dispatcher, a loop's thread gone: what it held goes back. */
export function releaseSlot(i32: Int32Array, slot: number): void {
  const n = Atomics.exchange(i32, heldWord(slot), 0);
  if (n !== 0) Atomics.sub(i32, ADAPT_RUNNING, n);
}
