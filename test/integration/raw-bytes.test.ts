// The raw codec's payloads (runtime/shared/byte-pool.ts): copied out of the ring into pooled memory of the consumer
// thread, a batch's in one call. Every payload must arrive as sent, be its own (writing over one changes no other,
// kept ones stay as they were) across a small ring that wraps many times, keyed records handed between 2 threads,
// and payloads too large for the pool (their own ArrayBuffer).
import { describe, expect, it } from 'vitest';
import { fixture, runtime } from '../helpers.js';

function payload(seq: number, size: number): Uint8Array {
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, seq, true);
  dv.setUint32(4, size, true);
  for (let i = 8; i < size; i++) b[i] = (seq * 31 + i) & 255;
  return b;
}

describe('raw payloads', () => {
  it('arrive as sent and are each their own: 20,000 of 8 B to 12 KiB, a 64 KiB ring, keyed and unkeyed on 2 threads', async () => {
    const rt = runtime({ mailboxes: { r: { handler: fixture('raw-check.js'), codec: 'raw', capacityBytes: 64 << 10, maxMessageBytes: 16 << 10, minThreads: 2, maxThreads: 2, autoscale: false, maxAttempts: 1 } } });
    await rt.start();
    try {
      const N = 20_000;
      let rng = 12345;
      const next = (): number => (rng = (rng * 1103515245 + 12345) & 0x7fffffff);
      for (let seq = 0; seq < N; seq++) {
        const size = seq % 500 === 7 ? 12_000 : 8 + (next() % 1500);
        const opts = seq % 2 === 0 ? { key: `k${next() % 20}` } : undefined;
        await rt.sendAsync('r', payload(seq, size), opts);
      }
      await rt.onIdle();
      const s = rt.stats('r');
      expect(s.failed, 'attempts that found a damaged or changed payload').toBe(0);
      expect(s.processed).toBe(N);
    } finally {
      await rt.close();
    }
  }, 60_000);
});
