import { describe, expect, it } from 'vitest';
import type { DeadLetterEvent, WorkerCrashEvent } from 'ringpool';
import { expectCode, fixture, runtime, until } from '../helpers.js';

describe('regressions found in review', () => {
  it('a delayed ctx.send made just before the thread dies is not lost', async () => {
    const rt = runtime({
      mailboxes: {
        src: { handler: fixture('send-then-die.js'), minThreads: 1, maxThreads: 1, backoff: { baseMs: 1, maxMs: 2 } },
        sink: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 1 },
      },
    });
    await rt.start();
    for (let i = 0; i < 10; i++) rt.send('src', { n: i });
    await rt.onIdle();
    expect(rt.stats('src')).toMatchObject({ processed: 10, workerCrashes: 10 });
    // one delayed send per attempt 1: none lost
    expect(rt.stats('sink')).toMatchObject({ enqueued: 10, processed: 10 });
  }, 30_000);

  it('crashes in a small ring that wraps often: recovery across SKIP padding loses nothing', async () => {
    const rt = runtime({
      mailboxes: { m: { handler: fixture('crash-some.js'), minThreads: 1, maxThreads: 2, capacityBytes: 16384, maxMessageBytes: 2048, backoff: { baseMs: 1, maxMs: 2 } } },
    });
    await rt.start();
    const N = 2000;
    for (let i = 0; i < N; i++) await rt.sendAsync('m', { i, crash: i % 100 === 50, pad: 'p'.repeat((i * 53) % 900) });
    await rt.onIdle();
    const s = rt.stats('m');
    expect(s).toMatchObject({ enqueued: N, processed: N, deadLettered: 0, workerCrashes: 20, inFlight: 0, depth: 0 });
  }, 60_000);

  it('bursts with pauses (consumers park and are woken) all arrive', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), minThreads: 2, maxThreads: 2 } } });
    await rt.start();
    for (let b = 0; b < 100; b++) {
      for (let i = 0; i < 50; i++) rt.send('m', { b, i });
      await new Promise((r) => setTimeout(r, 1));
    }
    await rt.onIdle();
    expect(rt.stats('m')).toMatchObject({ enqueued: 5000, processed: 5000 });
  });

  it('onIdle() after close() resolves (and does not keep the process alive)', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('slow.js'), minThreads: 1, maxThreads: 1 } } });
    await rt.start();
    for (let i = 0; i < 50; i++) rt.send('m', { ms: 50 });
    const report = await rt.close({ timeoutMs: 30 });
    expect(report.drained).toBe(false);
    await rt.onIdle(); // resolves: nothing more will move
  });

  it('close() past its deadline is not a crash: no poison, no worker-crash, the message is left over', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('slow.js'), minThreads: 1, maxThreads: 1, maxAttempts: 1 } } });
    const dead: DeadLetterEvent[] = [];
    const crashes: WorkerCrashEvent[] = [];
    rt.on('dead-letter', (e) => dead.push(e));
    rt.on('worker-crash', (e) => crashes.push(e));
    await rt.start();
    rt.send('m', { ms: 3000 });
    await until(() => rt.stats('m').inFlight === 1, 5_000, 'the handler to start');
    const report = await rt.close({ timeoutMs: 50 });
    expect(report).toMatchObject({ drained: false, left: { m: { inFlight: 1 } } });
    expect(dead).toEqual([]);
    expect(crashes).toEqual([]);
    expect(rt.stats('m')).toMatchObject({ failed: 0, deadLettered: 0, workerCrashes: 0 });
  });

  it('a first error whose JSON escapes to many bytes still lets the retry back into a small ring', async () => {
    const rt = runtime({
      mailboxes: {
        // capacity exactly 2 x (header + maxMessageBytes + 4096 meta): a record with more meta than that may not fit
        m: { handler: fixture('fail.js'), codec: 'v8', capacityBytes: 16384, maxMessageBytes: 4032, maxAttempts: 3, backoff: { baseMs: 1, maxMs: 2 }, minThreads: 1, maxThreads: 1 },
      },
    });
    await rt.start();
    // Each attempt throws a message with 1,000 control characters: ~6,000 bytes once JSON-escaped.
    for (let i = 0; i < 6; i++) rt.send('m', { n: '\u0001'.repeat(1000) + i, failures: 'always', pad: 'x'.repeat(i * 500) });
    await rt.onIdle();
    expect(rt.stats('m')).toMatchObject({ deadLettered: 6, failed: 18, depth: 0 });
    const [dl] = rt.deadLetters('m').list();
    expect(dl!.attempts).toBe(3);
    expect(dl!.firstError!.message.length).toBeGreaterThan(100);
  });

  it('actors: a message for a key whose passivate hook is still running waits for the hook before init() runs again', async () => {
    const bc = new BroadcastChannel('ringpool-test-passivate');
    const hooks: Array<{ hook: string; key: string; at: number }> = [];
    bc.onmessage = (ev: MessageEvent) => hooks.push(ev.data);
    try {
      const rt = runtime({ mailboxes: { a: { handler: fixture('slow-passivate-actor.js'), minThreads: 1, maxThreads: 1, autoscale: false } } });
      await rt.start();
      expect(await rt.ask('a', {}, { key: 'K' })).toMatchObject({ n: 1 });
      await until(() => hooks.some((h) => h.hook === 'start'), 5_000, 'the hook to start');
      const r = (await rt.ask('a', {}, { key: 'K' })) as { n: number; at: number };
      // (the reply may overtake the hook's own report: it comes through the ring)
      await until(() => hooks.some((h) => h.hook === 'end'), 5_000, 'the hook to end');
      const end = hooks.find((h) => h.hook === 'end')!;
      expect(r.n).toBe(1); // a fresh state from init()
      expect(r.at).toBeGreaterThanOrEqual(end.at); // handled after the hook ended
    } finally {
      bc.close();
    }
  });

  it('actors: a passivate hook that never settles does not keep the retired thread’s keys from moving (bounded by leaseMs)', async () => {
    const rt = runtime({
      mailboxes: { a: { handler: fixture('hang-passivate-actor.js'), minThreads: 2, maxThreads: 2, autoscale: false, leaseMs: 500 } },
    });
    await rt.start();
    const keys = Array.from({ length: 20 }, (_, k) => `k${k}`);
    const first = (await Promise.all(keys.map((k) => rt.ask('a', {}, { key: k })))) as Array<{ thread: number }>;
    expect(new Set(first.map((f) => f.thread)).size).toBe(2);
    rt.resize('a', 1);
    await until(() => rt.stats('a').threads === 1, 10_000, 'one thread');
    // every key answers, those of the retired thread from a fresh state on the thread left
    const after = (await Promise.all(keys.map((k) => rt.ask('a', {}, { key: k, timeoutMs: 5_000 })))) as Array<{ n: number; thread: number }>;
    expect(new Set(after.map((a) => a.thread)).size).toBe(1);
    after.forEach((a, i) => expect(a.n).toBe(first[i]!.thread === after[0]!.thread ? 2 : 1));
  });

  it('ask: a send refused at once (unserializable) leaves no timer or abort listener behind', async () => {
    const rt = runtime({ mailboxes: { d: { handler: fixture('double.js'), minThreads: 1, maxThreads: 1, autoscale: false } } });
    await rt.start();
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const ac = new AbortController();
    await expectCode(rt.ask('d', { n: 1n }, { timeoutMs: 60_000, signal: ac.signal }), 'RINGPOOL_UNSERIALIZABLE');
    expect(timers()).toBe(before);
  });
});

describe('regressions found in the second review', () => {
  for (const handler of ['idle-nohook-actor.js', 'idle-throwing-hook-actor.js']) {
    it(`actors: a key passivated with ${handler === 'idle-nohook-actor.js' ? 'no passivate hook' : 'a hook that throws at once'} answers again, from a fresh state`, async () => {
      const rt = runtime({ mailboxes: { a: { handler: fixture(handler), minThreads: 1, maxThreads: 1, autoscale: false } } });
      await rt.start();
      // Bounded, so the bug fails the test instead of hanging it.
      const ref = rt.actor('a', { timeoutMs: 5_000 });
      expect(await ref.ask.add('k', 3)).toBe(3);
      // Passivated several times over (idleMs 50, swept every 12.5 ms); before the fix the next message waited forever.
      for (let round = 0; round < 3; round++) {
        // Wait for the passivation (a fresh state reads n 0), however long a loaded machine takes to sweep.
        let n = -1;
        for (const end = Date.now() + 5_000; n !== 0 && Date.now() < end; ) {
          // Longer than idleMs (50) + a sweep: each get() is a use that restarts the idle clock.
          await new Promise((r) => setTimeout(r, 120));
          n = ((await ref.ask.get('k')) as { n: number }).n;
        }
        expect(n).toBe(0);
        expect(await ref.ask.add('k', 2)).toBe(2);
      }
    });
  }

  it('a steady stream of messages a few ms apart still gives the worker’s event loop its turns (timers fire, control calls answer)', async () => {
    const bc = new BroadcastChannel('ringpool-test-timers');
    const fired: number[] = [];
    bc.onmessage = (ev: MessageEvent) => fired.push((ev.data as { fired: number }).fired);
    let stop = false;
    let stream: Promise<void> = Promise.resolve();
    try {
      const rt = runtime({ mailboxes: { m: { handler: fixture('timer-beacon.js'), minThreads: 1, maxThreads: 1, autoscale: false } } });
      await rt.start();
      let sent = 0;
      stream = (async () => {
        // One message every ~2 ms: each wakes the parked loop, which used to count that wake-up as an event-loop turn.
        while (!stop) {
          rt.send('m', { n: sent++ });
          await new Promise((r) => setTimeout(r, 2));
        }
      })();
      await new Promise((r) => setTimeout(r, 100));
      rt.send('m', { arm: 1 });
      // The 20 ms timer fires while the stream goes on, and a control call answers (the stream runs until both did, or 10 s).
      const stats = await rt.workerStats('m');
      await until(() => fired.includes(1), 10_000, 'the handler’s timer');
      stop = true;
      await stream;
      expect(stats.length).toBe(1);
      await rt.onIdle();
      expect(rt.stats('m')).toMatchObject({ processed: sent + 1 });
    } finally {
      // A failure above must not leave the send loop running past the runtime's teardown.
      stop = true;
      await stream;
      bc.close();
    }
  });
});
