// Adaptive concurrency's policy (runtime/adaptive-policy.ts) with a fake clock against a model downstream: C
// requests served at once in S ms each, the rest queued (a closed loop: `limit` handlers keep it busy, so a window
// of w ms ends about w * min(L, C) / S requests, each taking S * max(1, L / C) plus the client's own overhead).
// The limit settles a little above C (a few requests waiting, queueing under S), follows a capacity raised or
// lowered within seconds, does not grow unused, measures the no-load latency again when it has gone stale (a
// downstream slower for good), and keeps to min and max.
import { describe, expect, it } from 'vitest';
import { AdaptiveLimit, PROBE_EVERY_MS, adaptiveDefaults, resolveAdaptive } from '../../dist/runtime/adaptive-policy.js';

interface Model {
  C: number;
  S: number;
  /** The client's own time per request (ms). */
  overhead?: number;
  /** Handlers that want to run (the backlog's reach): Infinity when the backlog is deep. */
  demand?: number;
}

/** Run the policy against the model for `ms` in dispatcher ticks of 100 ms; the limit after each tick. */
function run(p: AdaptiveLimit, m: Model, t0: number, ms: number, tick = 100): { t: number; limits: number[]; queueMs: number[] } {
  const limits: number[] = [];
  const queueMs: number[] = [];
  let t = t0;
  for (; t < t0 + ms; ) {
    t += tick;
    const running = Math.min(p.current, m.demand ?? Infinity);
    const inDownstream = running;
    const wait = m.S * Math.max(0, inDownstream / m.C - 1);
    const rtt = m.S + wait + (m.overhead ?? 0.3);
    const count = Math.round((tick * running) / rtt);
    p.update(t, { count, sumMs: count * rtt, peak: running });
    limits.push(p.current);
    queueMs.push(wait);
  }
  return { t, limits, queueMs };
}

describe('adaptive concurrency: the policy', () => {
  it('C = 8, S = 5 ms: settles within 8-16 from its start of 4, queueing under S; stays there across probes', () => {
    const p = new AdaptiveLimit({ ...adaptiveDefaults }, 0);
    expect(p.current).toBe(4);
    const a = run(p, { C: 8, S: 5 }, 0, 3_000);
    // From 4 to above 8 within the first second.
    expect(a.limits.slice(0, 10).some((l) => l >= 8)).toBe(true);
    const b = run(p, { C: 8, S: 5 }, a.t, 60_000);
    expect(Math.min(...b.limits)).toBeGreaterThanOrEqual(8); // probes included: they drop to what the downstream serves, 8
    expect(Math.max(...b.limits)).toBeLessThanOrEqual(16);
    expect(Math.max(...b.queueMs)).toBeLessThan(5);
    expect(p.rttMin).toBeCloseTo(5.3, 1);
  });

  it('the capacity raised to 64 mid-run: the limit follows within seconds; lowered again: it comes back down', () => {
    const p = new AdaptiveLimit({ ...adaptiveDefaults }, 0);
    const a = run(p, { C: 8, S: 5 }, 0, 5_000);
    const up = run(p, { C: 64, S: 5 }, a.t, 3_000);
    const at = up.limits.findIndex((l) => l >= 64);
    expect(at).toBeGreaterThanOrEqual(0);
    expect(at).toBeLessThan(20); // within 2 s of 100 ms ticks
    expect(Math.max(...up.limits)).toBeLessThanOrEqual(64 + 16);
    const down = run(p, { C: 8, S: 5 }, up.t, 5_000);
    expect(down.limits.at(-1)).toBeLessThanOrEqual(16);
    expect(down.limits.at(-1)).toBeGreaterThanOrEqual(8);
  });

  it('does not grow while the limit is not used (an idle mailbox says nothing about the downstream); decays toward twice what ran', () => {
    const p = new AdaptiveLimit({ ...adaptiveDefaults, initial: 20 }, 0);
    const r = run(p, { C: 100, S: 5, demand: 3 }, 0, 10_000);
    expect(Math.max(...r.limits)).toBeLessThanOrEqual(20);
    // Toward twice the 3 that ran on average, by 10 % a window (20, 18, 16, ... 6), then between 6 and 9: at 6 it is
    // used (half of it runs) and may grow, at 9 it is not and decays.
    const late = r.limits.slice(-40);
    expect(Math.min(...late)).toBeGreaterThanOrEqual(6);
    expect(Math.max(...late)).toBeLessThanOrEqual(9);
  });

  it('a downstream slower for good (5 ms -> 20 ms, no queue) is read as a queue only until the estimate becomes absurd', () => {
    const p = new AdaptiveLimit({ ...adaptiveDefaults }, 0);
    const a = run(p, { C: 64, S: 5 }, 0, 5_000);
    expect(a.limits.at(-1)).toBeGreaterThanOrEqual(48);
    const b = run(p, { C: 64, S: 20 }, a.t, 5_000);
    // First it shrinks (latency 4x its minimum looks like a queue) ...
    expect(Math.min(...b.limits)).toBeLessThan(16);
    // ... until L * rttMin / rtt says the downstream serves under half a request: 20 ms is the new no-load latency,
    // long before the probe (10 s), and the limit grows back toward the downstream's 64.
    expect(p.rttMin).toBeGreaterThan(19);
    expect(b.limits.at(-1)).toBeGreaterThanOrEqual(48);
  });

  it("a saturated downstream that is also slower (48 at once in 5 ms -> 8 at once in 50 ms, the demo's episode): near 8 within 1.5 s", () => {
    const p = new AdaptiveLimit({ ...adaptiveDefaults, initial: 16 }, 0);
    const a = run(p, { C: 48, S: 5 }, 0, 5_000);
    expect(a.limits.at(-1)).toBeGreaterThanOrEqual(40);
    const b = run(p, { C: 8, S: 50 }, a.t, 10_000);
    // Halved a window (windows of max(100 ms, rtt)) until the estimate says under half a request is served (the old
    // no-load latency is stale), then measured again and grown back to what the downstream serves.
    const at = b.limits.findIndex((_, i) => b.limits.slice(i).every((x) => x >= 8 && x <= 12));
    expect(at).toBeGreaterThanOrEqual(0);
    expect(at).toBeLessThan(15); // 100 ms ticks
    expect(p.rttMin).toBeGreaterThan(50);
  });

  it('the probe re-measures a no-load latency kept too long (a downstream slower, but read as near its old queue)', () => {
    // 5 ms and 8 at once, then 6 ms: within what a queue could explain, so only the probe finds the new baseline.
    const p = new AdaptiveLimit({ ...adaptiveDefaults }, 0);
    const a = run(p, { C: 8, S: 5 }, 0, 5_000);
    const before = p.rttMin;
    run(p, { C: 8, S: 6 }, a.t, PROBE_EVERY_MS + 2_000);
    expect(before).toBeLessThan(5.5);
    expect(p.rttMin).toBeGreaterThan(6);
  });

  it("while the consumer threads are CPU-busy: never shrinks on their latency, grows only to what Little's law needs at the no-load latency", () => {
    const p = new AdaptiveLimit({ ...adaptiveDefaults, initial: 8 }, 0);
    run(p, { C: 1_000, S: 5 }, 0, 300);
    const at = p.current;
    const rttMin = p.rttMin;
    // Latency 4x the no-load one, as a CPU queue makes it, the limit used, the throughput that of L at no-load latency
    // (what the CPU gets through): busy, it grows a quarter a window up to 1.5 * rate * rttMin, no further.
    let t = 300;
    const rate = (at * 2) / rttMin; // attempts per ms: twice what `at` handlers at no-load latency end
    for (; t < 2_000; ) p.update((t += 100), { count: Math.round(rate * 100), sumMs: Math.round(rate * 100) * 4 * rttMin, peak: p.current }, true);
    const grown = p.current;
    expect(grown).toBeGreaterThan(at);
    expect(grown).toBeLessThanOrEqual(Math.ceil(1.5 * (Math.round(rate * 100) / 100) * rttMin));
    expect(p.reason).toMatch(/CPU-busy/);
    // The machine busy with other work, the throughput not growing: the limit holds (it grew to 256 before).
    for (const end = t + 3_000; t < end; ) p.update((t += 100), { count: 5 * p.current, sumMs: 100 * p.current, peak: p.current }, true);
    expect(p.current).toBe(grown);
    // Busy from the very first window (no no-load latency yet): that window's latency stands in, and bounds it too.
    const r = new AdaptiveLimit({ ...adaptiveDefaults, initial: 4 }, 0);
    for (let u = 0; u < 5_000; ) r.update((u += 100), { count: 40, sumMs: 40 * 10 * (r.current / 4), peak: r.current }, true);
    expect(r.current).toBeLessThanOrEqual(Math.ceil(1.5 * 0.4 * 10));
    // Not busy: the same latency is the downstream's queue, and it shrinks.
    p.update((t += 100), { count: 5 * grown, sumMs: 100 * grown, peak: grown }, false);
    expect(p.current).toBeLessThan(grown);
    // Busy but not used: no growth.
    const q = new AdaptiveLimit({ ...adaptiveDefaults, initial: 40 }, 0);
    for (let t = 100; t < 1_000; t += 100) q.update(t, { count: 10, sumMs: 10 * 20, peak: 2 }, true);
    expect(q.current).toBeLessThanOrEqual(40);
  });

  it('keeps to min and max; a decision waits for a window of at least 100 ms with a sample in it', () => {
    const p = new AdaptiveLimit({ min: 6, max: 10, initial: 6 }, 0);
    const r = run(p, { C: 64, S: 5 }, 0, 5_000);
    expect(Math.max(...r.limits)).toBe(10);
    const q = run(p, { C: 1, S: 5 }, r.t, 10_000);
    expect(Math.min(...q.limits)).toBe(6);
    const w = new AdaptiveLimit({ ...adaptiveDefaults }, 0);
    w.update(50, { count: 10, sumMs: 50, peak: 4 });
    expect(w.decisions).toBe(0);
    w.update(150, { count: 0, sumMs: 0, peak: 4 });
    expect(w.decisions).toBe(1);
    const slow = new AdaptiveLimit({ ...adaptiveDefaults }, 0);
    slow.update(100, { count: 0, sumMs: 0, peak: 4 }); // a handler of 500 ms: no sample yet, no decision
    expect(slow.decisions).toBe(0);
  });

  it("options: concurrency 'adaptive' and its bounds; adaptive without it, or out of range, refused with INVALID_OPTION", () => {
    expect(resolveAdaptive('m', 4, undefined)).toBeNull();
    expect(resolveAdaptive('m', 'adaptive', undefined)).toEqual({ min: 1, max: 256, initial: 4 });
    expect(resolveAdaptive('m', 'adaptive', { max: 32 })).toEqual({ min: 1, max: 32, initial: 4 });
    expect(resolveAdaptive('m', 'adaptive', { min: 8 })).toEqual({ min: 8, max: 256, initial: 8 });
    for (const [c, v, path] of [
      [4, { max: 8 }, 'm.adaptive'],
      ['adaptive', { max: 0 }, 'm.adaptive.max'],
      ['adaptive', { min: 10, max: 5 }, 'm.adaptive.max'],
      ['adaptive', { initial: 300 }, 'm.adaptive.initial'],
      ['adaptive', { speed: 1 }, 'm.adaptive.speed'],
      ['adaptive', 5, 'm.adaptive'],
    ] as const) {
      expect(() => resolveAdaptive('m', c, v)).toThrow(expect.objectContaining({ code: 'RINGPOOL_INVALID_OPTION', details: expect.objectContaining({ option: path }) }));
    }
  });
});
