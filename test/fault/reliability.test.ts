import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { createRuntime, type Runtime } from 'ringpool';
import { createMetrics, serve } from 'ringpool/metrics';
import { timerDelay } from '../../dist/runtime/timer-heap.js';
import { MAX_TIMER_MS } from '../../dist/runtime/shared/clock.js';
import { expectCode, fixture, runtime, until } from '../helpers.js';

const nullProto = (): object => Object.create(null) as object;

describe('bad arguments to public calls: a RingpoolError with a code, never a bare TypeError', () => {
  it('a mailbox name that is not a string (a null-prototype object, a symbol, a number)', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js') } } });
    for (const name of [nullProto(), Symbol('x'), 42, undefined]) {
      await expectCode(() => rt.send(name as never, 1), 'RINGPOOL_INVALID_OPTION');
      await expectCode(rt.sendAsync(name as never, 1), 'RINGPOOL_INVALID_OPTION');
      await expectCode(rt.ask(name as never, 1), 'RINGPOOL_INVALID_OPTION');
      await expectCode(() => rt.stats(name as never), 'RINGPOOL_INVALID_OPTION');
      await expectCode(() => rt.deadLetters(name as never), 'RINGPOOL_INVALID_OPTION');
      await expectCode(() => rt.resize(name as never, 1), 'RINGPOOL_INVALID_OPTION');
    }
    await expectCode(() => rt.send('nope', 1), 'RINGPOOL_UNKNOWN_MAILBOX');
  });

  it('option values that cannot be turned into a string are described, not thrown on', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js') } } });
    const err = await expectCode(rt.sendAsync('m', 1, { timeoutMs: nullProto() as never }), 'RINGPOOL_INVALID_OPTION');
    expect(err.message).toContain('an object');
    await expectCode(() => rt.resize('m', nullProto() as never), 'RINGPOOL_INVALID_OPTION');
    await expectCode(() => rt.send('m', 1, { delayMs: nullProto() as never }), 'RINGPOOL_INVALID_OPTION');
    await expectCode(() => rt.send('m', 1, { key: nullProto() as never }), 'RINGPOOL_INVALID_OPTION');
    await expectCode(rt.sendAsync('m', 1, { signal: nullProto() as never }), 'RINGPOOL_INVALID_OPTION');
    await expectCode(rt.close({ timeoutMs: nullProto() as never }), 'RINGPOOL_INVALID_OPTION');
    expect(() => createRuntime({ mailboxes: { m: { handler: fixture('noop.js'), leaseMs: nullProto() as never } } })).toThrow(/leaseMs must be/);
  });

  it("a timeout past setTimeout's limit is refused, naming the limit (it would fire after 1 ms)", async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js') } } });
    const e1 = await expectCode(rt.sendAsync('m', 1, { timeoutMs: 2 ** 31 }), 'RINGPOOL_INVALID_OPTION');
    expect(e1.message).toContain(String(MAX_TIMER_MS));
    await expectCode(rt.ask('m', 1, { timeoutMs: 2 ** 31 }), 'RINGPOOL_INVALID_OPTION');
    await expectCode(rt.close({ timeoutMs: 2 ** 53 }), 'RINGPOOL_INVALID_OPTION');
    expect(() => createRuntime({ mailboxes: { m: { handler: fixture('noop.js'), leaseMs: 2 ** 31 } } })).toThrow(/leaseMs must be/);
    expect(() => createRuntime({ mailboxes: { m: { handler: fixture('noop.js') } }, startTimeoutMs: 2 ** 31 })).toThrow(/startTimeoutMs must be/);
  });
});

describe("delayMs past setTimeout's limit", () => {
  it('is accepted and waited for in steps: no TimeoutOverflowWarning, no 1 ms timer spinning', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on('warning', onWarning);
    try {
      const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 1 } }, tickMs: 20 });
      await rt.start();
      rt.send('m', 'in 24.8 days', { delayMs: 2 ** 31 });
      rt.send('m', 'in 285,000 years', { delayMs: 2 ** 53 });
      rt.send('m', 'now');
      await until(() => rt.stats('m').processed === 1);
      // A timer re-armed every millisecond would show as event-loop load here.
      const elu0 = performance.eventLoopUtilization();
      await new Promise((r) => setTimeout(r, 300));
      const busy = performance.eventLoopUtilization(elu0).utilization;
      expect(warnings.filter((w) => w.name === 'TimeoutOverflowWarning')).toEqual([]);
      expect(busy).toBeLessThan(0.5);
      expect(rt.stats('m')).toMatchObject({ delayed: 2, processed: 1 });
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('timerDelay arms at most the limit, and exactly the rest once it is under it', () => {
    expect(timerDelay(1000 + 2 ** 53, 1000)).toBe(MAX_TIMER_MS);
    expect(timerDelay(1000 + MAX_TIMER_MS + 5, 1000)).toBe(MAX_TIMER_MS);
    // After one full step, 5 ms remain: the next timer is armed for those.
    expect(timerDelay(1000 + MAX_TIMER_MS + 5, 1000 + MAX_TIMER_MS)).toBe(5);
    expect(timerDelay(10, 20)).toBe(0);
  });
});

describe('sendAsync and ask', () => {
  it("under overflow 'reject', a refusal is counted in rejectedBy.queue_full (sendAsync and ask alike)", async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), overflow: 'reject', capacityBytes: 1 << 20, maxMessageBytes: 1024 } } });
    // Not started: nothing drains, so the ring fills.
    let sent = 0;
    for (;;) {
      try {
        rt.send('m', 'x'.repeat(900));
        sent++;
      } catch (err) {
        expect((err as { code?: string }).code).toBe('RINGPOOL_QUEUE_FULL');
        break;
      }
    }
    expect(sent).toBeGreaterThan(100);
    await expectCode(rt.sendAsync('m', 'x'.repeat(900)), 'RINGPOOL_QUEUE_FULL');
    await expectCode(rt.ask('m', 'x'.repeat(900)), 'RINGPOOL_QUEUE_FULL');
    expect(rt.stats('m').rejectedBy.queue_full).toBe(3);
  });

  it('an already aborted signal sends nothing, even with room', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js') } } });
    const ac = new AbortController();
    ac.abort(new Error('changed my mind'));
    await expect(rt.sendAsync('m', 1, { signal: ac.signal })).rejects.toThrow('changed my mind');
    expect(rt.stats('m').enqueued).toBe(0);
  });
});

describe('retries and redeliveries waiting for room go before fresh sends', () => {
  it('their units count as used: room that frees up goes to them, a fresh send meets a full ring', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('keep.js'), minThreads: 1, maxThreads: 1, capacityBytes: 1 << 20, maxMessageBytes: 4096 } }, tickMs: 20 });
    await rt.start();
    const pad = 'p'.repeat(1000);
    for (let i = 0; i < 5; i++) rt.send('m', { redriven: i, pad });
    await rt.onIdle();
    rt.resize('m', 0);
    await until(() => rt.stats('m').threads === 0);
    // A full ring, then the 5 dead letters redriven: they wait for room outside it.
    let fresh = 0;
    for (;;) {
      try {
        rt.send('m', { fresh: fresh, pad });
        fresh++;
      } catch {
        break;
      }
    }
    expect(rt.deadLetters('m').redrive()).toBe(5);
    expect(rt.stats('m').depth).toBe(fresh + 5);
    // Free room for a few records by hand (claim, ack, reclaim as a consumer would), before the dispatcher hears of it.
    const ring = rt.mailbox('m')!.ring;
    const out = new Int32Array(8);
    const n = ring.claim(63, 2, out); // room for 2 records; the 5 redriven need more
    for (let i = 0; i < n; i++) ring.ack(63, out[i]!);
    expect(ring.reclaim()).toBeGreaterThan(0);
    // That room is the redriven messages' (their units count as used): the fresh send is refused.
    await expectCode(() => rt.send('m', { fresh: -1, pad }), 'RINGPOOL_QUEUE_FULL');
  });
});

describe('lifecycle', () => {
  it('a failed start() finishes the runtime: onIdle() resolves, close is emitted with what was left', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('syntax-error.js') } }, startTimeoutMs: 5_000 });
    rt.send('m', 'sent before start');
    const closed = new Promise<unknown>((r) => rt.once('close', r));
    await expectCode(rt.start(), 'RINGPOOL_HANDLER_LOAD');
    await expect(Promise.race([rt.onIdle().then(() => 'idle'), new Promise((r) => setTimeout(() => r('hung'), 2_000))])).resolves.toBe('idle');
    await expect(closed).resolves.toMatchObject({ drained: false, left: { m: { ready: 1 } } });
    expect(rt.state).toBe('closed');
  });

  it('close() gives passivate hooks up to leaseMs before it terminates the threads', async () => {
    const ends: string[] = [];
    const bc = new BroadcastChannel('ringpool-test-long-passivate');
    bc.onmessage = (e) => ends.push((e as MessageEvent<{ key: string }>).data.key);
    try {
      const rt = runtime({ mailboxes: { a: { handler: fixture('long-passivate-actor.js'), minThreads: 1, maxThreads: 1, leaseMs: 9_000 } } });
      await rt.start();
      await rt.ask('a', 'hi', { key: 'slow-6000' });
      const report = await rt.close({ timeoutMs: 5_000 });
      expect(report.drained).toBe(true);
      await until(() => ends.length > 0, 2_000, 'the hook to report its end');
      expect(ends).toEqual(['slow-6000']);
    } finally {
      bc.close();
    }
  }, 20_000);

  it("workerStats(): a replacement thread's acked counts its own acks only", async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('crash-some.js'), minThreads: 1, maxThreads: 1, autoscale: false } }, tickMs: 20 });
    await rt.start();
    for (let i = 0; i < 50; i++) rt.send('m', { i });
    await rt.onIdle();
    rt.send('m', { crash: true });
    await rt.onIdle();
    for (let i = 0; i < 7; i++) rt.send('m', { i });
    await rt.onIdle();
    const [w] = await rt.workerStats('m');
    // The replacement ran the crashed message's retry and the 7: not the first thread's 50.
    expect(w!.acked).toBe(8);
    expect(rt.stats('m').processed).toBe(58);
  });
});

describe('dead letters past deadLetterLimit', () => {
  it('are counted in stats().deadLettersDropped and in ringpool_dead_letters_dropped_total', async () => {
    const registry = new Registry();
    const rt = runtime({ mailboxes: { m: { handler: fixture('keep.js'), deadLetterLimit: 3, minThreads: 1, maxThreads: 1 } } });
    createMetrics(rt, { registry });
    await rt.start();
    for (let i = 0; i < 10; i++) rt.send('m', { i });
    await rt.onIdle();
    expect(rt.stats('m')).toMatchObject({ deadLettered: 10, deadLetterSize: 3, deadLettersDropped: 7 });
    expect(await registry.metrics()).toMatch(/^ringpool_dead_letters_dropped_total\{mailbox="m"\} 7$/m);
  });
});

describe('serve()', () => {
  it('watches a runtime exported after it started, and closes with the last one', async () => {
    const registry = new Registry();
    const a = runtime({ mailboxes: { a: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 1 } } });
    createMetrics(a, { registry });
    const server = await serve(registry, { port: 0 });
    const b: Runtime = runtime({ mailboxes: { b: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 1 } } });
    createMetrics(b, { registry });
    await a.start();
    await b.start();
    await a.close();
    // b still runs: the server must still answer.
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('mailbox="b"');
    await b.close();
    const end = Date.now() + 3_000;
    let closed = false;
    while (!closed && Date.now() < end) {
      closed = await fetch(`${server.url}/healthz`).then(
        () => false,
        () => true,
      );
      if (!closed) await new Promise((r) => setTimeout(r, 20));
    }
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
  });
});
