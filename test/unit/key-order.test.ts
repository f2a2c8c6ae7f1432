// Per-key order of a partitioned Redis mailbox's final writes (runtime/source/redis/key-order.ts), without Redis:
// the ring may report a key's messages finished out of their order (a keyed record that waited outside the ring comes
// back behind later ones); the XACKs must still be queued in the key's order, a dead letter only once the writes
// before it are confirmed, and an entry that ends without a write must not hold its key's later ones forever.
import { describe, expect, it } from 'vitest';
import { KeyOrder } from '../../dist/runtime/source/redis/key-order.js';

function setup(entries: Array<[string, string]>) {
  const order = new KeyOrder();
  const written: string[] = [];
  for (const [q, key] of entries) order.add(q, key);
  const finish = (q: string, dead = false): boolean => order.finish(q, dead, () => written.push(dead ? `dead ${q}` : q));
  return { order, written, finish };
}

describe('key order of the final writes', () => {
  it('queues a key XACKs in its order when they finish out of it, and other keys without waiting', () => {
    const { written, finish } = setup([
      ['44', 'k1@0'],
      ['45', 'k1@0'],
      ['46', 'k1@0'],
      ['50', 'k2@0'],
    ]);
    expect(finish('45')).toBe(true);
    expect(written).toEqual([]); // 44 has not finished: 45 waits
    expect(finish('50')).toBe(true);
    expect(written).toEqual(['50']);
    expect(finish('44')).toBe(true);
    expect(written).toEqual(['50', '44', '45']);
    finish('46');
    expect(written).toEqual(['50', '44', '45', '46']);
  });

  it('writes at once what it does not follow (unkeyed entries, local sends)', () => {
    const { written, finish } = setup([['1', 'k@0']]);
    expect(finish('9')).toBe(false);
    expect(written).toEqual([]);
  });

  it('a dead letter waits for the writes before it to be confirmed, and the next entries for its own confirmation', () => {
    const { order, written, finish } = setup([
      ['1', 'k@0'],
      ['2', 'k@0'],
      ['3', 'k@0'],
    ]);
    finish('1');
    finish('2', true);
    finish('3');
    expect(written).toEqual(['1']); // the letter is its own script: not in the same pipeline as 1's XACK
    order.confirmed('1');
    expect(written).toEqual(['1', 'dead 2']);
    order.confirmed('2');
    expect(written).toEqual(['1', 'dead 2', '3']);
    order.confirmed('3');
    expect(order.size).toBe(0);
  });

  it('an entry that ends without a write (its partition moved, its reply lost) lets the ones after it go', () => {
    const { order, written, finish } = setup([
      ['1', 'k@0'],
      ['2', 'k@0'],
    ]);
    finish('2');
    expect(written).toEqual([]);
    order.drop('1');
    expect(written).toEqual(['2']);
    order.confirmed('2');
    expect(order.size).toBe(0);
  });

  it('an entry finished twice is followed once (the second is not followed: XACK is idempotent)', () => {
    const { written, finish } = setup([['1', 'k@0']]);
    finish('1');
    expect(finish('1')).toBe(false);
    expect(written).toEqual(['1']);
  });
});
