import { describe, expect, it } from 'vitest';
import { fixture, runtime } from './helpers.js';

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
