// The dispatcher's ledger of chained sends to Redis mailboxes (runtime/mailbox/chained.ts), without Redis or
// threads: targets whose sendEncoded() resolve or reject when the test says, and a real slot on a real
// SharedArrayBuffer. CHAIN_DONE covers only groups answered with every group before them; CHAIN_FAILED names the
// highest failed; a group's parts to several mailboxes answer together; a late answer for a dead loop is dropped.
import { describe, expect, it } from 'vitest';
import { ChainedSends } from '../../dist/runtime/mailbox/chained.js';
import { SlotView } from '../../dist/runtime/shared/slot.js';
import { SLOTS_END } from '../../dist/runtime/shared/layout.js';

function setup() {
  const sab = new SharedArrayBuffer(SLOTS_END);
  const i32 = new Int32Array(sab);
  const f64 = new Float64Array(sab);
  const slot = new SlotView(i32, f64, 3);
  slot.setIncarnation(7);
  const settle: Record<string, Array<{ ok: () => void; fail: (e: Error) => void; n: number }>> = { x: [], y: [] };
  const target = (name: string) => ({
    sends: { sendEncoded: (items: unknown[]) => new Promise<unknown>((ok, fail) => settle[name]!.push({ ok: () => ok(undefined), fail, n: items.length })) },
  });
  const errors: Error[] = [];
  const chained = new ChainedSends(() => slot, (name: string) => (name in settle ? (target(name) as never) : undefined), (e: Error) => errors.push(e));
  const item = (mailbox: string) => ({ mailbox, payload: new Uint8Array(1), key: null, delayMs: 0 });
  return { slot, settle, errors, chained, item };
}
const tick = () => new Promise((r) => setImmediate(r));

describe('chained sends: the ledger', () => {
  it('done advances over contiguous answers only; a group waits for all its targets', async () => {
    const { slot, settle, chained, item } = setup();
    chained.post(3, 7, 1, [item('x')]);
    chained.post(3, 7, 2, [item('x'), item('y'), item('x')]);
    chained.post(3, 7, 3, [item('y')]);
    expect(settle.x!.map((s) => s.n)).toEqual([1, 2]); // group 2's part to x is one transaction of two
    settle.y![1]!.ok(); // group 3 first
    await tick();
    expect(slot.chainDone()).toBe(0);
    settle.x![1]!.ok(); // group 2's x part: its y part still out
    await tick();
    expect(slot.chainDone()).toBe(0);
    settle.x![0]!.ok(); // group 1
    await tick();
    expect(slot.chainDone()).toBe(1);
    settle.y![0]!.ok(); // group 2 complete: 2 and 3 done together
    await tick();
    expect(slot.chainDone()).toBe(3);
    expect(slot.chainFailed()).toBe(0);
  });

  it('a failed part fails its group (named in CHAIN_FAILED, reported), and done still moves past it', async () => {
    const { slot, settle, chained, item, errors } = setup();
    chained.post(3, 7, 1, [item('x'), item('y')]);
    chained.post(3, 7, 2, [item('x')]);
    settle.x![0]!.ok();
    settle.y![0]!.fail(new Error('WRONGTYPE'));
    settle.x![1]!.ok();
    await tick();
    expect(slot.chainDone()).toBe(2);
    expect(slot.chainFailed()).toBe(1);
    expect(errors.map((e) => e.message)).toEqual(['WRONGTYPE']);
    chained.post(3, 7, 3, [item('nope')]); // no such mailbox: failed, not hung
    await tick();
    expect(slot.chainDone()).toBe(3);
    expect(slot.chainFailed()).toBe(3);
  });

  it('answers for an earlier loop in the slot are dropped; group 0 (sent after its handler) is waited for by nobody', async () => {
    const { slot, settle, chained, item } = setup();
    chained.post(3, 7, 1, [item('x')]);
    slot.setIncarnation(8); // the loop was replaced: its words were cleared, a new one numbers from 1
    slot.setChain(0, 0);
    chained.post(3, 8, 1, [item('x')]);
    settle.x![0]!.ok(); // the old loop's group 1
    await tick();
    expect(slot.chainDone()).toBe(0);
    settle.x![1]!.ok();
    await tick();
    expect(slot.chainDone()).toBe(1);
    chained.post(3, 8, 0, [item('x')]);
    settle.x![2]!.ok();
    await tick();
    expect(slot.chainDone()).toBe(1);
  });
});
