import { describe, expect, it } from 'vitest';
import { RingpoolError } from 'ringpool';
import { expectCode, fixture, runtime, until } from '../helpers.js';

describe('runtime: throughput and accounting', () => {
  it('processes 100,000 messages on 2 threads; counters add up', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), minThreads: 2, maxThreads: 2, capacityBytes: 1 << 20 } } });
    await rt.start();
    const N = 100_000;
    for (let i = 0; i < N; i++) await rt.sendAsync('m', { i, text: 'abcdefghij'.repeat(8) });
    await rt.onIdle();
    // onIdle() waited for enqueued = processed + deadLettered with nothing ready or in flight: check what it does not.
    const s = rt.stats('m');
    expect(s).toMatchObject({ enqueued: N, processed: N, deadLettered: 0, failed: 0, redelivered: 0, threads: 2 });
    // every byte reclaimed, and the threads' own ack counts add up to N (each message acked once, by one thread)
    expect(s.usedBytes).toBe(0);
    const workers = await rt.workerStats('m');
    expect(workers).toHaveLength(2);
    expect(workers.reduce((a, w) => a + w.acked, 0)).toBe(N);
    const report = await rt.close();
    expect(report.drained).toBe(true);
  });

  it('takes sends before start() and delivers them after', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 1 } } });
    for (let i = 0; i < 10; i++) rt.send('m', i);
    expect(rt.stats('m').depth).toBe(10);
    await rt.start();
    await rt.onIdle();
    expect(rt.stats('m').processed).toBe(10);
  });

  it('delivers delayMs sends no sooner than asked', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 1 } } });
    await rt.start();
    const t0 = Date.now();
    rt.send('m', 1, { delayMs: 150 });
    expect(rt.stats('m').delayed).toBe(1);
    await rt.onIdle();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(rt.stats('m')).toMatchObject({ processed: 1, delayed: 0 });
  });
});

describe('runtime: retries and dead letters', () => {
  it('retries wait a backoff with full jitter: random in [0, min(maxMs, baseMs * 2^(attempt-1))]', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('fail.js'), minThreads: 1, maxThreads: 1, maxAttempts: 2, backoff: { baseMs: 100, maxMs: 100 } } } });
    await rt.start();
    const N = 20;
    for (let i = 0; i < N; i++) rt.send('m', { n: i, failures: 'always' });
    await rt.onIdle();
    // One retry each: first send to dead letter is that one backoff (plus two no-op handler runs).
    const waits = rt
      .deadLetters('m')
      .list()
      .map((d) => d.deadAt - d.enqueuedAt)
      .sort((a, b) => a - b);
    expect(waits).toHaveLength(N);
    // Uniform in [0, 100]: the median is ~50 (below 10 with probability ~1e-6 for 20 draws): a delay was waited.
    expect(waits[N >> 1]).toBeGreaterThan(10);
  });

  it('retries with backoff, then dead-letters with first and last error; others keep flowing', async () => {
    const rt = runtime({
      mailboxes: { m: { handler: fixture('fail.js'), minThreads: 1, maxThreads: 2, maxAttempts: 3, backoff: { baseMs: 5, maxMs: 20 } } },
    });
    const letters: unknown[] = [];
    rt.on('dead-letter', (e) => letters.push(e));
    await rt.start();
    rt.send('m', { n: 'bad', failures: 'always' });
    for (let i = 0; i < 100; i++) rt.send('m', { n: i });
    rt.send('m', { n: 'flaky', failures: 2 });
    await rt.onIdle();
    const s = rt.stats('m');
    expect(s).toMatchObject({ enqueued: 102, processed: 101, deadLettered: 1, failed: 5, retried: 4 });
    const [dl] = rt.deadLetters('m').list();
    expect(dl).toMatchObject({ payload: { n: 'bad', failures: 'always' }, attempts: 3, reason: 'max_attempts', mailbox: 'm' });
    expect(dl!.firstError?.message).toBe('attempt 1 of bad failed');
    expect(dl!.lastError?.message).toBe('attempt 3 of bad failed');
    expect(dl!.enqueuedAt).toBeLessThanOrEqual(dl!.deadAt);
    expect(letters).toHaveLength(1);
  });

  it('wraps a thrown non-Error instead of losing it', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('fail.js'), minThreads: 1, maxThreads: 1, maxAttempts: 1 } } });
    await rt.start();
    rt.send('m', { n: 1, failures: 'always', throwValue: { reason: 'nope' } });
    rt.send('m', { n: 2, failures: 'always', throwValue: null });
    await rt.onIdle();
    const errs = rt.deadLetters('m').list().map((d) => d.lastError);
    expect(errs[0]).toMatchObject({ name: 'NonErrorThrown' });
    expect(errs[0]!.message).toContain('{"reason":"nope"}');
    expect(errs[1]!.message).toContain('null');
  });

  it('dead-letters UnrecoverableError at once', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('fail.js'), minThreads: 1, maxThreads: 1, maxAttempts: 5 } } });
    await rt.start();
    rt.send('m', { n: 1, unrecoverable: true });
    await rt.onIdle();
    const [dl] = rt.deadLetters('m').list();
    expect(dl).toMatchObject({ attempts: 1, reason: 'unrecoverable' });
    expect(dl!.lastError).toMatchObject({ name: 'UnrecoverableError', message: 'bad input 1' });
    expect(rt.stats('m')).toMatchObject({ retried: 0, deadLettered: 1 });
  });

  it('redrive() reprocesses dead letters once the cause is fixed; purge() empties the store', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const flag = join(mkdtempSync(join(tmpdir(), 'ringpool-')), 'fixed');
    const rt = runtime({ mailboxes: { m: { handler: fixture('gate.js'), minThreads: 1, maxThreads: 1, maxAttempts: 2, backoff: { baseMs: 1, maxMs: 2 } } } });
    await rt.start();
    for (let i = 0; i < 5; i++) rt.send('m', { flag, i });
    await rt.onIdle();
    expect(rt.deadLetters('m').size).toBe(5);
    writeFileSync(flag, 'yes');
    expect(rt.deadLetters('m').redrive((d) => (d.payload as { i: number }).i < 3)).toBe(3);
    await rt.onIdle();
    expect(rt.stats('m')).toMatchObject({ processed: 3, deadLettered: 5, enqueued: 8 });
    expect(rt.deadLetters('m').size).toBe(2);
    expect(rt.deadLetters('m').purge()).toBe(2);
    expect(rt.deadLetters('m').list()).toEqual([]);
  });
});

describe('runtime: bad input', () => {
  it('refuses a message one byte over maxMessageBytes and takes one at the limit', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), maxMessageBytes: 1000, capacityBytes: 1 << 16, codec: 'raw' } } });
    await rt.start();
    const err = await expectCode(() => rt.send('m', new Uint8Array(1001)), 'RINGPOOL_MESSAGE_TOO_LARGE');
    expect(err).toBeInstanceOf(RingpoolError);
    expect(err.message).toMatch(/1001 bytes.*maxMessageBytes 1000/);
    const before = rt.stats('m');
    expect(before).toMatchObject({ enqueued: 0, depth: 0, rejected: 1 });
    rt.send('m', new Uint8Array(1000));
    await rt.onIdle();
    expect(rt.stats('m')).toMatchObject({ processed: 1, rejected: 1 });
  });

  it('refuses unserializable payloads, unknown mailboxes, and sends after close', async () => {
    const rt = runtime({
      mailboxes: { j: { handler: fixture('noop.js') }, v: { handler: fixture('noop.js'), codec: 'v8' } },
    });
    await rt.start();
    await expectCode(() => rt.send('j', { big: 1n }), 'RINGPOOL_UNSERIALIZABLE');
    await expectCode(() => rt.send('j', () => 1), 'RINGPOOL_UNSERIALIZABLE');
    await expectCode(() => rt.send('v', { f: () => 1 }), 'RINGPOOL_UNSERIALIZABLE');
    await expectCode(() => rt.send('nope', 1), 'RINGPOOL_UNKNOWN_MAILBOX');
    expect(rt.stats('j')).toMatchObject({ enqueued: 0, depth: 0, rejected: 2, rejectedBy: { unserializable: 2 } });
    expect(rt.stats('v')).toMatchObject({ enqueued: 0, rejected: 1 });
    await rt.close();
    await expectCode(() => rt.send('j', 1), 'RINGPOOL_CLOSED');
    await expectCode(rt.sendAsync('j', 1), 'RINGPOOL_CLOSED');
    expect(rt.stats('j')).toMatchObject({ enqueued: 0, rejectedBy: { closed: 2 } });
  });

  it('checks options in createRuntime, naming the path and the value', async () => {
    const { createRuntime } = await import('ringpool');
    const h = fixture('noop.js');
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ maxThreads: 0 }, /options\.mailboxes\.m\.maxThreads must be .*got `0` \(number\)/],
      [{ minThreads: 3, maxThreads: 2 }, /options\.mailboxes\.m\.minThreads must be at most maxThreads \(2\), got `3`/],
      [{ maxAttempts: 0 }, /options\.mailboxes\.m\.maxAttempts .*got `0`/],
      [{ leaseMs: -1 }, /options\.mailboxes\.m\.leaseMs .*got `-1`/],
      [{ capacityBytes: 4096, maxMessageBytes: 4096 }, /options\.mailboxes\.m\.capacityBytes must be at least \d+ bytes/],
      [{ overflow: 'drop' }, /options\.mailboxes\.m\.overflow must be 'wait' or 'reject', got 'drop'/],
      [{ codec: 'xml' }, /options\.mailboxes\.m\.codec/],
      [{ backoff: { baseMs: 10, maxMs: 5 } }, /options\.mailboxes\.m\.backoff\.maxMs/],
      [{ handler: 42 }, /options\.mailboxes\.m\.handler/],
      [{ maxThreds: 2 }, /options\.mailboxes\.m\.maxThreds .*unknown option/],
    ];
    for (const [o, re] of cases) {
      const err = await expectCode(() => createRuntime({ mailboxes: { m: { handler: h, ...o } as never } }), 'RINGPOOL_INVALID_OPTION');
      expect(err.message).toMatch(re);
    }
    await expectCode(() => createRuntime({ mailboxes: {} }), 'RINGPOOL_INVALID_OPTION');
  });

  it('keeps Object.prototype clean on both threads for a __proto__ payload (json and v8)', async () => {
    const rt = runtime({
      mailboxes: {
        j: { handler: fixture('proto.js'), maxAttempts: 1 },
        v: { handler: fixture('proto.js'), codec: 'v8', maxAttempts: 1 },
        // The main thread decodes payloads when it lists dead letters: keep.js dead-letters each one.
        jd: { handler: fixture('keep.js') },
        vd: { handler: fixture('keep.js'), codec: 'v8' },
      },
    });
    await rt.start();
    const payload = JSON.parse('{"__proto__": {"polluted": true}}');
    for (const m of ['j', 'v', 'jd', 'vd']) rt.send(m, payload);
    await rt.onIdle();
    // The worker side: proto.js throws (and the message is dead-lettered) if its thread's prototype was touched.
    expect(rt.stats('j')).toMatchObject({ processed: 1, deadLettered: 0 });
    expect(rt.stats('v')).toMatchObject({ processed: 1, deadLettered: 0 });
    // The main-thread side: decoded here, with its own __proto__ key, and the prototype untouched.
    for (const m of ['jd', 'vd']) {
      const [dl] = rt.deadLetters(m).list();
      expect(Object.prototype.hasOwnProperty.call(dl!.payload, '__proto__'), m).toBe(true);
    }
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    expect((Object.prototype as { polluted?: unknown }).polluted).toBeUndefined();
  });
});

describe('runtime: handler modules', () => {
  for (const [name, re] of [
    ['missing.js', /failed to load/],
    ['syntax-error.js', /failed to load/],
    ['no-default.js', /must export a function or an actor\(\.\.\.\) as default/],
  ] as const) {
    it(`start() rejects with RINGPOOL_HANDLER_LOAD for ${name}`, async () => {
      const rt = runtime({ mailboxes: { ok: { handler: fixture('noop.js') }, m: { handler: fixture(name) } } });
      const err = await expectCode(rt.start(), 'RINGPOOL_HANDLER_LOAD');
      expect(err.message).toMatch(re);
      expect(err.message).toContain(name);
      // the load failure itself was reported, not a start that ran into its timeout
      expect(err.message).not.toMatch(/startTimeoutMs/);
      await expectCode(() => rt.send('ok', 1), 'RINGPOOL_CLOSED');
    });
  }
});

describe('runtime: full ring', () => {
  it('send() throws RINGPOOL_QUEUE_FULL at once; sendAsync waits for room, times out, or aborts', async () => {
    // No thread consumes until started: fill the ring first.
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), capacityBytes: 16384, maxMessageBytes: 1024, minThreads: 1, maxThreads: 1 } } });
    let n = 0;
    try {
      for (;;) {
        rt.send('m', { n, pad: 'p'.repeat(100) });
        n++;
      }
    } catch (err) {
      expect((err as RingpoolError).code).toBe('RINGPOOL_QUEUE_FULL');
    }
    expect(n).toBeGreaterThan(50);
    await expectCode(rt.sendAsync('m', 'late', { timeoutMs: 30 }), 'RINGPOOL_TIMEOUT');
    const ac = new AbortController();
    const aborted = rt.sendAsync('m', 'late', { signal: ac.signal });
    ac.abort(new Error('caller gave up'));
    await expect(aborted).rejects.toThrow('caller gave up');
    const waiting = rt.sendAsync('m', { n: 'waited' });
    await rt.start();
    await expect(waiting).resolves.toBeTypeOf('number');
    await rt.onIdle();
    expect(rt.stats('m')).toMatchObject({ enqueued: n + 1, processed: n + 1 });
  });

  it("sendAsync under overflow 'reject' throws RINGPOOL_QUEUE_FULL at once", async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), capacityBytes: 16384, maxMessageBytes: 1024, overflow: 'reject' } } });
    let n = 0;
    for (;;) {
      try {
        rt.send('m', 'x'.repeat(200));
        n++;
      } catch (err) {
        // the ring is full, not some other refusal
        expect((err as RingpoolError).code).toBe('RINGPOOL_QUEUE_FULL');
        break;
      }
    }
    expect(n).toBeGreaterThan(20);
    await expectCode(rt.sendAsync('m', 'one more'), 'RINGPOOL_QUEUE_FULL');
    expect(rt.stats('m')).toMatchObject({ enqueued: n, rejectedBy: { queue_full: 2 } });
  });
});

describe('runtime: close', () => {
  it('close() while busy: stops intake, finishes in-flight, reports leftovers', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('slow.js'), minThreads: 1, maxThreads: 1 } } });
    await rt.start();
    for (let i = 0; i < 200; i++) rt.send('m', { ms: 20 });
    await until(() => rt.stats('m').processed > 0);
    const closing = rt.close({ timeoutMs: 100 });
    await expectCode(() => rt.send('m', { ms: 1 }), 'RINGPOOL_CLOSED');
    const report = await closing;
    expect(report.drained).toBe(false);
    const left = report.left.m!;
    const s = rt.stats('m');
    expect(s.inFlight).toBe(0);
    expect(left.ready + left.inFlight).toBeGreaterThan(100);
    expect(s.processed + s.depth).toBe(200);
  });
});
