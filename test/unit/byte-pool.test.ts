// Payload bytes copied out of shared memory into a thread's pool (runtime/shared/byte-pool.ts): each view holds its
// own bytes, a batch's span is copied once and read from while it lasts, and never after endSpan() (the ring's bytes
// there may be a later record's by then).
import { describe, expect, it } from 'vitest';
import { BytePool } from '../../dist/runtime/shared/byte-pool.js';

function shared(n: number): Uint8Array {
  const u8 = new Uint8Array(new SharedArrayBuffer(n));
  for (let i = 0; i < n; i++) u8[i] = i & 255;
  return u8;
}

describe('the byte pool', () => {
  it('copies: each view has its bytes, writing one changes neither the source nor another view', () => {
    const src = shared(1 << 16);
    const pool = new BytePool();
    const a = pool.copy(src, 10, 20);
    const b = pool.copy(src, 20, 35);
    expect([...a]).toEqual([...src.subarray(10, 20)]);
    expect([...b]).toEqual([...src.subarray(20, 35)]);
    a.fill(0xee);
    expect([...b]).toEqual([...src.subarray(20, 35)]);
    expect(src[10]).toBe(10);
    expect(a.buffer).not.toBe(src.buffer);
    expect(a.buffer instanceof SharedArrayBuffer).toBe(false);
  });

  it('starts a new chunk when one is full, and gives a large payload an ArrayBuffer of its own', () => {
    const src = shared(1 << 17);
    const pool = new BytePool();
    const views = Array.from({ length: 100 }, (_, i) => pool.copy(src, i * 1000, i * 1000 + 1000));
    views.forEach((v, i) => expect(v[0]).toBe((i * 1000) & 255));
    expect(new Set(views.map((v) => v.buffer)).size).toBeGreaterThan(1);
    const big = pool.copy(src, 0, 40_000);
    expect(big.byteOffset).toBe(0);
    expect(big.buffer.byteLength).toBe(40_000);
  });

  it('a span is copied once: views within it show the bytes as they were at span(); after endSpan() they are copied again', () => {
    const src = shared(4096);
    const pool = new BytePool();
    pool.span(src, 100, 400);
    src[150] = 7; // written after the span was copied (a caller breaks its promise): the span's copy is what is read
    expect(pool.copy(src, 150, 160)[0]).toBe(150);
    const outside = pool.copy(src, 500, 510); // outside the span: copied on its own
    expect(outside[0]).toBe(500 & 255);
    pool.endSpan();
    expect(pool.copy(src, 150, 160)[0]).toBe(7);
  });

  it('a span too large for a chunk is not taken: each payload is copied on its own', () => {
    const src = shared(1 << 17);
    const pool = new BytePool();
    pool.span(src, 0, 100_000);
    src[10] = 99;
    expect(pool.copy(src, 10, 20)[0]).toBe(99);
  });
});
