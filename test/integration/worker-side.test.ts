import { describe, expect, it } from 'vitest';
import { fixture, runtime } from '../helpers.js';

describe('worker side: ctx.send, ctx.signal, control calls', () => {
  it('ctx.send from a handler writes straight into another mailbox (and delayed sends arrive)', async () => {
    const rt = runtime({
      mailboxes: {
        front: { handler: fixture('forward.js'), minThreads: 1, maxThreads: 2 },
        sink: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 1 },
      },
    });
    await rt.start();
    for (let i = 0; i < 1000; i++) rt.send('front', { n: i });
    rt.send('front', { n: 'later', delayMs: 100 });
    await rt.onIdle();
    expect(rt.stats('front')).toMatchObject({ enqueued: 1001, processed: 1001 });
    expect(rt.stats('sink')).toMatchObject({ enqueued: 1001, processed: 1001, deadLettered: 0 });
  });

  it('ctx carries id (= the id send() returned), attempt, mailbox and key; payloads of every codec round-trip', async () => {
    const rt = runtime({
      mailboxes: {
        echo: { handler: fixture('ctx-echo.js'), minThreads: 1, maxThreads: 1 },
        echoV8: { handler: fixture('ctx-echo.js'), minThreads: 1, maxThreads: 1, codec: 'v8' },
        sink: { handler: fixture('keep.js'), minThreads: 1, maxThreads: 1, codec: 'v8' },
      },
    });
    await rt.start();
    const id1 = rt.send('echo', { text: 'héllo wörld ✓', n: [1, 2.5, null] }, { key: 'user-7' });
    const id2 = rt.send('echo', undefined);
    const when = new Date(1_700_000_000_000);
    const id3 = rt.send('echoV8', { when, m: new Map([[1, 'a']]), big: 10n ** 20n });
    await rt.onIdle();
    const got = rt.deadLetters('sink').list().map((d) => d.payload as Record<string, unknown>);
    const byId = new Map(got.map((g) => [`${g.mailbox}/${g.id}`, g]));
    expect(byId.get(`echo/${id1}`)).toEqual({ payload: { text: 'héllo wörld ✓', n: [1, 2.5, null] }, id: id1, attempt: 1, mailbox: 'echo', key: 'user-7' });
    expect(byId.get(`echo/${id2}`)).toEqual({ payload: undefined, id: id2, attempt: 1, mailbox: 'echo', key: null });
    expect(byId.get(`echoV8/${id3}`)).toEqual({ payload: { when, m: new Map([[1, 'a']]), big: 10n ** 20n }, id: id3, attempt: 1, mailbox: 'echoV8', key: null });
    expect(rt.deadLetters('sink').list().find((d) => (d.payload as { mailbox: string }).mailbox === 'echo' && (d.payload as { id: number }).id === id1)?.key).toBe('user-7');
  });

  it('a full target ring gives the handler RINGPOOL_QUEUE_FULL to act on, never a deadlock', async () => {
    const rt = runtime({
      mailboxes: {
        src: { handler: fixture('send-full.js'), minThreads: 1, maxThreads: 1, maxAttempts: 1 },
        tiny: { handler: fixture('noop.js'), capacityBytes: 16384, maxMessageBytes: 1024, minThreads: 0, maxThreads: 1 },
      },
    });
    await rt.start();
    rt.send('src', { count: 1000 });
    await rt.onIdle();
    const [dl] = rt.deadLetters('src').list();
    expect(dl!.lastError).toMatchObject({ code: 'RINGPOOL_QUEUE_FULL' });
    expect(dl!.lastError!.message).toMatch(/^sent \d+ then RINGPOOL_QUEUE_FULL/);
    expect(rt.stats('tiny').rejectedBy.queue_full).toBe(1);
  });

  it('ctx.signal aborts when the lease ends', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('signal.js'), leaseMs: 200, maxAttempts: 1, minThreads: 1, maxThreads: 1 } }, tickMs: 1000 });
    await rt.start();
    rt.send('m', {});
    await rt.onIdle();
    const [dl] = rt.deadLetters('m').list();
    const ms = Number(/aborted after (\d+) ms \(TimeoutError\)/.exec(dl!.lastError!.message)?.[1]);
    expect(ms).toBeGreaterThanOrEqual(150);
  });

  it('answers control calls over comlink (workerStats) and stops loops on close', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), minThreads: 2, maxThreads: 2 } } });
    await rt.start();
    for (let i = 0; i < 500; i++) rt.send('m', i);
    await rt.onIdle();
    const ws = await rt.workerStats('m');
    expect(ws).toHaveLength(2);
    expect(new Set(ws.map((w) => w.threadId)).size).toBe(2);
    expect(ws.reduce((a, w) => a + w.acked, 0)).toBe(500);
    const report = await rt.close({ timeoutMs: 1000 });
    expect(report).toEqual({ drained: true, left: { m: { ready: 0, inFlight: 0, delayed: 0 } } });
    expect(rt.stats('m').threads).toBe(0);
  });
});
