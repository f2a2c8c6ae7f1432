import { BroadcastChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import type { WorkerCrashEvent, HandlerTimeoutEvent } from 'ringpool';
import { fixture, runtime, until } from '../helpers.js';

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
    it(`${hang}: after leaseMs the thread is replaced and the message redelivered`, async () => {
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

describe('faults: a result that comes as the lease ends', () => {
  it('is either the ack (no timeout) or late and ignored (a timeout, a retry): each message counted once', async () => {
    const rt = runtime({
      mailboxes: { m: { handler: fixture('late.js'), minThreads: 1, maxThreads: 1, autoscale: false, leaseMs: 120, maxAttempts: 3, backoff: { baseMs: 1, maxMs: 2 } } },
      tickMs: 10,
    });
    const timeouts: HandlerTimeoutEvent[] = [];
    rt.on('handler-timeout', (e) => timeouts.push(e));
    await rt.start();
    // Spread over the tick: some finish just before the watchdog looks, some just after.
    const N = 12;
    for (let i = 0; i < N; i++) rt.send('m', { extraMs: i % 4 === 0 ? 0 : i % 4 === 1 ? 5 : i % 4 === 2 ? 10 : 30 });
    await rt.onIdle();
    const s = rt.stats('m');
    // A late ack counted too would make processed > N (or enqueued != processed + deadLettered).
    expect(s).toMatchObject({ enqueued: N, processed: N, deadLettered: 0 });
    expect(s.handlerTimeouts).toBe(timeouts.length);
    expect(s.failed).toBe(s.handlerTimeouts);
    expect(s.retried).toBe(s.handlerTimeouts);
    // The 30 ms ones always finish after the watchdog has looked (tick 10 ms): some lateness was exercised.
    expect(s.handlerTimeouts).toBeGreaterThanOrEqual(N / 4);
  }, 30_000);
});

describe('faults: concurrent handlers and a crash', () => {
  it('an async handler that finished at once is acked before the next one starts, so a crash in that one does not run it again', async () => {
    const runs: Array<{ i: number; attempt: number }> = [];
    const ch = new BroadcastChannel('ringpool-test-runs');
    ch.onmessage = (e) => runs.push((e as { data: { i: number; attempt: number } }).data);
    try {
      const rt = runtime({
        mailboxes: { m: { handler: fixture('count-runs.js'), minThreads: 1, maxThreads: 1, concurrency: 4, autoscale: false, maxAttempts: 3, backoff: { baseMs: 1, maxMs: 2 } } },
        tickMs: 20,
      });
      // One batch: two instant successes, then one that kills the thread on its first attempt.
      rt.send('m', { i: 0 });
      rt.send('m', { i: 1 });
      rt.send('m', { i: 2, exit: true });
      await rt.start();
      await rt.onIdle();
      await new Promise((r) => setTimeout(r, 50)); // the channel delivers the last reports
      expect(rt.stats('m')).toMatchObject({ processed: 3, workerCrashes: 1, failed: 1 });
      expect(runs.filter((r) => r.i === 0)).toEqual([{ i: 0, attempt: 1 }]);
      expect(runs.filter((r) => r.i === 1)).toEqual([{ i: 1, attempt: 1 }]);
      // Blamed alone (it ran alone when it crashed): attempt 2 succeeded.
      expect(runs.filter((r) => r.i === 2)).toEqual([
        { i: 2, attempt: 1 },
        { i: 2, attempt: 2 },
      ]);
    } finally {
      ch.close();
    }
  }, 30_000);
});

describe('faults: a lease expiry with several handlers on the thread', () => {
  it('blames none of them: all come back to run alone, so the busy loop is charged and the innocent sleeper is not', async () => {
    const rt = runtime({
      mailboxes: {
        m: { handler: fixture('sleep-or-spin.js'), minThreads: 1, maxThreads: 1, concurrency: 4, autoscale: false, leaseMs: 300, maxAttempts: 1, batchSize: 8 },
      },
      tickMs: 20,
    });
    const timeouts: HandlerTimeoutEvent[] = [];
    rt.on('handler-timeout', (e) => timeouts.push(e));
    // Both in the ring before the thread claims: one batch, the sleeper (the lease's holder, the oldest) first.
    rt.send('m', { sleep: 20 });
    rt.send('m', { spin: true, always: true });
    await rt.start();
    await rt.onIdle();
    // maxAttempts 1: any charge on the sleeper would have dead-lettered it.
    const s = rt.stats('m');
    expect(s).toMatchObject({ enqueued: 2, processed: 1, deadLettered: 1, failed: 1 });
    const [dl] = rt.deadLetters('m').list();
    expect(dl).toMatchObject({ payload: { spin: true, always: true }, reason: 'timeout', attempts: 1 });
    expect(s.deadLetteredBy.timeout).toBe(1);
    // First expiry: two in flight, nobody charged; second: the spinner alone.
    expect(timeouts.length).toBe(2);
  }, 30_000);
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
    const t0 = Date.now();
    await until(() => errors.length > 0, 10_000, 'the stall report');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(4_900); // reported after 5 s, not at once
    expect(errors.map((e) => e.code)).toEqual(['RINGPOOL_RING_STALLED']);
    expect(errors[0]!.message).toMatch(/1 messages are behind it/);
    expect(rt.stats('m').processed).toBe(0);
  }, 15_000);
});
