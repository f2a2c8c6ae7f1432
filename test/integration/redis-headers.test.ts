// Message headers on a Redis mailbox (issue #32), in this process, on the suite's own Redis (REDIS_URL from
// test/global-setup.ts; every key is this file's own): an entry sent with headers carries them in field `h` (none: no
// field), and the handler gets them as ctx.headers on every path a message takes here: send, sendAsync, sendBatch,
// sendBatchAsync, a delayed send and a keyed one held behind it (both through the delayed set), a retry, a dead
// letter (list() shows them) and its redrive, a handler's ctx.send / ctx.sendBatch to a Redis mailbox,
// redisProducer().send, an entry taken over from a consumer that died. Headers another client wrote that are not
// headers (too large, not JSON of strings) dead-letter their entry unrun, the reader goes on. Also OpenTelemetry: the
// worker's `process` span links to the main thread's `send` span across the stream (the context travels in `h`).
import { describe, expect, it } from 'vitest';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { MailboxOptions, StreamDeadLetters } from 'ringpool';
import { redisProducer } from 'ringpool/redis';
import { broadcastLog, expectCode, fixture, headersLog as listen, runtime, until, untilAsync } from '../helpers.js';
import { scratch, url } from '../redis-helpers.js';
import { flatten } from '../fixtures/otel-flatten.mjs';

const { admin, connected, names } = scratch(`ringpool-test-headers-${process.pid}`);


/** A Redis mailbox running headers-echo.js (entries kept once acknowledged, so that the test can read them). */
function box(stream: string, redis: Record<string, unknown> = {}, extra: Partial<MailboxOptions> = {}): MailboxOptions {
  return {
    handler: fixture('headers-echo.js'),
    maxThreads: 2,
    concurrency: 4,
    maxAttempts: 3,
    backoff: { baseMs: 5, maxMs: 20 },
    ...extra,
    source: { redis: { url, stream, claimIdleMs: 300, blockMs: 100, keepAckedMs: false, ...redis } },
  } as MailboxOptions;
}

/** The entries of `key`, by their payload's i: their fields. */
async function entries(key: string): Promise<Map<number, Record<string, string>>> {
  const out = new Map<number, Record<string, string>>();
  for (const e of await admin.xRange(key, '-', '+')) out.set((JSON.parse(e.message.d!) as { i: number }).i, { ...e.message });
  return out;
}

describe('headers on a Redis mailbox', () => {
  it('reach the handler through the stream on every send path, retries, dead letters and a redrive; no headers, no field', async () => {
    await connected();
    const { stream } = names();
    const runs = listen();
    const rt = runtime({
      mailboxes: {
        r: box(stream, { partitions: 2 }),
        m: { handler: fixture('headers-echo.js'), maxThreads: 1, concurrency: 4 } as MailboxOptions,
      },
    });
    const errors: unknown[] = [];
    rt.on('error', (e) => errors.push(e));
    await rt.start();
    const producer = redisProducer({ url, stream, partitions: 2 });
    try {
      const h = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tenant: 'ä-ü' };
      rt.send('r', { i: 1 }, { headers: h });
      rt.send('r', { i: 2 }); // none
      const id3 = await rt.sendAsync<string>('r', { i: 3 }, { headers: { via: 'sendAsync' } });
      expect(id3).toMatch(/^\d+-\d+$/);
      rt.sendBatch('r', [{ i: 4 }, { i: 5 }], { headers: { via: 'sendBatch' } });
      await rt.sendBatchAsync('r', [{ i: 6 }], { headers: { via: 'sendBatchAsync' }, key: 'q' });
      rt.send('r', { i: 7 }, { delayMs: 100, headers: { d: '1' } });
      rt.send('r', { i: 8 }, { key: 'k', headers: { k: 'v' } });
      // A delayed keyed send, and one of its key behind it: both wait in the delayed set (the second held by the first).
      rt.send('r', { i: 9 }, { key: 'k2', delayMs: 100, headers: { kd: '1' } });
      rt.send('r', { i: 10 }, { key: 'k2', headers: { behind: 'k2' } });
      rt.sendBatch('r', [{ i: 11 }], { delayMs: 50, headers: { via: 'delayed batch' } });
      rt.send('r', { i: 12, fail: 1 }, { headers: h }); // retried once
      rt.send('r', { i: 13, fail: 99 }, { headers: { dead: 'letter' } }); // dead-lettered after 3 attempts
      rt.send('m', { i: 14, forward: 'r', forwardHeaders: { from: 'handler' } });
      rt.send('m', { i: 15, forward: 'r', forwardHeaders: { later: 'yes' }, forwardDelayMs: 30 });
      rt.send('m', { i: 16, forwardBatch: 'r', forwardHeaders: { via: 'ctx.sendBatch' } }); // keyed 'b': a partition
      producer.send({ i: 17 }, { headers: { via: 'redisProducer' } });
      await producer.sendAsync({ i: 18 }, { headers: { via: 'redisProducer.sendAsync' }, key: 'pk', delayMs: 20 });
      await expectCode(() => producer.send({ i: 0 }, { headers: { a: 1 } as never }), 'RINGPOOL_INVALID_OPTION');
      await expectCode(() => rt.send('r', { i: 0 }, { headers: { a: 'x'.repeat(5000) } }), 'RINGPOOL_INVALID_OPTION');
      await expectCode(rt.sendAsync('r', { i: 0 }, { headers: 'x' as never }), 'RINGPOOL_INVALID_OPTION');
      await expectCode(() => rt.sendBatch('r', [{ i: 0 }], { headers: [] as never }), 'RINGPOOL_INVALID_OPTION');
      await expectCode(rt.sendBatchAsync('r', [{ i: 0 }], { headers: { a: null } as never }), 'RINGPOOL_INVALID_OPTION');
      const of = (i: number) => runs.filter((r) => r.i === i);
      const want = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1014, 1015, 1016, 2016, 17, 18];
      await until(() => want.every((i) => of(i).length === 1) && of(12).length === 2 && of(13).length === 3, 15_000, 'every message run');
      expect(of(1).map((r) => r.headers)).toEqual([h]);
      expect(of(1)[0]!.frozen).toBe(true);
      expect(of(2).map((r) => [r.headers, r.frozen])).toEqual([[{}, true]]);
      expect(of(3).map((r) => r.headers)).toEqual([{ via: 'sendAsync' }]);
      expect([...of(4), ...of(5)].map((r) => r.headers)).toEqual([{ via: 'sendBatch' }, { via: 'sendBatch' }]);
      expect(of(6).map((r) => r.headers)).toEqual([{ via: 'sendBatchAsync' }]);
      expect(of(7).map((r) => r.headers)).toEqual([{ d: '1' }]);
      expect(of(8).map((r) => r.headers)).toEqual([{ k: 'v' }]);
      expect(of(9).map((r) => r.headers)).toEqual([{ kd: '1' }]);
      expect(of(10).map((r) => r.headers)).toEqual([{ behind: 'k2' }]);
      expect(runs.indexOf(of(10)[0]!)).toBeGreaterThan(runs.indexOf(of(9)[0]!)); // held behind 9 in the delayed set
      expect(of(11).map((r) => r.headers)).toEqual([{ via: 'delayed batch' }]);
      expect(of(12).map((r) => [r.attempt, r.headers])).toEqual([[1, h], [2, h]]);
      expect(of(13).map((r) => [r.attempt, r.headers])).toEqual([[1, { dead: 'letter' }], [2, { dead: 'letter' }], [3, { dead: 'letter' }]]);
      expect(of(1014).map((r) => r.headers)).toEqual([{ from: 'handler' }]);
      expect(of(1015).map((r) => r.headers)).toEqual([{ later: 'yes' }]);
      expect([...of(1016), ...of(2016)].map((r) => r.headers)).toEqual([{ via: 'ctx.sendBatch' }, { via: 'ctx.sendBatch' }]);
      expect(of(17).map((r) => r.headers)).toEqual([{ via: 'redisProducer' }]);
      expect(of(18).map((r) => r.headers)).toEqual([{ via: 'redisProducer.sendAsync' }]);
      // In Redis: field `h` holds the headers' JSON; an entry sent without headers has no such field.
      const plain = await entries(stream);
      const parts = new Map([...(await entries(`{${stream}}:p:0`)), ...(await entries(`{${stream}}:p:1`))]);
      expect(plain.get(2)).toEqual({ d: JSON.stringify({ i: 2 }) });
      expect(JSON.parse(plain.get(1)!.h!)).toEqual(h);
      expect(JSON.parse(plain.get(7)!.h!)).toEqual({ d: '1' });
      expect(JSON.parse(plain.get(17)!.h!)).toEqual({ via: 'redisProducer' });
      expect(JSON.parse(parts.get(8)!.h!)).toEqual({ k: 'v' });
      expect(parts.get(8)!.k).toBe('k');
      expect(JSON.parse(parts.get(10)!.h!)).toEqual({ behind: 'k2' });
      expect(JSON.parse(parts.get(1016)!.h!)).toEqual({ via: 'ctx.sendBatch' });
      expect([...plain.values(), ...parts.values()].filter((f) => f.h === undefined).map((f) => JSON.parse(f.d!) as { i: number }).map((p) => p.i)).toEqual([2]);
      // The dead letter: its headers in list() and in <stream>:dead's entry; a redrive runs it again with them.
      const dl = rt.deadLetters<StreamDeadLetters>('r');
      await untilAsync(async () => (await dl.list()).length === 1, 5_000, 'the letter in <stream>:dead');
      const [letter] = await dl.list();
      expect(letter!.headers).toEqual({ dead: 'letter' });
      expect(Object.isFrozen(letter!.headers)).toBe(true);
      expect(letter!.damaged).toBeUndefined();
      expect(letter!.lastError?.message).toBe('fails on attempt 3');
      expect(JSON.parse((await admin.xRange(`{${stream}}:dead`, '-', '+'))[0]!.message.h!)).toEqual({ dead: 'letter' }); // a partitioned mailbox's
      expect(await dl.redrive()).toBe(1);
      await until(() => of(13).length === 6, 10_000, 'the redriven letter to run its attempts again');
      expect(of(13).slice(3).map((r) => r.headers)).toEqual([{ dead: 'letter' }, { dead: 'letter' }, { dead: 'letter' }]);
      await untilAsync(async () => (await dl.list()).length === 1, 5_000, 'the letter back');
      expect((await dl.list())[0]!.headers).toEqual({ dead: 'letter' });
      expect(errors).toEqual([]);
    } finally {
      await producer.close();
      await rt.close();
    }
  }, 40_000);

  it("an entry taken over from a consumer that died runs with its headers; another client's bad `h` dead-letters its entry unrun", async () => {
    await connected();
    const { stream } = names();
    const runs = listen();
    // A consumer 'ghost' read these and died: a takeover finds them after claimIdleMs.
    await admin.sendCommand(['XGROUP', 'CREATE', stream, 'ringpool', '0', 'MKSTREAM']);
    const p = redisProducer({ url, stream });
    await p.sendAsync({ i: 1 }, { headers: { claimed: 'yes' } });
    await p.close();
    const bad: [number, string][] = [
      [2, JSON.stringify({ big: 'x'.repeat(5000) })],
      [3, 'not json'],
      [4, JSON.stringify({ n: 1 })],
      [5, JSON.stringify(['a'])],
    ];
    for (const [i, h] of bad.slice(0, 2)) await admin.xAdd(stream, '*', { d: JSON.stringify({ i }), h });
    await admin.sendCommand(['XREADGROUP', 'GROUP', 'ringpool', 'ghost', 'COUNT', '100', 'STREAMS', stream, '>']);
    const rt = runtime({ mailboxes: { r: box(stream) } });
    const letters: { payload: unknown; headers: Record<string, string>; reason: string; lastError?: { message: string } }[] = [];
    rt.on('dead-letter', (e) => letters.push(e.letter as never));
    await rt.start();
    try {
      // Read as new entries by this process (not taken over): the bad ones, then a good one behind them.
      for (const [i, h] of bad.slice(2)) await admin.xAdd(stream, '*', { d: JSON.stringify({ i }), h });
      await admin.xAdd(stream, '*', { d: JSON.stringify({ i: 6 }), h: JSON.stringify({ after: 'bad' }) });
      await admin.xAdd(stream, '*', { d: JSON.stringify({ i: 7 }), h: '' }); // empty: as none
      const of = (i: number) => runs.filter((r) => r.i === i);
      await until(() => of(1).length === 1 && of(6).length === 1 && of(7).length === 1 && letters.length === 4, 10_000, 'the good ones run, the bad ones dead-lettered');
      expect(of(1).map((r) => [r.attempt, r.headers])).toEqual([[2, { claimed: 'yes' }]]); // the ghost's read was attempt 1
      expect(of(6).map((r) => r.headers)).toEqual([{ after: 'bad' }]);
      expect(of(7).map((r) => r.headers)).toEqual([{}]);
      expect([2, 3, 4, 5].flatMap(of)).toEqual([]);
      letters.sort((a, b) => (a.payload as { i: number }).i - (b.payload as { i: number }).i);
      expect(letters.map((l) => [(l.payload as { i: number }).i, l.reason, l.headers])).toEqual([2, 3, 4, 5].map((i) => [i, 'poison', {}]));
      expect(letters.map((l) => l.lastError?.message.replace(/^entry \S+ /, ''))).toEqual([
        "has a field 'h' that is not headers: headers of 5010 bytes are over 4096",
        "has a field 'h' that is not headers: headers are not JSON",
        "has a field 'h' that is not headers: headers.n is not a string",
        "has a field 'h' that is not headers: headers are not a JSON object",
      ]);
      const listed = await rt.deadLetters<StreamDeadLetters>('r').list();
      expect(listed.map((l) => [(l.payload as { i: number }).i, l.headers, l.damaged])).toEqual(expect.arrayContaining([2, 3, 4, 5].map((i) => [i, {}, undefined])));
      expect(rt.stats('r').stream!.connected).toBe(true);
    } finally {
      await rt.close();
    }
  }, 30_000);

  it("OpenTelemetry: the worker's `process` span links to the `send` span across the stream (rt.send and a handler's ctx.send)", async () => {
    await connected();
    const { stream } = names();
    const exporter = new InMemorySpanExporter();
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    const posted = broadcastLog<{ span?: ReturnType<typeof flatten>; run?: { i: number; headers: Record<string, string> } }>('ringpool-test-otel');
    const otel = { handler: fixture('otel-handler.js'), maxThreads: 1 } as Partial<MailboxOptions>;
    const rt = runtime({
      mailboxes: { r: box(stream, {}, otel), a: { ...otel, minThreads: 1 } as MailboxOptions },
      tracing: { setup: fixture('otel-setup.mjs') },
    });
    await rt.start();
    try {
      rt.send('r', { i: 1 });
      await rt.sendAsync('r', { i: 2 }, { headers: { mine: 'kept' } });
      rt.send('a', { i: 3, forward: 'r' }); // its handler's ctx.send to the Redis mailbox: { i: 1003 }
      await until(() => posted.filter((p) => p.span?.name === 'process r').length === 3, 10_000, 'all three processed');
      const sends = exporter.getFinishedSpans().map((s) => flatten(s)).filter((s) => s.name === 'send r');
      expect(sends).toHaveLength(2);
      const chained = posted.flatMap((p) => (p.span?.name === 'send r' ? [p.span] : [])); // made on a's consumer thread
      expect(chained).toHaveLength(1);
      const all = [...sends, ...chained];
      const processes = posted.flatMap((p) => (p.span?.name === 'process r' ? [p.span] : []));
      for (const p of processes) {
        expect(p.links).toHaveLength(1);
        expect(all.map((s) => `${s.traceId}/${s.spanId}`)).toContain(`${p.links[0]!.traceId}/${p.links[0]!.spanId}`);
      }
      expect(new Set(processes.map((p) => p.links[0]!.spanId)).size).toBe(3);
      // The context travelled in the entry's `h`, beside the sender's own headers.
      const got = posted.flatMap((p) => (p.run && p.run.i !== 3 ? [p.run] : [])).sort((a, b) => a.i - b.i);
      expect(got.map((r) => [r.i, Object.keys(r.headers).sort()])).toEqual([[1, ['traceparent']], [2, ['mine', 'traceparent']], [1003, ['traceparent']]]);
      expect(got[1]!.headers.mine).toBe('kept');
      expect(got[2]!.headers.traceparent).toBe(`00-${chained[0]!.traceId}-${chained[0]!.spanId}-01`);
      expect(sends.map((s) => `00-${s.traceId}-${s.spanId}-01`).sort()).toEqual(got.slice(0, 2).map((r) => r.headers.traceparent).sort());
      const e = await entries(stream);
      expect(JSON.parse(e.get(1)!.h!).traceparent).toBe(got[0]!.headers.traceparent);
    } finally {
      await rt.close();
      trace.disable();
      context.disable();
    }
  }, 30_000);
});
