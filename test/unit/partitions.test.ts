// A partition's life in one process (runtime/source/redis/partitions.ts) without Redis or threads: a fake lease
// store, a fake clock and a real fence table. Takes, loses, gives back at a clean point, waits for actor states (at
// most a lease), takes orphans. Microseconds a case.
import { describe, expect, it } from 'vitest';
import { FREE, Partitions, READING } from '../../dist/runtime/source/redis/partitions.js';
import { partitionKeys } from '../../dist/runtime/source/redis/keys.js';
import { createFence, FenceView } from '../../dist/runtime/shared/partition.js';
import { now } from '../../dist/runtime/shared/clock.js';

const LEASE = 1_000;
const RENEW = 200;

/** Leases in a Map: what owners.ts keeps in Redis. */
class FakeLeases {
  leases = new Map<number, { token: string; epoch: number }>();
  epochs = new Map<number, number>();
  members: string[] = [];
  constructor(readonly token: string, readonly P: number) {}
  store(me: string) {
    return {
      members: async (_m: string, join: boolean) => (join ? [...new Set([...this.members, me])] : this.members.filter((x) => x !== me)),
      look: async () => Array.from({ length: this.P }, (_, p) => {
        const l = this.leases.get(p);
        return l === undefined ? { free: true, mine: false, epoch: 0 } : { free: false, mine: l.token === this.token, epoch: l.epoch };
      }),
      acquire: async (p: number) => {
        if (this.leases.has(p)) return { epoch: -1, takeover: false };
        const e = (this.epochs.get(p) ?? 0) + 1;
        this.epochs.set(p, e);
        this.leases.set(p, { token: this.token, epoch: e });
        return { epoch: e, takeover: false };
      },
      release: async (p: number, epoch: number) => {
        const l = this.leases.get(p);
        if (l?.token === this.token && l.epoch === epoch) this.leases.delete(p);
      },
    };
  }
  /** Another process takes `p` (its lease ran out here, say). */
  steal(p: number): void {
    const e = (this.epochs.get(p) ?? 0) + 1;
    this.epochs.set(p, e);
    this.leases.set(p, { token: 'other', epoch: e });
  }
}

function rig(P: number, members: string[]) {
  const leases = new FakeLeases('tok', P);
  leases.members = members;
  const fence = new FenceView(createFence(P));
  const held = new Map<number, number>();
  const errors: string[] = [];
  const clock = { t: now() };
  const parts = new Partitions(
    P,
    'me',
    leases.store('me'),
    partitionKeys('s', 'g', P),
    { client: { sendCommand: async () => 'OK' } } as never,
    'g',
    fence,
    LEASE,
    RENEW,
    {
      running: true,
      heldOf: (p) => held.get(p) ?? 0,
      claimAll: async () => true,
      readingChanged: () => undefined,
      strays: async () => undefined,
      emitError: (e) => void errors.push((e as { code: string }).code),
      fault: (e) => void errors.push(String(e)),
    },
    () => clock.t,
  );
  const pass = async (): Promise<void> => {
    await parts.pass();
    await new Promise((r) => setImmediate(r)); // the claims started in the background
    clock.t += RENEW;
  };
  return { leases, fence, held, errors, clock, parts, pass };
}

describe('Partitions: a partition taken, read, lost, given back (fake leases, fake clock)', () => {
  it('takes its share of free partitions, claims them, then reads them, each under its epoch in the fence', async () => {
    const r = rig(4, ['me', 'other']);
    await r.pass();
    const mine = r.parts.owned();
    expect(mine).toHaveLength(2);
    for (const p of mine) {
      expect(r.parts.state[p]).toBe(READING);
      expect(r.fence.epoch(p)).toBe(1);
      expect(r.fence.leftMs(p)).toBeGreaterThan(0);
    }
  });

  it('a lease found someone else\'s is lost at once: RINGPOOL_FENCED, the fence says lost, its records are not ours at the old epoch', async () => {
    const r = rig(2, ['me']);
    await r.pass();
    expect(r.parts.owned()).toEqual([0, 1]);
    r.leases.steal(1);
    await r.pass();
    expect(r.parts.state[1]).toBe(FREE);
    expect(r.fence.lost(1)).toBe(true);
    expect(r.parts.holds(1, 1)).toBe(false);
    expect(r.parts.holds(0, 1)).toBe(true);
    expect(r.errors).toEqual(['RINGPOOL_FENCED']);
  });

  it('a member joins: the surplus is given back only at a clean point (nothing held, actor states passivated), and its lease let go', async () => {
    const r = rig(2, ['me']);
    await r.pass();
    r.leases.members = ['a', 'me']; // shares 1 and 1: one of ours goes
    r.held.set(0, 3);
    r.held.set(1, 3);
    await r.pass();
    const going = [0, 1].find((p) => r.parts.state[p] !== READING)!;
    expect(r.leases.leases.has(going)).toBe(true); // held here: not yet
    r.held.set(going, 0);
    const gen = r.fence.addState(going); // a live actor state of one of its keys
    await r.pass();
    expect(r.fence.giving(going)).toBe(true); // consumers are told to passivate
    expect(r.leases.leases.has(going)).toBe(true);
    r.fence.dropState(going, gen); // passivated
    await r.pass();
    expect(r.leases.leases.has(going)).toBe(false);
    expect(r.parts.state[going]).toBe(FREE);
    expect(r.parts.owned()).toHaveLength(1);
  });

  it('a passivate hook that never ends is waited for one lease at most', async () => {
    const r = rig(2, ['me']);
    await r.pass();
    r.leases.members = ['a', 'me'];
    await r.pass();
    const going = [0, 1].find((p) => r.parts.state[p] !== READING)!;
    r.fence.addState(going); // never dropped
    for (let t = 0; t < LEASE / RENEW - 1; t++) await r.pass();
    expect(r.leases.leases.has(going)).toBe(true);
    await r.pass();
    await r.pass();
    expect(r.leases.leases.has(going)).toBe(false);
    expect(r.fence.states(going)).toBe(0);
  });

  it('a partition left free (views disagree) is taken after two renewals even over share', async () => {
    const r = rig(2, ['me', 'zz']); // share 1
    await r.pass();
    expect(r.parts.owned()).toHaveLength(1);
    await r.pass(); // the other partition free for one renewal: left to 'zz'
    expect(r.parts.owned()).toHaveLength(1);
    await r.pass();
    await r.pass();
    expect(r.parts.owned()).toHaveLength(2);
  });
});
