// ask() on a Redis mailbox across processes, through a SIGKILL (issue #30), on real processes and the suite's Redis:
// this process asks 2,000 at once (and runs some), two consumer processes run them, one is SIGKILLed mid-run. Every
// ask settles within its timeout, each with its own reply (what the killed one held is taken over and answered by
// another), and what the asks leave in Redis is bounded: the reply stream holds at most its last entry and expires.
import { describe, expect, it } from 'vitest';
import { type MailboxOptions } from 'ringpool';
import { fixture, runtime, untilAsync } from '../helpers.js';
import { scratch, url } from '../redis-helpers.js';

const prefix = `ringpool-test-ask-fleet-${process.pid}`;
const { admin, connected, child } = scratch(prefix);

describe('ask() across processes', () => {
  it('2,000 concurrent asks, two processes running them, one SIGKILLed: each settles in time with its own reply', async () => {
    await connected();
    const stream = `${prefix}-kill`;
    const base = { handler: 'redis-answer.js', mailbox: { concurrency: 16 } };
    const victim = await child(stream, 'v', base);
    await child(stream, 's', base);
    const rt = runtime({
      mailboxes: { work: { handler: fixture('redis-answer.js'), maxThreads: 1, concurrency: 4, source: { redis: { url, stream, consumer: 'asker', claimIdleMs: 1_000, blockMs: 200 } } } as MailboxOptions },
    });
    await rt.start();
    try {
      const N = 2_000;
      const t0 = Date.now();
      const timeoutMs = 20_000;
      const settled: { ok: boolean; at: number; code?: string }[] = new Array(N);
      const asks = Array.from({ length: N }, (_, i) =>
        rt.ask<{ i: number; double: number }>('work', { i, sleepMs: 20 }, { timeoutMs }).then(
          (r) => {
            expect(r.i).toBe(i); // its own reply, not another's
            expect(r.double).toBe(2 * i);
            settled[i] = { ok: true, at: Date.now() - t0 };
          },
          (e: { code?: string }) => (settled[i] = { ok: false, at: Date.now() - t0, code: e.code }),
        ),
      );
      await untilAsync(async () => settled.filter(Boolean).length >= N / 4, 20_000, 'a quarter answered');
      victim.kill('SIGKILL');
      const killedAt = Date.now() - t0;
      await Promise.all(asks);
      // What the victim held was answered by another after its takeover (claimIdleMs 1 s after the kill).
      expect(settled.some((s) => s.at > killedAt + 900)).toBe(true);
      expect(settled.every((s) => s.at <= timeoutMs + 1_000)).toBe(true);
      expect(settled.filter((s) => !s.ok).map((s) => s.code)).toEqual([]); // taken over and answered: none lost
      // Bounded: this process's reply stream holds at most its last entry, and expires if it dies.
      const keys = await admin.keys(`{${stream}}:replies:*`);
      expect(keys).toHaveLength(1);
      await untilAsync(async () => (await admin.xLen(keys[0]!)) <= 1, 5_000, 'the reply stream trimmed');
      expect(await admin.pTTL(keys[0]!)).toBeGreaterThan(0);
    } finally {
      await rt.close();
    }
  }, 90_000);
});
