// The autoscaler's wiring without threads (runtime/mailbox/scaling.ts): a real ring whose consumer slots hold the
// figures a loop would publish (handler time, event-loop utilisation), fake loops, a fake load and a fake clock.
// The policy itself is runtime/autoscale-policy.ts (autoscale-policy.test.ts); this checks what the wiring feeds it
// and when it applies the answer: up at once, anything else at the autoscale cadence, pins, the hand-back.
import { describe, expect, it } from 'vitest';
import { CONCURRENCY_WORD } from '../../dist/runtime/shared/layout.js';
import { Ring } from '../../dist/runtime/shared/ring.js';
import { autoscaleDefaults } from '../../dist/runtime/autoscale-policy.js';
import { Scaling } from '../../dist/runtime/mailbox/scaling.js';

interface RigOptions {
  minThreads?: number;
  maxThreads?: number;
  autoscale?: false | Partial<typeof autoscaleDefaults>;
  /** Handler ms a message and utilisation of the running loop (slot 0). */
  handlerMs?: number;
  elu?: number;
}

function rig(o: RigOptions = {}) {
  const ring = new Ring(Ring.allocate({ capacityBytes: 1 << 16, maxPayloadBytes: 1024 }));
  ring.slot(0).setHandlerMs(o.handlerMs ?? 10);
  ring.slot(0).setElu(o.elu ?? 0.8);
  // A loop that is stopping publishes figures too: the wiring must not count them.
  ring.slot(1).setHandlerMs(1000);
  ring.slot(1).setElu(0.01);
  const loops = [
    { slot: 0, state: 'running' as const },
    { slot: 1, state: 'stopping' as const },
  ];
  const load = { depth: 0, inFlight: 0 };
  const r = {
    ring,
    load,
    arrival: undefined as number | undefined,
    now: 0,
    events: [] as Array<{ from: number; to: number; concurrency: number; reason: string }>,
    onDesired: 0,
    scaling: null as unknown as Scaling,
  };
  r.scaling = new Scaling({
    mailbox: 'm',
    ring,
    opts: {
      minThreads: o.minThreads ?? 1,
      maxThreads: o.maxThreads ?? 100,
      concurrency: 1,
      autoscale: o.autoscale === false ? false : { ...autoscaleDefaults, maxStepUp: 100, ...o.autoscale },
    },
    clock: () => r.now,
    loops: () => loops,
    load: () => load,
    arrivalRate: () => r.arrival,
    onDesired: () => void r.onDesired++,
    emitScale: (ev) => void r.events.push({ from: ev.from, to: ev.to, concurrency: ev.concurrency, reason: ev.reason }),
  });
  return r;
}

describe('scaling: the autoscaler wiring, a fake clock and no threads', () => {
  it('sizes from the running loops only, and applies a scale-up at once', () => {
    const r = rig({ handlerMs: 10, elu: 0.8 });
    r.load.depth = 1000;
    // 1000 ready x 0.01 s / (1 x 1 s lag) = 10 threads. Counting the stopping loop's 1 s a message would ask for 100.
    r.scaling.tick(1);
    expect(r.scaling.desired).toBe(10);
    expect(r.events).toEqual([expect.objectContaining({ from: 1, to: 10, concurrency: 1 })]);
    expect(r.events[0]!.reason).toMatch(/^scale up: ready 1000/);
    expect(r.scaling.decisions).toEqual({ up: 1, down: 0 });
    expect(r.onDesired).toBe(1);
    expect(Atomics.load(r.ring.i32, CONCURRENCY_WORD)).toBe(1);
  });

  it('moves concurrency only at the autoscale cadence (tickMs), one doubling a tick', () => {
    const r = rig({ handlerMs: 10, elu: 0.1 });
    r.load.depth = 1000;
    r.scaling.tick(1000);
    expect(Atomics.load(r.ring.i32, CONCURRENCY_WORD)).toBe(2);
    expect(r.scaling.concurrency).toBe(2);
    // The same reading half a tick later changes nothing (but still lets the loops follow the desired size).
    r.scaling.tick(1500);
    expect(Atomics.load(r.ring.i32, CONCURRENCY_WORD)).toBe(2);
    expect(r.onDesired).toBe(2);
    r.scaling.tick(2000);
    expect(Atomics.load(r.ring.i32, CONCURRENCY_WORD)).toBe(4);
    expect(r.scaling.desired).toBe(1);
    expect(r.events.map((e) => e.concurrency)).toEqual([2, 4]);
  });

  it('scales down only at the cadence and only once the window has passed', () => {
    const r = rig({ handlerMs: 10, elu: 0.8, autoscale: { scaleDownWindowMs: 30_000, tickMs: 1000 } });
    r.load.depth = 1000;
    r.scaling.tick(1000);
    expect(r.scaling.desired).toBe(10);
    r.load.depth = 0;
    r.arrival = 0;
    r.scaling.tick(2000);
    expect(r.scaling.desired).toBe(10); // the recommendation of 10 is still in the window
    r.scaling.tick(31_500);
    expect(r.scaling.desired).toBe(1);
    expect(r.scaling.decisions).toEqual({ up: 1, down: 1 });
    expect(r.events.map((e) => [e.from, e.to])).toEqual([
      [1, 10],
      [10, 1],
    ]);
  });

  it('with autoscale off keeps minThreads; resize() pins a size no decision counts; handing it back waits out the window', () => {
    const r = rig({ minThreads: 2, autoscale: false });
    r.scaling.tick(1000);
    expect(r.scaling.desired).toBe(2);
    expect(r.scaling.lastReason).toBe('autoscale off: minThreads');
    expect(r.events).toEqual([]);
    r.scaling.resize(5);
    expect(r.scaling.desired).toBe(5);
    expect(r.scaling.autoscaling).toBe(false);
    r.load.depth = 100_000;
    r.scaling.tick(2000);
    expect(r.scaling.desired).toBe(5);
    expect(r.scaling.lastReason).toBe('pinned by resize()');
    expect(r.scaling.decisions).toEqual({ up: 0, down: 0 });
    // Back to the autoscaler at t = 3000, idle: the pinned size counts as a recommendation for the window.
    r.load.depth = 0;
    r.arrival = 0;
    r.now = 3000;
    r.scaling.setAutoscale(true);
    expect(r.scaling.autoscaling).toBe(true);
    r.scaling.tick(4000);
    expect(r.scaling.desired).toBe(5);
    r.scaling.tick(3000 + autoscaleDefaults.scaleDownWindowMs + 1000);
    expect(r.scaling.desired).toBe(2);
  });
});
