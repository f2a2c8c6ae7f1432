// The shared-memory layouts (runtime/shared/layout.ts) and the slot accessors (runtime/shared/slot.ts): words that
// must not share a place do not, and a SlotView touches its own slot's 128 bytes and nothing else.
import { describe, expect, it } from 'vitest';
import * as L from '../../dist/runtime/shared/layout.js';
import { Ring } from '../../dist/runtime/shared/ring.js';

const slotI32 = ['S_STATUS', 'S_INCARNATION', 'S_CUR_UNIT', 'S_ACKED', 'S_GUARD', 'S_THREAD_ID', 'S_INFLIGHT', 'S_KEY_ACK', 'S_KEY_ACK_SEQ', 'S_KEY_ACK_UNIT', 'S_RESV_TAG', 'S_RESV_HEAD', 'S_RESV_NEED', 'S_RESV_KEY', 'S_RESV_SEQ', 'S_HO_UNIT', 'S_HO_OWNER', 'S_HO_INC', 'S_HO_POS'] as const;
const slotF64 = ['S_F64_CUR_START', 'S_F64_HANDLER_MS', 'S_F64_ELU'] as const;

describe('layout: every word has a place of its own', () => {
  it('the slot words are distinct, inside the slot, and clear of the f64 words', () => {
    const words = slotI32.map((n) => (L as Record<string, number>)[n]!);
    for (const n of slotF64) {
      const f = (L as Record<string, number>)[n]!;
      words.push(2 * f, 2 * f + 1);
    }
    expect(words.every((w) => Number.isInteger(w) && w >= 0 && w < L.SLOT_WORDS)).toBe(true);
    expect(new Set(words).size).toBe(words.length);
    // The RESV and HO sections are where their offsets say.
    expect([L.S_RESV_TAG + L.MARK_TAG, L.S_RESV_TAG + L.MARK_HEAD, L.S_RESV_TAG + L.MARK_NEED, L.S_RESV_TAG + L.MARK_KEY, L.S_RESV_TAG + L.MARK_SEQ]).toEqual([
      L.S_RESV_TAG,
      L.S_RESV_HEAD,
      L.S_RESV_NEED,
      L.S_RESV_KEY,
      L.S_RESV_SEQ,
    ]);
    expect([L.S_HO_UNIT + L.HO_OWNER, L.S_HO_UNIT + L.HO_INC, L.S_HO_UNIT + L.HO_POS]).toEqual([L.S_HO_OWNER, L.S_HO_INC, L.S_HO_POS]);
  });

  it('the metrics buffer and the journal stats words do not overlap', () => {
    expect(L.H_BLOCKS_F64).toBeGreaterThan(L.MAX_BOUNDS); // bounds live at f64 1 .. MAX_BOUNDS
    expect(L.STRIDE).toBe(L.MAX_BOUNDS + 3); // counts up to +Inf, then sum and count
    expect([L.H_QUEUE_WAIT, L.H_PROCESSING, L.H_END_TO_END].sort()).toEqual([0, 1, 2].slice(0, L.HISTS));
    const j = [L.J_SEGMENTS, L.J_BYTES, L.J_FSYNCS, L.J_LAST_FSYNC_MS, L.J_RECOVERED, L.J_COMPACTIONS];
    expect(new Set(j).size).toBe(j.length);
    expect(Math.max(...j)).toBeLessThan(L.J_STATS_WORDS);
  });

  it('a SlotView writes only inside its own slot', () => {
    const ring = new Ring(Ring.allocate({ capacityBytes: 1 << 16, maxPayloadBytes: 1024 }));
    const bytes = new Uint8Array(ring.sab);
    const before = bytes.slice();
    const c = 5;
    const s = ring.slot(c);
    expect(ring.slot(c)).toBe(s);
    s.setStatus(7);
    s.setIncarnation(8);
    s.running(9, 1234.5);
    s.setAcked(10);
    s.setGuard(1);
    s.setThreadId(11);
    s.setInflight(12);
    s.beginKeyAck(13, 14, 15);
    s.beginHandoff(16, 17, 18);
    s.setHandlerMs(1.5);
    s.setElu(0.25);
    const from = L.SLOTS_OFF + c * L.SLOT_BYTES;
    const changed: number[] = [];
    for (let i = 0; i < bytes.length; i++) if (bytes[i] !== before[i]) changed.push(i);
    expect(changed.length).toBeGreaterThan(0);
    expect(changed.every((i) => i >= from && i < from + L.SLOT_BYTES)).toBe(true);
    // And reads back what it wrote, through the same names.
    expect([s.status(), s.incarnation(), s.currentUnit(), s.currentStart(), s.acked(), s.guard(), s.threadId(), s.inflight()]).toEqual([7, 8, 9, 1234.5, 10, 1, 11, 12]);
    expect([s.keyAckSlot(), s.keyAckSeq(), s.keyAckUnit(), s.handlerMs(), s.elu()]).toEqual([13, 14, 15, 1.5, 0.25]);
    expect(s.deadHandoff()).toEqual({ unit: 16, owner: 17, inc: 18, pos: -1 });
    s.endHandoff();
    s.endKeyAck();
    expect([s.deadHandoff(), s.keyAckSlot()]).toEqual([null, -1]);
    expect(ring.slot(c + 1).status()).toBe(0);
  });
});
