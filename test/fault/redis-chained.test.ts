// Chained sends to a Redis mailbox across a SIGKILL (issue #30), on real processes and the suite's Redis: two
// processes run Redis mailbox 'work' (stream SA), whose handler ctx.send()s each message to Redis mailbox 'b' (stream
// SB, run by both). One is SIGKILLed at its 40th group of chained sends: right before the XADDs, or right after Redis
// answered them and before the sender could be acknowledged. The survivor takes over what it held. Every SA message
// ends acknowledged, and each has its chained message run at least once: none acknowledged without it.
import { describe, expect, it } from 'vitest';
import { redisProducer } from 'ringpool/redis';
import { untilAsync } from '../helpers.js';
import { scratch, url } from '../redis-helpers.js';

const prefix = `ringpool-test-chained-fleet-${process.pid}`;
const { admin, child } = scratch(prefix);

describe('chained sends to a Redis mailbox through a SIGKILL', () => {
  for (const at of ['before', 'after'] as const) {
    it(`killed ${at} the XADD of its chained sends: every sender acknowledged has its chained message (at least once)`, async () => {
      if (!admin.isOpen) await admin.connect();
      const sa = `${prefix}-${at}`;
      const sb = `${sa}-b`;
      const runs = `${sb}:runs`;
      const base = { handler: 'redis-chain.js', mailbox: { concurrency: 4 }, extra: { b: { handler: 'redis-stamp.js', maxThreads: 1, concurrency: 4, source: { redis: { stream: sb } } } } };
      const killed = await child(sa, 'k', { ...base, killInChain: { n: 40, at } });
      const survivor = await child(sa, 's', base);
      const exit = new Promise<NodeJS.Signals | null>((r) => killed.once('exit', (_c, sig) => r(sig)));
      const N = 2_000;
      const p = redisProducer({ url, stream: sa });
      for (let i = 0; i < N; i++) p.send({ i, to: 'b', url, runs });
      await p.close();
      expect(await exit).toBe('SIGKILL');
      await untilAsync(async () => (await admin.hLen(runs)) === N, 60_000, 'every chained message run');
      // Every sender ends acknowledged (the survivor took over what the killed one held)...
      await untilAsync(async () => ((await admin.sendCommand(['XPENDING', sa, 'ringpool'])) as unknown[])[0] === 0, 30_000, 'nothing pending in SA');
      // ...and none without its chained message: each i ran in 'b' at least once (twice only around the kill).
      const counts = await admin.hGetAll(runs);
      for (let i = 0; i < N; i++) expect(Number(counts[String(i)] ?? 0)).toBeGreaterThanOrEqual(1);
      expect(Object.values(counts).filter((c) => Number(c) > 1).length).toBeLessThanOrEqual(3 * 128);
      survivor.kill('SIGTERM');
      await new Promise((r) => survivor.once('exit', r));
    }, 90_000);
  }
});
