import { describe, expect, it } from 'vitest';
import type { WorkerCrashEvent, HandlerTimeoutEvent } from 'ringpool';
import { fixture, runtime } from './helpers.js';

describe('faults: threads that die mid-message', () => {
  for (const mode of ['exit0', 'exit1', 'timer', 'oom'] as const) {
    it(`${mode}: thread replaced, message redelivered with attempt + 1, counted`, async () => {
      const rt = runtime({
        mailboxes: {
          m: {
            handler: fixture('crash.js'),
            minThreads: 1,
            maxThreads: 1,
            maxAttempts: 3,
            backoff: { baseMs: 1, maxMs: 5 },
            ...(mode === 'oom' ? { resourceLimits: { maxOldGenerationSizeMb: 24, maxYoungGenerationSizeMb: 8 } } : {}),
          },
        },
      });
      const crashes: WorkerCrashEvent[] = [];
      rt.on('worker-crash', (e) => crashes.push(e));
      await rt.start();
      rt.send('m', { mode, crashes: 1 });
      for (let i = 0; i < 20; i++) rt.send('m', null);
      await rt.onIdle();
      const s = rt.stats('m');
      expect(s).toMatchObject({ enqueued: 21, processed: 21, deadLettered: 0, workerCrashes: 1, failed: 1, retried: 1, threads: 1 });
      expect(crashes).toHaveLength(1);
      expect(crashes[0]!.mailbox).toBe('m');
    }, 30_000);
  }

  it('a message that crashes its thread maxAttempts times is dead-lettered as poison; innocents are not', async () => {
    const rt = runtime({
      mailboxes: { m: { handler: fixture('crash.js'), minThreads: 1, maxThreads: 1, maxAttempts: 3, backoff: { baseMs: 1, maxMs: 5 }, batchSize: 64 } },
    });
    await rt.start();
    // Queue everything before the thread can claim, so the poison message shares its batch with innocents.
    rt.send('m', { mode: 'exit1', crashes: 99 });
    for (let i = 0; i < 50; i++) rt.send('m', { i });
    await rt.onIdle();
    const s = rt.stats('m');
    expect(s).toMatchObject({ enqueued: 51, processed: 50, deadLettered: 1, workerCrashes: 3 });
    const [dl] = rt.deadLetters('m').list();
    expect(dl).toMatchObject({ reason: 'poison', attempts: 3 });
    expect(dl!.lastError?.name).toBe('WorkerCrash');
    // and the runtime still serves
    rt.send('m', { ok: true });
    await rt.onIdle();
    expect(rt.stats('m').processed).toBe(51);
  }, 30_000);

  it('innocent neighbours in a crashed batch go back without an attempt counted', async () => {
    const rt = runtime({
      mailboxes: { m: { handler: fixture('crash.js'), minThreads: 1, maxThreads: 1, maxAttempts: 1, batchSize: 64 } },
    });
    const ready = rt.start();
    // maxAttempts 1: any innocent charged an attempt for the crash would be dead-lettered.
    rt.send('m', { mode: 'exit1', crashes: 1 });
    for (let i = 0; i < 30; i++) rt.send('m', { i });
    await ready;
    await rt.onIdle();
    const s = rt.stats('m');
    expect(s).toMatchObject({ processed: 30, deadLettered: 1, workerCrashes: 1 });
    expect(s.redelivered).toBeGreaterThan(1); // the batch held innocents, and they were put back
    expect(rt.deadLetters('m').list()[0]!.reason).toBe('poison');
  }, 30_000);
});

describe('faults: handlers that hang', () => {
  for (const hang of ['promise', 'busy'] as const) {
    it(`${hang}: after leaseMs the thread is replaced and the message redelivered; no double count`, async () => {
      const rt = runtime({
        mailboxes: { m: { handler: fixture('hang.js'), minThreads: 1, maxThreads: 1, leaseMs: 300, maxAttempts: 3, backoff: { baseMs: 1, maxMs: 2 } } },
        tickMs: 20,
      });
      const timeouts: HandlerTimeoutEvent[] = [];
      rt.on('handler-timeout', (e) => timeouts.push(e));
      await rt.start();
      const t0 = Date.now();
      rt.send('m', { hang });
      for (let i = 0; i < 10; i++) rt.send('m', { i });
      await rt.onIdle();
      expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
      const s = rt.stats('m');
      expect(s).toMatchObject({ enqueued: 11, processed: 11, handlerTimeouts: 1, failed: 1, retried: 1, deadLettered: 0, threads: 1 });
      expect(timeouts).toHaveLength(1);
      expect(timeouts[0]).toMatchObject({ mailbox: 'm', attempt: 1, leaseMs: 300 });
    }, 30_000);
  }
});

describe('faults: a record reserved and never published', () => {
  it("is reported as RINGPOOL_RING_STALLED on 'error' (the producer died inside ctx.send)", async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 1 } }, tickMs: 50 });
    const errors: Array<Error & { code?: string }> = [];
    rt.on('error', (e) => errors.push(e));
    await rt.start();
    // What a thread killed between reserve and publish leaves behind:
    rt.mailbox('m')!.ring.reserve(4);
    rt.send('m', 'behind it');
    await new Promise((r) => setTimeout(r, 5_400));
    expect(errors.map((e) => e.code)).toEqual(['RINGPOOL_RING_STALLED']);
    expect(errors[0]!.message).toMatch(/1 messages are behind it/);
    expect(rt.stats('m').processed).toBe(0);
  }, 15_000);
});
