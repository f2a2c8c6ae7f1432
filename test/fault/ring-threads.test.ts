import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Ring } from '../../dist/runtime/shared/ring.js';
import { JsonCodec } from '../../dist/runtime/shared/codec.js';

const WORKER = new URL('../fixtures/ring-stress-worker.js', import.meta.url);

describe('Ring under real threads', () => {
  it('3 producers (2 threads + main) and 2 consumers: no torn read, nothing lost or duplicated', async () => {
    // Small ring (64 KiB) so it wraps hundreds of times; cursors start just below 2^32.
    const sab = Ring.allocate({ capacityBytes: 1 << 16, maxPayloadBytes: 4096, initialCursor: -3000 });
    const ring = new Ring(sab);
    const perProducer = 20_000;
    const ctl = new SharedArrayBuffer(4);
    const consumers = [0, 1].map((c) => new Worker(WORKER, { workerData: { sab, ctl, role: 'consume', consumer: c, batch: 1 + c * 31 } }));
    const producers = [1, 2].map((p) => new Worker(WORKER, { workerData: { sab, role: 'produce', producer: p, count: perProducer } }));
    // Listen now: a producer may finish before the main thread does.
    const produced = producers.map((w) => once(w, 'message'));
    const consumed = consumers.map((w) => once(w, 'message'));
    const codec = new JsonCodec();
    // main thread is producer 0
    const checksum = (s: string): number => {
      let h = 2166136261;
      for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
      return h >>> 0;
    };
    for (let i = 0; i < perProducer; i++) {
      const body = `p0-${i}-` + 'z'.repeat((i * 131) % 700);
      const n = codec.prepare({ p: 0, i, body, sum: checksum(body) });
      while (!ring.write(codec, n, null, 0, 1, ring.nextId(), 0, 0, codec.ascii)) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(produced);
    Atomics.store(new Int32Array(ctl), 0, 1);
    const results = (await Promise.all(consumed)).map(([m]) => m as { seen: number[]; bad: number });
    await Promise.all([...consumers, ...producers].map((w) => w.terminate()));
    const all = results.flatMap((r) => r.seen);
    expect(results.map((r) => r.bad)).toEqual([0, 0]);
    expect(all.length).toBe(3 * perProducer);
    expect(new Set(all).size).toBe(3 * perProducer);
    // per producer, each consumer saw that producer's messages in order (FIFO per producer)
    for (const r of results) {
      const last = new Map<number, number>();
      for (const v of r.seen) {
        const p = Math.floor(v / 1e7);
        const i = v % 1e7;
        expect(i).toBeGreaterThan(last.get(p) ?? -1);
        last.set(p, i);
      }
    }
    expect(ring.usedUnits()).toBe(0);
  }, 60_000);
});
