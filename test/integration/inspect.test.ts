// rt.inspect(), rt.message() and rt.promote() (issue #33, the console's queue view): messages ready in the ring and
// waiting for room, in flight on a thread (which, since when), delayed and retrying; one by id with its payload; a
// delayed message promoted runs now. Real threads, a real ring.
import { describe, expect, it } from 'vitest';
import { expectCode, fixture, runtime, until } from '../helpers.js';

describe('looking into a mailbox', () => {
  it('shows in-flight, ready and delayed messages without taking them, finds one by id, promotes a delayed one', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('slow.js'), minThreads: 1, maxThreads: 1, concurrency: 2, autoscale: false } } });
    await rt.start();
    const t0 = Date.now();
    // Two run for 1.5 s (concurrency 2), three wait behind them, one is due in a minute.
    const running = [rt.send('m', { ms: 1_500, n: 0 }), rt.send('m', { ms: 1_500, n: 1 })];
    await until(() => rt.stats('m').inFlight === 2, 5_000, 'two in flight');
    const ready = [0, 1, 2].map((n) => rt.send('m', { ms: 1, n: 10 + n }, n === 1 ? { key: 'k' } : undefined));
    const later = rt.send('m', { ms: 1, n: 99, note: 'later' }, { delayMs: 60_000 });

    const inFlight = rt.inspect('m', { state: 'in-flight' });
    expect(inFlight.total).toBe(2);
    expect(inFlight.messages.map((m) => m.id).sort()).toEqual([...running].sort());
    const threads = new Set(inFlight.messages.map((m) => m.thread));
    expect(threads.size).toBe(1);
    expect([...threads][0]).toBeGreaterThan(0);
    const since = inFlight.messages.map((m) => m.runningSince).filter((v) => v !== null) as number[];
    expect(since.length).toBeGreaterThanOrEqual(1); // the loop's oldest running handler
    expect(since[0]!).toBeGreaterThanOrEqual(t0 - 50);
    expect(since[0]!).toBeLessThanOrEqual(Date.now());
    expect(inFlight.messages[0]).toMatchObject({ state: 'in-flight', attempt: 1, key: null, dueAt: null });

    const r = rt.inspect('m', { state: 'ready', limit: 2 });
    expect(r.total).toBe(3);
    expect(r.messages.map((m) => m.id)).toEqual(ready.slice(0, 2));
    expect(r.messages[1]).toMatchObject({ key: 'k', thread: null, runningSince: null });
    expect(r.messages[0]!.bytes).toBeGreaterThan(0);
    expect(r.messages[0]!.sentAt!).toBeGreaterThanOrEqual(t0 - 50);

    const d = rt.inspect('m', { state: 'delayed' });
    expect(d.total).toBe(1);
    expect(d.messages[0]).toMatchObject({ id: later, state: 'delayed', attempt: 1 });
    expect(d.messages[0]!.dueAt! - Date.now()).toBeGreaterThan(50_000);

    expect(rt.message('m', ready[2]!)).toMatchObject({ id: ready[2], state: 'ready', payload: { ms: 1, n: 12 } });
    expect(rt.message('m', later)).toMatchObject({ state: 'delayed', payload: { note: 'later' } });
    expect(rt.message('m', 123_456)).toBeNull();
    expect(rt.promote('m', 123_456)).toBe(false);

    // Nothing was taken by looking: all six run, the delayed one once promoted.
    expect(rt.promote('m', later)).toBe(true);
    expect(rt.inspect('m', { state: 'delayed' }).total).toBe(0);
    await until(() => rt.stats('m').processed === 6, 10_000, 'all six ran');
    expect(rt.inspect('m', { state: 'ready' }).total).toBe(0);
    expect(rt.inspect('m', { state: 'in-flight' }).total).toBe(0);
    expectCode(() => rt.inspect('m', { state: 'done' as 'ready' }), 'RINGPOOL_INVALID_OPTION');
    await rt.close();
  });

  it('shows a retrying message as delayed, with its attempt and when it is due', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('fail.js'), minThreads: 1, maxThreads: 1, maxAttempts: 3, backoff: { baseMs: 30_000, maxMs: 30_000 } } } });
    await rt.start();
    const id = rt.send('m', { n: 1, failures: 1 });
    await until(() => rt.inspect('m', { state: 'delayed' }).total === 1, 5_000, 'the retry held');
    const held = rt.inspect('m', { state: 'delayed' }).messages[0]!;
    expect(held).toMatchObject({ id, attempt: 2, state: 'delayed' });
    // Full jitter in [0, 30 s]: promoted unless it came due on its own meanwhile (under 1 % of runs).
    if (held.dueAt! - Date.now() > 200) expect(rt.promote('m', id)).toBe(true);
    await until(() => rt.stats('m').processed === 1, 5_000, 'the retry ran at once');
    await rt.close();
  });
});
