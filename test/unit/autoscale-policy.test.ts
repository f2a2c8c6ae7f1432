import { describe, expect, it } from 'vitest';
import { decide, type AutoscaleConfig, type Observation, type Recommendation } from '../../dist/runtime/autoscale-policy.js';

const cfg: AutoscaleConfig = {
  targetLagSeconds: 1,
  min: 1,
  max: 8,
  tickMs: 1000,
  tolerance: 0.1,
  scaleDownWindowMs: 30_000,
  maxStepUp: 8,
  maxConcurrency: 16,
  busyElu: 0.6,
};
const obs = (o: Partial<Observation>): Observation => ({
  now: 0,
  ready: 0,
  inFlight: 0,
  arrivalRate: 0,
  processingSeconds: 0.001,
  elu: 0.95,
  threads: 1,
  concurrency: 1,
  ...o,
});

/** Run ticks 1 s apart, feeding each decision back as the next observation's threads. */
function run(steps: Array<Partial<Observation>>, start: Partial<Observation> = {}, c: AutoscaleConfig = cfg) {
  let threads = start.threads ?? 1;
  let concurrency = start.concurrency ?? 1;
  let history: Recommendation[] = [];
  return steps.map((s, i) => {
    const d = decide(c, obs({ ...s, now: i * 1000, threads, concurrency }), history);
    threads = d.threads;
    concurrency = d.concurrency;
    history = d.history;
    return d;
  });
}

describe('autoscale policy (pure, injected clock)', () => {
  it('a load step scales up within one tick', () => {
    // 1 ms a message, 5,000 ready: 5 s of work for one thread, target 1 s -> 5 threads at once
    const [d] = run([{ ready: 5000 }]);
    expect(d!.threads).toBe(5);
    expect(d!.reason).toMatch(/scale up/);
  });

  it('arrivals alone size the pool (Little’s law at 80 %)', () => {
    const [d] = run([{ arrivalRate: 2400 }]); // 2.4 threads of work / 0.8 = 3
    expect(d!.threads).toBe(3);
  });

  it('±10 % noise changes nothing', () => {
    const ds = run([{ arrivalRate: 3200 }, { arrivalRate: 3500 }, { arrivalRate: 2950 }, { arrivalRate: 3300 }], { threads: 4 });
    expect(ds.map((d) => d.threads)).toEqual([4, 4, 4, 4]);
    expect(ds[1]!.reason).toMatch(/within tolerance/);
  });

  it('no scale-down inside the window; after it, down to the highest recommendation of the window', () => {
    const steps: Array<Partial<Observation>> = [{ ready: 6000 }];
    for (let i = 0; i < 10; i++) steps.push({ arrivalRate: 1600 }); // wants 2
    for (let i = 0; i < 40; i++) steps.push({ arrivalRate: 0 }); // wants 1 (min)
    const ds = run(steps);
    expect(ds[0]!.threads).toBe(6);
    const threads = ds.map((d) => d.threads);
    // 30 s window after the 6-thread recommendation at t=0: held at 6 until it leaves the window
    expect(threads.slice(0, 30).every((t) => t === 6)).toBe(true);
    // then down to the highest recommendation still in the window (2, from the arrivals phase)...
    expect(threads[30]).toBe(2);
    // ...and to min once those are 30 s old too
    expect(threads[41]).toBe(1);
    expect(threads.at(-1)).toBe(1);
  });

  it('idle (no backlog, no arrivals) needs no handler-time data to come down, through the window', () => {
    const history = [{ at: 0, threads: 3 }];
    const held = decide(cfg, obs({ now: 10_000, threads: 3, processingSeconds: undefined }), history);
    expect(held.threads).toBe(3);
    const down = decide(cfg, obs({ now: 31_000, threads: 3, processingSeconds: undefined }), held.history);
    expect(down.threads).toBe(1);
  });

  it('adds no thread before it knows whether the threads are CPU- or I/O-bound', () => {
    const [d] = run([{ ready: 5000, elu: undefined }]);
    expect(d!.threads).toBe(1);
    expect(d!.reason).toMatch(/waiting for utilisation data/);
  });

  it('never above max or below min', () => {
    const [up] = run([{ ready: 1e9 }]);
    expect(up!.threads).toBe(8);
    const [down] = run([{ arrivalRate: 0 }], { threads: 1 }, { ...cfg, min: 2 });
    expect(down!.threads).toBe(2);
    const capped = run([{ ready: 1e9 }], {}, { ...cfg, maxStepUp: 2 });
    expect(capped[0]!.threads).toBe(3);
  });

  it('no scale-down on missing data', () => {
    const [a] = run([{ arrivalRate: undefined, processingSeconds: 0.001 }], { threads: 4 });
    expect(a!.threads).toBe(4);
    const [b] = run([{ processingSeconds: undefined, ready: 10 }], { threads: 4 });
    expect(b!.threads).toBe(4);
    expect(b!.reason).toMatch(/no processing-time data/);
  });

  it('CPU-bound adds threads; I/O-bound raises concurrency instead', () => {
    // 50 ms per message (a database wait), 500 arrivals/s: 25 threads' worth at concurrency 1
    const cpu = run([{ arrivalRate: 500, processingSeconds: 0.05, elu: 0.97 }]);
    expect(cpu[0]).toMatchObject({ threads: 8, concurrency: 1 });
    const io = run(Array.from({ length: 6 }, () => ({ arrivalRate: 500, processingSeconds: 0.05, elu: 0.05 })));
    expect(io.map((d) => d.concurrency)).toEqual([2, 4, 8, 16, 16, 16]);
    expect(io[0]!.threads).toBe(1);
    expect(io[0]!.reason).toMatch(/I\/O-bound/);
    // at maxConcurrency it falls back to threads
    expect(io[4]!.threads).toBeGreaterThan(1);
  });

  it('at max threads, I/O-bound threads still get more concurrency (the slow downstream arrives after the scale-up)', () => {
    const full = { ...cfg, max: 2 };
    const io = run(Array.from({ length: 3 }, () => ({ arrivalRate: 500, processingSeconds: 0.05, elu: 0.05 })), { threads: 2, concurrency: 1 }, full);
    expect(io.map((d) => [d.threads, d.concurrency])).toEqual([
      [2, 2],
      [2, 4],
      [2, 8],
    ]);
    // CPU-bound at max: nothing to gain, it holds and says why
    const [cpu] = run([{ arrivalRate: 500, processingSeconds: 0.05, elu: 0.97 }], { threads: 2 }, full);
    expect(cpu).toMatchObject({ threads: 2, concurrency: 1 });
    expect(cpu!.reason).toMatch(/at max/);
  });

  it('a slow message in flight asks for one thread, not ceil(S / targetLag)', () => {
    const [d] = run([{ inFlight: 1, processingSeconds: 3, arrivalRate: 0.1 }]);
    expect(d!.threads).toBe(1);
  });

  it('saturated threads give concurrency back before anything else', () => {
    const [d] = run([{ ready: 100, elu: 0.98 }], { concurrency: 8 });
    expect(d).toMatchObject({ concurrency: 4, threads: 1 });
    expect(d!.reason).toMatch(/CPU-bound/);
  });

  it('NaN or infinite inputs are treated as missing data', () => {
    const [a] = run([{ ready: 100, processingSeconds: Infinity }], { threads: 3 });
    expect(a!.threads).toBe(3);
    const [b] = run([{ ready: 0, arrivalRate: NaN }], { threads: 3 });
    expect(b!.threads).toBe(3);
    expect(Number.isFinite(a!.threads) && Number.isFinite(b!.threads)).toBe(true);
  });

  it('adaptive concurrency: the limit, not the autoscaler, sets concurrency; threads only when they are CPU-busy', () => {
    // A backlog behind a downstream that set the limit at 12: I/O-bound threads are not added, concurrency is left as is.
    const io = run([{ ready: 5_000, inFlight: 12, processingSeconds: 0.007, elu: 0.1, limit: 12 }], { threads: 2, concurrency: 256 });
    expect(io[0]!.threads).toBe(2);
    expect(io[0]!.concurrency).toBe(256);
    expect(io[0]!.reason).toMatch(/adaptive limit 12/);
    // The same backlog on CPU-busy threads: threads are added (the limit's share a thread, 6, sizes them), concurrency still as is.
    const cpu = run([{ ready: 5_000, inFlight: 12, processingSeconds: 0.007, elu: 0.95, limit: 12 }], { threads: 2, concurrency: 256 });
    expect(cpu[0]!.threads).toBeGreaterThan(2);
    expect(cpu[0]!.concurrency).toBe(256);
    // Without a limit the same I/O-bound backlog raises concurrency (the behaviour the limit replaces).
    const fixed = run([{ ready: 5_000, inFlight: 2, processingSeconds: 0.007, elu: 0.1 }], { threads: 2, concurrency: 1 });
    expect(fixed[0]!.concurrency).toBe(2);
  });
});
