// The shared pool's decisions (runtime/pool/decide.ts, issue #28), without threads: where a new lane goes, and
// whom a dead thread's fault is charged to.
import { describe, expect, it } from 'vitest';
import { blame, placeLane } from '../../dist/runtime/pool/decide.js';

const t = (lanes: number, hosts = false) => ({ lanes, hosts });

describe('placeLane: which thread runs a new loop', () => {
  it('puts a lane on the least loaded thread; adds a thread only for a mailbox that runs on every one', () => {
    expect(placeLane([], 0, 2)).toBe('spawn'); // the first lane makes the first thread
    expect(placeLane([t(0)], 1, 4)).toBe(0); // the probe's thread, idle: it takes the first lane
    expect(placeLane([t(1)], 1, 2)).toBe(0); // another mailbox: beside it, no new thread
    expect(placeLane([t(5), t(3)], 2, 2)).toBe(1);
    expect(placeLane([t(2), t(2)], 2, 2)).toBe(0); // a tie: the first
  });

  it("never puts two lanes of one mailbox on one thread; spawns for it while the pool has room, else refuses", () => {
    expect(placeLane([t(1, true), t(9)], 2, 2)).toBe(1);
    expect(placeLane([t(1, true)], 1, 2)).toBe('spawn');
    expect(placeLane([t(1, true), t(1, true)], 2, 2)).toBe(-1);
    // Threads being killed or quitting are not in `live` but count against maxThreads.
    expect(placeLane([t(1, true)], 2, 2)).toBe(-1);
  });
});

describe('blame: whom a dead thread charges', () => {
  const lanes = ['a', 'b', 'c'];
  const busyOf = (set: string[]) => (l: string) => set.includes(l);

  it('the lane the thread named (a crash in a handler\'s synchronous part) alone, busy neighbours or not', () => {
    expect(blame(lanes, ['b'], busyOf(['a', 'b', 'c']), 'crash')).toEqual({ blamed: new Set(['b']), several: false });
  });

  it('else the lanes with a handler in flight; several of them are each sent back to run alone', () => {
    expect(blame(lanes, [], busyOf(['c']), 'crash')).toEqual({ blamed: new Set(['c']), several: false });
    expect(blame(lanes, [], busyOf(['a', 'c']), 'crash')).toEqual({ blamed: new Set(['a', 'c']), several: true });
  });

  it('every lane when none was busy (each reports the crash, nothing to charge); nobody at close', () => {
    expect(blame(lanes, [], busyOf([]), 'crash')).toEqual({ blamed: new Set(lanes), several: false });
    expect(blame(lanes, ['a'], busyOf(['a']), 'close')).toEqual({ blamed: new Set(), several: false });
  });

  it('a lease kill: only the lane whose handler held the thread, never the busy neighbours', () => {
    expect(blame(lanes, ['b'], busyOf(['a', 'b', 'c']), 'kill')).toEqual({ blamed: new Set(['b']), several: false });
    expect(blame(lanes, [], busyOf(['a', 'c']), 'kill')).toEqual({ blamed: new Set(), several: false });
  });
});
