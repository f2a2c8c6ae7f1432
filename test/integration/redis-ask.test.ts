// ask() on a Redis mailbox (issue #30), two runtimes in this process on the suite's Redis (each its own reply stream,
// as two processes would have): the reply comes back from whichever ran it; a handler's final error rejects the ask
// with RINGPOOL_DEAD_LETTERED and the handler's error as cause; timeoutMs and signal end the wait; a late reply is
// dropped; reply streams are trimmed as read and deleted on close; an actor's methods through rt.actor() proxies.
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { ErrorCodes, type MailboxOptions } from 'ringpool';
import { createMetrics } from 'ringpool/metrics';
import { expectCode, fixture, runtime, until, untilAsync } from '../helpers.js';
import { scratch, url } from '../redis-helpers.js';

const { admin, connected, names } = scratch(`ringpool-test-ask-${process.pid}`);

function box(stream: string, extra: Partial<MailboxOptions> & { redis?: Record<string, unknown> } = {}): MailboxOptions {
  const { redis, ...rest } = extra;
  return { handler: fixture('redis-answer.js'), maxThreads: 1, concurrency: 8, maxAttempts: 2, backoff: { baseMs: 5, maxMs: 10 }, ...rest, source: { redis: { url, stream, blockMs: 100, ...redis } } } as MailboxOptions;
}

describe('ask() on a Redis mailbox', () => {
  it('resolves with the reply from whichever process ran it, rejects with the final error, times out; nothing left in Redis', async () => {
    await connected();
    const { stream } = names();
    const a = runtime({ mailboxes: { work: box(stream, { redis: { consumer: 'a' } }) } });
    const b = runtime({ mailboxes: { work: box(stream, { redis: { consumer: 'b' } }) } });
    await a.start();
    await b.start();
    try {
      const replies = await Promise.all(Array.from({ length: 400 }, (_, i) => (i % 2 === 0 ? a : b).ask<{ i: number; double: number }>('work', { i }, { timeoutMs: 10_000 })));
      expect(replies.map((r) => r.double)).toEqual(Array.from({ length: 400 }, (_, i) => i * 2));
      // Both ran some (one stream, one group): replies crossed from one runtime to the other.
      expect(a.stats('work').processed).toBeGreaterThan(0);
      expect(b.stats('work').processed).toBeGreaterThan(0);
      expect(a.stats('work').processed + b.stats('work').processed).toBe(400);
      const err = await expectCode(a.ask('work', { i: 7, fail: true }, { timeoutMs: 10_000 }), ErrorCodes.DEAD_LETTERED);
      expect((err as Error).cause).toBeInstanceOf(Error);
      expect(((err as Error).cause as Error).message).toBe('no 7');
      await expectCode(a.ask('work', { i: 8, sleepMs: 500 }, { timeoutMs: 50 }), ErrorCodes.TIMEOUT);
      const ac = new AbortController();
      const aborted = a.ask('work', { i: 9, sleepMs: 300 }, { signal: ac.signal });
      ac.abort(new Error('stop'));
      await expect(aborted).rejects.toThrow('stop');
      await expectCode(() => a.ask('work', { b: 1n }), ErrorCodes.UNSERIALIZABLE);
      await expectCode(a.ask('work', { i: 1 }, { key: 'k' }), ErrorCodes.INVALID_OPTION);
      // The late replies (8, 9) arrive and are dropped, not kept: the reply streams hold at most their last entry.
      await untilAsync(async () => {
        const ks = await admin.keys(`{${stream}}:replies:*`);
        const lens = await Promise.all(ks.map((k) => admin.xLen(k)));
        return ks.length >= 1 && lens.every((n) => n <= 1);
      }, 5_000, 'reply streams trimmed as read');
      const ks = await admin.keys(`{${stream}}:replies:*`);
      for (const k of ks) expect(await admin.pTTL(k)).toBeGreaterThan(0); // they expire if their process dies
      await until(() => a.stats('work').stream!.held === 0 && b.stats('work').stream!.held === 0, 5_000, 'nothing held');
      // The reply traffic, in stats and metrics: a asked 200 + 1 + 1 + 1 + 1 (the two refused before sending are not counted).
      await until(() => a.stats('work').stream!.repliesDropped >= 2, 5_000, 'the late replies read and dropped');
      const sa = a.stats('work').stream!;
      const sb = b.stats('work').stream!;
      expect(a.stats('work').stream!.asksOpen).toBe(0);
      expect(sa.repliesReceived).toBeGreaterThanOrEqual(202);
      await until(() => a.stats('work').stream!.repliesSent + b.stats('work').stream!.repliesSent >= 403, 5_000, 'every reply counted as sent');
      expect(sb.repliesSent).toBeGreaterThan(0);
      const registry = new Registry();
      createMetrics(a, { registry });
      const text = await registry.metrics();
      expect(text).toMatch(/ringpool_stream_replies_received_total\{mailbox="work"\} [1-9]/);
      expect(text).toMatch(/ringpool_stream_asks_open\{mailbox="work"\} 0/);
    } finally {
      await a.close();
      await b.close();
    }
    expect(await admin.keys(`{${stream}}:replies:*`)).toEqual([]); // each process deletes its own on close
  }, 40_000);

  it("an actor's methods through rt.actor() on a partitioned Redis mailbox: ask.method and tell", async () => {
    await connected();
    const { stream } = names();
    const a = runtime({ mailboxes: { counter: { ...box(stream, { redis: { partitions: 4 } }), handler: fixture('counter-actor.js') } } });
    await a.start();
    try {
      const c = a.actor('counter', { timeoutMs: 10_000 }) as unknown as {
        tell: { add(key: string, n: number): number };
        ask: { add(key: string, n: number): Promise<number>; get(key: string): Promise<{ n: number }> };
        request(key: string, msg: unknown): Promise<number>;
        send(key: string, msg: unknown): number;
      };
      for (let i = 0; i < 10; i++) c.tell.add('x', 1);
      c.send('x', { add: 2 });
      expect(await c.ask.add('x', 5)).toBe(17);
      expect(await c.request('x', { add: 1 })).toBe(18);
      expect((await c.ask.get('y')).n).toBe(0);
      await expectCode(a.ask('counter', { add: 1 }), ErrorCodes.KEY_REQUIRED);
    } finally {
      await a.close();
    }
  }, 30_000);
});
