// Redis mailboxes on a real Redis Cluster (issue #30): three masters of this test's own on loopback ports
// (test/redis-cluster.ts). Every key of a mailbox lives in one hash slot, and its connections go to that slot's master:
// - the fleet test of the partitions (3 processes, keyed messages, one SIGKILLed and one started): every message
//   done, in order per key; every key the mailbox made sits on one node;
// - a plain mailbox whose stream has a hash tag ('{name}'): sends, batches, delayed messages, ask, dead letters,
//   chained sends, all through the cluster;
// - a plain stream without a tag is refused on a cluster, naming the stream.
// The handlers record their runs in the suite's own Redis (REDIS_URL), not in the cluster.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from 'redis';
import { ErrorCodes, type MailboxOptions, type StreamDeadLetters } from 'ringpool';
import { redisProducer } from 'ringpool/redis';
import { expectCode, fixture, runtime, until, untilAsync } from '../helpers.js';
import { orderViolations, scratch, url, type Start } from '../redis-helpers.js';
import { startCluster, type TestCluster } from '../redis-cluster.js';

const prefix = `ringpool-test-cluster-${process.pid}`;
const { admin, connected, child } = scratch(prefix);
let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster(3);
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

/** Every key whose name contains `part`, by the node that holds it. */
async function keysByNode(part: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const u of cluster.nodes) {
    const c = createClient({ url: u });
    c.on('error', () => undefined);
    await c.connect();
    const ks = (await c.keys(`*${part}*`)) as string[];
    if (ks.length > 0) out.set(u, ks);
    c.destroy();
  }
  return out;
}

describe('Redis mailboxes on a Redis Cluster', () => {
  it('3 processes on a partitioned mailbox, keyed messages, one SIGKILLed and one started: every message done, in order per key, all keys in one slot', async () => {
    await connected();
    const stream = `${prefix}-parts`;
    const P = 8;
    const redis = { cluster: { nodes: cluster.nodes }, partitions: P, ownerLeaseMs: 2_000, ownerRenewMs: 400, blockMs: 200, readCount: 64 };
    const over = { handler: 'redis-keyed.js', redis, mailbox: { maxThreads: 2, concurrency: 8 } };
    const procs = await Promise.all(['a', 'b', 'c'].map((c) => child(stream, c, over)));
    const N = 6_000;
    const K = 50;
    const producer = redisProducer({ cluster: { nodes: cluster.nodes }, stream, partitions: P });
    for (let i = 0; i < N; i++) producer.send({ url, prefix: stream, n: Math.floor(i / K) }, { key: `k${i % K}` });
    await producer.close();
    await untilAsync(async () => (await admin.hLen(`${stream}:done`)) >= N / 4, 60_000, 'a quarter done');
    procs[0]!.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    procs.push(await child(stream, 'd', over));
    await untilAsync(async () => (await admin.hLen(`${stream}:done`)) === N, 90_000, 'every message done');
    const starts = new Map<string, Start[]>();
    for (let k = 0; k < K; k++) starts.set(`k${k}`, (await admin.lRange(`${stream}:starts:k${k}`, 0, -1)).map((r) => r.split(':').map(Number) as Start));
    expect(orderViolations(starts, new Set([procs[0]!.pid!]))).toEqual([]);
    expect(Number((await admin.get(`${stream}:overlaps`)) ?? 0)).toBe(0);
    // One slot, so one node: every key the mailbox made is there.
    const where = await keysByNode(stream);
    expect(where.size).toBe(1);
    expect([...where.values()][0]!.length).toBeGreaterThan(P);
    for (const c of procs) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  }, 150_000);

  it('the fleet test on the cluster, without partitions: 3 processes on a tagged stream, 10,000 messages, one SIGKILLed: every message run, once except what it held', async () => {
    await connected();
    const stream = `{${prefix}-fleet}`;
    const runs = `${prefix}-fleet:runs`;
    const over = { handler: 'redis-work.js', redis: { cluster: { nodes: cluster.nodes } } };
    const procs = await Promise.all(['a', 'b', 'c'].map((c) => child(stream, c, over)));
    const N = 10_000;
    const p = redisProducer({ cluster: { nodes: cluster.nodes }, stream });
    for (let i = 0; i < N; i++) p.send({ i, url, runs, workMs: 1 });
    await p.close();
    await untilAsync(async () => (await admin.hLen(runs)) >= N / 4, 60_000, 'a quarter run');
    procs[0]!.kill('SIGKILL');
    await untilAsync(async () => (await admin.hLen(runs)) === N, 90_000, 'every message run');
    const twice = Object.values(await admin.hGetAll(runs)).filter((c) => Number(c) > 1).length;
    expect(twice).toBeLessThanOrEqual(3 * 128); // what the killed one held, at most (3 reads of readCount 128)
    for (const c of procs) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  }, 150_000);

  it("a plain mailbox with a tagged stream: sends, batches, delayed, ask, dead letters and chained sends through the cluster", async () => {
    await connected();
    const stream = `{${prefix}-plain}`;
    const runs = `${prefix}-plain:runs`;
    const sink = `{${prefix}-sink}`;
    const on = { cluster: { nodes: cluster.nodes }, blockMs: 100 };
    const rt = runtime({
      mailboxes: {
        work: { handler: fixture('redis-answer.js'), maxThreads: 1, concurrency: 8, maxAttempts: 2, backoff: { baseMs: 5, maxMs: 10 }, source: { redis: { ...on, stream } } } as MailboxOptions,
        chain: { handler: fixture('redis-chain.js'), maxThreads: 1, concurrency: 4 },
        sink: { handler: fixture('redis-stamp.js'), maxThreads: 1, concurrency: 4, source: { redis: { ...on, stream: sink } } } as MailboxOptions,
      },
    });
    await rt.start();
    try {
      expect((await rt.ask<{ double: number }>('work', { i: 21 }, { timeoutMs: 10_000 })).double).toBe(42);
      const t0 = Date.now();
      const delayed = rt.ask<{ double: number }>('work', { i: 5 }, { timeoutMs: 10_000 });
      rt.send('sink', { i: 1, url, runs }, { delayMs: 300 });
      expect(await rt.sendBatchAsync<string[]>('sink', [{ i: 2, url, runs }, { i: 3, url, runs }])).toHaveLength(2);
      rt.send('chain', { i: 4, to: 'sink', url, runs });
      expect((await delayed).double).toBe(10);
      await untilAsync(async () => (await admin.hLen(runs)) === 4, 10_000, 'the sink ran four');
      const order = (await admin.lRange(`${runs}:order`, 0, -1)).map((l) => l.split(':').map(Number));
      expect(order.find((o) => o[0] === 1)![1]! - t0).toBeGreaterThanOrEqual(295);
      await expectCode(rt.ask('work', { i: 9, fail: true }, { timeoutMs: 10_000 }), ErrorCodes.DEAD_LETTERED);
      await until(() => rt.stats('work').deadLettered === 1, 5_000, 'the letter counted');
      const letters = await rt.deadLetters<StreamDeadLetters>('work').list();
      expect(letters.map((l) => (l.payload as { i: number }).i)).toEqual([9]);
      const where = await keysByNode(`${prefix}-plain}`);
      expect(where.size).toBe(1);
    } finally {
      await rt.close();
    }
  }, 60_000);

  it('a plain stream without a hash tag is refused on a cluster, naming the stream; so is more than one way to connect', async () => {
    const bad = (redis: Record<string, unknown>) => expectCode(() => runtime({ mailboxes: { w: { handler: fixture('noop.js'), source: { redis } } as MailboxOptions } }), ErrorCodes.INVALID_OPTION);
    expect((await bad({ cluster: { nodes: cluster.nodes }, stream: 'plain' })).message).toMatch(/hash tag/);
    expect((await bad({ cluster: { nodes: cluster.nodes }, url, stream: '{x}' })).message).toMatch(/exactly one of url/);
    await bad({ cluster: { nodes: [] }, stream: '{x}' });
    await bad({ cluster: { nodes: ['http://x'] }, stream: '{x}' });
    await bad({ stream: '{x}' });
    await bad({ url, stream: 'x', clientOptions: { url } });
    await bad({ client: {}, stream: 'x' });
    // A partitioned stream needs no tag of its own: its keys are all tagged {<stream>}.
    const ok = runtime({ mailboxes: { w: { handler: fixture('noop.js'), source: { redis: { cluster: { nodes: cluster.nodes }, stream: `${prefix}-ok`, partitions: 2 } } } as MailboxOptions } });
    await ok.start();
    await ok.close();
  }, 30_000);
});
