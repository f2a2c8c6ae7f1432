// A Redis group's limit and pause, the process's side (runtime/source/redis/group-gate.ts), with a fake clock and a
// fake client that answers as the script does ([slots granted, µs from Redis's now to the block, the pause's PTTL]):
// when it calls Redis (a block only with demand and the last block taken; a pause pushed once; the group's pause read
// every 100 ms), where the block lands in the ring header, and how the group's pause is mirrored (set, extended,
// lifted when resumed elsewhere, but never a local pause set since). The script itself runs on a real Redis in
// test/integration/redis-group-limit.test.ts.
import { describe, expect, it } from 'vitest';
import { HEADER_BYTES } from '../../dist/runtime/shared/layout.js';
import { LIMIT_NEXT_K, LIMIT_NEXT_START, PAUSE, PAUSE_HELD, PAUSE_NONE, PAUSE_TIMED, now32, pausedFor, pauseUntil, setLimit } from '../../dist/runtime/shared/limit.js';
import { GroupGate } from '../../dist/runtime/source/redis/group-gate.js';

function make(opts: { demand?: () => boolean } = {}) {
  const i32 = new Int32Array(new SharedArrayBuffer(HEADER_BYTES));
  setLimit(i32, 200, 1_000); // T = 5025 µs
  let t = 1_700_000_000_000;
  const calls: string[][] = [];
  let reply: [number, string, number] = [0, '0', -2];
  const client = { sendCommand: async (args: string[]) => (calls.push(args), reply) };
  const gate = new GroupGate({ i32, keys: { tat: '{s}:limit', pause: '{s}:pause' }, client: () => client, demand: opts.demand ?? (() => true), clock: () => t });
  return {
    i32,
    gate,
    calls,
    /** ARGV of the n-th call: [T, want, horizon, push]. */
    argv: (n: number) => calls[n]!.slice(5),
    answer: (r: [number, string, number]) => (reply = r),
    at: (ms: number) => (t += ms),
    now: () => t,
  };
}

describe('a group limit: the process side', () => {
  it('asks for a block only with demand and once the last one offered was taken; where it lands', async () => {
    let demand = false;
    const g = make({ demand: () => demand });
    await g.gate.pass(); // no demand: a read of the group's pause only
    expect(g.argv(0)[1]).toBe('0');
    await g.gate.pass(); // nothing to take, push or read yet
    expect(g.calls.length).toBe(1);
    demand = true;
    g.answer([g.gate.k, '30000', -2]); // the block starts 30 ms after Redis's now
    await g.gate.pass();
    expect(g.argv(1)[1]).toBe(String(g.gate.k));
    expect(Atomics.load(g.i32, LIMIT_NEXT_K)).toBe(g.gate.k);
    expect(Atomics.load(g.i32, LIMIT_NEXT_START)).toBe((now32(g.now()) + 30_000) | 0);
    g.at(10);
    await g.gate.pass(); // the block offered is not taken yet: no other
    expect(g.calls.length).toBe(2);
    Atomics.store(g.i32, LIMIT_NEXT_K, 0); // a loop moved on to it
    await g.gate.pass();
    expect(g.calls.length).toBe(3);
    expect(g.argv(2)[1]).toBe(String(g.gate.k));
  });

  it("pushes a handler's retryAfter (a local pause later than the group's) once, and rt.pause / rt.resume", async () => {
    const g = make({ demand: () => false });
    await g.gate.pass();
    pauseUntil(g.i32, (now32(g.now()) + 1_000_000) | 0, now32(g.now())); // a handler's ctx.retryAfter(1000)
    g.at(10);
    g.answer([0, '0', 1_000]);
    await g.gate.pass();
    expect(g.argv(1)[3]).toBe('990'); // what is left of it
    g.at(10);
    await g.gate.pass(); // the group says as long: nothing to push, and not yet time to read
    expect(g.calls.length).toBe(2);
    g.gate.pause(undefined);
    g.answer([0, '0', -1]);
    await g.gate.pass();
    expect(g.argv(2)[3]).toBe('held');
    expect(Atomics.load(g.i32, PAUSE)).toBe(PAUSE_HELD);
    g.gate.resume();
    g.answer([0, '0', -2]);
    await g.gate.pass();
    expect(g.argv(3)[3]).toBe('resume');
  });

  it("mirrors the group's pause: set, lifted when resumed elsewhere, but a local pause set since is kept (and pushed)", async () => {
    const g = make({ demand: () => false });
    g.answer([0, '0', 500]); // another process paused the group for 500 ms
    await g.gate.pass();
    expect(Atomics.load(g.i32, PAUSE)).toBe(PAUSE_TIMED);
    expect(pausedFor(g.i32, now32(g.now()))).toBeGreaterThan(490_000);
    g.at(100);
    g.answer([0, '0', -2]); // resumed elsewhere
    await g.gate.pass();
    expect(Atomics.load(g.i32, PAUSE)).toBe(PAUSE_NONE);
    g.answer([0, '0', -1]); // held elsewhere
    g.at(100);
    await g.gate.pass();
    expect(Atomics.load(g.i32, PAUSE)).toBe(PAUSE_HELD);
    // Resumed elsewhere, but a handler here asked for a pause meanwhile: kept, and pushed next.
    Atomics.store(g.i32, PAUSE, PAUSE_NONE);
    pauseUntil(g.i32, (now32(g.now()) + 2_000_000) | 0, now32(g.now()));
    g.answer([0, '0', -2]);
    g.at(100);
    await g.gate.pass();
    expect(Atomics.load(g.i32, PAUSE)).toBe(PAUSE_TIMED);
    g.at(10);
    await g.gate.pass(); // the group has none now: this one goes up
    expect(g.argv(g.calls.length - 1)[3]).toBe('1890');
  });

  it('one call at a time: a pass while one is in flight does nothing', async () => {
    const g = make();
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    const client = { sendCommand: async (args: string[]) => (g.calls.push(args), await slow, [0, '0', -2]) };
    const gate = new GroupGate({ i32: g.i32, keys: { tat: 'a', pause: 'b' }, client: () => client, demand: () => true, clock: g.now });
    const first = gate.pass();
    const second = gate.pass();
    await Promise.resolve();
    expect(g.calls.length).toBe(1);
    release();
    await Promise.all([first, second]);
  });
});
