// When a mailbox may start a consumer loop again after loops failed to load their handler mid-run
// (runtime/mailbox/load-backoff.ts), with a fake clock: 100 ms, doubling to 5 s while they keep failing, at once
// again after one loads.
import { describe, expect, it } from 'vitest';
import { LOAD_RETRY_MAX_MS, LOAD_RETRY_MS, LoadBackoff } from '../../dist/runtime/mailbox/load-backoff.js';

describe('the load backoff', () => {
  it('waits 100 ms after a failure, doubling to 5 s, and no loop may start before', () => {
    const b = new LoadBackoff();
    expect(b.mayStart(0)).toBe(true);
    let t = 1_000;
    const waits: number[] = [];
    for (let i = 0; i < 8; i++) {
      const ms = b.failed(t);
      waits.push(ms);
      expect(b.mayStart(t + ms - 1)).toBe(false);
      expect(b.mayStart(t + ms)).toBe(true);
      t += ms;
    }
    expect(waits).toEqual([100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000]);
    expect(LOAD_RETRY_MS).toBe(100);
    expect(LOAD_RETRY_MAX_MS).toBe(5_000);
  });

  it('a loop that loads resets it: the next failure waits the shortest time, and a start may come at once', () => {
    const b = new LoadBackoff();
    b.failed(0);
    b.failed(100);
    b.failed(300);
    b.loaded();
    expect(b.mayStart(301)).toBe(true);
    expect(b.failed(301)).toBe(100);
  });
});
