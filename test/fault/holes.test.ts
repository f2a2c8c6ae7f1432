import { describe, expect, it } from 'vitest';
import type { Runtime } from 'ringpool';
import { fixture, runtime } from '../helpers.js';

/** onIdle within `ms`, or fail with the stats (a hole stops a ring: without its repair this never resolves). */
async function idleWithin(rt: Runtime, boxes: string[], ms = 10_000): Promise<void> {
  const ok = await Promise.race([rt.onIdle().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
  if (!ok) throw new Error(`not idle after ${ms} ms: ${boxes.map((b) => `${b} ${JSON.stringify(rt.stats(b))}`).join('; ')}`);
}

/** 'm' runs the dying handler (one thread); 'sink' takes what it sends. */
function dyingSender(): Runtime {
  return runtime({
    mailboxes: {
      m: { handler: fixture('die-in-window.js'), minThreads: 1, maxThreads: 1, autoscale: false, backoff: { baseMs: 1, maxMs: 2 } },
      sink: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 1, autoscale: false },
    },
    tickMs: 20,
  });
}

describe('a thread that dies inside a guarded write: the dispatcher repairs the hole it leaves', () => {
  it('ctx.send reserved and never published: the ring goes on past it; the send was never accepted', async () => {
    const rt = dyingSender();
    const errors: Error[] = [];
    rt.on('error', (e) => errors.push(e));
    await rt.start();
    rt.send('m', { die: 'ring-reserved', to: 'sink', msg: 'from the dying send' });
    await idleWithin(rt, ['m', 'sink']);
    for (let i = 0; i < 100; i++) rt.send('sink', { i });
    await idleWithin(rt, ['m', 'sink']);
    // The message that died is redelivered (attempt 2) and sends again: 1 + 100 reach the sink.
    expect(rt.stats('m')).toMatchObject({ enqueued: 1, processed: 1, workerCrashes: 1, failed: 1, retried: 1 });
    expect(rt.stats('sink')).toMatchObject({ enqueued: 101, processed: 101, depth: 0, inFlight: 0 });
    expect(errors).toEqual([]);
  });

  it('a keyed ctx.send: its seq is passed over, the key goes on in order', async () => {
    const rt = dyingSender();
    await rt.start();
    rt.send('m', { die: 'ring-reserved', to: 'sink', msg: { k: 'K', n: -1 }, opts: { key: 'K' } });
    await idleWithin(rt, ['m', 'sink']);
    for (let n = 0; n < 50; n++) rt.send('sink', { k: 'K', n }, { key: 'K' });
    await idleWithin(rt, ['m', 'sink']);
    expect(rt.stats('sink')).toMatchObject({ enqueued: 51, processed: 51 });
  });

  it('a delayed ctx.send counted and never handed over: not counted, its key passed over', async () => {
    const rt = dyingSender();
    await rt.start();
    rt.send('m', { die: 'delayed-counted', to: 'sink', msg: 'later', opts: { key: 'K', delayMs: 5 } });
    await idleWithin(rt, ['m', 'sink']);
    for (let n = 0; n < 20; n++) rt.send('sink', { n }, { key: 'K' });
    await idleWithin(rt, ['m', 'sink']);
    // The redelivered message's delayed send (attempt 2) and the 20.
    expect(rt.stats('sink')).toMatchObject({ enqueued: 21, processed: 21, delayed: 0 });
  });

  it('a ctx.sendBatch reserved and written, never published: one hole, none of it accepted; a keyed one voids its seqs', async () => {
    const rt = dyingSender();
    const errors: Error[] = [];
    rt.on('error', (e) => errors.push(e));
    await rt.start();
    const batch = Array.from({ length: 5 }, (_, n) => ({ k: 'K', n: n - 5 }));
    rt.send('m', { die: 'ring-reserved', to: 'sink', batch });
    await idleWithin(rt, ['m', 'sink']);
    rt.send('m', { die: 'ring-reserved', to: 'sink', batch, opts: { key: 'K' } });
    await idleWithin(rt, ['m', 'sink']);
    for (let n = 0; n < 50; n++) rt.send('sink', { k: 'K', n }, { key: 'K' });
    await idleWithin(rt, ['m', 'sink']);
    // Each dying batch runs again at attempt 2 and goes through: 5 + 5 + 50 reach the sink, the key's turns go on.
    expect(rt.stats('m')).toMatchObject({ enqueued: 2, processed: 2, workerCrashes: 2 });
    expect(rt.stats('sink')).toMatchObject({ enqueued: 60, processed: 60, depth: 0, inFlight: 0 });
    expect(errors).toEqual([]);
  });

  it("an ask's reply reserved and never published: the reply ring goes on, the ask gets the retry's reply", async () => {
    const rt = runtime({
      mailboxes: { m: { handler: fixture('die-in-window.js'), minThreads: 1, maxThreads: 1, autoscale: false, backoff: { baseMs: 1, maxMs: 2 } } },
      tickMs: 20,
    });
    await rt.start();
    await expect(rt.ask('m', { die: 'ring-reserved', reply: 'second try' }, { timeoutMs: 10_000 })).resolves.toBe('second try');
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => rt.ask('m', { reply: i }, { timeoutMs: 10_000 })));
    expect(replies).toEqual(Array.from({ length: 20 }, (_, i) => i));
    await rt.onIdle(); // a reply goes out just before its ack: the count can trail the answer
    expect(rt.stats('m')).toMatchObject({ processed: 21, workerCrashes: 1 });
  });

  for (const point of ['handoff-claimed', 'handoff-reserved'] as const) {
    it(`a hand-off to a key's owner cut short (${point}): the record is taken back, the owner's queue goes on`, async () => {
      const rt = runtime({
        mailboxes: { m: { handler: fixture('die-in-window.js'), minThreads: 2, maxThreads: 2, autoscale: false, batchSize: 64 } },
        tickMs: 20,
      });
      const crashes: number[] = [];
      rt.on('worker-crash', (e) => crashes.push(e.threadId));
      await rt.start();
      // Arm both threads (whichever runs these), then keyed traffic over many keys: each thread claims keys the other owns.
      for (let round = 0; round < 4 && crashes.length === 0; round++) {
        for (let i = 0; i < 4; i++) rt.send('m', { die: point });
        for (let i = 0; i < 400; i++) rt.send('m', { reply: i }, { key: `k${i % 64}` });
        await idleWithin(rt, ['m']);
      }
      expect(crashes.length).toBeGreaterThan(0); // the window was hit
      for (let i = 0; i < 400; i++) rt.send('m', { reply: i }, { key: `k${i % 64}` });
      await idleWithin(rt, ['m']);
      const s = rt.stats('m');
      expect(s.enqueued).toBe(s.processed);
      expect(s).toMatchObject({ depth: 0, inFlight: 0, delayed: 0, deadLettered: 0 });
    });
  }
});
