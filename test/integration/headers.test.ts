// Message headers (issue #32): send(mailbox, payload, { headers }) on an in-memory mailbox gives the handler
// ctx.headers (frozen; an empty object without), and they are kept on every path a message takes here: retries
// (with the first error's meta after them in the record), keyed turns, delayed sends (main thread and a handler's),
// batches (sendBatch, sendBatchAsync, ctx.sendBatch: every message the batch's headers), a handler's ctx.send, dead letters (rt.deadLetters().list()[i].headers) and redrives. Bad headers, too large ones,
// and headers to a mailbox that would not keep them yet (durable, store-backed, Redis) are refused with
// RINGPOOL_INVALID_OPTION naming `headers`, nothing sent.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MailboxOptions } from 'ringpool';
import { expectCode, fixture, headersLog as listen, runtime, until } from '../helpers.js';


const box = (extra: Partial<MailboxOptions> = {}): MailboxOptions =>
  ({ handler: fixture('headers-echo.js'), minThreads: 2, maxThreads: 2, autoscale: false, maxAttempts: 3, backoff: { baseMs: 1, maxMs: 5 }, ...extra }) as MailboxOptions;

describe('message headers', () => {
  it('reach the handler as ctx.headers, across retries, keys, delays, ctx.send, dead letters and a redrive', async () => {
    const runs = listen();
    const rt = runtime({ mailboxes: { m: box({ concurrency: 4 }), n: box() } });
    await rt.start();
    try {
      const h = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tenant: 'ä-ü' };
      rt.send('m', { i: 1 }, { headers: h });
      rt.send('m', { i: 2 }); // none
      rt.send('m', { i: 3, fail: 1 }, { headers: h }); // retried once
      rt.send('m', { i: 4, fail: 1 }, { key: 'k', headers: { k: 'v' } }); // keyed, retried
      rt.send('m', { i: 5 }, { delayMs: 50, headers: { d: '1' } });
      rt.send('m', { i: 6, forward: 'n', forwardHeaders: { from: 'handler' } }, { headers: h });
      rt.send('m', { i: 7, forward: 'n', forwardHeaders: { later: 'yes' }, forwardDelayMs: 30 });
      rt.send('m', { i: 8, fail: 99 }, { headers: { dead: 'letter' } }); // dead-lettered after 3 attempts
      await rt.sendAsync('m', { i: 9 }, { headers: { via: 'sendAsync' } });
      rt.sendBatch('m', [{ i: 10 }, { i: 11, fail: 1 }], { headers: { via: 'sendBatch' } });
      rt.sendBatch('m', [{ i: 12 }], { headers: { via: 'delayed batch' }, delayMs: 20 });
      await rt.sendBatchAsync('m', [{ i: 13 }], { headers: { via: 'sendBatchAsync' }, key: 'q' });
      rt.send('m', { i: 14, forwardBatch: 'n', forwardHeaders: { via: 'ctx.sendBatch' } });
      await rt.onIdle();
      const of = (i: number) => runs.filter((r) => r.i === i);
      expect(of(1).map((r) => r.headers)).toEqual([h]);
      expect(of(1)[0]!.frozen).toBe(true);
      expect(of(2).map((r) => r.headers)).toEqual([{}]);
      expect(of(3).map((r) => [r.attempt, r.headers])).toEqual([[1, h], [2, h]]);
      expect(of(4).map((r) => [r.attempt, r.headers])).toEqual([[1, { k: 'v' }], [2, { k: 'v' }]]);
      expect(of(5).map((r) => r.headers)).toEqual([{ d: '1' }]);
      expect(of(1006).map((r) => r.headers)).toEqual([{ from: 'handler' }]);
      expect(of(1007).map((r) => r.headers)).toEqual([{ later: 'yes' }]);
      expect(of(9).map((r) => r.headers)).toEqual([{ via: 'sendAsync' }]);
      expect(of(10).map((r) => r.headers)).toEqual([{ via: 'sendBatch' }]);
      expect(of(11).map((r) => [r.attempt, r.headers])).toEqual([[1, { via: 'sendBatch' }], [2, { via: 'sendBatch' }]]);
      expect(of(12).map((r) => r.headers)).toEqual([{ via: 'delayed batch' }]);
      expect(of(13).map((r) => r.headers)).toEqual([{ via: 'sendBatchAsync' }]);
      expect([...of(1014), ...of(2014)].map((r) => r.headers)).toEqual([{ via: 'ctx.sendBatch' }, { via: 'ctx.sendBatch' }]);
      expect(of(8).map((r) => r.headers)).toEqual([{ dead: 'letter' }, { dead: 'letter' }, { dead: 'letter' }]);
      const [letter] = rt.deadLetters('m').list();
      expect(letter!.headers).toEqual({ dead: 'letter' });
      expect(letter!.firstError?.message).toBe('fails on attempt 1'); // the meta after the headers read right
      expect(letter!.lastError?.message).toBe('fails on attempt 3');
      expect(rt.deadLetters('m').list().length).toBe(1);
      rt.deadLetters('m').redrive();
      await until(() => of(8).length === 6, 5_000, 'the redriven letter to run its attempts again');
      await rt.onIdle();
      expect(of(8).slice(3).map((r) => r.headers)).toEqual([{ dead: 'letter' }, { dead: 'letter' }, { dead: 'letter' }]);
    } finally {
      await rt.close();
    }
  }, 30_000);

  it('survive a restart of a durable mailbox: journaled records, a delayed send, a dead letter and its redrive', async () => {
    const runs = listen();
    const dir = mkdtempSync(join(tmpdir(), 'ringpool-headers-'));
    const durable = (): MailboxOptions => box({ durability: { dir, fsync: 'always' } } as Partial<MailboxOptions>);
    const a = runtime({ mailboxes: { d: durable() } });
    await a.start();
    await a.sendAsync('d', { i: 1 }, { headers: { via: 'durable' } });
    await a.sendAsync('d', { i: 2, poison: true }, { headers: { dead: 'durable' } });
    await until(() => a.deadLetters('d').size === 1, 5_000, 'the poison message to be dead-lettered');
    a.pause('d'); // what follows is journaled, not run, until the restart
    await a.sendAsync('d', { i: 3 }, { headers: { via: 'journal' }, key: 'k' });
    await a.sendBatchAsync('d', [{ i: 4 }, { i: 5 }], { headers: { via: 'journaled batch' } });
    await a.sendAsync('d', { i: 6 }, { headers: { via: 'delayed' }, delayMs: 200 });
    await a.sendAsync('d', { i: 7 });
    await a.destroy();
    const of = (i: number) => runs.filter((r) => r.i === i).map((r) => r.headers);
    expect(of(1)).toEqual([{ via: 'durable' }]);
    expect([3, 4, 5, 6, 7].flatMap(of)).toEqual([]);
    const b = runtime({ mailboxes: { d: durable() } });
    await b.start();
    try {
      await until(() => [3, 4, 5, 6, 7].every((i) => of(i).length === 1), 10_000, 'the journaled messages to run after the restart');
      expect([3, 4, 5, 6, 7].map(of)).toEqual([[{ via: 'journal' }], [{ via: 'journaled batch' }], [{ via: 'journaled batch' }], [{ via: 'delayed' }], [{}]]);
      const [letter] = b.deadLetters('d').list();
      expect(letter!.headers).toEqual({ dead: 'durable' });
      b.deadLetters('d').redrive();
      await until(() => of(2).length === 2, 5_000, 'the redriven letter to run');
      expect(of(2)).toEqual([{ dead: 'durable' }, { dead: 'durable' }]);
    } finally {
      await b.close();
    }
  }, 30_000);

  it('bad or too large headers: RINGPOOL_INVALID_OPTION naming headers, nothing sent, on every kind of mailbox', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ringpool-headers-'));
    const rt = runtime({
      mailboxes: {
        m: box(),
        durable: box({ durability: { dir } } as Partial<MailboxOptions>),
        redis: box({ source: { redis: { url: 'redis://127.0.0.1:1', stream: 'never' } } } as Partial<MailboxOptions>),
      },
    });
    for (const [h, limit] of [['x', false], [[1], false], [{ a: 1 }, false], [{ a: 'x'.repeat(5000) }, true]] as const) {
      const err = await expectCode(() => rt.send('m', { i: 0 }, { headers: h as never }), 'RINGPOOL_INVALID_OPTION');
      expect(err.details).toMatchObject({ option: 'headers', ...(limit ? { limit: 4096 } : {}) });
    }
    await expectCode(() => rt.send('durable', { i: 0 }, { headers: { a: 7 } as never }), 'RINGPOOL_INVALID_OPTION');
    await expectCode(() => rt.sendBatch('m', [{ i: 0 }], { headers: { a: 1 } as never }), 'RINGPOOL_INVALID_OPTION');
    expect(rt.stats('m').enqueued).toBe(0);
    expect(rt.stats('durable').enqueued).toBe(0);
    rt.send('m', { i: 0 }, { headers: {} }); // empty: as none
    expect(rt.stats('m').enqueued).toBe(1);
    await rt.destroy();
  });
});
