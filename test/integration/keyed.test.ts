import { describe, expect, it } from 'vitest';
import { fixture, runtime } from '../helpers.js';

/** The handled order per key, as the 'log' mailbox received it (one thread, one at a time: arrival order). */
function perKey(rt: ReturnType<typeof runtime>): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const d of rt.deadLetters('log').list()) {
    const { key, i } = d.payload as { key: string; i: number };
    (out.get(key) ?? out.set(key, []).get(key)!).push(i);
  }
  return out;
}

function mk(opts: { concurrency?: number } = {}) {
  return runtime({
    mailboxes: {
      m: {
        handler: fixture('ordered.js'),
        minThreads: 2,
        maxThreads: 2,
        maxAttempts: 3,
        backoff: { baseMs: 1, maxMs: 5 },
        autoscale: false,
        concurrency: opts.concurrency ?? 1,
      },
      log: { handler: fixture('order-log.js'), minThreads: 1, maxThreads: 1, autoscale: false, deadLetterLimit: 100_000, capacityBytes: 16 << 20 },
    },
  });
}

describe('keyed ordering', () => {
  for (const concurrency of [1, 8]) {
    it(`10,000 messages over 100 keys with random delays on 2 threads: per key, handled order = send order; 1 in 10 first attempts fail (concurrency ${concurrency})`, async () => {
      const rt = mk({ concurrency });
      await rt.start();
      const N = 10_000;
      for (let i = 0; i < N; i++) {
        const key = `k${i % 100}`;
        await rt.sendAsync('m', { key, i, delay: i % 7 === 0 ? 1 + (i % 3) : 0, failFirst: i % 10 === 3 }, { key });
      }
      await rt.onIdle();
      expect(rt.stats('m')).toMatchObject({ enqueued: N, processed: N, deadLettered: 0 });
      const got = perKey(rt);
      expect(got.size).toBe(100);
      for (const [key, seq] of got) {
        const sent = Array.from({ length: N / 100 }, (_, j) => Number(key.slice(1)) + j * 100);
        expect(seq).toEqual(sent);
      }
    }, 120_000);
  }

  it('a poison message of key K is dead-lettered after maxAttempts, then K’s later messages flow in order; other keys never wait', async () => {
    const rt = mk({ concurrency: 4 });
    await rt.start();
    rt.send('m', { key: 'K', i: 0 }, { key: 'K' });
    // Each of its 3 attempts takes 200 ms: K is held for 600 ms or more.
    rt.send('m', { key: 'K', i: 1, poison: true, delay: 200 }, { key: 'K' });
    for (let i = 2; i < 20; i++) rt.send('m', { key: 'K', i }, { key: 'K' });
    for (let i = 0; i < 20; i++) rt.send('m', { key: 'other', i }, { key: 'other' });
    await rt.onIdle();
    const got = perKey(rt);
    expect(got.get('K')).toEqual([0, ...Array.from({ length: 18 }, (_, j) => j + 2)]);
    expect(got.get('other')).toEqual(Array.from({ length: 20 }, (_, j) => j));
    const [dl] = rt.deadLetters('m').list();
    expect(dl).toMatchObject({ key: 'K', attempts: 3, reason: 'max_attempts' });
    // 'other' did not wait for K's retries: all of it was handled before K's poison gave up.
    const otherDone = Math.max(...rt.deadLetters('log').list().filter((d) => (d.payload as { key: string }).key === 'other').map((d) => (d.payload as { end: number }).end));
    expect(otherDone).toBeLessThan(dl!.deadAt);
  });

  it('unkeyed messages keep full parallelism next to keyed ones', async () => {
    const rt = mk({ concurrency: 4 });
    await rt.start();
    for (let i = 0; i < 500; i++) rt.send('m', { key: i % 2 ? 'A' : null, i, delay: 2 }, i % 2 ? { key: 'A' } : undefined);
    await rt.onIdle();
    expect(rt.stats('m').processed).toBe(500);
    expect(perKey(rt).get('A')).toEqual(Array.from({ length: 250 }, (_, j) => 2 * j + 1));
    // Full parallelism for the unkeyed: at some moment more of their handlers ran at once than one thread runs one at a time
    // (2 threads x concurrency 4 allow 8); key A's ran one at a time, never overlapping.
    const runs = rt.deadLetters('log').list().map((d) => d.payload as { key: string | null; start: number; end: number });
    const peak = (xs: typeof runs): number => {
      const ev = xs.flatMap((r) => [[r.start, 1] as const, [r.end, -1] as const]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      let cur = 0;
      let max = 0;
      for (const [, d] of ev) max = Math.max(max, (cur += d));
      return max;
    };
    expect(peak(runs.filter((r) => r.key === null))).toBeGreaterThanOrEqual(4);
    expect(peak(runs.filter((r) => r.key === 'A'))).toBe(1);
  });

  it('a paused key’s backlog held by the dispatcher counts against capacityBytes: senders get RINGPOOL_QUEUE_FULL, then it drains in order', async () => {
    const rt = runtime({
      mailboxes: {
        m: { handler: fixture('ordered.js'), minThreads: 2, maxThreads: 2, autoscale: false, capacityBytes: 64 << 10, maxMessageBytes: 4096 },
        log: { handler: fixture('order-log.js'), minThreads: 1, maxThreads: 1, autoscale: false, deadLetterLimit: 100_000, capacityBytes: 16 << 20 },
      },
    });
    await rt.start();
    // The key's first message is delayed: the key pauses until it runs, its later messages wait outside the ring.
    rt.send('m', { key: 'K', i: 0 }, { key: 'K', delayMs: 1500 });
    let sent = 1;
    let full = false;
    for (; sent < 50_000 && !full; ) {
      try {
        rt.send('m', { key: 'K', i: sent }, { key: 'K' });
        sent++;
      } catch (err) {
        expect((err as { code: string }).code).toBe('RINGPOOL_QUEUE_FULL');
        full = true;
      }
      if (sent % 200 === 0) await new Promise((r) => setTimeout(r, 1)); // let consumers claim and defer
    }
    expect(full).toBe(true);
    // 64 KiB of ring: each record takes 96 bytes (64 header + key + payload, rounded to 16): about 680 fit
    expect(sent).toBeLessThan(2 * (64 << 10) / 96);
    await rt.onIdle();
    expect(rt.stats('m')).toMatchObject({ processed: sent, deadLettered: 0, delayed: 0 });
    expect(perKey(rt).get('K')).toEqual(Array.from({ length: sent }, (_, j) => j));
  });
});
