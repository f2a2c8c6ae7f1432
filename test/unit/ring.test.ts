import { describe, expect, it } from 'vitest';
import { Ring } from '../../dist/runtime/shared/ring.js';
import { JsonCodec } from '../../dist/runtime/shared/codec.js';
import { ST_CLAIMED, ST_DONE, ST_FREE, UNIT_BYTES, recordUnits } from '../../dist/runtime/shared/layout.js';

function ring(capacityBytes = 4096, initialCursor = 0, maxPayloadBytes = 1024): Ring {
  return new Ring(Ring.allocate({ capacityBytes, maxPayloadBytes, initialCursor }));
}

const codec = new JsonCodec();
function put(r: Ring, value: unknown, key: string | null = null, id = r.nextId()): boolean {
  const n = codec.prepare(value);
  const kb = key === null ? 0 : Buffer.byteLength(key);
  return r.write(codec, n, key, kb, 1, id, 1, 1, codec.ascii);
}
function read(r: Ring, unit: number): unknown {
  const s = r.payloadStart(unit);
  return codec.decode(r.buf, r.u8, s, s + r.payloadBytes(unit), (r.flags(unit) & 1) !== 0);
}
function drain(r: Ring, c = 0, batch = 16): unknown[] {
  const out = new Int32Array(batch);
  const got: unknown[] = [];
  for (;;) {
    const n = r.claim(c, batch, out);
    if (n === 0) return got;
    for (let i = 0; i < n; i++) {
      got.push(read(r, out[i]!));
      expect(r.ack(c, out[i]!)).toBe(true);
    }
    r.reclaim();
  }
}

describe('Ring (single thread)', () => {
  it('keeps FIFO order, headers and keys', () => {
    const r = ring();
    expect(put(r, { a: 1 }, 'k1', 7)).toBe(true);
    expect(put(r, 'héllo', null, 8)).toBe(true);
    const out = new Int32Array(4);
    expect(r.claim(3, 4, out)).toBe(2);
    expect(read(r, out[0]!)).toEqual({ a: 1 });
    expect(r.key(out[0]!)).toBe('k1');
    expect(r.id(out[0]!)).toBe(7);
    expect(r.attempt(out[0]!)).toBe(1);
    expect(read(r, out[1]!)).toBe('héllo');
    expect(r.key(out[1]!)).toBeUndefined();
    expect(r.state[out[0]!]).toBe(ST_CLAIMED + 3);
    expect(r.ack(2, out[0]!)).toBe(false); // not consumer 2's
    expect(r.ack(3, out[0]!)).toBe(true);
    expect(r.state[out[0]!]).toBe(ST_DONE);
  });

  it('reports full without writing, and frees space on reclaim', () => {
    const r = ring(4096);
    const payload = 'x'.repeat(200);
    let n = 0;
    while (put(r, payload)) n++;
    const units = recordUnits(0, codec.prepare(payload));
    expect(n).toBe(Math.floor(4096 / UNIT_BYTES / units));
    expect(r.depth()).toBe(n);
    const out = new Int32Array(1);
    expect(r.claim(0, 1, out)).toBe(1);
    expect(put(r, payload)).toBe(false); // claimed, not acked: space still held
    r.ack(0, out[0]!);
    expect(put(r, payload)).toBe(true); // reserve() reclaims the DONE record itself
  });

  it('does not reclaim past an unacked record (out-of-order acks)', () => {
    const r = ring();
    put(r, 1);
    put(r, 2);
    const out = new Int32Array(2);
    expect(r.claim(0, 2, out)).toBe(2);
    r.ack(0, out[1]!);
    expect(r.reclaim()).toBe(0);
    r.ack(0, out[0]!);
    expect(r.reclaim()).toBeGreaterThan(0);
    expect(r.usedUnits()).toBe(0);
  });

  it('frees a run of finished records in one pass, up to the first one still claimed, and never past what is unclaimed', () => {
    const r = ring(8192);
    for (let i = 0; i < 6; i++) put(r, i);
    const out = new Int32Array(6);
    expect(r.claim(0, 4, out)).toBe(4); // 4 claimed, 2 still ready (READ stops there)
    const per = r.units(out[0]!);
    for (const i of [0, 1, 3]) r.ack(0, out[i]!);
    expect(r.reclaim()).toBe(2 * per); // 0 and 1 in one pass; 2 is still claimed
    for (const i of [0, 1]) expect(r.state[out[i]!]).toBe(ST_FREE);
    expect(r.state[out[3]!]).toBe(ST_DONE);
    r.ack(0, out[2]!);
    expect(r.reclaim()).toBe(2 * per); // 2 and 3; the ready ones behind READ are not touched
    expect(r.usedUnits()).toBe(2 * per);
    expect(drain(r)).toEqual([4, 5]);
    expect(r.usedUnits()).toBe(0);
  });

  for (const [label, start] of [
    ['near 2^31', 2 ** 31 - 40],
    ['near 2^32', -40], // uint32 2^32 - 40 as int32
  ] as const) {
    it(`stays correct when cursors cross ${label}, with wrap-around padding`, () => {
      const r = ring(4096, start);
      const sent: unknown[] = [];
      const got: unknown[] = [];
      for (let i = 0; i < 2000; i++) {
        const v = { i, pad: 'y'.repeat((i * 37) % 300) };
        if (!put(r, v)) {
          got.push(...drain(r));
          expect(put(r, v)).toBe(true);
        }
        sent.push(v);
      }
      got.push(...drain(r));
      expect(got).toEqual(sent);
      expect(r.usedUnits()).toBe(0);
      expect(r.depth()).toBe(0);
      // every state byte is FREE again
      expect(r.state.every((s) => s === ST_FREE)).toBe(true);
    });
  }

  it('hands out unique ids in blocks', () => {
    const a = ring();
    const b = new Ring(a.sab);
    const ids = new Set<number>();
    for (let i = 0; i < 70_000; i++) {
      ids.add(a.nextId());
      ids.add(b.nextId());
    }
    expect(ids.size).toBe(140_000);
  });

  it('refuses a buffer that is not a ring', () => {
    expect(() => new Ring(new SharedArrayBuffer(1 << 16))).toThrow(/not a ringpool ring/);
  });
});
