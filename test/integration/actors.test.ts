import { describe, expect, it } from 'vitest';
import { expectCode, fixture, runtime, until } from '../helpers.js';

type Counter = { n: number; thread: number };

/** Passivations reported by the actor fixtures (from their worker threads). */
function passivations(): { list: Array<{ passivated: string; n: number; thread: number }>; close(): void } {
  const bc = new BroadcastChannel('ringpool-test-actors');
  const list: Array<{ passivated: string; n: number; thread: number }> = [];
  bc.onmessage = (ev: MessageEvent) => list.push(ev.data);
  return { list, close: () => bc.close() };
}

function counters(handler = 'counter-actor.js', threads = 2, extra: Record<string, unknown> = {}) {
  return runtime({
    mailboxes: {
      counter: {
        handler: fixture(handler),
        minThreads: threads,
        maxThreads: Math.max(threads, 2),
        autoscale: false,
        maxAttempts: 2,
        backoff: { baseMs: 1, maxMs: 5 },
        ...extra,
      },
    },
  });
}

describe('actors: per-key state in the owning thread', () => {
  it('a counter per key gives exact totals on 2 threads, each key stays on one thread, and both threads own keys', async () => {
    const rt = counters();
    await rt.start();
    const ref = rt.actor('counter');
    const K = 200;
    const N = 50;
    for (let j = 0; j < N; j++) for (let k = 0; k < K; k++) await rt.sendAsync('counter', { add: 1 }, { key: `k${k}` });
    // tell through the proxy too: one more per key
    for (let k = 0; k < K; k++) ref.tell.add(`k${k}`, 1);
    await rt.onIdle();
    const got = await Promise.all(Array.from({ length: K }, (_, k) => ref.ask.get(`k${k}`) as Promise<Counter>));
    for (const g of got) expect(g.n).toBe(N + 1);
    const threads = new Set(got.map((g) => g.thread));
    expect(threads.size).toBe(2);
    // Ask again: every key answers from the same thread as before.
    const again = await Promise.all(Array.from({ length: K }, (_, k) => ref.ask.get(`k${k}`) as Promise<Counter>));
    expect(again.map((g) => g.thread)).toEqual(got.map((g) => g.thread));
    expect(rt.stats('counter')).toMatchObject({ deadLettered: 0 });
  });

  it('ask returns handle()’s value; a typed proxy call returns the method’s; `this` is the message context', async () => {
    const rt = counters();
    await rt.start();
    expect(await rt.ask('counter', { add: 5 }, { key: 'a' })).toBe(5);
    const ref = rt.actor('counter');
    expect(await ref.ask.add('a', 2)).toBe(7);
    expect(await ref.request('a', { add: 3 })).toBe(10);
    expect(await ref.ask.whoami('a')).toEqual({ key: 'a', mailbox: 'counter', attempt: 1 });
  });

  it('async init() builds the state once per key', async () => {
    const rt = counters('async-init-actor.js');
    await rt.start();
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => rt.ask('counter', i, { key: `k${i % 3}` })));
    // per key, the replies are 1..10 in some order of arrival: all distinct, max 10
    for (let k = 0; k < 3; k++) {
      const mine = results.filter((_, i) => i % 3 === k).sort((a, b) => (a as number) - (b as number));
      expect(mine).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }
  });

  it('passivation after idleMs calls the hook with the state, and a later message starts fresh from init()', async () => {
    const seen = passivations();
    try {
      const rt = counters('idle-actor.js');
      await rt.start();
      const ref = rt.actor('counter');
      await ref.ask.add('p', 3);
      await until(() => seen.list.some((m) => m.passivated === 'p'), 5_000, 'passivate hook');
      expect(seen.list.find((m) => m.passivated === 'p')!.n).toBe(3);
      expect(((await ref.ask.get('p')) as Counter).n).toBe(0);
    } finally {
      seen.close();
    }
  });

  it('a thread crash loses the state of its keys: it is rebuilt from init(), the message is redelivered, other threads keep theirs', async () => {
    const rt = counters('counter-actor.js', 2, { maxAttempts: 2 });
    const crashes: unknown[] = [];
    rt.on('worker-crash', (e) => crashes.push(e));
    await rt.start();
    const ref = rt.actor('counter');
    for (let i = 0; i < 5; i++) await ref.ask.add('a', 1);
    // a key that lives on the other thread
    const a = (await ref.ask.get('a')) as Counter;
    let other = '';
    for (let k = 0; other === '' && k < 1000; k++) {
      await ref.ask.add(`o${k}`, 0);
      if (((await ref.ask.get(`o${k}`)) as Counter).thread !== a.thread) other = `o${k}`;
    }
    expect(other).not.toBe('');
    await ref.ask.add(other, 7);
    // Redelivered (attempt 2) to a state init() rebuilt: 0 + 1, not 5 + 1.
    expect(await ref.ask.crashOnce('a')).toEqual({ n: 1, attempt: 2 });
    expect(crashes.length).toBe(1);
    expect(((await ref.ask.get('a')) as Counter).n).toBe(1);
    expect(((await ref.ask.get(other)) as Counter).n).toBe(7);
    // and a message that kills its thread every time is dead-lettered, its ask rejected with the crash as cause
    const err = await expectCode(ref.ask.crash('a'), 'RINGPOOL_DEAD_LETTERED');
    expect((err as Error & { cause: { name: string } }).cause.name).toBe('WorkerCrash');
  });

  it('retiring a thread passivates its keys (hook called) and they move to the threads left', async () => {
    const seen = passivations();
    try {
      const rt = counters();
      await rt.start();
      const ref = rt.actor('counter');
      const before = await Promise.all(Array.from({ length: 40 }, (_, k) => ref.ask.add(`r${k}`, 1).then(() => ref.ask.get(`r${k}`)) as Promise<Counter>));
      const threads = [...new Set(before.map((b) => b.thread))];
      expect(threads.length).toBe(2);
      rt.resize('counter', 1);
      await until(() => rt.stats('counter').threads === 1, 10_000, 'one thread');
      await until(() => seen.list.length > 0, 5_000, 'passivations');
      const gone = seen.list[0]!.thread;
      const movedKeys = before.map((b, k) => (b.thread === gone ? `r${k}` : null)).filter((k): k is string => k !== null);
      await until(() => seen.list.length === movedKeys.length, 5_000, 'every key of the retired thread passivated');
      expect(seen.list.map((m) => m.passivated).sort()).toEqual([...movedKeys].sort());
      const after = await Promise.all(before.map((_, k) => ref.ask.get(`r${k}`) as Promise<Counter>));
      expect(new Set(after.map((a) => a.thread)).size).toBe(1);
      after.forEach((a, k) => expect(a.n).toBe(before[k]!.thread === gone ? 0 : 1));
    } finally {
      seen.close();
    }
  });

  it('adding a thread never splits a key’s state: live keys stay put (counts exact under load), new keys spread to the new thread', async () => {
    const rt = counters('counter-actor.js', 1);
    await rt.start();
    const ref = rt.actor('counter');
    for (let round = 0; round < 40; round++) {
      if (round === 10) rt.resize('counter', 2);
      // keys o0..o99 from the start, n0..n99 only after the resize
      for (let k = 0; k < 100; k++) ref.tell.add(`o${k}`, 1);
      if (round >= 10) for (let k = 0; k < 100; k++) ref.tell.add(`n${k}`, 1);
      await new Promise((r) => setTimeout(r, 5));
    }
    await rt.onIdle();
    const old = await Promise.all(Array.from({ length: 100 }, (_, k) => ref.ask.get(`o${k}`) as Promise<Counter>));
    const fresh = await Promise.all(Array.from({ length: 100 }, (_, k) => ref.ask.get(`n${k}`) as Promise<Counter>));
    for (const g of old) expect(g.n).toBe(40);
    for (const g of fresh) expect(g.n).toBe(30);
    // the live keys (their state is on the first thread) did not move; new keys went to both threads
    expect(new Set(old.map((g) => g.thread)).size).toBe(1);
    expect(new Set(fresh.map((g) => g.thread)).size).toBe(2);
  });
});

describe('ask', () => {
  it('10,000 concurrent asks resolve, each with its own reply', async () => {
    const rt = runtime({ mailboxes: { d: { handler: fixture('double.js'), minThreads: 2, maxThreads: 2, autoscale: false } } });
    await rt.start();
    const N = 10_000;
    const replies = await Promise.all(Array.from({ length: N }, (_, i) => rt.ask<{ n: number; twice: number }>('d', i)));
    replies.forEach((r, i) => expect(r).toEqual({ n: i, twice: 2 * i }));
  });

  it('10,000 concurrent keyed asks to counters: replies per key are 1..n, totals exact', async () => {
    const rt = counters();
    await rt.start();
    const N = 10_000;
    const replies = await Promise.all(Array.from({ length: N }, (_, i) => rt.ask<number>('counter', { add: 1 }, { key: `c${i % 100}` })));
    for (let k = 0; k < 100; k++) {
      const mine = replies.filter((_, i) => i % 100 === k);
      // keyed order: the j-th ask of a key is the j-th message of that key
      expect(mine).toEqual(Array.from({ length: 100 }, (_, j) => j + 1));
    }
  });

  it('a handler error after the retries rejects with RINGPOOL_DEAD_LETTERED, the last error as cause', async () => {
    const rt = counters();
    await rt.start();
    const err = await expectCode(rt.actor('counter').ask.fail('f', 'boom'), 'RINGPOOL_DEAD_LETTERED');
    expect((err as Error & { cause: Error }).cause.message).toBe('boom');
    expect(err.message).toContain('2 attempt');
    expect(rt.deadLetters('counter').list().length).toBe(1);
  });

  it('timeoutMs rejects with RINGPOOL_TIMEOUT; an abort rejects with the reason; the messages still run', async () => {
    const rt = counters();
    await rt.start();
    const ref = rt.actor('counter');
    await expectCode(rt.actor('counter', { timeoutMs: 30 }).ask.slow('t', 300), 'RINGPOOL_TIMEOUT');
    const ac = new AbortController();
    const p = ref.request('t2', { add: 1 }, { signal: ac.signal });
    ac.abort(new Error('caller went away'));
    await expect(p).rejects.toThrow('caller went away');
    const pre = new AbortController();
    pre.abort(new Error('already'));
    await expect(rt.ask('counter', { add: 1 }, { key: 'x', signal: pre.signal })).rejects.toThrow('already');
    await rt.onIdle();
    expect(((await ref.ask.get('t2')) as Counter).n).toBe(1);
  });

  it('bad input: no key for an actor, a non-string key, an unknown method, bad options, plain handlers get no method calls', async () => {
    const rt = runtime({
      mailboxes: {
        counter: { handler: fixture('counter-actor.js'), minThreads: 1, maxThreads: 1, autoscale: false, maxAttempts: 1 },
        d: { handler: fixture('double.js'), minThreads: 1, maxThreads: 1, autoscale: false },
        s: { handler: fixture('send-to-actor.js'), minThreads: 1, maxThreads: 1, autoscale: false },
      },
    });
    await rt.start();
    await expectCode(() => rt.send('counter', { add: 1 }), 'RINGPOOL_KEY_REQUIRED');
    // from a worker thread too, synchronously, so the handler can act on it
    expect(await rt.ask('s', {})).toBe('RINGPOOL_KEY_REQUIRED');
    expect(await rt.ask('s', { key: 'k' })).toBe('sent');
    await expectCode(rt.ask('counter', { add: 1 }), 'RINGPOOL_KEY_REQUIRED');
    const ref = rt.actor('counter');
    await expectCode(ref.ask.add(42, 1), 'RINGPOOL_INVALID_OPTION');
    const unknown = await expectCode(ref.ask.nope('k'), 'RINGPOOL_INVALID_OPTION');
    expect(unknown.message).toContain("no method 'nope'");
    await expectCode(rt.ask('d', 1, { timeoutMs: -1 }), 'RINGPOOL_INVALID_OPTION');
    await expectCode(rt.ask('d', 1, { delayMs: 5 } as never), 'RINGPOOL_INVALID_OPTION');
    await expectCode(rt.ask('nope', 1), 'RINGPOOL_UNKNOWN_MAILBOX');
    await expectCode(rt.actor('d').ask.add('k', 1), 'RINGPOOL_INVALID_OPTION');
    // awaiting the proxy itself sends nothing
    expect(await (ref.ask as unknown as Promise<unknown>)).toBe(ref.ask);
    await rt.onIdle();
    expect(rt.stats('counter').enqueued).toBe(1); // only the keyed ctx.send
  });

  it('close() rejects asks whose messages were never processed with RINGPOOL_CLOSED', async () => {
    const rt = runtime({ mailboxes: { d: { handler: fixture('double.js'), minThreads: 1, maxThreads: 1, autoscale: false } } });
    // never started: nothing runs; close() gives up at once
    const p = rt.ask('d', 1);
    await rt.close({ timeoutMs: 10 });
    await expectCode(p, 'RINGPOOL_CLOSED');
  });
});
