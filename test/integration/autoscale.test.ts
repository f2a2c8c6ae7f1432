import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { ScaleEvent } from 'ringpool';
import { createMetrics } from 'ringpool/metrics';
import { expectCode, fixture, runtime, until } from '../helpers.js';

describe('autoscaler with real threads', () => {
  it('a burst takes min 1 to max 2 threads while the backlog is large, and back to 1 after the window once idle', async () => {
    const rt = runtime({
      mailboxes: {
        m: {
          handler: fixture('burn.js'),
          minThreads: 1,
          maxThreads: 2,
          autoscale: { targetLagSeconds: 0.2, tickMs: 100, scaleDownWindowMs: 800 },
        },
      },
      tickMs: 20,
    });
    const registry = new Registry();
    createMetrics(rt, { registry });
    const events: ScaleEvent[] = [];
    let depthAtUp = -1;
    rt.on('scale', (e) => {
      events.push(e);
      if (e.to === 2 && depthAtUp < 0) depthAtUp = rt.stats('m').depth; // read in the decision's own step
    });
    await rt.start();
    expect(rt.stats('m').threads).toBe(1);
    // ~1.5 s of work for one thread: well over the 0.2 s target
    for (let i = 0; i < 1500; i++) rt.send('m', { us: 1000 });
    await until(() => rt.stats('m').threads === 2, 5_000, 'scale up to 2 threads');
    expect(depthAtUp).toBeGreaterThan(100); // up while the backlog is still large
    await rt.onIdle();
    expect(rt.stats('m')).toMatchObject({ enqueued: 1500, processed: 1500, deadLettered: 0 });
    await until(() => rt.stats('m').threads === 1, 5_000, 'scale down to 1 thread');
    const up = events.find((e) => e.to === 2)!;
    const down = events.find((e) => e.from === 2 && e.to === 1)!;
    expect(up).toMatchObject({ mailbox: 'm', from: 1, to: 2 });
    expect(up.reason).toMatch(/scale up/);
    expect(down.reason).toMatch(/scale down/);
    const text = await registry.metrics();
    expect(text).toMatch(/ringpool_autoscaler_decisions_total\{mailbox="m",direction="up"\} [1-9]/);
    expect(text).toMatch(/ringpool_autoscaler_decisions_total\{mailbox="m",direction="down"\} [1-9]/);
    expect(text).toContain('ringpool_worker_threads_desired{mailbox="m"} 1');
  }, 30_000);

  it('rt.resize() pins a size; rt.autoscale(m, true) hands it back', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 2, autoscale: { tickMs: 50, scaleDownWindowMs: 100 } } }, tickMs: 20 });
    await rt.start();
    rt.resize('m', 2);
    await until(() => rt.stats('m').threads === 2, 5_000, 'resize to 2');
    expect(rt.stats('m').autoscale).toBe(false);
    await new Promise((r) => setTimeout(r, 400)); // idle, but pinned
    expect(rt.stats('m').threads).toBe(2);
    rt.autoscale('m', true);
    await until(() => rt.stats('m').threads === 1, 5_000, 'autoscaler back to 1');
    await expectCode(() => rt.resize('m', 3), 'RINGPOOL_INVALID_OPTION');
  });

  it('autoscale: false keeps minThreads whatever the backlog', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('burn.js'), minThreads: 1, maxThreads: 2, autoscale: false } }, tickMs: 20 });
    await rt.start();
    for (let i = 0; i < 300; i++) rt.send('m', { us: 1000 });
    await new Promise((r) => setTimeout(r, 300));
    expect(rt.stats('m')).toMatchObject({ threads: 1, desiredThreads: 1, autoscale: false });
    await rt.onIdle();
  });

  it('concurrency runs async handlers side by side on one thread (as many as asked, no more)', async () => {
    const rt = runtime({
      mailboxes: { m: { handler: fixture('io-wait.js'), minThreads: 1, maxThreads: 1, concurrency: 8, autoscale: false, maxAttempts: 1 } },
    });
    await rt.start();
    for (let i = 0; i < 80; i++) rt.send('m', { ms: 50 });
    await rt.onIdle();
    rt.send('m', { ms: 1, report: true });
    await rt.onIdle();
    const seen = Number(/max concurrent (\d+)/.exec(rt.deadLetters('m').list()[0]!.lastError!.message)![1]);
    expect(seen).toBe(8);
    expect(rt.stats('m')).toMatchObject({ processed: 80, concurrency: 8 });
  });

  it('concurrency: a handler that never settles is revoked after leaseMs; the others finish', async () => {
    const rt = runtime({
      mailboxes: { m: { handler: fixture('hang.js'), minThreads: 1, maxThreads: 1, concurrency: 4, autoscale: false, leaseMs: 300, backoff: { baseMs: 1, maxMs: 2 } } },
      tickMs: 20,
    });
    await rt.start();
    rt.send('m', { hang: 'promise' });
    for (let i = 0; i < 20; i++) rt.send('m', { i });
    await rt.onIdle();
    expect(rt.stats('m')).toMatchObject({ enqueued: 21, processed: 21, handlerTimeouts: 1, deadLettered: 0 });
  });

  it('I/O-bound handlers get more concurrency, not more threads', async () => {
    const rt = runtime({
      mailboxes: {
        m: { handler: fixture('io-wait.js'), minThreads: 1, maxThreads: 2, autoscale: { tickMs: 100, targetLagSeconds: 0.2, maxConcurrency: 4 } },
      },
      tickMs: 20,
    });
    const events: ScaleEvent[] = [];
    rt.on('scale', (e) => events.push(e));
    await rt.start();
    // ~8 s of waiting at concurrency 1, 2 s at the cap of 4: past the 0.2 s target even at the cap, so a thread comes too.
    for (let i = 0; i < 400; i++) rt.send('m', { ms: 20 });
    await rt.onIdle();
    expect(rt.stats('m').processed).toBe(400);
    expect(events[0]!.reason).toMatch(/I\/O-bound/);
    expect(events[0]).toMatchObject({ from: 1, to: 1, concurrency: 2 });
    // concurrency first, up to its cap; a thread is added only once it is there
    const ups = events.filter((x) => x.to > x.from);
    expect(ups.length).toBeGreaterThan(0);
    expect(ups.map((e) => e.concurrency)).toEqual(ups.map(() => 4));
    expect(events.findIndex((e) => e.concurrency === 4)).toBeLessThanOrEqual(events.indexOf(ups[0]!));
  }, 30_000);

  it('concurrency: a crash with several handlers running blames the right message (suspects run alone)', async () => {
    const rt = runtime({
      mailboxes: { m: { handler: fixture('io-or-crash.js'), minThreads: 1, maxThreads: 1, concurrency: 4, autoscale: false, maxAttempts: 3, backoff: { baseMs: 1, maxMs: 2 } } },
    });
    await rt.start();
    rt.send('m', { ms: 200, n: 'slow and innocent' });
    rt.send('m', { ms: 200, crash: true, n: 'poison' });
    for (let i = 0; i < 10; i++) rt.send('m', { ms: 5, n: i });
    await rt.onIdle();
    const dead = rt.deadLetters('m').list();
    expect(dead.map((d) => (d.payload as { n: string }).n)).toEqual(['poison']);
    expect(dead[0]).toMatchObject({ reason: 'poison', attempts: 3 });
    expect(rt.stats('m')).toMatchObject({ processed: 11, deadLettered: 1 });
  }, 30_000);

  it('concurrency: the event loop still gets turns (control calls answer during a burst of sync handlers)', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('burn.js'), minThreads: 1, maxThreads: 1, concurrency: 4, autoscale: false } } });
    await rt.start();
    for (let i = 0; i < 2000; i++) rt.send('m', { us: 500 });
    await new Promise((r) => setTimeout(r, 100));
    // workerStats gives each thread 2 s to answer over comlink; a starved event loop answers nothing
    const ws = await rt.workerStats('m');
    expect(ws).toHaveLength(1);
    await rt.onIdle();
  }, 30_000);

  it('CPU work after an idle spell adds threads, not concurrency (utilisation is read only over busy windows)', async () => {
    const rt = runtime({
      mailboxes: { m: { handler: fixture('burn.js'), minThreads: 1, maxThreads: 2, autoscale: { tickMs: 100, targetLagSeconds: 0.2 } } },
      tickMs: 20,
    });
    const events: ScaleEvent[] = [];
    rt.on('scale', (e) => events.push(e));
    await rt.start();
    rt.send('m', { us: 100 });
    await rt.onIdle();
    await new Promise((r) => setTimeout(r, 1000)); // idle: the loop parks
    for (let i = 0; i < 1500; i++) rt.send('m', { us: 1000 });
    await until(() => events.length > 0, 5_000, 'a scale decision');
    expect(events[0]).toMatchObject({ from: 1, to: 2, concurrency: 1 });
    await rt.onIdle();
  }, 30_000);
});
