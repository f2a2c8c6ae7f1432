// The retry / dead-letter decision and the part that carries it out, without threads: a real ring in a
// SharedArrayBuffer, a fake clock, and recording fakes for what failures.ts is given. Microseconds a case.
import { describe, expect, it } from 'vitest';
import { codecOf } from '../../dist/runtime/shared/codec.js';
import { allocateKeyTable, FLAG_PARTITION, ST_CLAIMED } from '../../dist/runtime/shared/layout.js';
import { Producer } from '../../dist/runtime/shared/producer.js';
import { Ring } from '../../dist/runtime/shared/ring.js';
import { afterFailure } from '../../dist/runtime/mailbox/retry.js';
import { Failures } from '../../dist/runtime/mailbox/failures.js';
import type { HeldMessage } from '../../dist/runtime/held.js';

const policy = { maxAttempts: 3, backoff: { baseMs: 100, maxMs: 1_000 } };

describe('afterFailure: retry after a backoff with full jitter, or dead-letter, and why', () => {
  it('retries as the next attempt, due within the capped exponential backoff of now', () => {
    expect(afterFailure(1, 'error', policy, 5_000, () => 0)).toEqual({ retry: true, attempt: 2, dueAt: 5_000 });
    expect(afterFailure(1, 'error', policy, 5_000, () => 0.5)).toEqual({ retry: true, attempt: 2, dueAt: 5_050 });
    expect(afterFailure(2, 'crash', policy, 5_000, () => 0.5)).toEqual({ retry: true, attempt: 3, dueAt: 5_100 });
    // The ceiling doubles each attempt up to maxMs.
    const far = { maxAttempts: 50, backoff: { baseMs: 100, maxMs: 1_000 } };
    expect(afterFailure(20, 'timeout', far, 0, () => 0.999)).toMatchObject({ retry: true, attempt: 21, dueAt: 999 });
  });

  it('dead-letters at maxAttempts, naming the last failure; unrecoverable at once', () => {
    expect(afterFailure(3, 'error', policy, 0)).toEqual({ retry: false, reason: 'max_attempts' });
    expect(afterFailure(3, 'crash', policy, 0)).toEqual({ retry: false, reason: 'poison' });
    expect(afterFailure(3, 'timeout', policy, 0)).toEqual({ retry: false, reason: 'timeout' });
    expect(afterFailure(1, 'unrecoverable', policy, 0)).toEqual({ retry: false, reason: 'unrecoverable' });
  });
});

/** A ring with `n` messages sent and claimed by consumer slot 0; Failures over recording fakes at fake time `t`. */
function rig(n: number, opts: { maxAttempts?: number; keyed?: boolean; asks?: number; partition?: boolean; fenced?: Set<number> } = {}) {
  const sab = Ring.allocate({ capacityBytes: 1 << 16, maxPayloadBytes: 1024 });
  const ring = new Ring(sab);
  const keys = new Int32Array(allocateKeyTable());
  const producer = new Producer('m', ring, codecOf('json'), 1024, () => {}, keys);
  for (let i = 0; i < n; i++) {
    if (opts.partition) producer.offerBytes(Buffer.from(JSON.stringify({ i })), 1, 0, 'k', FLAG_PARTITION);
    else producer.send({ i }, opts.keyed ? { key: 'k' } : undefined);
  }
  const units = new Int32Array(64);
  expect(ring.claim(0, 64, units)).toBe(n);
  const clock = { t: 10_000 };
  const log: string[] = [];
  const tally = { failed: 0, retried: 0, redelivered: 0, deadLettered: 0, finishedHere: 0, deadBy: { max_attempts: 0, poison: 0, timeout: 0, unrecoverable: 0 } };
  const scheduled: HeldMessage[] = [];
  const pended: HeldMessage[] = [];
  const failures = new Failures({
    mailbox: 'm',
    ring,
    policy: { maxAttempts: opts.maxAttempts ?? 3, backoff: { baseMs: 100, maxMs: 1_000 } },
    clock: () => clock.t,
    wallClock: () => Math.floor(clock.t),
    tally,
    backlog: { schedule: (h: HeldMessage) => void scheduled.push(h), pend: (h: HeldMessage) => void pended.push(h), flush: () => void log.push('flush') },
    turns: { passTurn: (h: HeldMessage) => void log.push(`passTurn ${h.id}`) },
    sink: () => ({ add: (h: HeldMessage, reason: string) => (log.push(`letter ${h.id} ${reason}`), { id: h.id, reason }) as never, size: 0, dropped: 0, view: null as never }),
    outcomes: { retry: (id: number, attempt: number) => void log.push(`RETRY ${id} ${attempt}`), deadLettered: (h: HeldMessage, reason: string) => void log.push(`DEAD_LETTERED ${h.id} ${reason}`) },
    replies: { size: opts.asks ?? 0, fail: (id: number, err: Error & { code?: string }) => void log.push(`ask ${id} ${err.code}`) },
    emitDeadLetter: (l: { id: number }) => void log.push(`event ${l.id}`),
    emitError: (e: Error) => void log.push(`error ${e.message}`),
    fenced: (id: number) => opts.fenced?.has(id) ?? false,
  });
  return { ring, units: [...units.subarray(0, n)], clock, log, tally, scheduled, pended, failures };
}

describe('Failures: a nack, a crash, a dead letter (no threads, fake clock)', () => {
  it('a failed record of a partition this process lost is dropped (no retry, no letter, its key turn passed); one still owned retries', () => {
    const fenced = new Set<number>();
    const r = rig(2, { partition: true, fenced });
    const [a, b] = r.units.map((u) => r.ring.id(u));
    fenced.add(a!);
    r.failures.onNack(0, r.units[0]!, { name: 'RingpoolError', message: 'fenced' }, false);
    expect(r.scheduled).toHaveLength(0);
    expect(r.log).toEqual([`passTurn ${a}`]);
    expect(r.tally).toMatchObject({ failed: 0, retried: 0, deadLettered: 0 });
    r.failures.onNack(0, r.units[1]!, { name: 'Error', message: 'boom' }, false);
    expect(r.scheduled.map((h) => h.id)).toEqual([b]);
    expect(r.tally).toMatchObject({ failed: 1, retried: 1 });
  });

  it('a record of a partition still owned that its consumer refused to start (its lease lapsed on the thread\'s clock, renewed since) runs again at the same attempt: not a failure', () => {
    const r = rig(1, { partition: true, fenced: new Set() });
    r.failures.onNack(0, r.units[0]!, { name: 'RingpoolError', message: 'fenced', code: 'RINGPOOL_FENCED' }, false);
    expect(r.scheduled).toHaveLength(0);
    expect(r.pended.map((h) => h.attempt)).toEqual([1]);
    expect(r.tally).toMatchObject({ failed: 0, retried: 0, redelivered: 1 });
  });

  it('a nack takes the record back (TAKEN in the ring) and schedules attempt 2 after the backoff', () => {
    const r = rig(1);
    const id = r.ring.id(r.units[0]!);
    r.failures.onNack(0, r.units[0]!, { name: 'Error', message: 'boom' }, false);
    expect(r.tally).toMatchObject({ failed: 1, retried: 1, finishedHere: 1, deadLettered: 0 });
    expect(r.scheduled).toHaveLength(1);
    const h = r.scheduled[0]!;
    expect(h).toMatchObject({ id, attempt: 2, firstError: { message: 'boom' }, lastError: { message: 'boom' } });
    expect(h.dueAt).toBeGreaterThanOrEqual(10_000);
    expect(h.dueAt).toBeLessThanOrEqual(10_100);
    expect(r.log).toEqual([`RETRY ${id} 2`]);
    // A second nack of the same claim finds nothing (the CAS fails): the late result of a record taken back.
    r.failures.onNack(0, r.units[0]!, { name: 'Error', message: 'again' }, false);
    expect(r.tally.failed).toBe(1);
  });

  it('past maxAttempts: the feed is told first, then the letter, the waiting ask, the key turn and the event, in that order', () => {
    const r = rig(1, { maxAttempts: 1, asks: 1 });
    const id = r.ring.id(r.units[0]!);
    r.failures.onNack(0, r.units[0]!, { name: 'Error', message: 'boom' }, false);
    expect(r.log).toEqual([`DEAD_LETTERED ${id} max_attempts`, `letter ${id} max_attempts`, `ask ${id} RINGPOOL_DEAD_LETTERED`, `passTurn ${id}`, `event ${id}`]);
    expect(r.tally).toMatchObject({ failed: 1, retried: 0, deadLettered: 1, deadBy: { max_attempts: 1 } });
  });

  it('an UnrecoverableError dead-letters on attempt 1', () => {
    const r = rig(1);
    r.failures.onNack(0, r.units[0]!, { name: 'UnrecoverableError', message: 'no' }, true);
    expect(r.tally.deadBy.unrecoverable).toBe(1);
    expect(r.scheduled).toHaveLength(0);
  });

  it('recovering a dead slot: the running record fails as a crash, the batch it had not started goes back as it was', () => {
    const r = rig(3);
    const [running, ...rest] = r.units;
    const back = r.failures.recover(0, running!, { name: 'WorkerCrash', message: 'exit 1' });
    expect(back).toBe(2);
    expect(r.scheduled.map((h) => h.attempt)).toEqual([2]);
    expect(r.pended.map((h) => h.attempt)).toEqual([1, 1]);
    expect(r.tally).toMatchObject({ failed: 1, retried: 1, redelivered: 3 });
    for (const u of rest) expect(Atomics.load(r.ring.state, u)).not.toBe(ST_CLAIMED);
    expect(r.log.at(-1)).toBe('flush');
    // A crash on the last attempt is poison.
    const p = rig(1, { maxAttempts: 1 });
    p.failures.recover(0, p.units[0]!, { name: 'WorkerCrash', message: 'exit 1' });
    expect(p.tally.deadBy.poison).toBe(1);
  });

  it('a suspect batch (several handlers were running) comes back flagged to run alone', () => {
    const r = rig(2);
    r.failures.recover(0, -1, { name: 'WorkerCrash', message: 'exit 1' }, true);
    expect(r.pended.map((h) => h.suspect)).toEqual([true, true]);
    expect(r.tally.failed).toBe(0);
  });
});
