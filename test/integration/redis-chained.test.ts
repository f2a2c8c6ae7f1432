// Chained sends to a Redis mailbox (issue #30), in this process, on the suite's own Redis: a handler's ctx.send() /
// ctx.sendBatch() to a Redis mailbox goes to its stream (keyed ones to the key's partition, delayed ones to the
// delayed set), and the sending message is acknowledged only once Redis has them: while Redis refuses them the
// sender fails and runs again (nothing acknowledged without its chained message). Bad input throws in the handler.
import { describe, expect, it } from 'vitest';
import { ErrorCodes, type MailboxOptions } from 'ringpool';
import { fixture, runtime, until, untilAsync } from '../helpers.js';
import { scratch, url } from '../redis-helpers.js';

const { admin, connected, names } = scratch(`ringpool-test-chained-${process.pid}`);

function sink(stream: string, redis: Record<string, unknown> = {}): MailboxOptions {
  return { handler: fixture('redis-stamp.js'), maxThreads: 1, concurrency: 4, source: { redis: { url, stream, blockMs: 100, ...redis } } } as MailboxOptions;
}

describe('chained sends to a Redis mailbox', () => {
  it('ctx.send and ctx.sendBatch from an in-memory and from a concurrent handler reach the stream; keyed to partitions, delayed to the set', async () => {
    await connected();
    const { stream, runs } = names();
    const rt = runtime({
      mailboxes: {
        a: { handler: fixture('redis-chain.js'), maxThreads: 1, concurrency: 1 },
        c: { handler: fixture('redis-chain.js'), maxThreads: 1, concurrency: 8 },
        b: sink(stream, { partitions: 4, keepAckedMs: false }),
      },
    });
    await rt.start();
    try {
      for (let i = 0; i < 200; i++) rt.send(i % 2 === 0 ? 'a' : 'c', { i, to: 'b', url, runs, key: i % 5 === 0 ? `k${i % 3}` : undefined });
      for (let i = 200; i < 210; i++) rt.send('c', { i, to: 'b', url, runs, batch: 3 });
      rt.send('a', { i: 300, to: 'b', url, runs, delayMs: 300 });
      rt.send('c', { i: 301, to: 'b', url, runs, late: true });
      await untilAsync(async () => (await admin.hLen(runs)) === 200 + 30 + 2 + 1, 15_000, 'every chained message run');
      const counts = Object.values(await admin.hGetAll(runs)).map(Number);
      expect(counts.every((c) => c === 1)).toBe(true);
      // Keyed ones went to partition streams (40: i % 5 === 0), the rest to the stream itself (kept: keepAckedMs false).
      const parts = await Promise.all([0, 1, 2, 3].map((p) => admin.xLen(`{${stream}}:p:${p}`)));
      expect(parts.reduce((x, y) => x + y, 0)).toBe(40);
      expect(await admin.xLen(stream)).toBe(160 + 30 + 1 + 2);
      expect(rt.stats('b').stream!.delayedMoved).toBe(1);
      expect(rt.stats('a').failed + rt.stats('c').failed).toBe(0);
    } finally {
      await rt.close();
    }
  }, 30_000);

  it('bad input throws in the handler (a key without partitions, too large, unserializable); a failed handler still sends what it sent', async () => {
    await connected();
    const { stream, runs } = names();
    const rt = runtime({
      mailboxes: {
        a: { handler: fixture('redis-chain.js'), maxThreads: 1, concurrency: 1, maxAttempts: 1 },
        b: sink(stream),
      },
    });
    const letters: { error?: { code?: string; message: string } }[] = [];
    rt.on('dead-letter', (l) => letters.push(l as never));
    await rt.start();
    try {
      rt.send('a', { i: 1, to: 'b', url, runs, key: 'k' });
      rt.send('a', { i: 2, to: 'b', url, runs, bad: true });
      rt.send('a', { i: 3, to: 'b', url, runs, fail: true });
      await until(() => rt.stats('a').deadLettered === 3, 10_000, 'three dead letters');
      const dl = await rt.deadLetters('a').list();
      const byI = new Map(dl.map((l) => [(l.payload as { i: number }).i, l.lastError]));
      expect(byI.get(1)?.code).toBe(ErrorCodes.INVALID_OPTION);
      expect(byI.get(1)?.message).toMatch(/partitions/);
      expect(byI.get(2)?.code).toBe(ErrorCodes.UNSERIALIZABLE);
      expect(byI.get(3)?.message).toBe('fail 3');
      // 2 sent its good message before the bad one threw, 3 before it failed: both reach the stream, as a ring send would.
      await untilAsync(async () => (await admin.hLen(runs)) === 2, 10_000, 'the sends before the failures run');
      expect(Object.keys(await admin.hGetAll(runs)).sort()).toEqual(['2', '3']);
    } finally {
      await rt.close();
    }
  }, 20_000);

  it('while Redis refuses the XADD the sender is not acknowledged: it fails and runs again, and its message is in the stream once Redis takes it', async () => {
    await connected();
    const { stream, runs } = names();
    // The sink's stream key holds a string while the senders run: every XADD to it fails (WRONGTYPE).
    const rt = runtime({
      mailboxes: {
        a: { handler: fixture('redis-chain.js'), maxThreads: 1, concurrency: 4, maxAttempts: 50, backoff: { baseMs: 20, maxMs: 50 } },
        b: sink(stream),
      },
    });
    const errors: string[] = [];
    rt.on('error', (e) => errors.push((e as { code: string }).code));
    await rt.start();
    try {
      await admin.del(stream);
      await admin.set(stream, 'not a stream');
      for (let i = 0; i < 20; i++) rt.send('a', { i, to: 'b', url, runs });
      await until(() => rt.stats('a').failed >= 20, 10_000, 'the senders fail while the XADDs do');
      expect(rt.stats('a').processed).toBe(0);
      expect(errors).toContain(ErrorCodes.SOURCE_IO);
      await admin.del(stream);
      // The sink's own reads make the group again once the key is gone (NOGROUP): either of us may be first.
      await admin.sendCommand(['XGROUP', 'CREATE', stream, 'ringpool', '0', 'MKSTREAM']).catch((err: Error) => {
        if (!err.message.startsWith('BUSYGROUP')) throw err;
      });
      await until(() => rt.stats('a').processed === 20, 15_000, 'every sender acknowledged once its XADD went through');
      await untilAsync(async () => (await admin.hLen(runs)) === 20, 15_000, 'every chained message run');
    } finally {
      await rt.close();
    }
  }, 40_000);
});
