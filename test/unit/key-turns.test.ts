// Whose turn it is per key, without threads: the key table in a SharedArrayBuffer, KeyTurns over a recording
// backlog. A held message goes back once its key's DONE word reaches its seq, with the run of seqs behind it.
import { describe, expect, it } from 'vitest';
import { allocateKeyTable, ENQUEUED, KEY_WORDS, K_DONE, K_WAITING } from '../../dist/runtime/shared/layout.js';
import { Ring } from '../../dist/runtime/shared/ring.js';
import { HeldMessage } from '../../dist/runtime/held.js';
import { KeyTurns, turnsDue } from '../../dist/runtime/mailbox/key-turns.js';

function rig() {
  const table = new Int32Array(allocateKeyTable());
  const ring = new Ring(Ring.allocate({ capacityBytes: 1 << 16, maxPayloadBytes: 1024 }));
  const log: string[] = [];
  const turns = new KeyTurns({
    table,
    ring,
    backlog: {
      hold: (h: HeldMessage) => void log.push(`hold ${h.keySeq}`),
      unhold: (h: HeldMessage) => void log.push(`unhold ${h.keySeq}`),
      pend: (h: HeldMessage) => void log.push(`pend ${h.keySeq}`),
      flush: () => void log.push('flush'),
    },
  });
  const msg = (slot: number, seq: number): HeldMessage => {
    const h = new HeldMessage(seq, 1, 0, 'k', new Uint8Array(4), true, undefined);
    h.keySlot = slot;
    h.keySeq = seq;
    return h;
  };
  const done = (slot: number, v?: number): number => (v === undefined ? Atomics.load(table, slot * KEY_WORDS + K_DONE) : (Atomics.store(table, slot * KEY_WORDS + K_DONE, v), v));
  return { table, ring, log, turns, msg, done };
}

describe('turnsDue: the turn and the run of consecutive seqs behind it', () => {
  it('counts from the key\'s DONE, in seq order, across the int32 wrap', () => {
    expect(turnsDue([{ keySeq: 4 }, { keySeq: 5 }, { keySeq: 7 }], 4)).toBe(2);
    expect(turnsDue([{ keySeq: 5 }], 4)).toBe(0);
    expect(turnsDue([], 4)).toBe(0);
    expect(turnsDue([{ keySeq: 2 ** 31 - 1 }, { keySeq: -(2 ** 31) }, { keySeq: -(2 ** 31) + 1 }], 2 ** 31 - 1)).toBe(3);
  });
});

describe('KeyTurns (no threads)', () => {
  it('holds messages claimed before their turn and lets them go, in order, when DONE reaches them', () => {
    const r = rig();
    r.turns.block(r.msg(3, 2));
    r.turns.block(r.msg(3, 1));
    expect(r.log).toEqual(['hold 2', 'hold 1']);
    expect(r.turns.holds(3)).toBe(true);
    expect(Atomics.load(r.table, 3 * KEY_WORDS + K_WAITING)).toBe(2);
    r.log.length = 0;
    r.done(3, 1); // the consumer ran seq 0
    r.turns.releaseTurns(3);
    expect(r.log).toEqual(['unhold 1', 'pend 1', 'unhold 2', 'pend 2', 'flush']);
    expect(Atomics.load(r.table, 3 * KEY_WORDS + K_WAITING)).toBe(0);
    expect(r.turns.holds(3)).toBe(false);
  });

  it('a message whose turn it is already goes back at once', () => {
    const r = rig();
    r.done(5, 7);
    r.turns.block(r.msg(5, 7));
    expect(r.log).toEqual(['hold 7', 'unhold 7', 'pend 7', 'flush']);
  });

  it('a seq no message will carry (a send that died before publishing) is passed over when its turn comes', () => {
    const r = rig();
    Atomics.store(r.ring.i32, ENQUEUED, 5);
    r.turns.block(r.msg(2, 1));
    r.turns.unaccept(2, 0);
    expect(Atomics.load(r.ring.i32, ENQUEUED)).toBe(4);
    expect(r.done(2)).toBe(1);
    expect(r.log).toEqual(['hold 1', 'unhold 1', 'pend 1', 'flush']);
    // Unkeyed: only the count.
    r.turns.unaccept(-1, 0);
    expect(Atomics.load(r.ring.i32, ENQUEUED)).toBe(3);
  });

  it('a dead letter passes its key\'s turn on (once: a redrive takes a new place)', () => {
    const r = rig();
    r.turns.block(r.msg(4, 1));
    const dead = r.msg(4, 0);
    r.turns.passTurn(dead);
    expect(r.done(4)).toBe(1); // DONE 0 -> 1: seq 1 may go (its consumer moves DONE past it)
    expect(dead.keySlot).toBe(-1);
    expect(r.log).toEqual(['hold 1', 'unhold 1', 'pend 1', 'flush']);
    r.turns.passTurn(dead);
    expect(r.done(4)).toBe(1);
  });
});
