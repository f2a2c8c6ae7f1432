import { BroadcastChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import type { ScaleEvent } from 'ringpool';
import codec from '../fixtures/p-codec.js';
import { expectCode, fixture, runtime, until } from '../helpers.js';

// Promises the README makes that had no test.

describe('keyed order across a crash and a lease kill', () => {
  it('a key whose message kills its thread, and one whose message hangs past leaseMs, keep send order; other keys flow', async () => {
    const got: Array<{ key: string; i: number; attempt: number }> = [];
    const ch = new BroadcastChannel('ringpool-test-keyed-faults');
    ch.onmessage = (e) => got.push((e as { data: { key: string; i: number; attempt: number } }).data);
    try {
      const rt = runtime({
        mailboxes: {
          m: { handler: fixture('p-keyed.js'), minThreads: 2, maxThreads: 2, autoscale: false, leaseMs: 300, maxAttempts: 3, backoff: { baseMs: 1, maxMs: 5 } },
        },
        tickMs: 20,
      });
      await rt.start();
      const keys = ['crashes', 'hangs', 'a', 'b', 'c'];
      const N = 20;
      for (let i = 0; i < N; i++) {
        for (const key of keys) {
          rt.send('m', { key, i, ms: i % 3, crash: key === 'crashes' && i === 5, hang: key === 'hangs' && i === 7 }, { key });
        }
      }
      await rt.onIdle();
      await until(() => got.length >= keys.length * N, 2_000, 'every success reported');
      const s = rt.stats('m');
      expect(s).toMatchObject({ enqueued: keys.length * N, processed: keys.length * N, deadLettered: 0, workerCrashes: 1, handlerTimeouts: 1 });
      for (const key of keys) {
        // Each message of the key succeeded once, in send order (the crash and the hang held the key's later ones back).
        expect(got.filter((g) => g.key === key).map((g) => g.i), key).toEqual(Array.from({ length: N }, (_, i) => i));
      }
      expect(got.find((g) => g.key === 'crashes' && g.i === 5)!.attempt).toBe(2);
      expect(got.find((g) => g.key === 'hangs' && g.i === 7)!.attempt).toBe(2);
    } finally {
      ch.close();
    }
  }, 30_000);
});

describe('ask replies', () => {
  it('a reply larger than the 1 MiB reply ring arrives whole (it goes by postMessage)', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('p-reply.js'), maxMessageBytes: 2 << 20, capacityBytes: 8 << 20, minThreads: 1, maxThreads: 1 } } });
    await rt.start();
    const big = (await rt.ask('m', { bytes: 1_500_000 })) as string;
    expect(big.length).toBe(1_500_000);
    expect(big).toBe('r'.repeat(1_500_000));
    // and the ring path still works after it
    expect(await rt.ask('m', { small: 1 })).toEqual({ small: 1 });
  });

  it('a reply the codec cannot encode rejects the ask with RINGPOOL_DEAD_LETTERED (unrecoverable), the error as cause', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('p-reply.js'), minThreads: 1, maxThreads: 1, maxAttempts: 3 } } });
    await rt.start();
    const err = await expectCode(rt.ask('m', { bigint: true }), 'RINGPOOL_DEAD_LETTERED');
    expect((err as Error & { cause?: Error }).cause?.message).toMatch(/cannot be encoded by the json codec/);
    const [dl] = rt.deadLetters('m').list();
    expect(dl).toMatchObject({ reason: 'unrecoverable', attempts: 1 });
  });

  it('open asks reject with RINGPOOL_CLOSED when a running runtime closes past its deadline, or is destroyed', async () => {
    const a = runtime({ mailboxes: { m: { handler: fixture('p-reply.js'), minThreads: 1, maxThreads: 1 } } });
    await a.start();
    // Caught at once (their rejection comes while close() is awaited), checked after.
    const asks = [a.ask('m', { hang: true }), a.ask('m', { hang: true })].map((p) => p.then(() => null, (e: unknown) => e));
    await until(() => a.stats('m').inFlight >= 1, 5_000, 'the first ask to run');
    const report = await a.close({ timeoutMs: 50 });
    expect(report.drained).toBe(false);
    for (const p of asks) expect(((await p) as { code?: string } | null)?.code).toBe('RINGPOOL_CLOSED');

    const b = runtime({ mailboxes: { m: { handler: fixture('p-reply.js'), minThreads: 1, maxThreads: 1 } } });
    await b.start();
    const open = b.ask('m', { hang: true }).then(() => null, (e: unknown) => e);
    await until(() => b.stats('m').inFlight >= 1, 5_000, 'the ask to run');
    await b.destroy();
    expect(((await open) as { code?: string } | null)?.code).toBe('RINGPOOL_CLOSED');
  });
});

describe('RINGPOOL_INVALID_STATE', () => {
  it('start() twice, and start() after close()', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 1 } } });
    const first = rt.start();
    await expectCode(rt.start(), 'RINGPOOL_INVALID_STATE');
    await first;
    await expectCode(rt.start(), 'RINGPOOL_INVALID_STATE');
    await rt.close();
    await expectCode(rt.start(), 'RINGPOOL_INVALID_STATE');
  });
});

describe('codecs', () => {
  it('a custom Codec carries payloads and replies on both threads', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('p-codec-echo.js'), codec, minThreads: 1, maxThreads: 1 } } });
    await rt.start();
    // Encoded on the main thread, decoded on the worker (the handler sees the codec's shape), the reply the same way back.
    const r = await rt.ask('m', { hello: 'world' });
    expect(r).toEqual({ v: { v: { hello: 'world' }, via: 'marked-json' }, via: 'marked-json' });
  });

  it("a custom Codec whose module cannot load makes start() reject with RINGPOOL_HANDLER_LOAD", async () => {
    const broken = { ...codec, name: 'broken', url: fixture('p-no-such-codec.js').href };
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), codec: broken, minThreads: 1, maxThreads: 1 } }, startTimeoutMs: 5_000 });
    const err = await expectCode(rt.start(), 'RINGPOOL_HANDLER_LOAD');
    expect(err.message).not.toMatch(/startTimeoutMs/);
  });

  it("under 'raw', a payload that is not a Uint8Array is RINGPOOL_UNSERIALIZABLE, counted, nothing written", async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), codec: 'raw' } } });
    for (const bad of ['text', { a: 1 }, [1, 2], 42, new ArrayBuffer(4)]) await expectCode(() => rt.send('m', bad), 'RINGPOOL_UNSERIALIZABLE');
    rt.send('m', new Uint8Array([1, 2, 3]));
    expect(rt.stats('m')).toMatchObject({ enqueued: 1, depth: 1, rejectedBy: { unserializable: 5 } });
  });
});

describe('concurrency given back', () => {
  it('the autoscaler raises it for I/O-bound work and lowers it under CPU work, never below the mailbox’s own concurrency', async () => {
    const rt = runtime({
      mailboxes: {
        m: { handler: fixture('p-io-or-cpu.js'), minThreads: 1, maxThreads: 1, concurrency: 2, autoscale: { tickMs: 100, targetLagSeconds: 0.1, maxConcurrency: 16 } },
      },
      tickMs: 20,
    });
    const events: ScaleEvent[] = [];
    rt.on('scale', (e) => events.push(e));
    await rt.start();
    expect(rt.stats('m').concurrency).toBe(2);
    // I/O-bound backlog: concurrency goes up.
    for (let i = 0; i < 1500; i++) rt.send('m', { ms: 20 });
    await until(() => rt.stats('m').concurrency >= 8, 10_000, 'concurrency raised for I/O');
    await rt.onIdle();
    // CPU-bound backlog: it comes down, to 2 at the lowest.
    for (let i = 0; i < 4000; i++) rt.send('m', { us: 1000 });
    await until(() => rt.stats('m').concurrency === 2, 15_000, 'concurrency given back');
    await rt.onIdle();
    const lowered = events.filter((e, k) => k > 0 && e.concurrency < events[k - 1]!.concurrency);
    expect(lowered.length).toBeGreaterThan(0);
    expect(Math.min(...events.map((e) => e.concurrency))).toBe(2);
  }, 40_000);
});
