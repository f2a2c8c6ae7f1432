// Threads shared by mailboxes (issue #28): a thousand mailboxes on the runtime's pool of two threads, real worker
// threads and rings. Faults on a shared thread charge only their culprit: a crash in a handler's synchronous part,
// and a lease kill (a handler spinning), each with other mailboxes' handlers in flight on the same thread, which
// come back uncharged (their successful run reports ctx.attempt 1). A dedicated mailbox's crash leaves the pool alone.
// Reports come from the handler after its work, before it returns (test/fixtures/pool-mix.js).
import { BroadcastChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import type { HandlerTimeoutEvent, MailboxOptions, Runtime, WorkerCrashEvent } from 'ringpool';
import { expectCode, fixture, runtime, until } from '../helpers.js';

interface Report {
  op: string;
  tag: string;
  i: number;
  key: string | null;
  attempt: number;
  thread: number;
}

function listen(): { got: Report[]; close(): void } {
  const ch = new BroadcastChannel('ringpool-pool-mix');
  const got: Report[] = [];
  ch.onmessage = (e) => got.push((e as MessageEvent).data as Report);
  return { got, close: () => ch.close() };
}

const small: MailboxOptions = { handler: fixture('pool-mix.js'), capacityBytes: 64 << 10, maxMessageBytes: 16 << 10, autoscale: false };

/** The crashes and lease expiries the runtime reports, as they come. */
function faultsOf(rt: Runtime): { crashes: WorkerCrashEvent[]; timeouts: HandlerTimeoutEvent[] } {
  const crashes: WorkerCrashEvent[] = [];
  const timeouts: HandlerTimeoutEvent[] = [];
  rt.on('worker-crash', (e) => crashes.push(e));
  rt.on('handler-timeout', (e) => timeouts.push(e));
  return { crashes, timeouts };
}

function processed(rt: Runtime): number {
  let n = 0;
  for (const name of rt.mailboxes) n += rt.stats(name).processed;
  return n;
}

describe('a thousand mailboxes on a shared pool of two threads', () => {
  it('processes 200,000 messages; keyed order and actor state hold; a crash and a lease kill charge only their culprit', async () => {
    const reports = listen();
    try {
      const mailboxes: Record<string, MailboxOptions> = {};
      for (let i = 0; i < 996; i++) mailboxes[`b${i}`] = small;
      mailboxes.keyed = { ...small, minThreads: 2, maxThreads: 2 };
      // A loop on each of the two threads, handlers in flight on both: whichever thread a fault hits, some of its messages are there.
      mailboxes.wide = { ...small, minThreads: 2, maxThreads: 2, concurrency: 8 };
      mailboxes.counter = { handler: fixture('counter-actor.js'), capacityBytes: 64 << 10, maxMessageBytes: 16 << 10, autoscale: false };
      mailboxes.spinner = { ...small, leaseMs: 400, maxAttempts: 3 };
      const rt = runtime({ mailboxes, pool: { maxThreads: 2 } });
      const { crashes, timeouts } = faultsOf(rt);
      await rt.start();

      // 1. Bulk: 200,000 messages, 1,000 a round: 930 mailboxes one each, keyed ones (20 keys), actor calls (50 keys).
      let sent = 0;
      for (let round = 0; round < 200; round++) {
        for (let j = 0; j < 930; j++) {
          const b = (round * 930 + j) % 996;
          for (;;) {
            try {
              rt.send(`b${b}`, { n: sent });
              break;
            } catch (err) {
              if ((err as { code?: string }).code !== 'RINGPOOL_QUEUE_FULL') throw err;
              await new Promise((r) => setTimeout(r, 1));
            }
          }
          sent++;
        }
        for (let k = 0; k < 20; k++) await rt.sendAsync('keyed', { op: 'order', tag: 'keyed', i: round }, { key: `k${k}` });
        for (let k = 0; k < 50; k++) await rt.sendAsync('counter', { add: 1 }, { key: `c${k}` });
        sent += 70;
        if (round % 10 === 0) await new Promise((r) => setImmediate(r));
      }
      expect(sent).toBe(200_000);
      await rt.onIdle();
      expect(processed(rt)).toBe(200_000);
      for (const name of rt.mailboxes) expect(rt.stats(name)).toMatchObject({ failed: 0, deadLettered: 0, redelivered: 0 });
      expect(rt.poolStats().threads).toBeLessThanOrEqual(2);
      await until(() => reports.got.filter((r) => r.tag === 'keyed').length === 4000, 10_000, 'the keyed reports');
      for (let k = 0; k < 20; k++) {
        expect(reports.got.filter((r) => r.key === `k${k}`).map((r) => r.i)).toEqual(Array.from({ length: 200 }, (_, i) => i));
      }
      const counts = await Promise.all(Array.from({ length: 50 }, (_, k) => rt.ask('counter', { add: 0 }, { key: `c${k}` })));
      expect(counts).toEqual(Array.from({ length: 50 }, () => 200));

      // 2. A crash in a handler's synchronous part, with slow handlers of 41 other mailboxes in flight on both threads.
      reports.got.length = 0;
      for (let b = 0; b < 40; b++) rt.send(`b${b}`, { op: 'slow', tag: 'crash-victim', i: b, wait: 300 });
      for (let i = 0; i < 16; i++) rt.send('wide', { op: 'slow', tag: 'wide-crash', i, wait: 300 });
      await new Promise((r) => setTimeout(r, 50));
      rt.send('b100', { op: 'crash', tag: 'culprit', i: 0 });
      await rt.onIdle();
      expect(crashes.map((c) => c.mailbox)).toEqual(['b100']);
      const victims = reports.got.filter((r) => r.tag === 'crash-victim');
      expect(victims.map((r) => r.i).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
      // Some ran on the crashed thread ('wide' runs on both: they were put back and ran again), and none was charged an attempt.
      expect(victims.every((r) => r.attempt === 1)).toBe(true);
      const wide = reports.got.filter((r) => r.tag === 'wide-crash');
      expect(wide.map((r) => r.i).sort((a, b) => a - b)).toEqual(Array.from({ length: 16 }, (_, i) => i));
      expect(wide.every((r) => r.attempt === 1)).toBe(true);
      const redelivered = rt.stats('wide').redelivered;
      expect(redelivered).toBeGreaterThan(0);
      expect(rt.stats('wide')).toMatchObject({ failed: 0, deadLettered: 0 });
      for (let b = 0; b < 40; b++) expect(rt.stats(`b${b}`)).toMatchObject({ failed: 0, deadLettered: 0 });
      expect(reports.got.filter((r) => r.tag === 'culprit').map((r) => r.attempt)).toEqual([2]);
      expect(rt.stats('b100')).toMatchObject({ failed: 1, deadLettered: 0 });

      // 3. A lease kill: a handler spins on its thread past leaseMs, other mailboxes' slow handlers in flight beside it.
      reports.got.length = 0;
      for (let b = 200; b < 240; b++) rt.send(`b${b}`, { op: 'slow', tag: 'kill-victim', i: b, wait: 200 });
      for (let i = 0; i < 16; i++) rt.send('wide', { op: 'slow', tag: 'wide-kill', i, wait: 200 });
      await new Promise((r) => setTimeout(r, 50));
      rt.send('spinner', { op: 'spin', tag: 'spinner', i: 0 });
      await rt.onIdle();
      expect(timeouts.map((t) => t.mailbox)).toEqual(['spinner']);
      const killed = reports.got.filter((r) => r.tag === 'kill-victim');
      expect(killed.map((r) => r.i).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => 200 + i));
      expect(killed.every((r) => r.attempt === 1)).toBe(true);
      const wideKilled = reports.got.filter((r) => r.tag === 'wide-kill');
      expect(wideKilled.map((r) => r.i).sort((a, b) => a - b)).toEqual(Array.from({ length: 16 }, (_, i) => i));
      expect(wideKilled.every((r) => r.attempt === 1)).toBe(true);
      expect(rt.stats('wide').redelivered).toBeGreaterThan(redelivered);
      expect(rt.stats('wide')).toMatchObject({ failed: 0, deadLettered: 0 });
      expect(reports.got.filter((r) => r.tag === 'spinner').map((r) => r.attempt)).toEqual([2]);
      expect(rt.stats('spinner')).toMatchObject({ failed: 1, deadLettered: 0 });
      expect(crashes.map((c) => c.mailbox)).toEqual(['b100']); // a lease kill is not reported as its neighbours' crash
      await rt.close({ timeoutMs: 5_000 });
    } finally {
      reports.close();
    }
  }, 120_000);

  it("a dedicated mailbox's crash does not touch the shared pool", async () => {
    const reports = listen();
    try {
      const rt = runtime({
        mailboxes: {
          own: { ...small, threads: 'dedicated', maxAttempts: 3 },
          a: small,
          b: small,
        },
        pool: { maxThreads: 2 },
      });
      const { crashes } = faultsOf(rt);
      await rt.start();
      for (let i = 0; i < 20; i++) rt.send(i % 2 ? 'a' : 'b', { op: 'slow', tag: 'shared', i, wait: 300 });
      await new Promise((r) => setTimeout(r, 50));
      rt.send('own', { op: 'crash', tag: 'own', i: 0 });
      await rt.onIdle();
      expect(crashes.map((c) => c.mailbox)).toEqual(['own']);
      expect(rt.stats('a')).toMatchObject({ processed: 10, redelivered: 0, failed: 0 });
      expect(rt.stats('b')).toMatchObject({ processed: 10, redelivered: 0, failed: 0 });
      const shared = reports.got.filter((r) => r.tag === 'shared');
      expect(shared.every((r) => r.attempt === 1)).toBe(true);
      const ownRun = reports.got.find((r) => r.tag === 'own')!;
      expect(ownRun.attempt).toBe(2);
      expect(shared.map((r) => r.thread)).not.toContain(ownRun.thread);
    } finally {
      reports.close();
    }
  }, 30_000);

  it("a lease that runs out while another mailbox's handler holds the thread charges that handler, not the expired one", async () => {
    const reports = listen();
    try {
      // One pool thread: the slow handler of 'waiter' (lease 300 ms) is in flight when 'hog' spins on the thread.
      const rt = runtime({
        mailboxes: { waiter: { ...small, leaseMs: 300, maxAttempts: 3 }, hog: { ...small, leaseMs: 2_000, maxAttempts: 3 } },
        pool: { maxThreads: 1 },
      });
      const { crashes, timeouts } = faultsOf(rt);
      await rt.start();
      rt.send('waiter', { op: 'slow', tag: 'waiter', i: 0, wait: 200 });
      await new Promise((r) => setTimeout(r, 50));
      rt.send('hog', { op: 'spin', tag: 'hog', i: 0 });
      await rt.onIdle();
      expect(timeouts.map((t) => t.mailbox)).toEqual(['waiter']); // its lease ran out first...
      expect(reports.got.filter((r) => r.tag === 'waiter').map((r) => r.attempt)).toEqual([1]); // ...but it was not charged
      expect(rt.stats('waiter')).toMatchObject({ processed: 1, failed: 0, deadLettered: 0 });
      expect(reports.got.filter((r) => r.tag === 'hog').map((r) => r.attempt)).toEqual([2]); // the handler that held the thread was
      expect(rt.stats('hog')).toMatchObject({ processed: 1, failed: 1, deadLettered: 0 });
      expect(crashes.map((c) => c.mailbox)).toEqual(['hog']);
    } finally {
      reports.close();
    }
  }, 30_000);

  it('refuses bad threads and pool options with a code naming the option', async () => {
    const h = fixture('pool-mix.js');
    const bad = [
      [{ mailboxes: { m: { handler: h, threads: 'mine' } } }, 'mailboxes.m.threads'],
      [{ mailboxes: { m: { handler: h, threads: 'shared', resourceLimits: { maxOldGenerationSizeMb: 64 } } } }, 'mailboxes.m.threads'],
      [{ mailboxes: { m: { handler: h } }, pool: { maxThreads: 0 } }, 'pool.maxThreads'],
      [{ mailboxes: { m: { handler: h } }, pool: { maxThreads: 33 } }, 'pool.maxThreads'],
      [{ mailboxes: { m: { handler: h } }, pool: { idle: 1 } }, 'pool.idle'],
    ] as const;
    for (const [opts, option] of bad) {
      const err = await expectCode(() => runtime(opts as never), 'RINGPOOL_INVALID_OPTION');
      expect((err as unknown as { details: { option: string } }).details.option).toBe(option);
    }
  });
});
