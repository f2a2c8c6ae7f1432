import { BroadcastChannel } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { Codec, HandlerTimeoutEvent, WorkerCrashEvent } from 'ringpool';
import { createMetrics } from 'ringpool/metrics';
import tagged from '../fixtures/p-codec-tagged.js';
import { bigString } from '../fixtures/p-reply-kinds.js';
import { expectCode, fixture, runtime, until } from '../helpers.js';

// README promises that test/integration/promises.test.ts leaves open, or checks only in part.

/** What a fixture posts on its BroadcastChannel, in arrival order (one thread's posts arrive in post order). */
function listen<T>(name: string): { got: T[]; close(): void } {
  const ch = new BroadcastChannel(name);
  const got: T[] = [];
  ch.onmessage = (e) => got.push((e as { data: T }).data);
  return { got, close: () => ch.close() };
}

type KeyedReport = { type: 's' | 'ok' | 'hang'; tag: string; k: string; key: string; i: number; attempt: number; thread: number };

describe('keyed: one at a time and in send order across a crash and a lease kill', () => {
  it("a key's later messages wait for the crashed / hung one (none starts before it succeeds on its retry), then run in order", async () => {
    const tag = `t${process.pid}-${Date.now()}`;
    const ch = listen<KeyedReport>('ringpool-p-keyed-order');
    try {
      const rt = runtime({
        mailboxes: {
          m: { handler: fixture('p-keyed-order.js'), minThreads: 2, maxThreads: 2, autoscale: false, leaseMs: 400, maxAttempts: 3, backoff: { baseMs: 1, maxMs: 5 } },
        },
        tickMs: 20,
      });
      const crashes: WorkerCrashEvent[] = [];
      const timeouts: HandlerTimeoutEvent[] = [];
      rt.on('worker-crash', (e) => crashes.push(e));
      rt.on('handler-timeout', (e) => timeouts.push(e));
      await rt.start();
      const keys = ['exits', 'hangs', 'a', 'b'];
      const N = 16;
      // Everything is sent up front: when the faults come, each key's later messages are already queued.
      for (let i = 0; i < N; i++) {
        for (const k of keys) {
          const die = k === 'exits' && i === 5 ? 'exit' : k === 'hangs' && i === 7 ? 'hang' : undefined;
          rt.send('m', { tag, k, i, wait: 2, die }, { key: k });
        }
      }
      await rt.onIdle();
      const log = (): KeyedReport[] => ch.got.filter((r) => r.tag === tag);
      await until(() => log().filter((r) => r.type === 'ok').length >= keys.length * N, 5_000, 'every success reported');

      // Replay the reports in arrival order. A start of message i of key k is in order only if
      // exactly i messages of k have succeeded by then (i - 1 done, i itself not yet, nothing later).
      const done = new Map<string, number[]>(keys.map((k) => [k, []]));
      const violations: string[] = [];
      for (const r of log()) {
        if (r.key !== r.k) violations.push(`ctx.key ${r.key} for a message of key ${r.k}`);
        const ok = done.get(r.k)!;
        if (r.type === 's' && ok.length !== r.i) violations.push(`${r.k}#${r.i} (attempt ${r.attempt}) started after ${ok.length} successes of its key`);
        if (r.type === 'ok') ok.push(r.i);
      }
      expect(violations).toEqual([]);
      for (const k of keys) expect(done.get(k), k).toEqual(Array.from({ length: N }, (_, i) => i));

      // The faults happened as planned, and the faulty messages succeeded on attempt 2, on another thread.
      expect(crashes.length).toBe(1);
      expect(timeouts.length).toBe(1);
      const runsOf = (k: string, i: number) => log().filter((r) => r.k === k && r.i === i);
      const exits = runsOf('exits', 5);
      expect(exits.map((r) => [r.type, r.attempt])).toEqual([['s', 1], ['s', 2], ['ok', 2]]);
      expect(exits[2]!.thread).not.toBe(exits[0]!.thread);
      expect(crashes[0]!.threadId).toBe(exits[0]!.thread);
      const hangs = runsOf('hangs', 7);
      expect(hangs.map((r) => [r.type, r.attempt])).toEqual([['s', 1], ['hang', 1], ['s', 2], ['ok', 2]]);
      expect(hangs[3]!.thread).not.toBe(hangs[0]!.thread);
      expect(timeouts[0]).toMatchObject({ mailbox: 'm', attempt: 1, threadId: hangs[0]!.thread });
      expect(rt.stats('m')).toMatchObject({ enqueued: keys.length * N, processed: keys.length * N, deadLettered: 0, workerCrashes: 1, handlerTimeouts: 1 });
    } finally {
      ch.close();
    }
  }, 30_000);
});

describe('actors: a crash mid-message (maxAttempts 2)', () => {
  it('the state is rebuilt by init() on the new thread, the message redelivered to it, and the messages queued behind it follow in order', async () => {
    const inits = listen<{ init: string; thread: number }>('ringpool-p-actor');
    try {
      const rt = runtime({
        mailboxes: { act: { handler: fixture('p-actor.js'), minThreads: 1, maxThreads: 1, autoscale: false, maxAttempts: 2, backoff: { baseMs: 1, maxMs: 2 } } },
      });
      const crashes: WorkerCrashEvent[] = [];
      rt.on('worker-crash', (e) => crashes.push(e));
      await rt.start();
      type Reply = { n: number; seen: number[]; attempt: number; thread: number };
      const ask = (msg: object) => rt.ask('act', msg, { key: 'acc', timeoutMs: 10_000 }) as Promise<Reply>;
      let before: Reply | undefined;
      for (let i = 1; i <= 3; i++) before = await ask({ add: 1, i });
      expect(before).toMatchObject({ n: 3, seen: [1, 2, 3], attempt: 1 });
      // The crash and two messages behind it, all sent before the crash happens.
      const [crashed, next, last] = await Promise.all([ask({ add: 10, i: 4, crash: true }), ask({ add: 1, i: 5 }), ask({ add: 1, i: 6 })]);
      expect(crashes.length).toBe(1);
      // Redelivered (attempt 2) to a state init() rebuilt on the replacement thread: 0 + 10, not 3 + 10.
      expect(crashed).toMatchObject({ n: 10, seen: [4], attempt: 2 });
      expect(crashed.thread).not.toBe(before!.thread);
      expect(next).toMatchObject({ n: 11, seen: [4, 5], attempt: 1, thread: crashed.thread });
      expect(last).toMatchObject({ n: 12, seen: [4, 5, 6], attempt: 1, thread: crashed.thread });
      await until(() => inits.got.length >= 2, 5_000, 'both init() reports');
      expect(inits.got).toEqual([
        { init: 'acc', thread: before!.thread },
        { init: 'acc', thread: crashed.thread },
      ]);
      await rt.onIdle(); // a reply goes out just before its ack
      expect(rt.stats('act')).toMatchObject({ processed: 6, deadLettered: 0, workerCrashes: 1 });
      expect(rt.deadLetters('act').size).toBe(0);
    } finally {
      inits.close();
    }
  });
});

type RunReport = { id: number; op?: string; attempt: number; thread: number };

describe('ask', () => {
  it('a message whose thread dies right after it replied: the ask resolves once with that reply, and the (acked) message does not run again', async () => {
    const runs = listen<RunReport>('ringpool-p-reply-kinds');
    try {
      const rt = runtime({ mailboxes: { m: { handler: fixture('p-reply-kinds.js'), minThreads: 1, maxThreads: 1, autoscale: false, maxAttempts: 3, backoff: { baseMs: 1, maxMs: 2 } } } });
      const crashes: WorkerCrashEvent[] = [];
      const errors: Error[] = [];
      rt.on('worker-crash', (e) => crashes.push(e));
      rt.on('error', (e) => errors.push(e));
      await rt.start();
      const first = (await rt.ask('m', { op: 'reply-then-die' }, { timeoutMs: 10_000 })) as { attempt: number; thread: number };
      expect(first.attempt).toBe(1);
      await until(() => crashes.length === 1, 10_000, 'the thread to die');
      expect(crashes[0]!.threadId).toBe(first.thread);
      // The replacement thread answers; were the first message redelivered, its run would be reported before this one's.
      const after = (await rt.ask('m', { op: 'after' }, { timeoutMs: 10_000 })) as { attempt: number; thread: number };
      expect(after.thread).not.toBe(first.thread);
      await rt.onIdle();
      await until(() => runs.got.some((r) => r.op === 'after'), 5_000, "the 'after' run reported");
      expect(runs.got.filter((r) => r.op === 'reply-then-die').map((r) => [r.attempt, r.thread])).toEqual([[1, first.thread]]);
      expect(rt.stats('m')).toMatchObject({ processed: 2, failed: 0, redelivered: 0, deadLettered: 0 });
      expect(errors).toEqual([]);
    } finally {
      runs.close();
    }
  });

  it('a reply over the 1 MiB reply ring (1.5 Mi characters, some multi-byte) arrives intact; one for a timed-out ask is dropped quietly', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('p-reply-kinds.js'), minThreads: 1, maxThreads: 1, autoscale: false, maxMessageBytes: 2 << 20 } } });
    const errors: Error[] = [];
    rt.on('error', (e) => errors.push(e));
    await rt.start();
    const n = 1.5 * (1 << 20);
    const expected = bigString(n);
    expect(Buffer.byteLength(JSON.stringify(expected))).toBeGreaterThan(1 << 20);
    expect(expected).toMatch(/é/);
    expect(expected).toMatch(/✓/);
    // Its reply (one character longer) comes after the ask gave up: dropped. The next ask, behind it on the one thread, gets its own.
    await expectCode(rt.ask('m', { op: 'big', n: n + 1, delay: 200 }, { timeoutMs: 20 }), 'RINGPOOL_TIMEOUT');
    const got = (await rt.ask('m', { op: 'big', n }, { timeoutMs: 10_000 })) as string;
    expect(got.length).toBe(n);
    expect(got === expected).toBe(true);
    expect(((await rt.ask('m', { op: 'small' })) as { attempt: number }).attempt).toBe(1);
    await rt.onIdle();
    expect(rt.stats('m')).toMatchObject({ processed: 3, failed: 0, deadLettered: 0 });
    expect(errors).toEqual([]);
  });
});

describe('RINGPOOL_INVALID_STATE', () => {
  it('createMetrics() on a runtime that already has metrics, on another registry or the same', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 1 } } });
    const registry = new Registry();
    createMetrics(rt, { registry });
    await expectCode(() => createMetrics(rt, { registry: new Registry() }), 'RINGPOOL_INVALID_STATE');
    await expectCode(() => createMetrics(rt, { registry }), 'RINGPOOL_INVALID_STATE');
    // the first export still works
    expect(await registry.metrics()).toContain('ringpool_queue_depth{mailbox="m"} 0');
  });
});

describe('codecs', () => {
  it('a custom Codec (a module with url) carries a BigInt and a Map to the handler and back; the main thread uses it too', async () => {
    const codec = tagged as unknown as Codec & { calls: { encode: number; decode: number } };
    const rt = runtime({ mailboxes: { m: { handler: fixture('p-reply-kinds.js'), codec, minThreads: 1, maxThreads: 1, autoscale: false } } });
    await rt.start();
    const payload = { op: 'echo', big: 2n ** 70n + 1n, m: new Map<string, unknown>([['a', 1], ['b', [2n]]]), s: 'héllo ✓' };
    const { encode, decode } = { ...codec.calls };
    const r = (await rt.ask('m', payload, { timeoutMs: 10_000 })) as { echo: typeof payload; types: { big: string; m: string } };
    // The handler saw a real BigInt and Map (the worker decoded with this codec), and they came back.
    expect(r.types).toEqual({ big: 'bigint', m: 'Map' });
    expect(r.echo).toEqual(payload);
    expect(r.echo.big).toBe(2n ** 70n + 1n);
    expect(codec.calls.encode).toBeGreaterThan(encode);
    expect(codec.calls.decode).toBeGreaterThan(decode);
  });

  for (const [what, module] of [
    ['throws while it is imported', 'p-codec-broken.js'],
    ['has no default export with encode() and decode()', 'p-raw.js'],
  ] as const) {
    it(`a custom Codec whose module ${what}: start() rejects with RINGPOOL_HANDLER_LOAD, and sends after it with RINGPOOL_CLOSED`, async () => {
      const broken = { name: 'broken', encode: tagged.encode, decode: tagged.decode, url: fixture(module).href };
      const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), codec: broken, minThreads: 1, maxThreads: 1 } }, startTimeoutMs: 5_000 });
      const err = await expectCode(rt.start(), 'RINGPOOL_HANDLER_LOAD');
      expect(err.message).not.toMatch(/startTimeoutMs|did not load within/);
      await expectCode(() => rt.send('m', { x: 1 }), 'RINGPOOL_CLOSED');
    });
  }

  it("under 'raw', a payload that is not a Uint8Array is refused with RINGPOOL_UNSERIALIZABLE by send, sendAsync and ask alike, each counted", async () => {
    const rt = runtime({ mailboxes: { r: { handler: fixture('p-raw.js'), codec: 'raw', minThreads: 1, maxThreads: 1, autoscale: false } } });
    await rt.start();
    await expectCode(() => rt.send('r', 'text'), 'RINGPOOL_UNSERIALIZABLE');
    await expectCode(() => rt.send('r', new Uint16Array([1, 2])), 'RINGPOOL_UNSERIALIZABLE');
    await expectCode(rt.sendAsync('r', { a: 1 }), 'RINGPOOL_UNSERIALIZABLE');
    await expectCode(rt.ask('r', [1, 2, 3]), 'RINGPOOL_UNSERIALIZABLE');
    expect(rt.stats('r')).toMatchObject({ enqueued: 0, rejected: 4, rejectedBy: { unserializable: 4, queue_full: 0, too_large: 0, closed: 0 } });
    // bytes go through as they are, both ways (a Buffer is a Uint8Array too)
    expect(await rt.ask('r', new Uint8Array([1, 2, 250]))).toEqual(new Uint8Array([250, 2, 1]));
    expect(Buffer.from((await rt.ask('r', Buffer.from('abc'))) as Uint8Array).toString()).toBe('cba');
    await rt.onIdle(); // a reply goes out just before its ack
    expect(rt.stats('r')).toMatchObject({ enqueued: 2, processed: 2, rejected: 4 });
  });
});
