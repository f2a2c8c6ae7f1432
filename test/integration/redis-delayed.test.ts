// Delayed messages of a Redis mailbox (issue #30), in this process, on the suite's own Redis (REDIS_URL from
// test/global-setup.ts; every key is this file's own): they wait in Redis's delayed set and run once each, not
// before their time; a keyed one holds its key's later messages as in memory (and no other key); a delayed send from
// another sender (redisProducer) wakes the consumers through the wake channel; past-due messages after an outage run
// once each, in due order; a batch with delayMs; stats and metrics of the set. Timings here are loose (bench has them).
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { ErrorCodes, type MailboxOptions } from 'ringpool';
import { createMetrics } from 'ringpool/metrics';
import { redisProducer } from 'ringpool/redis';
import { expectCode, fixture, runtime, until, untilAsync } from '../helpers.js';
import { scratch, url } from '../redis-helpers.js';

const { admin, connected, names } = scratch(`ringpool-test-delayed-${process.pid}`);

function box(stream: string, extra: Partial<MailboxOptions> & { redis?: Record<string, unknown> } = {}): MailboxOptions {
  const { redis, ...rest } = extra;
  return {
    handler: fixture('redis-stamp.js'),
    maxThreads: 1,
    concurrency: 1,
    ...rest,
    source: { redis: { url, stream, blockMs: 100, ...redis } },
  } as MailboxOptions;
}

/** The runs recorded: i -> count, and the order '<i>:<start ms>:<key>' as run. */
async function recorded(rk: string): Promise<{ counts: Map<number, number>; order: { i: number; at: number; key: string }[] }> {
  const h = await admin.hGetAll(rk);
  const order = (await admin.lRange(`${rk}:order`, 0, -1)).map((l) => {
    const [i, at, key] = l.split(':');
    return { i: Number(i), at: Number(at), key: key! };
  });
  return { counts: new Map(Object.entries(h).map(([k, v]) => [Number(k), Number(v)])), order };
}

describe('delayed messages on a Redis mailbox', () => {
  it('wait in Redis and run once each, not before their delay; stats and metrics show the set', async () => {
    await connected();
    const { stream, runs: rk } = names();
    const rt = runtime({ mailboxes: { work: box(stream, { concurrency: 8 }) } });
    const registry = new Registry();
    createMetrics(rt, { registry });
    await rt.start();
    try {
      const N = 300;
      const sent = new Map<number, number>();
      for (let i = 0; i < N; i++) {
        const delayMs = (i * 7) % 1_200;
        sent.set(i, Date.now() + delayMs);
        if (i % 3 === 0) expect(await rt.sendAsync<string>('work', { i, url, runs: rk }, { delayMs })).toMatch(i % 1_200 === 0 ? /^\d+-\d+$/ : /^delayed:[0-9a-f]{16}$/);
        else rt.send('work', { i, url, runs: rk }, { delayMs });
      }
      await untilAsync(async () => (await admin.zCard(`{${stream}}:delayed`)) > 0, 2_000, 'the delayed set filled');
      await until(() => rt.stats('work').stream!.delayed > 0, 3_000, 'stats see the set');
      expect(rt.stats('work').stream!.nextDueInMs).toBeGreaterThanOrEqual(0);
      expect(await registry.getSingleMetricAsString('ringpool_stream_delayed')).toMatch(/ringpool_stream_delayed\{mailbox="work"\} [1-9]/);
      await untilAsync(async () => (await admin.hLen(rk)) === N, 15_000, 'every delayed message run');
      const { counts, order } = await recorded(rk);
      expect([...counts.values()].every((c) => c === 1)).toBe(true);
      for (const { i, at } of order) expect(at).toBeGreaterThanOrEqual(sent.get(i)! - 2); // 2 ms: Date.now() here and in the thread
      expect(await admin.zCard(`{${stream}}:delayed`)).toBe(0);
      await until(() => rt.stats('work').stream!.delayed === 0 && rt.stats('work').stream!.nextDueInMs === -1, 3_000, 'stats see it empty');
      expect(rt.stats('work').stream!.delayedMoved).toBeGreaterThan(0);
      // Bad delays are refused, nothing queued.
      await expectCode(() => rt.send('work', { i: -1 }, { delayMs: -5 }), ErrorCodes.INVALID_OPTION);
      await expectCode(() => rt.send('work', { i: -1 }, { delayMs: Infinity }), ErrorCodes.INVALID_OPTION);
      await expectCode(() => rt.send('work', { i: -1 }, { delayMs: '5' as never }), ErrorCodes.INVALID_OPTION);
    } finally {
      await rt.close();
    }
  }, 30_000);

  it('a keyed delayed message holds its key: the later ones wait behind it, in order, from this process and another; other keys do not', async () => {
    await connected();
    const { stream, runs: rk } = names();
    const rt = runtime({ mailboxes: { work: box(stream, { concurrency: 4, redis: { partitions: 4, consumer: 'one' } }) } });
    const other = runtime({ mailboxes: { work: box(stream, { concurrency: 4, redis: { partitions: 4, consumer: 'two' } }) } });
    await rt.start();
    await other.start();
    try {
      const t0 = Date.now();
      rt.send('work', { i: 0, url, runs: rk }, { key: 'a', delayMs: 600 });
      rt.send('work', { i: 1, url, runs: rk }, { key: 'a' });
      rt.send('work', { i: 2, url, runs: rk }, { key: 'a', delayMs: 50 }); // due before 0: still after it
      rt.send('work', { i: 3, url, runs: rk }, { key: 'b' });
      await rt.sendBatchAsync('work', [{ i: 4, url, runs: rk }, { i: 5, url, runs: rk }], { key: 'a' });
      await rt.sendBatchAsync('work', [{ i: 6, url, runs: rk }, { i: 7, url, runs: rk }], { key: 'c', delayMs: 300 });
      // Another process learns of the hold (the held channel) and sends behind it.
      await new Promise((r) => setTimeout(r, 100));
      await other.sendAsync('work', { i: 8, url, runs: rk }, { key: 'a' });
      await untilAsync(async () => (await admin.hLen(rk)) === 9, 10_000, 'all nine run');
      const { counts, order } = await recorded(rk);
      expect([...counts.values()].every((c) => c === 1)).toBe(true);
      const of = (key: string) => order.filter((o) => o.key === key);
      expect(of('a').map((o) => o.i)).toEqual([0, 1, 2, 4, 5, 8]);
      for (const o of of('a')) expect(o.at - t0).toBeGreaterThanOrEqual(598);
      expect(of('b')[0]!.at - t0).toBeLessThan(500); // not held by key a
      expect(of('c').map((o) => o.i)).toEqual([6, 7]);
      for (const o of of('c')) expect(o.at - t0).toBeGreaterThanOrEqual(298);
      // The holds are gone with the last held message.
      expect(await admin.hLen(`{${stream}}:delayed:holds`)).toBe(0);
    } finally {
      await rt.close();
      await other.close();
    }
  }, 20_000);

  it('a delayed send from another sender wakes the consumers at its time (the wake channel), not at the next once-a-second pass', async () => {
    await connected();
    const { stream, runs: rk } = names();
    const rt = runtime({ mailboxes: { work: box(stream) } });
    await rt.start();
    const p = redisProducer({ url, stream });
    try {
      await p.whenReady();
      const late: number[] = [];
      for (let i = 0; i < 10; i++) {
        // Each the new earliest: a mover asleep for up to a second would be late by hundreds of ms.
        const sentAt = Date.now();
        expect(await p.sendAsync({ i, url, runs: rk }, { delayMs: 150 })).toMatch(/^delayed:/);
        await untilAsync(async () => (await admin.hLen(rk)) === i + 1, 5_000, `message ${i} run`);
        const { order } = await recorded(rk);
        late.push(order[i]!.at - sentAt - 150);
      }
      expect(late.every((l) => l >= -2)).toBe(true);
      // Loose (timings belong in bench:delayed): the median well under the one-second pass.
      expect(late.sort((a, b) => a - b)[5]!).toBeLessThan(200);
    } finally {
      await p.close();
      await rt.close();
    }
  }, 30_000);

  it('past-due messages after an outage of every consumer run once each, in due order', async () => {
    await connected();
    const { stream, runs: rk } = names();
    const p = redisProducer({ url, stream });
    const N = 2_500; // more than one pass moves (1,000)
    for (let i = 0; i < N; i++) p.send({ i, url, runs: rk }, { delayMs: 400 + ((i * 37) % 400) });
    await p.close(); // every one in the set (the first is due 400 ms after its send)
    // Due order as Redis holds it (same-ms dues by send order), read before any is due.
    const byDue = (await admin.zRange(`{${stream}}:delayed`, 0, -1)).map((m) => Number(/"i":(\d+)/.exec(m)![1]));
    expect(byDue).toHaveLength(N);
    await new Promise((r) => setTimeout(r, 1_000)); // every one past due, no consumer running
    const rt = runtime({ mailboxes: { work: box(stream) } });
    await rt.start();
    try {
      await untilAsync(async () => (await admin.hLen(rk)) === N, 30_000, 'every past-due message run');
      const { counts, order } = await recorded(rk);
      expect([...counts.values()].every((c) => c === 1)).toBe(true);
      // One thread, one at a time: the run order is the stream's, which is due order (same-ms dues by send order).
      expect(order.map((o) => o.i)).toEqual(byDue);
    } finally {
      await rt.close();
    }
  }, 60_000);
});
