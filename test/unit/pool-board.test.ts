// The board of a shared pool of consumer threads (runtime/shared/pool-board.ts, issue #28): READY bits per lane,
// read 32 lanes a word, and a wake word per pool thread. No threads here;
// test/integration/pool-board-wake.test.ts
// parks a real worker thread on it.
import { describe, expect, it } from 'vitest';
import { PoolBoard } from '../../dist/runtime/shared/pool-board.js';

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

  it('reads 32 lanes a word (what a thread scans under its mask of waiting lanes)', () => {
    const b = new PoolBoard(PoolBoard.allocate(1000));
    for (const l of [3, 40, 63, 999]) b.markReady(l, 0);
    expect([0, 1, 31].map((w) => b.wordOf(w))).toEqual([1 << 3, (1 << 8) | (1 << 31), 1 << 7]);
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
