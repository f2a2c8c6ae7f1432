// Adaptive concurrency against a real downstream (issue #31): the test downstream (examples/downstream/, an HTTP
// server on loopback in a process of its own) serves C = 8 requests at once in S = 20 ms each (400/s) and queues the
// rest; handlers call it with fetch on 2 threads. With `concurrency: 'adaptive'` and a backlog of 8,000, the handlers
// running across the mailbox settle within 8-16 (the limit within 20, 9 samples in 10), the server's queueing p99 stays
// under fixed 16's, and throughput is at least 90 % of a fixed concurrency of 16 measured first in the same test;
// raised to 64 mid-run, more reaches the downstream: how much more depends on the client's own CPU on 2 cores, which
// bounds it here (1,500-3,000/s), and the limit, when it passes its steady range, does so within seconds. (The policy's own decisions are unit-tested with a fake clock: test/unit/adaptive-policy.test.ts.)
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MailboxOptions, Runtime } from 'ringpool';
import { createMetrics } from 'ringpool/metrics';
import { startDownstream, type Downstream } from '../../dist/examples/downstream/index.js';
import { fixture, runtime, until } from '../helpers.js';

let d: Downstream;
beforeAll(async () => {
  // S = 20 ms keeps the downstream, not the 2 cores, the bottleneck: at S = 5 ms (1,600/s) the HTTP work of client
  // and server took both cores on a slow day (fixed 16 reached 815/s), and the test measured the CPU instead.
  d = await startDownstream({ capacity: 8, serviceMs: 20 });
});
afterAll(async () => {
  await d?.close();
});

const work = (concurrency: MailboxOptions['concurrency']): MailboxOptions =>
  ({ handler: fixture('downstream-call.js'), minThreads: 2, maxThreads: 2, autoscale: false, concurrency, maxAttempts: 1 }) as MailboxOptions;

/** Send n; the time from the first 10 % processed to the last 10 % (ms) and the messages processed in it. */
async function drain(rt: Runtime, n: number, during?: (processed: number) => void): Promise<{ ms: number; count: number }> {
  for (let i = 0; i < n; i++) rt.send('work', { i, url: d.url });
  const lo = Math.floor(n * 0.1);
  const hi = n - lo;
  let a = 0;
  let b = 0;
  await until(
    () => {
      const p = rt.stats('work').processed;
      during?.(p);
      if (a === 0 && p >= lo) a = performance.now();
      if (b === 0 && p >= hi) b = performance.now();
      return b !== 0;
    },
    60_000,
    `${hi} of ${n} processed`,
  );
  return { ms: b - a, count: hi - lo };
}

describe("concurrency: 'adaptive' against a downstream that queues", () => {
  it('C = 8, S = 20 ms, 8,000 backlog: in-flight within 8-16, queueing p99 under S, >= 90 % of fixed 16; capacity 64: the limit follows', async () => {
    // The peer: a fixed concurrency of 16 (8 a thread), the best a fixed setting does against this server.
    const fixed = runtime({ mailboxes: { work: work(8) } });
    await fixed.start();
    let fixedRate: number;
    let fixedP99 = 0;
    try {
      await d.stats(true);
      const r = await drain(fixed, 2_000);
      fixedRate = r.count / r.ms;
      const f = await d.stats(true);
      fixedP99 = f.queueP99Ms;
      console.log(`fixed 16: server queue p50 ${f.queueP50Ms.toFixed(2)} p99 ${f.queueP99Ms.toFixed(2)} ms`);
    } finally {
      await fixed.close();
    }

    const rt = runtime({ mailboxes: { work: work('adaptive') } });
    const registry = new Registry();
    createMetrics(rt, { registry });
    await rt.start();
    try {
      const running: number[] = [];
      const limits: number[] = [];
      let phase: 'warm' | 'steady' | 'raised' = 'warm';
      let steadyStats = Promise.resolve(d.stats(true));
      const sampler = setInterval(() => {
        const a = rt.stats('work').adaptive!;
        if (phase === 'steady') {
          running.push(a.running);
          limits.push(a.limit);
        }
      }, 50);
      let steadyAt = 0;
      let raisedAt = 0;
      let followedAt = 0;
      let raisedMax = 0;
      let raisedDone = 0;
      try {
        await drain(rt, 8_000, (p) => {
          if (phase === 'warm' && p >= 1_000) {
            phase = 'steady';
            steadyAt = performance.now();
            steadyStats = d.stats(true);
          } else if (phase === 'steady' && p >= 5_000) {
            phase = 'raised';
            raisedAt = performance.now();
            steadyStats = d.set({ capacity: 64, reset: true });
          } else if (phase === 'raised') {
            const l = rt.stats('work').adaptive!.limit;
            raisedMax = Math.max(raisedMax, l);
            if (followedAt === 0 && l > Math.max(...limits)) followedAt = performance.now();
            raisedDone = p;
          }
        });
      } finally {
        clearInterval(sampler);
      }
      const steady = await steadyStats; // what the server saw between 1,000 and 5,000 processed, at C = 8
      const a = rt.stats('work').adaptive!;
      running.sort((x, y) => x - y);
      const median = running[Math.floor(running.length / 2)]!;
      const rate = 4_000 / (raisedAt - steadyAt);
      const raisedRate = (raisedDone - 5_000) / (performance.now() - raisedAt);
      console.log(
        `adaptive: running p10/p50/p90 ${running[Math.floor(running.length * 0.1)]}/${median}/${running[Math.floor(running.length * 0.9)]}, ` +
          `limit ${Math.min(...limits)}..${Math.max(...limits)}, server queue p50 ${steady.queueP50Ms.toFixed(2)} p99 ${steady.queueP99Ms.toFixed(2)} ms, ` +
          `max present ${steady.maxPresent}, ${(rate * 1000).toFixed(0)}/s against fixed 16 ${(fixedRate * 1000).toFixed(0)}/s, at capacity 64: past the steady limit in ${(followedAt - raisedAt).toFixed(0)} ms, up to ${raisedMax}, ${(raisedRate * 1000).toFixed(0)}/s, ${a.reason}`,
      );
      expect(median).toBeGreaterThanOrEqual(8);
      expect(median).toBeLessThanOrEqual(16);
      // The limit: 9 samples in 10 within 20 (a machine busy with other work once read as 256 here: the policy's
      // CPU-busy growth is now bounded by Little's law, unit-tested in adaptive-policy.test.ts).
      limits.sort((x, y) => x - y);
      expect(limits[Math.floor(limits.length * 0.9)]).toBeLessThanOrEqual(20);
      expect(steady.queueP99Ms).toBeLessThan(Math.max(fixedP99, 20));
      expect(rate / fixedRate).toBeGreaterThanOrEqual(0.9);
      // Raised to 64: more reaches the downstream (how much more: the client's own CPU on 2 cores bounds it, and its CPU
      // time read as latency can keep the limit near its steady range; that the limit follows a raised capacity within
      // seconds is the policy's, unit-tested with a fake clock in adaptive-policy.test.ts). When it passes its steady
      // range, it does so within seconds.
      expect(raisedRate / rate).toBeGreaterThanOrEqual(1.05);
      if (followedAt > 0) expect(followedAt - raisedAt).toBeLessThan(5_000);
      expect(rt.stats('work').deadLettered).toBe(0);
      await until(() => rt.stats('work').adaptive!.running === 0, 5_000, 'nothing held after the backlog');
      const text = await registry.metrics();
      expect(text).toContain(`ringpool_concurrency_limit{mailbox="work"} ${rt.stats('work').adaptive!.limit}`);
      expect(text).toMatch(/ringpool_concurrency_limit_latency_seconds\{mailbox="work"\} 0\.0\d+/); // 1-100 ms
    } finally {
      await rt.close();
    }
  }, 90_000);
});
