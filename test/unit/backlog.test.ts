// What waits outside the ring, without threads: a real ring, a fake clock. Delayed messages go in when due;
// what finds no room waits and counts as used space for every producer (HELD_UNITS_WORD), freed room goes to it.
import { describe, expect, it } from 'vitest';
import { codecOf } from '../../dist/runtime/shared/codec.js';
import { allocateKeyTable, HELD_UNITS_WORD } from '../../dist/runtime/shared/layout.js';
import { Producer } from '../../dist/runtime/shared/producer.js';
import { Ring } from '../../dist/runtime/shared/ring.js';
import { HeldMessage } from '../../dist/runtime/held.js';
import { Backlog } from '../../dist/runtime/mailbox/backlog.js';

function rig(capacityBytes = 1 << 16) {
  const sab = Ring.allocate({ capacityBytes, maxPayloadBytes: 1024 });
  const ring = new Ring(sab);
  const republish = new Ring(sab);
  republish.countHeld = false;
  const keys = new Int32Array(allocateKeyTable());
  const clock = { t: 1_000 };
  let needsRoom = 0;
  const backlog = new Backlog({ ring, republish, keys, clock: () => clock.t, onNeedsRoom: () => void needsRoom++ });
  const producer = new Producer('m', ring, codecOf('json'), 1024, () => {}, keys);
  const held = (id: number): HeldMessage => new HeldMessage(id, 2, 0, null, new Uint8Array(Buffer.from(JSON.stringify({ id }))), true, undefined);
  return { ring, backlog, clock, producer, held, needsRoom: () => needsRoom };
}

describe('Backlog (no threads, fake clock)', () => {
  it('a delayed message waits for its due time, then goes into the ring with its attempt', () => {
    const r = rig();
    r.backlog.holdDelayed(r.held(7), 100);
    expect(r.backlog.delayedCount).toBe(1);
    r.clock.t = 1_099;
    r.backlog.releaseDue();
    expect(r.backlog.delayedCount).toBe(1);
    expect(r.ring.depth()).toBe(0);
    r.clock.t = 1_100;
    r.backlog.releaseDue();
    expect(r.backlog.delayedCount).toBe(0);
    expect(r.ring.depth()).toBe(1);
    const out = new Int32Array(4);
    expect(r.ring.claim(0, 4, out)).toBe(1);
    expect([r.ring.id(out[0]!), r.ring.attempt(out[0]!)]).toEqual([7, 2]);
    r.backlog.stop();
  });

  it('what finds no room waits, counted as used for every producer; freed room goes to it before fresh sends', () => {
    const r = rig(4096);
    let sent = 0;
    try {
      for (;;) {
        r.producer.send({ pad: 'x'.repeat(100) }, undefined);
        sent++;
      }
    } catch (err) {
      expect((err as { code: string }).code).toBe('RINGPOOL_QUEUE_FULL');
    }
    const h = r.held(99);
    r.backlog.pend(h);
    r.backlog.flush();
    expect(r.backlog.pendingCount).toBe(1);
    expect(r.needsRoom()).toBe(1);
    expect(Atomics.load(r.ring.i32, HELD_UNITS_WORD)).toBe(h.units);
    expect(r.backlog.oldestPendingAt(5_000)).toBe(5_000);
    // Consumers free the whole ring: a fresh send still finds the held units counted as used...
    const out = new Int32Array(64);
    for (let n = r.ring.claim(0, 64, out); n > 0; n = r.ring.claim(0, 64, out)) for (let i = 0; i < n; i++) r.ring.ack(0, out[i]!);
    r.ring.reclaim();
    // ...and the flush puts the held one in first.
    r.backlog.flush();
    expect(r.backlog.pendingCount).toBe(0);
    expect(Atomics.load(r.ring.i32, HELD_UNITS_WORD)).toBe(0);
    expect(r.ring.depth()).toBe(1);
    expect(sent).toBeGreaterThan(10);
  });

  it('keyed messages held for their turn count too, until let go', () => {
    const r = rig();
    const a = r.held(1);
    const b = r.held(2);
    r.backlog.hold(a);
    r.backlog.hold(b);
    expect(r.backlog.blockedCount).toBe(2);
    expect(Atomics.load(r.ring.i32, HELD_UNITS_WORD)).toBe(a.units + b.units);
    r.backlog.unhold(a);
    expect(Atomics.load(r.ring.i32, HELD_UNITS_WORD)).toBe(b.units);
  });
});
