// A Redis mailbox across processes and through Redis faults, on real processes and real redis-servers:
// - three consumer processes on one stream, 50,000 messages (50 of them poison), one SIGKILLed mid-run: once the
//   group has acknowledged every entry, each non-poison message has a success recorded after its handler's work
//   and each poison one is in <stream>:dead; duplicates only among what the killed one had pending, taken over
//   within claimIdleMs plus a pass;
// - entries read but waiting for ring room (2 processes, 8 KiB messages, a 256 KiB ring) run once, none dead-lettered;
// - a Redis of this test's own killed and restarted without persistence mid-run: the group is recreated
//   (RINGPOOL_SOURCE_RESET), /healthz is 503 while it is down, and what is sent after the restart runs.
// Runs are counted in the suite's Redis (REDIS_URL), which no test restarts.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createClient } from 'redis';
import { Registry } from 'prom-client';
import { ErrorCodes } from 'ringpool';
import { createMetrics, serve, type HealthReport } from 'ringpool/metrics';
import { redisProducer } from 'ringpool/redis';
import { fixture, runtime, until, untilAsync } from '../helpers.js';
import { freePort } from '../net.js';

const url = process.env.REDIS_URL!;
const admin = createClient({ url });
admin.on('error', () => undefined);
const prefix = `ringpool-test-fleet-${process.pid}`;
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  if (!admin.isOpen) return;
  for (const k of await admin.keys(`${prefix}*`)) await admin.del(k);
  await admin.quit();
});

/** A consumer process; `out` collects the 'error <code> ...' lines it prints. */
function child(stream: string, consumer: string, claimIdleMs: number, overrides?: object, out: string[] = []): Promise<ChildProcess> {
  const args = [fileURLToPath(fixture('redis-child.mjs')), url, stream, consumer, String(claimIdleMs)];
  if (overrides !== undefined) args.push(JSON.stringify(overrides));
  const c = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(c);
  return new Promise((resolve, reject) => {
    let text = '';
    c.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      for (const line of d.toString().split('\n')) if (line.startsWith('error ')) out.push(`${consumer}: ${line}`);
      if (text.includes('ready')) resolve(c);
    });
    c.once('exit', (code) => reject(new Error(`consumer ${consumer} exited with ${code} before it was ready: ${text}`)));
  });
}

const stopAll = async (procs: ChildProcess[]): Promise<void> => {
  for (const c of procs) if (c.exitCode === null) c.kill('SIGTERM');
  await Promise.all(procs.map((c) => new Promise((r) => (c.exitCode === null ? c.once('exit', r) : r(null)))));
};

function fileURLToPath(u: URL): string {
  return decodeURIComponent(u.pathname);
}

const pendingOf = async (stream: string, consumer?: string): Promise<string[]> => {
  const rows = (await admin.sendCommand(['XPENDING', stream, 'ringpool', '-', '+', '100000', ...(consumer === undefined ? [] : [consumer])])) as unknown[][];
  return rows.map((r) => String(r[0]));
};

describe('Redis Streams source across processes', () => {
  it('three processes, 50,000 messages, one SIGKILLed mid-run: every acknowledged message has a recorded success, duplicates only from what it held, taken over in time', async () => {
    await admin.connect();
    const stream = `${prefix}-three`;
    const runs = `${stream}:runs`;
    const claimIdleMs = 1_000;
    // Successes are recorded after the handler's work (redis-work.js), so a run cut short by the kill leaves no record.
    const overrides = { handler: 'redis-work.js' };
    const procs = await Promise.all(['c0', 'c1', 'c2'].map((c) => child(stream, c, claimIdleMs, overrides)));
    const N = 50_000;
    const poison = (i: number): boolean => i % 1_000 === 999; // 50, dead-lettered after maxAttempts (5)
    const p = redisProducer({ url, stream });
    for (let i = 0; i < N; i++) p.send({ i, url, runs, workMs: 1, fail: poison(i) });
    await p.close();
    await untilAsync(async () => (await admin.hLen(runs)) >= N / 4, 60_000, 'a quarter run');
    procs[0]!.kill('SIGKILL');
    const killedAt = Date.now();
    const held = await pendingOf(stream, 'c0');
    // Which message each of its entries carries (pending entries are never trimmed from the stream).
    const reads = await Promise.all(held.map((id) => admin.xRange(stream, id, id)));
    expect(reads.every((r) => r.length === 1)).toBe(true);
    const heldIs = new Set(reads.map((r) => (JSON.parse(r[0]!.message.d!) as { i: number }).i));
    await untilAsync(async () => (await pendingOf(stream, 'c0')).length === 0, 10_000, "the killed consumer's entries taken over");
    const takenMs = Date.now() - killedAt;
    // Every entry delivered to the group and acknowledged (or dead-lettered with its XACK).
    const settled = async (): Promise<boolean> => {
      const g = ((await admin.sendCommand(['XINFO', 'GROUPS', stream])) as Array<Record<string, unknown>>)[0]!;
      return Number(g['entries-read']) === N && Number(g.pending) === 0;
    };
    await untilAsync(settled, 60_000, 'every entry acknowledged');
    const counts = await admin.hGetAll(runs);
    const missing: number[] = [];
    for (let i = 0; i < N; i++) if (!poison(i) && !(Number(counts[String(i)]) >= 1)) missing.push(i);
    const dead = new Set((await admin.xRange(`${stream}:dead`, '-', '+')).map((e) => (JSON.parse(e.message.d!) as { i: number }).i));
    const dups = Object.entries(counts).filter(([, v]) => Number(v) > 1).map(([k]) => Number(k));
    console.log(`three processes: ${N} messages, killed one holding ${held.length}, ${dups.length} ran twice, ${missing.length} acknowledged without a success, ${dead.size} dead letters, taken over in ${takenMs} ms`);
    expect(missing.slice(0, 20)).toEqual([]); // an acknowledged message without a recorded success is a lost one
    expect(Object.keys(counts).length).toBe(N - 50);
    expect([...dead].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, k) => k * 1_000 + 999));
    expect(dups.filter((i) => !heldIs.has(i))).toEqual([]);
    expect(held.length).toBeGreaterThan(0);
    expect(held.length).toBeLessThanOrEqual(384); // 2 x readCount read, 1 x more taken over
    // Idle for claimIdleMs since its last touch, found by the next takeover pass (every claimIdleMs/4), on 2 busy cores.
    expect(takenMs).toBeLessThanOrEqual(claimIdleMs + 250 + 750);
    await stopAll(procs.slice(1));
  }, 120_000);

  it('entries read but waiting for ring room are held and touched: 2 processes, 8 KiB messages, a 256 KiB ring, 50 ms handlers, claimIdleMs 1 s: each runs once, none dead-lettered', async () => {
    if (!admin.isOpen) await admin.connect();
    const stream = `${prefix}-room`;
    const runs = `${stream}:runs`;
    // A read of 256 entries fills a ring of about 30 messages; at 4 x 50 ms a process the last ones wait about 3 s for room,
    // three times claimIdleMs. maxAttempts 2: one takeover of a waiting entry too many and it is a dead letter.
    const overrides = {
      handler: 'redis-work.js',
      mailbox: { maxThreads: 1, concurrency: 4, capacityBytes: 256 << 10, maxMessageBytes: 16 << 10, maxAttempts: 2 },
      redis: { readCount: 256 },
    };
    const errors: string[] = [];
    const procs = await Promise.all(['r0', 'r1'].map((c) => child(stream, c, 1_000, overrides, errors)));
    const N = 1_000;
    const pad = 'x'.repeat(8 << 10);
    const p = redisProducer({ url, stream });
    for (let i = 0; i < N; i++) p.send({ i, url, runs, workMs: 50, pad });
    await p.close();
    await untilAsync(async () => (await admin.hLen(runs)) === N, 60_000, 'every message run');
    await untilAsync(async () => (await pendingOf(stream)).length === 0, 10_000, 'nothing pending');
    await new Promise((r) => setTimeout(r, 300)); // a late second run of the last ones would show by now
    const counts = Object.values(await admin.hGetAll(runs)).map(Number);
    const twice = counts.filter((c) => c > 1).length;
    const dead = await admin.xLen(`${stream}:dead`);
    console.log(`waiting for room: ${N} messages of 8 KiB over 2 processes, ${twice} ran more than once, ${dead} dead-lettered`);
    expect(twice).toBe(0);
    expect(counts.length).toBe(N);
    expect(dead).toBe(0);
    expect(errors).toEqual([]);
    await stopAll(procs);
  }, 90_000);

  it('Redis killed and restarted without persistence mid-run: the group is recreated, /healthz and /readyz are 503 meanwhile and /livez 200, later sends run', async () => {
    if (!admin.isOpen) await admin.connect();
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'ringpool-redis-restart-'));
    const start = async (): Promise<ChildProcess> => {
      const r = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
      children.push(r);
      const c = createClient({ url: `redis://127.0.0.1:${port}`, socket: { reconnectStrategy: 20 } });
      c.on('error', () => undefined);
      await c.connect();
      await c.quit();
      return r;
    };
    let server = await start();
    const own = `redis://127.0.0.1:${port}`;
    const stream = `${prefix}-restart`;
    const runs = `${stream}:runs`;
    const rt = runtime({
      mailboxes: { work: { handler: fixture('redis-record.js'), maxThreads: 1, concurrency: 4, source: { redis: { url: own, stream, claimIdleMs: 500, blockMs: 100 } } } },
    });
    const errors: string[] = [];
    rt.on('error', (e) => errors.push((e as { code: string }).code));
    const registry = new Registry();
    createMetrics(rt, { registry });
    await rt.start();
    const http = await serve(registry, { port: 0 });
    try {
      for (let i = 0; i < 1_000; i++) rt.send('work', { i, url, runs });
      await until(() => rt.stats('work').stream!.acked === 1_000, 20_000, 'the first thousand');
      server.kill('SIGKILL');
      await new Promise((r) => server.once('exit', r));
      await until(() => !rt.stats('work').stream!.connected, 5_000, 'seen down');
      expect((await fetch(`${http.url}/healthz`)).status).toBe(503);
      // Readiness red (send this pod no work), liveness green (a restart would not bring Redis back).
      const ready = await fetch(`${http.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as HealthReport).mailboxes.work).toMatchObject({ state: 'running', redis: 'unreachable', notReady: 'redis unreachable' });
      const live = await fetch(`${http.url}/livez`);
      expect(live.status).toBe(200);
      expect(((await live.json()) as HealthReport).mailboxes.work).toMatchObject({ state: 'running', redis: 'unreachable' });
      server = await start();
      await until(() => rt.stats('work').stream!.connected, 10_000, 'reconnected');
      await until(() => errors.includes(ErrorCodes.SOURCE_RESET), 10_000, 'the group recreated');
      expect((await fetch(`${http.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${http.url}/readyz`)).status).toBe(200);
      const ids: string[] = [];
      for (let i = 1_000; i < 2_000; i++) ids.push(await rt.sendAsync<string>('work', { i, url, runs }));
      await untilAsync(async () => (await admin.hLen(runs)) === 2_000, 20_000, 'the later thousand run');
      expect(ids.every((id) => /^\d+-\d+$/.test(id))).toBe(true);
      expect(errors).toContain(ErrorCodes.SOURCE_IO);
      expect(rt.stats('work').stream!.resets).toBeGreaterThanOrEqual(1);
      expect(rt.stats('work').stream!.reconnects).toBeGreaterThanOrEqual(1);
      // close() with Redis gone for good: bounded (blockMs + 1 s for the reader, 5 s for the last writes), never a hang.
      for (let i = 2_000; i < 2_100; i++) rt.send('work', { i, url, runs });
      server.kill('SIGKILL');
      await new Promise((r) => server.once('exit', r));
      const t = Date.now();
      await rt.close();
      expect(Date.now() - t).toBeLessThan(9_000);
    } finally {
      await http.close();
      server.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
