// The start gate (runtime/shared/limit.ts) on a real SharedArrayBuffer with a fake clock: greedy takers at random
// moments never put more than `max` starts in any window of `perMs`, and get at least 99 % of max per window over a
// long run; refunds give starts back; a time far past (an idle gate, a wrapped clock) starts afresh; pauses, timed
// and held, and a later pause never shortening an earlier one.
import { describe, expect, it } from 'vitest';
import { HEADER_BYTES } from '../../dist/runtime/shared/layout.js';
import { blockTaken, hold, limitWait, now32, offerBlock, pausedFor, pauseUntil, refund, resume, setGroup, setLimit, takeStarts } from '../../dist/runtime/shared/limit.js';

const fresh = () => new Int32Array(new SharedArrayBuffer(HEADER_BYTES));

/** A deterministic PRNG (mulberry32). */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Takers asking for batches at random moments over `ms`; the start times (µs from 0). */
function simulate(max: number, perMs: number, ms: number, seed: number, base = 0): number[] {
  const i32 = fresh();
  setLimit(i32, max, perMs);
  const r = rng(seed);
  const starts: number[] = [];
  let t = 0;
  while (t < ms * 1000) {
    t += Math.floor(r() * 3 * ((perMs * 1000) / max)) + 1; // about as often as a start is due, sometimes bursts
    const want = 1 + Math.floor(r() * 16);
    const k = takeStarts(i32, want, (base + t) | 0);
    const used = Math.floor(r() * (k + 1)); // fewer ready than taken, sometimes
    for (let i = 0; i < used; i++) starts.push(t);
    refund(i32, k - used);
  }
  return starts;
}

/** Most starts in any half-open window [t, t + w) of the sorted list. */
function maxInWindow(starts: number[], w: number): number {
  let best = 0;
  let j = 0;
  for (let i = 0; i < starts.length; i++) {
    while (starts[i]! - starts[j]! >= w) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

describe('the start gate', () => {
  for (const [max, perMs] of [[1, 100], [7, 50], [200, 1_000], [1_000, 1_000], [10_000, 1_000], [50, 20]] as const) {
    it('a limit changed while it runs (rt.setRateLimit): a faster one starts from now, a slower one keeps what was taken, 0 lifts it', () => {
    const i32 = fresh();
    setLimit(i32, 1, 10_000); // one start per 10 s
    expect(takeStarts(i32, 5, 0)).toBe(1);
    expect(takeStarts(i32, 5, 1_000)).toBe(0); // the next is 10 s away
    setLimit(i32, 1_000, 1_000); // 1,000 a second: the old schedule, far ahead of the new spacing, is not waited for
    const k = takeStarts(i32, 100, 2_000);
    expect(k).toBeGreaterThanOrEqual(1);
    expect(k).toBeLessThanOrEqual(6); // its burst (max / 200) and the start in hand
    setLimit(i32, 0, 0);
    expect(takeStarts(i32, 1_000, 3_000)).toBe(1_000);
    setLimit(i32, 2, 1_000); // one every 500 ms
    expect(takeStarts(i32, 5, 10_000_000)).toBe(1);
    expect(takeStarts(i32, 5, 10_100_000)).toBe(0);
    expect(takeStarts(i32, 5, 10_500_000)).toBe(1);
  });

  it(`never more than ${max} starts in any ${perMs} ms window, and close to ${max} a window when always asked`, () => {
      for (const seed of [1, 2, 3]) {
        const starts = simulate(max, perMs, 20 * perMs, seed, seed === 3 ? 2 ** 31 - 5_000 * perMs : 0); // seed 3 crosses the wrap
        expect(maxInWindow(starts, perMs * 1000)).toBeLessThanOrEqual(max);
      }
      // Greedy: asks every µs-ish for all it can take, uses all.
      const i32 = fresh();
      setLimit(i32, max, perMs);
      let n = 0;
      const step = Math.max(1, Math.floor((perMs * 1000) / max / 100));
      for (let t = 0; t < 50 * perMs * 1000; t += step) n += takeStarts(i32, 1_000_000, t);
      expect(n / 50).toBeGreaterThanOrEqual(Math.floor(max * 0.985));
      expect(n / 50).toBeLessThanOrEqual(max);
    });
  }

  it('says how long until the next start; refunds give starts back; an idle gate starts afresh', () => {
    const i32 = fresh();
    setLimit(i32, 10, 1_000); // T = 100 ms
    expect(takeStarts(i32, 100, 0)).toBe(1);
    expect(takeStarts(i32, 100, 0)).toBe(0);
    expect(limitWait(i32, 0)).toBe(100_000);
    expect(limitWait(i32, 60_000)).toBe(40_000);
    refund(i32, 1);
    expect(takeStarts(i32, 1, 0)).toBe(1);
    expect(takeStarts(i32, 3, 100_000)).toBe(1);
    // Idle for an hour, across a wrap of the µs clock: a start at once.
    expect(takeStarts(i32, 1, (3_600_000_000 + 100_000) | 0)).toBe(1);
    setLimit(i32, 0, 0);
    expect(takeStarts(i32, 5, 0)).toBe(5); // no limit
  });

  it('pauses: timed, held, a later timed pause never shortens an earlier one, resume ends both', () => {
    const i32 = fresh();
    const t = now32(Date.now());
    expect(pausedFor(i32, t)).toBe(0);
    pauseUntil(i32, (t + 1_000_000) | 0, t);
    expect(pausedFor(i32, t)).toBe(1_000_000);
    pauseUntil(i32, (t + 500_000) | 0, t);
    expect(pausedFor(i32, t)).toBe(1_000_000);
    pauseUntil(i32, (t + 2_000_000) | 0, t);
    expect(pausedFor(i32, (t + 1_500_000) | 0)).toBe(500_000);
    expect(pausedFor(i32, (t + 2_000_000) | 0)).toBe(0); // over
    hold(i32);
    expect(pausedFor(i32, t)).toBe(-1);
    pauseUntil(i32, (t + 10) | 0, t); // a timed pause does not end a held one
    expect(pausedFor(i32, (t + 100) | 0)).toBe(-1);
    resume(i32);
    expect(pausedFor(i32, t)).toBe(0);
  });

  it("a group's limit: starts only inside the blocks offered, on to the next block at the end, refunds never below the block", () => {
    const i32 = fresh();
    setLimit(i32, 100, 100); // T = 1000 µs, no burst
    const t0 = 5_000_000;
    setGroup(i32, t0);
    expect(takeStarts(i32, 10, t0)).toBe(0); // no block yet
    expect(limitWait(i32, t0)).toBe(5_000);
    offerBlock(i32, t0, 5); // slots t0 .. t0 + 4000
    expect(blockTaken(i32)).toBe(false);
    let n = 0;
    for (let t = t0; t < t0 + 20_000; t += 250) n += takeStarts(i32, 10, t);
    expect(n).toBe(5); // the block, not the 20 a local limit gives in 20 ms
    expect(blockTaken(i32)).toBe(true);
    // The next block starts after other processes' slots: nothing before it, then its 3 slots one T apart.
    offerBlock(i32, t0 + 30_000, 3);
    const at: number[] = [];
    for (let t = t0 + 20_000; t < t0 + 60_000; t += 100) for (let k = takeStarts(i32, 10, t); k > 0; k--) at.push(t);
    expect(at).toEqual([t0 + 30_000, t0 + 31_000, t0 + 32_000]);
    // A refund gives back into the block, not before it (those slots were other processes').
    refund(i32, 10);
    const back: number[] = [];
    for (let t = t0 + 60_000; t < t0 + 70_000; t += 100) for (let k = takeStarts(i32, 10, t); k > 0; k--) back.push(t);
    expect(back.length).toBe(0); // the block's slots lie in the past: lost, not a burst now
    offerBlock(i32, t0 + 80_000, 2);
    expect(takeStarts(i32, 10, t0 + 70_000)).toBe(0); // moved on to the block; it starts later
    expect(takeStarts(i32, 10, t0 + 80_000)).toBe(1);
    refund(i32, 5);
    expect(takeStarts(i32, 10, t0 + 76_000)).toBe(0); // not before the block
    expect(takeStarts(i32, 10, t0 + 80_000)).toBe(1); // the one refunded, not five
  });
});
