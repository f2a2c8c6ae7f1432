// When the delayed mover (runtime/source/redis/mover.ts) runs its script, without Redis: a fake client that answers
// each pass as MOVE_LUA would ({ moved, ms to the next due, left }), fake timers and a fake clock. It sleeps until the
// next due time it knows and never more than a second, wakes early for the wake channel, runs again at once after a
// full batch, never overlaps two passes, falls back to EVAL after NOSCRIPT, and reports a failed pass.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Mover, MOVE_BATCH, MOVE_EVERY_MS } from '../../dist/runtime/source/redis/mover.js';
import { delayedKeys } from '../../dist/runtime/source/redis/delayed.js';

type Answer = number[] | Error | (() => Promise<number[]>);

/** A client whose passes answer from `answers` in turn (then "nothing due"); `calls` holds each command's first word. */
function fakeRedis(answers: Answer[]) {
  const calls: string[] = [];
  let wake: ((ms: string) => void) | null = null;
  const sub = {
    on: () => undefined,
    connect: async () => undefined,
    subscribe: async (ch: string, fn: (ms: string) => void) => {
      if (ch.endsWith(':wake')) wake = fn;
    },
    quit: async () => undefined,
  };
  const client = {
    duplicate: () => sub,
    sendCommand: async (args: string[]) => {
      calls.push(args[0]!);
      const a = answers.shift() ?? [0, -1, 0];
      if (a instanceof Error) throw a;
      return typeof a === 'function' ? a() : a;
    },
  };
  return { client, calls, wake: (ms: number) => wake!(String(ms)) };
}

const settle = () => vi.advanceTimersByTimeAsync(0);

describe('the delayed mover', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('sleeps until the next due time, at most a second; wakes early on the channel', async () => {
    const r = fakeRedis([[3, 300, 10]]);
    const faults: string[] = [];
    const m = new Mover(delayedKeys('s'), () => r.client, (_e, d) => faults.push(d), () => Date.now());
    await m.start('x');
    await settle();
    expect(r.calls).toEqual(['EVALSHA']); // the first pass at once
    expect(m.moved).toBe(3);
    expect(m.size).toBe(10);
    expect(m.nextDueAt).toBe(Date.now() + 300);
    await vi.advanceTimersByTimeAsync(299);
    expect(r.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(r.calls).toHaveLength(2); // at the due time; answered "none due": next in a second
    expect(m.nextDueAt).toBe(-1);
    await vi.advanceTimersByTimeAsync(MOVE_EVERY_MS - 1);
    expect(r.calls).toHaveLength(2);
    r.wake(40); // a send elsewhere made a new earliest
    await vi.advanceTimersByTimeAsync(40);
    expect(r.calls).toHaveLength(3);
    r.wake(5_000); // later than the second it sleeps at most: the second wins
    await vi.advanceTimersByTimeAsync(MOVE_EVERY_MS);
    expect(r.calls).toHaveLength(4);
    expect(faults).toEqual([]);
    await m.stop();
  });

  it('a due time far off still gets a pass every second', async () => {
    const r = fakeRedis([[0, 60_000, 1], [0, 59_000, 1]]);
    const m = new Mover(delayedKeys('s'), () => r.client, () => undefined, () => Date.now());
    await m.start('x');
    await settle();
    await vi.advanceTimersByTimeAsync(MOVE_EVERY_MS);
    expect(r.calls).toHaveLength(2);
    await m.stop();
  });

  it('runs again at once after a full batch, and never two passes at a time', async () => {
    let release!: () => void;
    const slow = () => new Promise<number[]>((res) => (release = () => res([1, 10, 1])));
    const r = fakeRedis([[MOVE_BATCH, 0, 5_000], [MOVE_BATCH, 0, 4_000], slow]);
    const m = new Mover(delayedKeys('s'), () => r.client, () => undefined, () => Date.now());
    await m.start('x');
    await settle();
    expect(r.calls).toHaveLength(3); // two full batches, then the third (still running)
    r.wake(0);
    r.wake(0);
    await vi.advanceTimersByTimeAsync(5);
    expect(r.calls).toHaveLength(3); // no overlap while it runs
    release();
    await settle();
    expect(r.calls).toHaveLength(4); // the wake that came meanwhile: one pass after it
    expect(m.moved).toBe(2 * MOVE_BATCH + 1);
    await m.stop();
  });

  it('falls back to EVAL when Redis forgot the script, and reports a failed pass, then tries again in a second', async () => {
    const r = fakeRedis([new Error('NOSCRIPT No matching script'), [2, -1, 0], new Error('READONLY')]);
    const faults: string[] = [];
    const m = new Mover(delayedKeys('s'), () => r.client, (_e, d) => faults.push(d), () => Date.now());
    await m.start('x');
    await settle();
    expect(r.calls).toEqual(['EVALSHA', 'EVAL']);
    expect(m.moved).toBe(2);
    await vi.advanceTimersByTimeAsync(MOVE_EVERY_MS);
    expect(r.calls).toHaveLength(3);
    expect(faults).toEqual(['moving due delayed messages']);
    await vi.advanceTimersByTimeAsync(MOVE_EVERY_MS);
    expect(r.calls).toHaveLength(4);
    await m.stop();
    await vi.advanceTimersByTimeAsync(5 * MOVE_EVERY_MS);
    expect(r.calls).toHaveLength(4); // stopped: no more passes
  });
});
