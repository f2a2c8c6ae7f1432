// The circuit breaker and retryAfter against a real downstream (issue #31): an HTTP server on loopback that answers
// 503 for a while, or 429 with Retry-After; handlers call it with fetch. With maxAttempts 2, a 3 s outage opens the
// breaker, nothing is dead-lettered, and every message is processed after the downstream recovers; 'breaker' events
// say open, half-open and closed; a 429 with Retry-After: 1 pauses the mailbox for a second.
import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { MailboxOptions } from 'ringpool';
import { fixture, runtime, until } from '../helpers.js';

let server: Server | null = null;
afterEach(async () => {
  await new Promise((r) => (server === null ? r(null) : server.close(r)));
  server = null;
});

/** A downstream: `mode()` says what it answers now; every request is recorded with when it came. */
async function downstream(mode: () => 'ok' | 'down' | 'busy'): Promise<{ url: string; seen: { i: number; at: number; status: number }[] }> {
  const seen: { i: number; at: number; status: number }[] = [];
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const m = mode();
      const status = m === 'down' ? 503 : m === 'busy' ? 429 : 200;
      seen.push({ i: (JSON.parse(body) as { i: number }).i, at: Date.now(), status });
      res.writeHead(status, m === 'busy' ? { 'retry-after': '1' } : {});
      res.end();
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server!.address() as { port: number }).port}/`, seen };
}

describe('protecting the downstream: breaker and retryAfter', () => {
  it('a 3 s outage with maxAttempts 2: the breaker opens, nothing is dead-lettered, all processed after recovery', async () => {
    let down = true;
    const d = await downstream(() => (down ? 'down' : 'ok'));
    const rt = runtime({
      mailboxes: {
        work: {
          handler: fixture('downstream-call.js'), minThreads: 1, maxThreads: 1, autoscale: false, concurrency: 4, maxAttempts: 2,
          backoff: { baseMs: 20, maxMs: 50 }, breaker: { failureRatio: 0.5, minCalls: 5, windowMs: 1_000, cooldownMs: 150 },
        } as MailboxOptions,
      },
    });
    const events: string[] = [];
    rt.on('breaker', (e) => events.push(e.state));
    await rt.start();
    try {
      for (let i = 0; i < 12; i++) rt.send('work', { i, url: d.url }); // fewer than the probes a 3 s outage lets through: each is probed more than once
      await until(() => rt.stats('work').breaker?.state === 'open', 5_000, 'the breaker open');
      setTimeout(() => (down = false), 3_000);
      await until(() => rt.stats('work').processed === 12, 15_000, 'all processed after the outage');
      const s = rt.stats('work');
      expect(s.deadLettered).toBe(0);
      expect(s.breaker!.state).toBe('closed');
      expect(s.breaker!.opens).toBeGreaterThanOrEqual(1);
      expect(events[0]).toBe('open');
      expect(events).toContain('half-open');
      expect(events.at(-1)).toBe('closed');
      // While open the downstream saw one probe a cooldown (150 ms) and what tripped it: 3 s of calls on 4 handlers would be hundreds.
      expect(d.seen.filter((r) => r.status === 503).length).toBeLessThan(40);
    } finally {
      await rt.close();
    }
  }, 30_000);

  it('a 429 with Retry-After: 1 pauses the mailbox for a second; the message runs after at attempt 1', async () => {
    let busyUntil = 0;
    const d = await downstream(() => (Date.now() < busyUntil ? 'busy' : 'ok'));
    const rt = runtime({ mailboxes: { work: { handler: fixture('downstream-call.js'), minThreads: 1, maxThreads: 1, autoscale: false, concurrency: 2, maxAttempts: 1 } as MailboxOptions } });
    await rt.start();
    try {
      busyUntil = Date.now() + 200; // busy now: the first call gets a 429 asking for a second
      rt.send('work', { i: 0, url: d.url });
      await until(() => d.seen.length >= 1, 5_000, 'the first call');
      const first = d.seen[0]!.at;
      // Once the handler has read the 429 (the mailbox paused), the others wait for its second.
      await until(() => rt.stats('work').paused, 5_000, 'paused by the 429');
      for (let i = 1; i < 5; i++) rt.send('work', { i, url: d.url });
      await until(() => rt.stats('work').processed === 5, 10_000, 'all five done');
      const after = d.seen.slice(1);
      expect(Math.min(...after.map((r) => r.at)) - first).toBeGreaterThanOrEqual(990);
      expect(rt.stats('work').deadLettered).toBe(0);
      expect(rt.stats('work').failed).toBe(0);
    } finally {
      await rt.close();
    }
  }, 20_000);
});
