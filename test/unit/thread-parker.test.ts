// The shared pool thread's decision of which waiting loops to resume (workers/pool/parker.ts, issue #28), with a fake
// clock and no threads: a loop whose mailbox bit is set at once; one holding keyed records for their turn after
// 10 ms of clock; one whose ring has work that no bit shows (the safety net) after 100 ms; one with a record in its
// hand-off queue when the pusher raised the thread's HANDOFF word. A busy loop stays active, so the thread never parks.
import { describe, expect, it } from 'vitest';
import { PoolBoard } from '../../dist/runtime/shared/pool-board.js';
import { allocateKeyTable } from '../../dist/runtime/shared/layout.js';
import { handoffPush } from '../../dist/runtime/shared/handoff.js';
import { Pace } from '../../dist/workers/loop/park.js';
import { ThreadParker } from '../../dist/workers/pool/parker.js';

interface Fake {
  work: boolean;
  busy: boolean;
  resumed: boolean;
}

function setUp() {
  const board = new PoolBoard(PoolBoard.allocate(64));
  let clock = 1_000;
  const parker = new ThreadParker(board, 0, () => clock);
  const keys = new Int32Array(allocateKeyTable());
  const lane = (bit: number, c: number) => {
    const f: Fake = { work: false, busy: false, resumed: false };
    const pace = new Pace();
    const parts = {
      ring: { reclaim() {}, hasReady: () => f.work },
      keys,
      c,
      pace,
      running: () => true,
      inflight: () => 0,
      busy: () => f.busy,
    };
    const p = parker.add(parts as never, bit);
    const park = (): void => {
      f.resumed = false;
      pace.lastYield = performance.now(); // no event-loop turn due: park() waits at once
      void p.park().then(() => (f.resumed = true));
    };
    return { f, park, remove: p.remove };
  };
  return { board, parker, keys, lane, tick: (ms: number) => (clock += ms) };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('ThreadParker: which waiting loops a busy loop resumes after its batch', () => {
  it('bits at once; held keyed records every 10 ms of clock; unmarked ring work every 100 ms; a hand-off when told', async () => {
    const { board, parker, keys, lane, tick } = setUp();
    const busy = lane(0, 0); // never parks: the thread stays awake, othersWaiting() is what resumes the others
    const a = lane(1, 1);
    const held = lane(2, 2);
    const quiet = lane(3, 3);
    const owner = lane(4, 4);
    for (const l of [a, held, quiet, owner]) l.park();
    await settle();
    parker.othersWaiting(); // the first looks are due at once: nothing to find
    await settle();
    expect([a, held, quiet, owner].map((l) => l.f.resumed)).toEqual([false, false, false, false]);

    board.markReady(1, 0);
    expect(parker.othersWaiting()).toBe(true);
    await settle();
    expect(a.f.resumed).toBe(true);
    a.remove(); // its loop goes on elsewhere: only the busy loop runs (two running loops would make othersWaiting() true at once)

    held.f.busy = true;
    quiet.f.work = true; // published without setting the bit (the safety net's case)
    tick(5);
    expect(parker.othersWaiting()).toBe(false);
    tick(5);
    expect(parker.othersWaiting()).toBe(true); // 10 ms since the last look: the held records get theirs
    await settle();
    expect([held.f.resumed, quiet.f.resumed]).toEqual([true, false]);
    held.remove();
    tick(89);
    expect(parker.othersWaiting()).toBe(false);
    tick(1);
    expect(parker.othersWaiting()).toBe(true); // 100 ms since the last full look
    await settle();
    expect(quiet.f.resumed).toBe(true);
    quiet.remove();

    // A record pushed to slot 4's queue: only the HANDOFF word makes the thread look, the clock does not.
    handoffPush(keys, 4, 7, new Int32Array(1), 0);
    expect(parker.othersWaiting()).toBe(false);
    board.handoff(0);
    expect(parker.othersWaiting()).toBe(true);
    await settle();
    expect(owner.f.resumed).toBe(true);

    owner.remove();
    busy.remove();
  });
});
