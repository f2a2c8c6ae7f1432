// The consumer side of keyed order without threads (workers/loop/handoff.ts): a real ring and key table, a
// KeyRouter for consumer slot 0 with a fake clock and a recording post(). A keyed record whose turn has not come
// is kept by its loop for up to HOLD_MS (its predecessor is nearly always on its way to this thread), released
// when its turn comes, and handed to the dispatcher only past HOLD_MS, when the loop keeps too many, or at stop.
import { describe, expect, it } from 'vitest';
import { codecOf } from '../../dist/runtime/shared/codec.js';
import { allocateKeyTable, KEY_WORDS, K_DONE, K_OWNER, keySlotOf, SLOT_RUNNING } from '../../dist/runtime/shared/layout.js';
import { Producer } from '../../dist/runtime/shared/producer.js';
import { Ring } from '../../dist/runtime/shared/ring.js';
import { HOLD_MS, KeyRouter } from '../../dist/workers/loop/handoff.js';

function rig(messages: number) {
  const ring = new Ring(Ring.allocate({ capacityBytes: 1 << 20, maxPayloadBytes: 1024 }));
  const keys = new Int32Array(allocateKeyTable());
  const entry = keySlotOf('a');
  Atomics.store(keys, entry * KEY_WORDS + K_OWNER, 0);
  ring.slot(0).setStatus(SLOT_RUNNING);
  const producer = new Producer('m', ring, codecOf('json'), 1024, () => {}, keys);
  for (let i = 0; i < messages; i++) producer.send({ i }, { key: 'a' });
  const posts: Array<{ type: string; unit?: number }> = [];
  const clock = { t: 1000 };
  const router = new KeyRouter(ring, keys, ring.slot(0), (ev) => void posts.push(ev as never), 1, () => clock.t);
  router.size(8);
  const done = (): number => Atomics.load(keys, entry * KEY_WORDS + K_DONE);
  return { ring, keys, entry, router, posts, clock, done };
}

describe('KeyRouter: a keyed record waits for its turn in its loop, not at the dispatcher', () => {
  it('keeps a record whose turn has not come and gives it back once its predecessor is acked', () => {
    const r = rig(2);
    const out = new Int32Array(8);
    expect(r.router.take(out, 8)).toBe(2);
    const [first, second] = [out[0]!, out[1]!];
    expect(r.router.isTurn(second, r.ring.flags(second))).toBe(false);
    r.router.hold(second);
    // Nothing runs while its predecessor has not: the held record stays, and nothing goes to the dispatcher.
    expect(r.router.take(out, 8)).toBe(0);
    expect(r.router.heldN).toBe(1);
    expect(r.router.ack(first, r.entry)).toBe(true);
    expect(r.done()).toBe(1);
    r.clock.t += HOLD_MS - 1;
    expect(r.router.take(out, 8)).toBe(1);
    expect(out[0]).toBe(second);
    expect(r.router.heldN).toBe(0);
    expect(r.posts).toEqual([]);
  });

  it('hands a record to the dispatcher once it has waited past HOLD_MS', () => {
    const r = rig(2);
    const out = new Int32Array(8);
    r.router.take(out, 8);
    const second = out[1]!;
    r.router.hold(second);
    r.clock.t += HOLD_MS;
    expect(r.router.take(out, 8)).toBe(0);
    expect(r.posts).toEqual([]);
    r.clock.t += 1;
    expect(r.router.take(out, 8)).toBe(0);
    expect(r.posts).toEqual([expect.objectContaining({ type: 'defer', unit: second })]);
    expect(r.router.heldN).toBe(0);
  });

  it('hands over at once what does not fit (1,024 held at most here), and everything it holds when the loop stops', () => {
    const r = rig(1027);
    const units = new Int32Array(2048);
    expect(r.ring.claim(0, 2048, units)).toBe(1027);
    for (let i = 1; i <= 1025; i++) r.router.hold(units[i]!);
    expect(r.router.heldN).toBe(1024);
    expect(r.posts).toEqual([expect.objectContaining({ type: 'defer', unit: units[1025] })]);
    r.router.deferHeld();
    expect(r.router.heldN).toBe(0);
    expect(r.posts.map((p) => p.unit)).toEqual([units[1025], ...Array.from(units.subarray(1, 1025))]);
  });
});
