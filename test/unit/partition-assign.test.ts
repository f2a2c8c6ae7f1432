// Partitions of a Redis mailbox without Redis or threads (issue #29): the documented key hash (FNV-1a of the
// key's UTF-8 bytes, mod P), the fence table's lease arithmetic with a fake clock's worth of margins, and the
// assignment decision (assign.ts) alone and over rounds of a simulated group, with a fake clock.
import { describe, expect, it } from 'vitest';
import { assign, shareOf, type AssignInput } from '../../dist/runtime/source/redis/assign.js';
import { createFence, FenceView, partitionOf } from '../../dist/runtime/shared/partition.js';
import { now } from '../../dist/runtime/shared/clock.js';

/** The documented hash, written out plainly: what a producer in another language implements. */
function reference(key: string, partitions: number): number {
  let h = 2166136261;
  for (const b of Buffer.from(key, 'utf8')) {
    h = (h ^ b) >>> 0;
    h = Number((BigInt(h) * 16777619n) % 4294967296n);
  }
  return h % partitions;
}

describe('partitionOf: FNV-1a (32 bits) of the key\'s UTF-8 bytes, mod partitions', () => {
  it('known FNV-1a values, and the plain reference for short, long and non-ASCII keys', () => {
    expect(partitionOf('a', 2 ** 31)).toBe(0xe40c292c % 2 ** 31);
    expect(partitionOf('foobar', 1_000)).toBe(0xbf9cf968 % 1_000);
    expect(partitionOf('', 7)).toBe(2166136261 % 7);
    const keys = ['k1', 'order-42', 'é', '日本語のキー', '🙂', 'x'.repeat(85), 'y'.repeat(86), 'é'.repeat(200)];
    for (const k of keys) for (const p of [1, 2, 3, 16, 1_000, 1_024]) expect(partitionOf(k, p)).toBe(reference(k, p));
  });

  it('spreads keys evenly enough: 10,000 keys over 16 partitions, each within 20 % of the mean', () => {
    const n = new Array<number>(16).fill(0);
    for (let i = 0; i < 10_000; i++) n[partitionOf(`key-${i}`, 16)]!++;
    for (const c of n) expect(Math.abs(c - 625)).toBeLessThan(125);
  });
});

describe('FenceView: a lease as consumers read it', () => {
  it('owned until the renewal time plus the lease, lost at once; epochs and states by partition', () => {
    const f = new FenceView(createFence(4));
    expect(f.leftMs(2)).toBe(0);
    f.own(2, 7, now() + 5_000);
    expect(f.leftMs(2)).toBeGreaterThan(4_900);
    expect(f.leftMs(2)).toBeLessThanOrEqual(5_000);
    expect(f.epoch(2)).toBe(7);
    f.own(3, 8, now() - 10);
    expect(f.leftMs(3)).toBeLessThan(0);
    f.give(2, true);
    expect(f.giving(2)).toBe(true);
    const g1 = f.addState(2);
    f.addState(2);
    f.dropState(2, g1);
    expect(f.states(2)).toBe(1);
    expect(f.lost(2)).toBe(false);
    f.lose(2);
    expect(f.leftMs(2)).toBe(0);
    expect(f.lost(2)).toBe(true);
    expect(f.giving(2)).toBe(false);
  });

  it('a count of actor states reset by the main thread (a thread died with them) never goes below what lives: drops of the old generation are ignored', () => {
    const f = new FenceView(createFence(1));
    const dead = f.addState(0); // a state whose thread will die without giving it back
    const slow = f.addState(0); // one whose passivate hook outlives the wait
    f.resetStates(0);
    expect(f.states(0)).toBe(0);
    const live = f.addState(0);
    expect(live).not.toBe(slow);
    f.dropState(0, slow); // the slow hook ends: not counted against the new generation
    expect(f.states(0)).toBe(1);
    f.dropState(0, live);
    expect(f.states(0)).toBe(0);
    f.dropState(0, live); // never below zero
    expect(f.states(0)).toBe(0);
    void dead;
  });
});

const base = (x: Partial<AssignInput>): AssignInput => ({
  partitions: 8,
  me: 'b',
  members: ['a', 'b'],
  owned: [],
  releasing: new Set(),
  free: [],
  freeSince: new Map(),
  inFlight: () => 0,
  now: 10_000,
  orphanMs: 400,
  ...x,
});

describe('assign: which partitions a process takes and gives back', () => {
  it('shares: floor(P/N) each, and one more for the first P mod N members by name; a member not yet listed counts', () => {
    expect(['a', 'b', 'c'].map((m) => shareOf(8, ['c', 'a', 'b'], m))).toEqual([3, 3, 2]);
    expect(['a', 'b', 'c'].map((m) => shareOf(1, ['a', 'b', 'c'], m))).toEqual([1, 0, 0]);
    expect(shareOf(8, ['a'], 'b')).toBe(4);
  });

  it('under its share it takes that many free partitions, in an order of its own; over it gives back the surplus with the least in flight', () => {
    const d = assign(base({ owned: [0], free: [1, 2, 3, 4, 5, 6, 7] }));
    expect(d.share).toBe(4);
    expect(d.acquire).toHaveLength(3);
    expect(d.release).toEqual([]);
    // Two processes starting together try different partitions first.
    const other = assign(base({ me: 'a', owned: [], free: [1, 2, 3, 4, 5, 6, 7] }));
    expect(other.acquire).not.toEqual(d.acquire);
    const load = new Map([[0, 5], [1, 0], [2, 9], [3, 1], [4, 2], [5, 7]]);
    const over = assign(base({ members: ['a', 'b', 'c'], owned: [0, 1, 2, 3, 4, 5], inFlight: (p) => load.get(p)! }));
    expect(over.share).toBe(3);
    expect(over.release).toEqual([1, 3, 4]);
    // Those already being given back are not given back again.
    expect(assign(base({ members: ['a', 'b', 'c'], owned: [0, 1, 2, 3, 4, 5], releasing: new Set([1, 3, 4]) })).release).toEqual([]);
  });

  it('a partition free for orphanMs is taken over share (never left unread); before that it is not', () => {
    const freeSince = new Map([[6, 9_700]]);
    expect(assign(base({ owned: [0, 1, 2, 3], free: [6], freeSince })).acquire).toEqual([]);
    expect(assign(base({ owned: [0, 1, 2, 3], free: [6], freeSince, now: 10_100 })).acquire).toEqual([6]);
  });

  it('over rounds, with members joining and dying (a fake clock, leases that run out), every partition ends owned by exactly one live member with floor or ceil of P/N', () => {
    const P = 16;
    const LEASE = 1_000;
    const ROUND = 200;
    let t = 0;
    const lease = new Map<number, { owner: string; until: number }>();
    const owned = new Map<string, Set<number>>();
    const freeSince = new Map<string, Map<number, number>>();
    const live = (): string[] => [...owned.keys()];
    const round = (): void => {
      for (const [p, l] of lease) if (l.until <= t) lease.delete(p);
      for (const me of live()) {
        const mine = owned.get(me)!;
        for (const p of mine) {
          const l = lease.get(p);
          if (l?.owner !== me) mine.delete(p);
          else l.until = t + LEASE;
        }
        const fs = freeSince.get(me)!;
        const free: number[] = [];
        for (let p = 0; p < P; p++) {
          if (lease.has(p)) fs.delete(p);
          else {
            free.push(p);
            if (!fs.has(p)) fs.set(p, t);
          }
        }
        const d = assign({ partitions: P, me, members: live(), owned: [...mine], releasing: new Set(), free, freeSince: fs, inFlight: () => 0, now: t, orphanMs: 2 * ROUND });
        for (const p of d.release) {
          mine.delete(p);
          lease.delete(p);
        }
        for (const p of d.acquire) {
          if (lease.has(p)) continue;
          lease.set(p, { owner: me, until: t + LEASE });
          mine.add(p);
        }
      }
      t += ROUND;
    };
    const settled = (): boolean => {
      const n = live().length;
      const all = live().flatMap((m) => [...owned.get(m)!]);
      return new Set(all).size === P && all.length === P && live().every((m) => [Math.floor(P / n), Math.ceil(P / n)].includes(owned.get(m)!.size));
    };
    const join = (m: string): void => {
      owned.set(m, new Set());
      freeSince.set(m, new Map());
    };
    join('a');
    for (let i = 0; i < 5; i++) round();
    expect(settled()).toBe(true);
    join('b');
    join('c');
    for (let i = 0; i < 10; i++) round();
    expect(settled()).toBe(true);
    // 'b' dies: its leases run out, then the others take its partitions.
    owned.delete('b');
    for (let i = 0; i < LEASE / ROUND + 4; i++) round();
    expect(settled()).toBe(true);
    join('d');
    for (let i = 0; i < 10; i++) round();
    expect(settled()).toBe(true);
    expect(live().map((m) => owned.get(m)!.size).sort()).toEqual([5, 5, 6]);
  });
});
