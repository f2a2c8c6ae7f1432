// The board of a shared pool of consumer threads (runtime/shared/pool-board.ts, issue #28): READY bits per lane,
// found round robin at one load per 32 lanes, and a wake word per pool thread. No threads here
// (the bit search is checked against a plain scan on random boards); test/integration/pool-board-wake.test.ts
// parks a real worker thread on it.
import { describe, expect, it } from 'vitest';
import { PoolBoard } from '../../dist/runtime/shared/pool-board.js';

/** The next set lane at or after `from`, going round: a plain scan. */
function naiveNext(ready: Set<number>, lanes: number, from: number): number {
  for (let k = 0; k < lanes; k++) {
    const l = (from + k) % lanes;
    if (ready.has(l)) return l;
  }
  return -1;
}

describe('PoolBoard: which lanes have work', () => {
  it('sizes itself in whole words of 32 lanes and refuses no lanes', () => {
    expect(new PoolBoard(PoolBoard.allocate(1)).lanes).toBe(32);
    expect(new PoolBoard(PoolBoard.allocate(1000)).lanes).toBe(1024);
    expect(() => PoolBoard.allocate(0)).toThrow(RangeError);
  });

  it('sets, reads and clears a lane\'s bit, across word boundaries', () => {
    const b = new PoolBoard(PoolBoard.allocate(1000));
    for (const l of [0, 31, 32, 999]) {
      expect(b.isReady(l)).toBe(false);
      b.markReady(l, 0);
      expect(b.isReady(l)).toBe(true);
    }
    b.clearReady(31);
    expect([0, 31, 32, 999].map((l) => b.isReady(l))).toEqual([true, false, true, true]);
  });

  it('finds the next lane with work round robin, wrapping past the last one', () => {
    const b = new PoolBoard(PoolBoard.allocate(1000));
    expect(b.nextReady(0)).toBe(-1);
    for (const l of [3, 40, 999]) b.markReady(l, 0);
    expect([0, 3, 4, 41, 999, 1000, 5000].map((f) => b.nextReady(f))).toEqual([3, 3, 40, 999, 999, 3, 999]);
    b.clearReady(40);
    b.clearReady(999);
    expect(b.nextReady(4)).toBe(3); // only a lane below the start is left: found after going round
  });

  it('agrees with a plain scan on random boards', () => {
    let seed = 7;
    const rand = (n: number): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
    for (let round = 0; round < 300; round++) {
      const lanes = 1 + rand(200);
      const b = new PoolBoard(PoolBoard.allocate(lanes));
      const ready = new Set<number>();
      for (let i = rand(6); i > 0; i--) {
        const l = rand(lanes);
        ready.add(l);
        b.markReady(l, 0);
      }
      for (let i = 0; i < 5; i++) {
        const from = rand(b.lanes);
        expect(b.nextReady(from)).toBe(naiveNext(ready, b.lanes, from));
      }
    }
  });
});

describe('PoolBoard: each thread\'s wake word', () => {
  it('wakes only a host that has announced itself, and a thread that announced cannot miss a mark', () => {
    const b = new PoolBoard(PoolBoard.allocate(64));
    expect(b.markReady(5, 0b11)).toBe(false); // nobody parked: no wake-up paid
    b.clearReady(5);
    const seen = b.announce(1);
    expect(b.markReady(6, 0b01)).toBe(false); // thread 1 does not host lane 6: not woken
    expect(b.wait(1, seen, 1)).toBe('timed-out');
    expect(b.markReady(6, 0b10)).toBe(false); // the bit was set: whoever set it did the waking
    expect(b.markReady(8, 0b10)).toBe(true);
    // The mark came after the announce: the wait returns at once instead of sleeping through it.
    expect(b.wait(1, seen, 1000)).toBe('not-equal');
    expect(b.markReady(7, 0b10)).toBe(false); // one wake-up per park: the flag went down with the first
    b.leave(1);
  });

  it('wakes every parked host of a lane, thread 31 included', () => {
    const b = new PoolBoard(PoolBoard.allocate(64));
    const seen = [0, 31].map((t) => b.announce(t));
    expect(b.markReady(3, (1 << 31) | 1)).toBe(true);
    expect(b.wait(0, seen[0]!, 1000)).toBe('not-equal');
    expect(b.wait(31, seen[1]!, 1000)).toBe('not-equal');
  });

  it('a hand-off wakes the thread that runs the owner loop, whatever the mailbox bit says, and is taken once', () => {
    const b = new PoolBoard(PoolBoard.allocate(64));
    b.markReady(4, 0); // the mailbox's bit is set (another loop of it will clear it): a hand-off must not rely on it
    const seen = b.announce(2);
    b.handoff(2);
    expect(b.wait(2, seen, 1000)).toBe('not-equal');
    expect(b.takeHandoff(2)).toBe(true);
    expect(b.takeHandoff(2)).toBe(false);
    expect(b.takeHandoff(1)).toBe(false);
    b.handoff(1); // not parked: raised, no wake-up
    expect(b.takeHandoff(1)).toBe(true);
  });

  it('names the lane whose handler a thread runs, -1 after reset', () => {
    const b = new PoolBoard(PoolBoard.allocate(64));
    b.i32[b.runningWord(2)] = 9;
    expect(b.i32[b.runningWord(2)]).toBe(9);
    b.reset(2);
    expect(b.i32[b.runningWord(2)]).toBe(-1);
    expect(new Set([0, 1, 2, 31].map((t) => b.runningWord(t))).size).toBe(4);
  });
});
