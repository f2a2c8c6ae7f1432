// The lease watchdog without threads: a real ring with a record claimed by consumer slot 0, the slot's
// words written as its loop would (the running unit, its start time), a fake clock and recording fakes.
import { describe, expect, it } from 'vitest';
import { codecOf } from '../../dist/runtime/shared/codec.js';
import { allocateKeyTable, GUARD_FREE, GUARD_KILLED, GUARD_SENDING, SLOT_REVOKED, SLOT_RUNNING, ST_CLAIMED, ST_TAKEN } from '../../dist/runtime/shared/layout.js';
import { Producer } from '../../dist/runtime/shared/producer.js';
import { Ring } from '../../dist/runtime/shared/ring.js';
import { HeldMessage } from '../../dist/runtime/held.js';
import { Leases, leaseExpired } from '../../dist/runtime/mailbox/leases.js';

function rig(inFlight = 1) {
  const ring = new Ring(Ring.allocate({ capacityBytes: 1 << 16, maxPayloadBytes: 1024 }));
  new Producer('m', ring, codecOf('json'), 1024, () => {}, new Int32Array(allocateKeyTable())).send({ a: 1 }, undefined);
  const out = new Int32Array(4);
  expect(ring.claim(0, 4, out)).toBe(1);
  const unit = out[0]!;
  const slot = ring.slot(0);
  slot.setStatus(SLOT_RUNNING);
  slot.running(unit, 10_000);
  slot.setInflight(inFlight);
  const loop = { slot: 0, state: 'running', threadId: 7, revokedUnit: -1, revokedSeveral: false };
  const log: string[] = [];
  const tally = { handlerTimeouts: 0, redelivered: 0 };
  const leases = new Leases({
    mailbox: 'm',
    ring,
    leaseMs: 500,
    loops: () => [loop as never],
    terminate: () => void log.push('terminate'),
    failures: {
      takeBack: (u: number, expected: number) => (Atomics.compareExchange(ring.state, u, expected, ST_TAKEN) === expected ? new HeldMessage(1, 1, 0, null, new Uint8Array(1), true, undefined) : null),
      fail: (_h: HeldMessage, e: { name: string }, kind: string) => (log.push(`fail ${e.name} ${kind}`), true),
    },
    tally,
    backlog: { pend: (h: HeldMessage) => void log.push(`pend suspect=${h.suspect}`), flush: () => void log.push('flush') },
    emitHandlerTimeout: (ev: { leaseMs: number; threadId: number }) => void log.push(`timeout event ${ev.leaseMs} ${ev.threadId}`),
    emitError: (e: Error) => void log.push(`error ${e.message}`),
  });
  return { ring, unit, loop, log, tally, leases };
}

describe('the lease watchdog (no threads, fake clock)', () => {
  it('leaseExpired: past the lease, counted from the handler\'s start', () => {
    expect(leaseExpired(1_000, 1_500, 500)).toBe(false);
    expect(leaseExpired(1_000, 1_501, 500)).toBe(true);
  });

  it('within its lease nothing happens; past it the record is taken back, retried as a timeout, and the thread ended', () => {
    const r = rig();
    r.leases.watch(10_500);
    expect(r.log).toEqual([]);
    r.leases.watch(10_501);
    expect(r.log).toEqual(['timeout event 500 7', 'fail LeaseExpired timeout', 'terminate']);
    expect(r.tally).toEqual({ handlerTimeouts: 1, redelivered: 1 });
    expect(r.loop).toMatchObject({ state: 'revoked', revokedUnit: r.unit, revokedSeveral: false });
    expect(r.ring.slot(0).guard()).toBe(GUARD_KILLED);
    expect(r.ring.slot(0).status()).toBe(SLOT_REVOKED);
    // A revoked loop is not looked at again.
    r.leases.watch(20_000);
    expect(r.tally.handlerTimeouts).toBe(1);
  });

  it('never inside a ctx.send() (the send guard held): it waits for the next tick', () => {
    const r = rig();
    r.ring.slot(0).setGuard(GUARD_SENDING);
    r.leases.watch(11_000);
    expect(r.log).toEqual([]);
    expect(Atomics.load(r.ring.state, r.unit)).toBe(ST_CLAIMED + 0);
    r.ring.slot(0).setGuard(GUARD_FREE);
    r.leases.watch(11_000);
    expect(r.tally.handlerTimeouts).toBe(1);
  });

  it('acked just as the lease ran out: the slot is left as it was', () => {
    const r = rig();
    r.ring.ack(0, r.unit);
    r.leases.watch(11_000);
    expect(r.log).toEqual([]);
    expect(r.ring.slot(0).status()).toBe(SLOT_RUNNING);
    expect(r.ring.slot(0).guard()).toBe(GUARD_FREE);
  });

  it('several handlers ran on the thread: none is charged, the message goes back flagged to run alone', () => {
    const r = rig(3);
    r.leases.watch(11_000);
    expect(r.log).toEqual(['timeout event 500 7', 'pend suspect=true', 'flush', 'terminate']);
    expect(r.tally.redelivered).toBe(1);
    expect(r.loop.revokedSeveral).toBe(true);
  });
});
