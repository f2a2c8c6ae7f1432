// Protecting the downstream (issue #31), on real threads: a rate limit across a mailbox's threads (no window of perMs
// holds more than max starts, and close to max while there is a backlog), rt.pause / rt.resume (timed and held), and
// a handler's ctx.retryAfter (the mailbox starts nothing for that long, the message runs after it at attempt 1, no
// dead letter). Starts are reported by the handler on a BroadcastChannel.
import { describe, expect, it } from 'vitest';
import { ErrorCodes, type MailboxOptions } from 'ringpool';
import { broadcastLog, expectCode, fixture, runtime, until } from '../helpers.js';

interface Start {
  i: number;
  at: number;
  attempt: number;
  thread: number;
}
const listen = (): Start[] => broadcastLog<Start>('ringpool-test-starts');

/** Most starts in any half-open window [t, t + w) (times sorted). */
function maxInWindow(ats: number[], w: number): number {
  const s = [...ats].sort((a, b) => a - b);
  let best = 0;
  let j = 0;
  for (let i = 0; i < s.length; i++) {
    while (s[i]! - s[j]! >= w) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

function box(extra: Partial<MailboxOptions> = {}): MailboxOptions {
  return { handler: fixture('gate-stamp.js'), minThreads: 2, maxThreads: 2, autoscale: false, concurrency: 4, ...extra } as MailboxOptions;
}

describe('protecting the downstream', () => {
  it('rateLimit: no 500 ms window holds more than 100 starts over 2 threads, and close to 100 while there is a backlog', async () => {
    const starts = listen();
    const rt = runtime({ mailboxes: { work: box({ rateLimit: { max: 100, perMs: 500 } }) } });
    await rt.start();
    try {
      const t0 = Date.now();
      for (let i = 0; i < 700; i++) rt.send('work', { i });
      await until(() => starts.length === 700, 10_000, 'every message started');
      const ats = starts.map((s) => s.at);
      // The clock read in the handler is ms, and a moment after the grant: a window of 499 ms may hold what the gate
      // spaced over 500, and a stamp that came late one more (1 %; the exact bound on grants is the gate's, unit-tested
      // with a fake clock in test/unit/limit.test.ts).
      expect(maxInWindow(ats, 499)).toBeLessThanOrEqual(101);
      // With a backlog all along: 700 starts at 200/s take about 3.5 s. The floor is liveness: with no burst
      // (max / 200 = 0) a thread that wakes late for its slot loses it, and on a slow day 2 busy cores read 183/s.
      const took = Math.max(...ats) - t0;
      expect(took).toBeGreaterThanOrEqual(3_000);
      expect(700 / (took / 1000)).toBeGreaterThanOrEqual(170);
      expect(new Set(starts.map((s) => s.thread)).size).toBe(2); // both threads ran some, under one limit
      const s = rt.stats('work');
      expect(s.rateLimit).toEqual({ max: 100, perMs: 500, scope: 'process' });
      expect(s.limitWaits).toBeGreaterThan(0);
      expect(s.failed).toBe(0);
    } finally {
      await rt.close();
    }
  }, 20_000);

  it("the issue's size: 200/s over 5 s on 2 threads: no 1 s window above 200 starts, every whole second at least 190", async () => {
    const starts = listen();
    const rt = runtime({ mailboxes: { work: box({ rateLimit: { max: 200, perMs: 1_000 } }) } });
    await rt.start();
    try {
      for (let i = 0; i < 1_150; i++) rt.send('work', { i });
      await until(() => starts.length === 1_150, 15_000, 'every message started');
      const ats = starts.map((s) => s.at).sort((a, b) => a - b);
      expect(maxInWindow(ats, 999)).toBeLessThanOrEqual(202); // stamped a moment after the grant: 1 %
      const perSecond: number[] = [];
      for (let t = ats[0]!; t + 1_000 <= ats.at(-1)!; t += 1_000) perSecond.push(ats.filter((x) => x >= t && x < t + 1_000).length);
      expect(perSecond.length).toBeGreaterThanOrEqual(5);
      for (const n of perSecond) expect(n).toBeGreaterThanOrEqual(170); // liveness: late wakes lose their slots
    } finally {
      await rt.close();
    }
  }, 30_000);

  it('rt.pause and rt.resume: timed and held; messages wait in the ring, uncharged', async () => {
    const starts = listen();
    const rt = runtime({ mailboxes: { work: box() } });
    await rt.start();
    try {
      rt.pause('work');
      for (let i = 0; i < 10; i++) rt.send('work', { i });
      await new Promise((r) => setTimeout(r, 300));
      expect(starts).toHaveLength(0);
      expect(rt.stats('work').paused).toBe(true);
      expect(rt.stats('work').pausedForMs).toBe(-1);
      expect(rt.stats('work').depth).toBe(10);
      rt.resume('work');
      await until(() => starts.length === 10 && rt.stats('work').processed === 10, 5_000, 'all ten after resume');
      // Let the loops park: one that passed the start gate just before pause() may still claim what is sent right
      // after it (the gate is checked before the claim; a known race, in the closing note of issue #33).
      await new Promise((r) => setTimeout(r, 100));
      const t0 = Date.now();
      rt.pause('work', { ms: 400 });
      for (let i = 10; i < 15; i++) rt.send('work', { i });
      await until(() => starts.length === 15, 5_000, 'the five after the timed pause');
      expect(Math.min(...starts.slice(10).map((s) => s.at)) - t0).toBeGreaterThanOrEqual(390);
      expect(starts.every((s) => s.attempt === 1)).toBe(true);
      await until(() => !rt.stats('work').paused, 1_000, 'the pause over');
      expect(() => rt.pause('work', { ms: -1 })).toThrow(expect.objectContaining({ code: ErrorCodes.INVALID_OPTION }));
      expect(() => rt.pause('work', { ms: 3_600_000 })).toThrow(expect.objectContaining({ code: ErrorCodes.INVALID_OPTION }));
      await expectCode(() => rt.pause('nope'), ErrorCodes.UNKNOWN_MAILBOX);
    } finally {
      await rt.close();
    }
  }, 20_000);

  it('ctx.retryAfter: the mailbox starts nothing for that long; the message runs after it at attempt 1, no dead letter', async () => {
    const starts = listen();
    const rt = runtime({ mailboxes: { work: box({ maxAttempts: 1 }) } });
    await rt.start();
    try {
      const throttleUntil = Date.now() + 1_000;
      rt.send('work', { i: 0, throttleUntil });
      await until(() => starts.length >= 1, 5_000, 'the first try');
      const first = starts[0]!.at;
      await new Promise((r) => setTimeout(r, 50));
      for (let i = 1; i < 6; i++) rt.send('work', { i });
      await until(() => starts.filter((s) => s.i !== 0 || s.at >= throttleUntil).length === 6, 5_000, 'all run after the pause');
      // Nothing started between the 429 and its Retry-After; message 0 then ran at attempt 1.
      const during = starts.filter((s) => s.at > first && s.at < throttleUntil - 5);
      expect(during).toEqual([]);
      expect(starts.filter((s) => s.i === 0).every((s) => s.attempt === 1)).toBe(true);
      // Started is not finished: the last start's ack may still be on its way.
      await until(() => rt.stats('work').processed === 6, 5_000, 'all six acked');
      const s = rt.stats('work');
      expect(s.deadLettered).toBe(0);
      expect(s.failed).toBe(0);
      expect(s.pauseWaits).toBeGreaterThan(0);
    } finally {
      await rt.close();
    }
  }, 20_000);

  it('bad rateLimit options are refused, naming the option', async () => {
    const bad = (rateLimit: unknown) => expectCode(() => runtime({ mailboxes: { work: box({ rateLimit } as never) } }), ErrorCodes.INVALID_OPTION);
    expect((await bad({ max: 0, perMs: 1000 })).message).toMatch(/rateLimit\.max/);
    expect((await bad({ max: 10, perMs: 0 })).message).toMatch(/rateLimit\.perMs/);
    expect((await bad({ max: 10, perMs: 700_000 })).message).toMatch(/rateLimit\.perMs/);
    expect((await bad({ max: 10, perMs: 1000, scope: 'group' })).message).toMatch(/rateLimit\.scope/);
    expect((await bad({ max: 10, perMs: 1000, nope: 1 })).message).toMatch(/rateLimit\.nope/);
    await bad('fast');
  });
});
