// Delayed messages of a Redis mailbox across processes (issue #30), on real processes and the suite's Redis:
// three consumer processes, 10,000 delayed messages pending at once from a redisProducer, and one consumer
// SIGKILLed inside its delayed mover (a test hook: the move script sent, its answer not read). Nothing lost, nothing
// doubled: the stream (kept: keepAckedMs false) holds each message exactly once, and each has a run recorded after its
// work; a run twice only for what the killed process held. Lateness is checked only loosely (bench:delayed measures it).
import { describe, expect, it } from 'vitest';
import { redisProducer } from 'ringpool/redis';
import { untilAsync } from '../helpers.js';
import { scratch, url } from '../redis-helpers.js';

const { admin, child } = scratch(`ringpool-test-delayed-fleet-${process.pid}`);
const prefix = `ringpool-test-delayed-fleet-${process.pid}`;

describe('delayed messages across processes', () => {
  it('10,000 pending, three consumers, one SIGKILLed inside the mover: each message enters the stream once and runs', async () => {
    await admin.connect();
    const stream = `${prefix}-kill`;
    const runs = `${stream}:runs`;
    const base = { handler: 'redis-stamp.js', mailbox: { concurrency: 8 }, redis: { keepAckedMs: false } };
    const procs = await Promise.all([
      child(stream, 'c0', base),
      child(stream, 'c1', base),
      // Dies in its 40th pass: by then due messages are being moved (they come due every ms or so).
      child(stream, 'c2', { ...base, killInMover: 40 }),
    ]);
    const N = 10_000;
    const p = redisProducer({ url, stream });
    const t0 = Date.now();
    for (let i = 0; i < N; i++) p.send({ i, url, runs, sent: Date.now(), d: 1_000 + (i % 3_000) }, { delayMs: 1_000 + (i % 3_000) });
    await p.close();
    expect(Date.now() - t0).toBeLessThan(1_000); // all pending at once before the first is due
    const killed = new Promise<NodeJS.Signals | null>((r) => procs[2]!.once('exit', (_code, sig) => r(sig)));
    await untilAsync(async () => (await admin.hLen(runs)) === N, 60_000, 'every delayed message run');
    expect(await killed).toBe('SIGKILL');
    // Each message entered the stream exactly once (the move is one script: a kill around it neither loses nor doubles).
    const entries = await admin.xRange(stream, '-', '+');
    const inStream = new Map<number, number>();
    for (const e of entries) {
      const i = (JSON.parse(e.message.d!) as { i: number }).i;
      inStream.set(i, (inStream.get(i) ?? 0) + 1);
    }
    expect(inStream.size).toBe(N);
    expect([...inStream.values()].every((c) => c === 1)).toBe(true);
    expect(await admin.zCard(`{${stream}}:delayed`)).toBe(0);
    const counts = Object.values(await admin.hGetAll(runs)).map(Number);
    const twice = counts.filter((c) => c > 1).length;
    expect(twice).toBeLessThanOrEqual(3 * 128); // at most what the killed process held (3 reads of readCount 128)
    // Loosely on time (bench:delayed has the figures): none early; most within a second of their due time.
    const late = (await admin.lRange(`${runs}:order`, 0, -1)).map((l) => {
      const [i, at] = l.split(':').map(Number);
      return at! - (t0 + 1_000 + (i! % 3_000));
    });
    late.sort((a, b) => a - b);
    // A bound for a stuck mover, not a figure: 10,000 due over 3 s on 2 busy cores with a process killed read 1,057 ms
    // at p90 once (bench:delayed measures lateness).
    expect(late[Math.floor(late.length * 0.9)]!).toBeLessThan(3_000);
    for (const c of procs) if (c.exitCode === null) c.kill('SIGTERM');
    await Promise.all(procs.map((c) => new Promise((r) => (c.exitCode === null && c.signalCode === null ? c.once('exit', r) : r(null)))));
  }, 90_000);
});
