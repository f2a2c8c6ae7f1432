/**
 * The ceiling: a minimal single-producer single-consumer SharedArrayBuffer ring
 * with the same JSON codec, written by hand for the benchmark. Not part of
 * ringpool: no retries, no leases, no crash recovery, no multi-producer.
 */
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';

const CONSUMER = new URL('../../bench/fixtures/naive-ring-consumer.js', import.meta.url);

export async function naiveRing(n: number, message: (i: number) => unknown, capacity = 8 << 20): Promise<number> {
  const sab = new SharedArrayBuffer(64 + capacity);
  const ctl = new Int32Array(sab, 0, 16);
  const buf = Buffer.from(sab, 64, capacity) as Buffer & { latin1Write(s: string, o: number, l: number): number };
  const dv = new DataView(sab, 64, capacity);
  const w = new Worker(CONSUMER, { workerData: { sab, capacity } });
  await new Promise((r) => setTimeout(r, 50));
  const exited = once(w, 'exit');
  const t0 = performance.now();
  let head = 0;
  for (let i = 0; i < n; i++) {
    const s = JSON.stringify(message(i));
    const len = Buffer.byteLength(s);
    const need = (4 + len + 3) & ~3;
    for (;;) {
      const tail = Atomics.load(ctl, 4);
      const at = head % capacity;
      const wrap = at + need > capacity ? capacity - at : 0;
      if (head + wrap + need - tail <= capacity) {
        if (wrap) {
          dv.setUint32(at, 0xffffffff, true);
          head += wrap;
        }
        const p = head % capacity;
        dv.setUint32(p, len, true);
        buf.latin1Write(s, p + 4, len);
        head += need;
        Atomics.store(ctl, 0, head);
        if (Atomics.load(ctl, 8) === 1) Atomics.notify(ctl, 0);
        break;
      }
      await new Promise((r) => setImmediate(r));
    }
  }
  while (Atomics.load(ctl, 4) !== head) await new Promise((r) => setImmediate(r));
  const dt = performance.now() - t0;
  Atomics.store(ctl, 12, 1);
  Atomics.notify(ctl, 0);
  await exited;
  return (n / dt) * 1000;
}
