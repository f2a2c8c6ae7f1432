/**
 * DESIGN.md asks: one long-lived Piscina task per consumer loop, or short
 * batch tasks (drain up to N messages or T ms, return)? Same ring, same codec,
 * same producer, one consumer thread, in one command.
 *
 *   npm run build && node dist/bench/loop-vs-tasks.js
 */
import { Piscina } from 'piscina';
import { Ring } from '../runtime/shared/ring.js';
import { JsonCodec } from '../runtime/shared/codec.js';
import { header, median, table } from './machine.js';

const TASKS = new URL('../../bench/fixtures/ring-task.js', import.meta.url).href;
const N = 300_000;
const msg = { id: 1, user: 'user-000042', sku: 'SKU-ABCDEFGH', qty: 3, price: 19.99, tags: ['a', 'bb', 'ccc'] };

async function produce(ring: Ring, n: number, consumed: () => number): Promise<void> {
  const codec = new JsonCodec();
  for (let i = 0; i < n; i++) {
    const len = codec.prepare(msg);
    while (!ring.write(codec, len, null, 0, 1, ring.nextId(), 0, 0, codec.ascii)) await new Promise((r) => setImmediate(r));
  }
  while (consumed() < n) await new Promise((r) => setImmediate(r));
}

async function longLived(): Promise<number> {
  const sab = Ring.allocate({ capacityBytes: 8 << 20, maxPayloadBytes: 1024 });
  const ring = new Ring(sab);
  const stop = new SharedArrayBuffer(4);
  const pool = new Piscina({ filename: TASKS, minThreads: 1, maxThreads: 1, atomics: 'disabled' });
  const task = pool.run({ sab, stop, c: 0 });
  const t0 = performance.now();
  await produce(ring, N, () => (Atomics.load(ring.i32, 17) >>> 0)); // CLAIMED
  const dt = performance.now() - t0;
  Atomics.store(new Int32Array(stop), 0, 1);
  await task;
  await pool.destroy();
  return (N / dt) * 1000;
}

async function shortTasks(max: number, ms: number): Promise<number> {
  const sab = Ring.allocate({ capacityBytes: 8 << 20, maxPayloadBytes: 1024 });
  const ring = new Ring(sab);
  const pool = new Piscina({ filename: TASKS, minThreads: 1, maxThreads: 1, atomics: 'sync' });
  let consumed = 0;
  let running = true;
  // Keep one task in flight: as soon as one returns, submit the next.
  const pump = (async () => {
    while (running) {
      const n = (await pool.run({ sab, c: 0, max, ms }, { name: 'batchTask' })) as number;
      consumed += n;
      if (n === 0) await new Promise((r) => setImmediate(r));
    }
  })();
  const t0 = performance.now();
  await produce(ring, N, () => consumed);
  const dt = performance.now() - t0;
  running = false;
  await pump;
  await pool.destroy();
  return (N / dt) * 1000;
}

header('Consumer loop shape: long-lived Piscina task vs short batch tasks (W1 messages, 1 consumer thread)');
const rows: Record<string, number[]> = {};
for (let r = 0; r < 3; r++) {
  (rows['long-lived task (ringpool)'] ??= []).push(await longLived());
  (rows['short tasks: 64 msgs or 1 ms'] ??= []).push(await shortTasks(64, 1));
  (rows['short tasks: 1024 msgs or 10 ms'] ??= []).push(await shortTasks(1024, 10));
}
const base = median(rows['long-lived task (ringpool)']!);
table(Object.entries(rows).map(([shape, v]) => ({ shape, 'msgs/s': Math.round(median(v)), 'x long-lived': (median(v) / base).toFixed(2) })));
