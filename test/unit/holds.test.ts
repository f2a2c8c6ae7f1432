// Which keyed sends go through the delayed script (runtime/source/redis/holds.ts), without Redis: a fake HMGET and
// fake timers. A key is routed through the script from the moment a delayed send of it is queued here or another
// process says it holds it, and forgotten only once Redis holds nothing for it, asked after every delayed send of it
// from here was answered.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HOLDS_REFRESH_MS, KeyHolds } from '../../dist/runtime/source/redis/holds.js';

function fake(held: Set<string>) {
  const asked: string[][] = [];
  const client = {
    sendCommand: async (args: string[]) => {
      asked.push(args.slice(2));
      return args.slice(2).map((k) => (held.has(k) ? '1 0' : null));
    },
  };
  return { client: async () => client, asked };
}

describe('key holds', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('a queued delayed send holds its key until answered and Redis holds nothing for it', async () => {
    const held = new Set<string>(['a']);
    const f = fake(held);
    const h = new KeyHolds('{s}:delayed:holds', f.client);
    expect(h.may('a')).toBe(false);
    h.sending('a');
    expect(h.may('a')).toBe(true);
    expect(h.may('b')).toBe(false);
    await vi.advanceTimersByTimeAsync(HOLDS_REFRESH_MS);
    expect(f.asked).toEqual([]); // not answered yet: not asked about
    h.answered('a');
    await vi.advanceTimersByTimeAsync(HOLDS_REFRESH_MS);
    expect(f.asked).toEqual([['a']]);
    expect(h.may('a')).toBe(true); // Redis still holds it (not moved yet)
    held.delete('a'); // moved
    await vi.advanceTimersByTimeAsync(HOLDS_REFRESH_MS);
    expect(h.may('a')).toBe(false);
    expect(h.size).toBe(0);
    await vi.advanceTimersByTimeAsync(10 * HOLDS_REFRESH_MS);
    expect(f.asked).toHaveLength(2); // nothing to ask about: no more asking
  });

  it("another process's hold, learnt from the channel, routes the key until Redis drops it; a send queued meanwhile keeps it", async () => {
    const held = new Set<string>();
    const f = fake(held);
    const h = new KeyHolds('{s}:delayed:holds', f.client);
    h.learn('k');
    expect(h.may('k')).toBe(true);
    h.sending('k'); // our own delayed send of k, before the refresh
    await vi.advanceTimersByTimeAsync(HOLDS_REFRESH_MS);
    expect(h.may('k')).toBe(true); // Redis says none, but ours is unanswered
    h.answered('k');
    await vi.advanceTimersByTimeAsync(HOLDS_REFRESH_MS);
    expect(h.may('k')).toBe(false);
    h.stop();
  });
});
