/**
 * W1: 100-byte JSON-like object messages, a no-op handler. ringpool with 1 and
 * 2 threads against piscina.run() per message (and 100 per run()), in one
 * command, median of runs. Plus W3-lite: send() latency during a burst of 200,000.
 *
 *   npm run bench            (or: node dist/bench/w1.js --runs 3)
 */
import { Piscina } from 'piscina';
import { Registry } from 'prom-client';
import { createRuntime } from '../runtime/index.js';
import { createMetrics } from '../metrics/index.js';
import { header, median, percentile, table, writeResult } from './machine.js';
import { naiveRing } from './naive-ring.js';

const args = process.argv.slice(2);
const arg = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const RUNS = arg('runs', 3);
const N = arg('messages', 300_000);
const N_PISCINA = arg('piscina-messages', 20_000);
const QUICK = args.includes('--quick');

const NOOP = new URL('../../bench/fixtures/noop.js', import.meta.url);
const PISCINA_TASKS = new URL('../../bench/fixtures/piscina-json.js', import.meta.url).href;

/** ~100 bytes of JSON. */
function message(i: number): { id: number; user: string; sku: string; qty: number; price: number; tags: string[] } {
  return { id: i, user: 'user-000042', sku: 'SKU-ABCDEFGH', qty: 3, price: 19.99, tags: ['a', 'bb', 'ccc'] };
}

async function ringpool(threads: number, n: number, metrics = false, keys = 0): Promise<number> {
  const rt = createRuntime({
    mailboxes: { w1: { handler: NOOP, minThreads: threads, maxThreads: threads, capacityBytes: 8 << 20 } },
  });
  const registry = new Registry();
  if (metrics) createMetrics(rt, { registry });
  await rt.start();
  // Scraped once a second while it runs, as Prometheus would.
  const scraper = metrics ? setInterval(() => void registry.metrics(), 1000) : undefined;
  const t0 = performance.now();
  const keyNames = Array.from({ length: keys }, (_, k) => ({ key: `customer-${k}` }));
  for (let i = 0; i < n; i++) {
    const opts = keys > 0 ? keyNames[i % keys] : undefined;
    try {
      rt.send('w1', message(i), opts);
    } catch {
      await rt.sendAsync('w1', message(i), opts);
    }
  }
  await rt.onIdle();
  const dt = performance.now() - t0;
  clearInterval(scraper);
  await rt.close();
  return (n / dt) * 1000;
}

async function piscinaRun(threads: number, n: number, batch: number): Promise<number> {
  const pool = new Piscina({ filename: PISCINA_TASKS, minThreads: threads, maxThreads: threads, atomics: 'sync' });
  // warm the threads
  await Promise.all(Array.from({ length: threads }, () => pool.run(JSON.stringify(message(0)))));
  const t0 = performance.now();
  const inflight: Promise<unknown>[] = [];
  if (batch === 1) {
    for (let i = 0; i < n; i++) inflight.push(pool.run(JSON.stringify(message(i))));
  } else {
    for (let i = 0; i < n; i += batch) {
      const texts: string[] = [];
      for (let j = i; j < Math.min(n, i + batch); j++) texts.push(JSON.stringify(message(j)));
      inflight.push(pool.run(texts, { name: 'batch' }));
    }
  }
  await Promise.all(inflight);
  const dt = performance.now() - t0;
  await pool.destroy();
  return (n / dt) * 1000;
}

/** send() cost during a burst of `n` into a ring big enough to take it all, nothing consuming. */
async function sendLatency(n: number): Promise<{ p50: number; p99: number; p999: number; max: number; perSecond: number }> {
  const rt = createRuntime({ mailboxes: { burst: { handler: NOOP, capacityBytes: 64 << 20, minThreads: 1, maxThreads: 1 } } });
  const lat = new Float64Array(n);
  const msgs = Array.from({ length: 1000 }, (_, i) => message(i));
  // warm up the send path (JIT) on a separate small burst
  for (let i = 0; i < 20_000; i++) rt.send('burst', msgs[i % 1000]);
  await rt.start();
  await rt.onIdle();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const a = performance.now();
    rt.send('burst', msgs[i % 1000]);
    lat[i] = performance.now() - a;
  }
  const total = performance.now() - t0;
  lat.sort();
  await rt.onIdle();
  await rt.close();
  const us = (ms: number): number => Math.round(ms * 1000 * 100) / 100;
  return { p50: us(percentile(lat, 50)), p99: us(percentile(lat, 99)), p999: us(percentile(lat, 99.9)), max: us(lat[lat.length - 1]!), perSecond: Math.round((n / total) * 1000) };
}

async function main(): Promise<void> {
  header('W1: 100-byte JSON messages, no-op handler (msgs/s, median of runs)');
  const runs = QUICK ? 1 : RUNS;
  const n = QUICK ? 20_000 : N;
  const np = QUICK ? 2_000 : N_PISCINA;
  const systems: Array<[string, () => Promise<number>]> = [
    ['piscina.run per message, 1 thread', () => piscinaRun(1, np, 1)],
    ['piscina.run per message, 2 threads', () => piscinaRun(2, np, 1)],
    ['piscina 100 per run(), 1 thread', () => piscinaRun(1, n, 100)],
    ['piscina 100 per run(), 2 threads', () => piscinaRun(2, n, 100)],
    ['hand-written SAB ring (ceiling), 1 thread', () => naiveRing(n, message)],
    ['ringpool, 1 thread', () => ringpool(1, n)],
    ['ringpool, 1 thread, metrics on', () => ringpool(1, n, true)],
    ['ringpool, 1 thread, keyed (1,000 keys)', () => ringpool(1, n, false, 1000)],
    ['ringpool, 2 threads', () => ringpool(2, n)],
    ['ringpool, 2 threads, metrics on', () => ringpool(2, n, true)],
    ['ringpool, 2 threads, keyed (1,000 keys)', () => ringpool(2, n, false, 1000)],
  ];
  const results: Record<string, number[]> = {};
  for (let r = 0; r < runs; r++) {
    for (const [name, fn] of systems) (results[name] ??= []).push(await fn());
  }
  const med = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)]));
  const base1 = med['piscina.run per message, 1 thread']!;
  const base2 = med['piscina.run per message, 2 threads']!;
  table(
    Object.entries(med).map(([system, v]) => ({
      system,
      'msgs/s': Math.round(v),
      'µs/msg': (1e6 / v).toFixed(2),
      'x piscina.run (same threads)': (v / (system.includes('2 threads') ? base2 : base1)).toFixed(1),
      'x hand-written ring': (v / med['hand-written SAB ring (ceiling), 1 thread']!).toFixed(2),
    })),
  );
  const on1 = med['ringpool, 1 thread, metrics on']! / med['ringpool, 1 thread']!;
  const on2 = med['ringpool, 2 threads, metrics on']! / med['ringpool, 2 threads']!;
  console.log(`\nmetrics on / off: ${(on1 * 100).toFixed(1)}% (1 thread), ${(on2 * 100).toFixed(1)}% (2 threads) of the throughput`);
  const k1 = med['ringpool, 1 thread, keyed (1,000 keys)']! / med['ringpool, 1 thread']!;
  const k2 = med['ringpool, 2 threads, keyed (1,000 keys)']! / med['ringpool, 2 threads']!;
  console.log(`keyed (1,000 keys) / unkeyed: ${(k1 * 100).toFixed(1)}% (1 thread), ${(k2 * 100).toFixed(1)}% (2 threads) of the throughput`);
  const burst = await sendLatency(QUICK ? 20_000 : 200_000);
  console.log(`\nW3-lite: send() during a burst of ${QUICK ? 20_000 : 200_000} (µs): p50 ${burst.p50}  p99 ${burst.p99}  p99.9 ${burst.p999}  max ${burst.max}  (${burst.perSecond} sends/s incl. timing)`);
  const file = writeResult('w1', { runs, messages: n, piscinaMessages: np, msgsPerSecond: results, median: med, sendLatencyMicros: burst });
  console.log(`\nwrote ${file}`);
}

await main();
