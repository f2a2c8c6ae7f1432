// The fleet policy (runtime/fleet-policy.ts) and the mailbox's feed of it (runtime/mailbox/fleet.ts), on a fake
// clock: how many consumer processes a Redis group needs from its lag, pending, arrival rate and one process's
// drain rate; up at once, down only through the scale-down window, never on missing data.
import { describe, expect, it } from 'vitest';
import { decideFleet, type FleetConfig, type FleetObservation, type FleetRecommendation } from '../../dist/runtime/fleet-policy.js';
import { Fleet } from '../../dist/runtime/mailbox/fleet.js';
import type { StreamStats } from '../../dist/runtime/source/stream.js';

const cfg: FleetConfig = { targetLagSeconds: 10, scaleDownWindowMs: 300_000, tolerance: 0.1, min: 1, max: Number.MAX_SAFE_INTEGER };
const obs = (o: Partial<FleetObservation>): FleetObservation => ({ now: 0, lag: 0, pending: 0, arrivalRate: 0, drainRate: 100, consumers: 1, ...o });

/** Polls 1 s apart from `start`, each answer fed back as the group's consumers (what KEDA would do). */
function run(steps: Array<Partial<FleetObservation>>, c: FleetConfig = cfg, consumers = 1, startAt = 0) {
  let history: FleetRecommendation[] = [];
  const out: number[] = [];
  steps.forEach((s, i) => {
    const d = decideFleet(c, obs({ consumers, ...s, now: s.now ?? startAt + i * 1000 }), history);
    history = d.history;
    consumers = d.consumers;
    out.push(d.consumers);
  });
  return out;
}

describe('fleet policy', () => {
  it('sizes for the backlog: (lag + pending) / (drain rate x targetLag), at once', () => {
    // 9,000 undelivered + 1,000 read ahead by consumers = 10,000; one process drains 100/s; 10 s target: 10 processes.
    const d = decideFleet(cfg, obs({ lag: 9_000, pending: 1_000, drainRate: 100, consumers: 2 }), []);
    expect(d.consumers).toBe(10);
    expect(d.raw).toBeCloseTo(10);
    expect(d.reason).toMatch(/^up: backlog 10000/);
  });

  it('sizes for arrivals at 80 % utilisation when they ask for more', () => {
    const d = decideFleet(cfg, obs({ lag: 100, pending: 0, arrivalRate: 800, drainRate: 100, consumers: 3 }), []);
    expect(d.consumers).toBe(10);
    expect(d.reason).toMatch(/arrivals 800\/s/);
  });

  it('holds within tolerance of the consumers the group has', () => {
    expect(decideFleet(cfg, obs({ arrivalRate: 840, drainRate: 100, consumers: 10 }), []).consumers).toBe(10); // raw 10.5
    expect(decideFleet(cfg, obs({ arrivalRate: 900, drainRate: 100, consumers: 10 }), []).consumers).toBe(12); // raw 11.25
  });

  it('scales down only to the highest recommendation of the window, then all the way', () => {
    // A burst asks for 10 at t=0; then arrivals of 150/s ask for 2 (150 / 80): held at 10 for 300 s, then 2.
    const steps: Array<Partial<FleetObservation>> = [{ lag: 10_000, pending: 0, arrivalRate: 150 }];
    for (let i = 1; i <= 310; i++) steps.push({ lag: 0, pending: 10, arrivalRate: 150 });
    const out = run(steps);
    expect(out[0]).toBe(10);
    expect(out[299]).toBe(10); // t = 299 s: the burst's 10 is still in the window
    expect(out[300]).toBe(2); // t = 300 s: it left
    expect(out.at(-1)).toBe(2);
  });

  it('idle: down to min through the window; never below min or above max', () => {
    const out = run([{ lag: 5_000, arrivalRate: 0 }, ...Array.from({ length: 6 }, () => ({ lag: 0, pending: 0, arrivalRate: 0.1 }))], { ...cfg, scaleDownWindowMs: 3_000 });
    expect(out).toEqual([5, 5, 5, 1, 1, 1, 1]);
    expect(decideFleet({ ...cfg, max: 4 }, obs({ lag: 1e6, drainRate: 10 }), []).consumers).toBe(4); // partitions
    expect(decideFleet({ ...cfg, min: 2 }, obs({ lag: 0, pending: 0, arrivalRate: 0 }), []).consumers).toBe(2);
  });

  it('never decides on missing data: no drain rate, no lag, no arrival rate (no scale-down)', () => {
    expect(decideFleet(cfg, obs({ lag: 10_000, drainRate: undefined, consumers: 3 }), []).consumers).toBe(3);
    expect(decideFleet(cfg, obs({ lag: 10_000, drainRate: 0, consumers: 3 }), []).reason).toMatch(/drain rate not known/);
    expect(decideFleet(cfg, obs({ lag: -1, consumers: 3 }), []).consumers).toBe(3);
    expect(decideFleet(cfg, obs({ lag: undefined, pending: 5, consumers: 4 }), []).reason).toMatch(/unknown/);
    // Arrivals unknown: a smaller backlog does not scale down...
    expect(decideFleet({ ...cfg, scaleDownWindowMs: 0 }, obs({ lag: 100, arrivalRate: undefined, consumers: 8 }), []).consumers).toBe(8);
    // ...but a larger one scales up.
    expect(decideFleet(cfg, obs({ lag: 100_000, arrivalRate: undefined, consumers: 8 }), []).consumers).toBe(100);
  });
});

describe("the mailbox's fleet feed", () => {
  /** A group: `added` entries ever, `acked` by this process; a fake source's figures. */
  const group = { added: 0, acked: 0, lag: 0, pending: 0, consumers: 2, connected: true };
  const figures = (): StreamStats => ({ ...group, entriesAdded: group.added }) as unknown as StreamStats;

  it('measures arrivals from entries added, drain only while work waited, samples only on a new poll', () => {
    let waiting = 0;
    const f = new Fleet({ figures, waiting: () => waiting, capacity: () => 1_000, targetLagSeconds: 10, scaleDownWindowMs: 0, max: 64 });
    let t = 0;
    f.tick(t);
    expect(f.stats()).toMatchObject({ desired: 2, arrivalRate: null, drainRate: 1_000 }); // the group's 2 kept: arrivals not known yet; capacity stands in for the drain rate
    expect(f.stats()!.reason).toMatch(/arrival rate unknown: no scale-down/);
    // Each poll (1 s): 500 arrive; this process acks 200 of them; a backlog builds (lag grows by 300/s).
    for (let i = 1; i <= 10; i++) {
      t += 1_000;
      group.added += 500;
      group.acked += 200;
      group.lag += 300;
      waiting = 50;
      f.tick(t);
      f.tick(t + 100); // no new poll: no new sample
    }
    const s = f.stats()!;
    expect(s.arrivalRate).toBeCloseTo(500, 0);
    expect(s.drainRate).toBeCloseTo(200, 0); // measured (busy at both ends), not the capacity estimate
    // backlog 3,000 / (200 x 10 s) = 1.5; arrivals 500 / (200 x 0.8) = 3.125: 4 processes.
    expect(s.desired).toBe(4);
    expect(s.reason).toMatch(/arrivals/);
    // The group idles: nothing arrives, nothing waits; with no change for 3 s a sample is taken anyway.
    group.lag = 0;
    waiting = 0;
    t += 1_000;
    f.tick(t);
    t += 3_000;
    f.tick(t);
    t += 3_000;
    f.tick(t);
    expect(f.stats()!.arrivalRate!).toBeLessThan(200);
    for (let i = 0; i < 20; i++) {
      group.acked += 5; // the last few, acked as they come: a trickle, not what it can drain
      f.tick((t += 3_000));
    }
    expect(f.stats()).toMatchObject({ desired: 1, reason: 'idle' });
    expect(f.stats()!.drainRate).toBeCloseTo(200, 0); // acks while idle measured nothing
  });

  it('gives no answer while Redis is unreachable or the lag unknown', () => {
    const down = new Fleet({ figures: () => ({ ...figures(), connected: false }), waiting: () => 0, capacity: () => 10, targetLagSeconds: 10, scaleDownWindowMs: 0, max: 8 });
    down.tick(0);
    expect(down.stats()).toBeNull();
    const unknown = new Fleet({ figures: () => ({ ...figures(), lag: -1 }), waiting: () => 0, capacity: () => 10, targetLagSeconds: 10, scaleDownWindowMs: 0, max: 8 });
    unknown.tick(0);
    expect(unknown.stats()).toBeNull();
  });
});
