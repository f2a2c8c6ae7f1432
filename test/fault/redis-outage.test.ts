// Sends to a Redis mailbox and through redisProducer while Redis is away, on redis-servers of this file's own (free
// ports, killed and restarted); runs are recorded in the suite's Redis (REDIS_URL), which no test restarts:
// - SIGKILLed under load with appendfsync always and restarted, loading its data for a second or two: a LOADING
//   reply fails no send (each is written again), every resolved send is in the stream and runs, stats().stream.
//   reconnects counts the one outage;
// - during an outage: timeoutMs and signal end a sendAsync (not sent), what waits is bounded by sendBufferBytes
//   (RINGPOOL_QUEUE_FULL, send() throws), and what waited is in the stream once Redis is back.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createClient } from 'redis';
import { ErrorCodes, type MailboxOptions } from 'ringpool';
import { redisProducer } from 'ringpool/redis';
import { expectCode, fixture, runtime, until } from '../helpers.js';
import { freePort } from '../net.js';
import { sortReplies } from '../../dist/runtime/source/redis/acks.js';

const suite = process.env.REDIS_URL!;
const admin = createClient({ url: suite });
admin.on('error', () => undefined);
const prefix = `ringpool-test-outage-${process.pid}`;
const servers: ChildProcess[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const s of servers) if (s.exitCode === null) s.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  if (!admin.isOpen) return;
  for (const k of await admin.keys(`${prefix}*`)) await admin.del(k);
  await admin.quit();
});

/** The first line a raw PING gets ('+PONG', '-LOADING ...'), or null when nothing listens. */
function ping(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const done = (r: string | null): void => {
      s.destroy();
      resolve(r);
    };
    s.setTimeout(1_000, () => done(null));
    s.on('error', () => done(null));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => done(d.toString().split('\r\n')[0]!));
  });
}

/** A redis-server of this test's own on `port` in `dir`; resolves once it answers (PONG, or LOADING when `loading`). */
async function server(port: number, dir: string, args: string[], loading = false): Promise<ChildProcess> {
  const s = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir, ...args], { stdio: 'ignore' });
  servers.push(s);
  for (const end = Date.now() + 10_000; ; await new Promise((r) => setTimeout(r, 20))) {
    const r = await ping(port);
    if (r === '+PONG' || (loading && r?.startsWith('-LOADING'))) return s;
    if (s.exitCode !== null || Date.now() > end) throw new Error(`redis-server on ${port} did not answer (${r})`);
  }
}

async function kill(s: ChildProcess): Promise<void> {
  if (s.exitCode !== null) return;
  const gone = new Promise((r) => s.once('exit', r));
  s.kill('SIGKILL');
  await gone;
}

function box(url: string, stream: string, redis: Record<string, unknown> = {}): MailboxOptions {
  return {
    handler: fixture('redis-work.js'),
    maxThreads: 1,
    concurrency: 8,
    source: { redis: { url, stream, claimIdleMs: 2_000, blockMs: 100, keepAckedMs: false, ...redis } },
  } as MailboxOptions;
}

type Result = { i: number; id?: string; err?: Error & { code?: string; details?: Record<string, unknown> } };

describe('Redis sends during an outage', () => {
  it('Redis SIGKILLed under load (appendfsync always) and restarted, loading for a while: no send fails on LOADING, every resolved one is in the stream and runs, one outage counted', async () => {
    await admin.connect();
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'ringpool-outage-'));
    dirs.push(dir);
    // Each key loads 100 µs late, and Redis answers clients every 1 KiB it loads: 10,000 keys load for 1 s or more.
    const args = ['--appendonly', 'yes', '--appendfsync', 'always', '--key-load-delay', '100', '--loading-process-events-interval-bytes', '1024'];
    let srv = await server(port, dir, args);
    const url = `redis://127.0.0.1:${port}`;
    const fill = createClient({ url });
    await fill.connect();
    await fill.sendCommand(['EVAL', "for i = 1, 10000 do redis.call('SET', 'fill:' .. i, 'x') end return 1", '0']);
    await fill.quit();
    const stream = `${prefix}-load`;
    const runs = `${stream}:runs`;
    // maxAttempts 3: a read whose reply the kill cut off counts a delivery, and a takeover another.
    const rt = runtime({ mailboxes: { work: { ...box(url, stream), maxAttempts: 3, backoff: { baseMs: 5, maxMs: 20 } } } });
    const events: string[] = [];
    rt.on('error', (e) => events.push((e as { code: string }).code));
    await rt.start();
    const p = redisProducer({ url, stream });
    const results: Promise<Result>[] = [];
    let sending = true;
    let k = 0;
    // 2,000 sends a second, half through the mailbox, half through the producer.
    const loop = (async () => {
      while (sending) {
        for (let j = 0; j < 10; j++) {
          const i = k++;
          const msg = { i, url: suite, runs, fail: i % 100 === 99 }; // 1 in 100 poison: dead-lettered across the restart too
          const sent = i % 2 === 0 ? rt.sendAsync<string>('work', msg) : p.sendAsync(msg);
          results.push(sent.then((id) => ({ i, id }), (err: Result['err']) => ({ i, err })));
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    await kill(srv);
    await until(() => !rt.stats('work').stream!.connected, 5_000, 'seen down');
    await new Promise((r) => setTimeout(r, 1_000));
    srv = await server(port, dir, args, true);
    const loadStart = Date.now();
    let loadingSeen = 0;
    for (const end = Date.now() + 30_000; (await ping(port)) !== '+PONG'; await new Promise((r) => setTimeout(r, 20))) {
      loadingSeen++;
      if (Date.now() > end) throw new Error('Redis still loading after 30 s');
    }
    const loadedMs = Date.now() - loadStart;
    await new Promise((r) => setTimeout(r, 500));
    sending = false;
    await loop;
    const all = await Promise.all(results);
    const info = createClient({ url });
    info.on('error', () => undefined);
    await info.connect();
    const loadingReplies = /errorstat_LOADING:count=(\d+)/.exec(String(await info.sendCommand(['INFO', 'errorstats'])))?.[1] ?? '0';
    const resolved = all.filter((r) => r.id !== undefined);
    const rejected = all.filter((r) => r.err !== undefined);
    const inStream = new Map((await info.xRange(stream, '-', '+')).map((e) => [e.id, (JSON.parse(e.message.d!) as { i: number }).i]));
    console.log(
      `outage: ${all.length} sends, ${resolved.length} resolved, ${rejected.length} rejected (${[...new Set(rejected.map((r) => r.err!.code))].join(', ') || 'none'}), ` +
        `${inStream.size} in the stream; Redis answered LOADING to our pings for ${loadedMs} ms and to all clients LOADING ${loadingReplies} times; reconnects ${rt.stats('work').stream!.reconnects}`,
    );
    expect(loadingSeen).toBeGreaterThan(0);
    expect(Number(loadingReplies)).toBeGreaterThan(0);
    // Only sends cut off by the kill itself fail, each saying it may be in the stream; none because Redis was loading.
    expect(rejected.filter((r) => /LOADING/.test(r.err!.message)).map((r) => r.err!.message).slice(0, 3)).toEqual([]);
    for (const r of rejected) {
      expect(r.err!.code).toBe(ErrorCodes.SOURCE_IO);
      expect(r.err!.details!.maybeWritten).toBe(true);
    }
    expect(rejected.length).toBeLessThan(200);
    // Every resolved send is in the stream (appendfsync always), under the id it resolved with.
    expect(resolved.filter((r) => inStream.get(r.id!) !== r.i).map((r) => r.i), 'resolved, not in the stream under its id').toEqual([]);
    expect(inStream.size).toBeLessThanOrEqual(resolved.length + rejected.length);
    // And runs once Redis is back.
    const want = [...new Set(inStream.values())];
    const poison = want.filter((i) => i % 100 === 99);
    const group = async (): Promise<Record<string, unknown>> => ((await info.sendCommand(['XINFO', 'GROUPS', stream])) as Array<Record<string, unknown>>)[0]!;
    await until(() => rt.stats('work').stream!.held === 0, 30_000, 'nothing held');
    for (const end = Date.now() + 30_000; ; await new Promise((r) => setTimeout(r, 50))) {
      const g = await group();
      if (g.lag === 0 && g.pending === 0) break;
      if (Date.now() > end) throw new Error(`not all acknowledged: ${JSON.stringify(g)}`);
    }
    const ran = await admin.hGetAll(runs);
    const notRun = want.filter((i) => i % 100 !== 99 && !(Number(ran[String(i)]) >= 1));
    expect(notRun, 'in the stream, acknowledged, never run').toEqual([]);
    // Each poison one has its letter (written twice at most when its reply was lost with the connection, never lost).
    const letters = (await info.xRange(`${stream}:dead`, '-', '+')).map((e) => (JSON.parse(e.message.d!) as { i: number }).i);
    expect([...new Set(letters)].sort((a, b) => a - b)).toEqual(poison.sort((a, b) => a - b));
    console.log(`outage: ${poison.length} poison messages, ${letters.length} letters in <stream>:dead`);
    expect(rt.stats('work').stream!.reconnects).toBe(1);
    expect(events).toContain(ErrorCodes.SOURCE_IO);
    await info.quit();
    await p.close();
    await rt.close();
    await kill(srv);
  }, 90_000);

  it('during an outage: timeoutMs and signal end a sendAsync (not sent), sendBufferBytes bounds what waits (send() throws RINGPOOL_QUEUE_FULL), what waited is sent once Redis is back', async () => {
    if (!admin.isOpen) await admin.connect();
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'ringpool-outage-'));
    dirs.push(dir);
    let srv = await server(port, dir, ['--appendonly', 'no']);
    const url = `redis://127.0.0.1:${port}`;
    const stream = `${prefix}-bound`;
    const runs = `${stream}:runs`;
    const rt = runtime({ mailboxes: { work: box(url, stream, { sendBufferBytes: 64 << 10 }) } });
    rt.on('error', () => undefined);
    await rt.start();
    const p = redisProducer({ url, stream, sendBufferBytes: 64 << 10 });
    const pad = 'x'.repeat(1_000);
    await rt.sendAsync('work', { i: -1, url: suite, runs });
    await p.sendAsync({ i: -2, url: suite, runs });
    await kill(srv);
    await until(() => !rt.stats('work').stream!.connected, 5_000, 'seen down');
    // Both connections have seen it (a send written into a socket the kill just closed is reported written: true).
    await new Promise((r) => setTimeout(r, 300));
    const outageStart = Date.now();
    const tags: Record<string, string[]> = { sent: [], timedOut: [], aborted: [] };
    for (const [name, send] of [
      ['mailbox', (m: object, o?: { timeoutMs?: number; signal?: AbortSignal }) => rt.sendAsync<string>('work', m, o)],
      ['producer', (m: object, o?: { timeoutMs?: number; signal?: AbortSignal }) => p.sendAsync(m, o)],
    ] as const) {
      // timeoutMs: RINGPOOL_TIMEOUT at its time, not at the end of the outage; never written.
      const t = Date.now();
      const late = await expectCode(send({ tag: `${name}-timeout`, url: suite, runs }, { timeoutMs: 300 }), ErrorCodes.TIMEOUT);
      expect(Date.now() - t).toBeLessThan(2_000);
      expect(late.details).toMatchObject({ written: false });
      tags.timedOut!.push(`${name}-timeout`);
      // signal: aborted while waiting, and aborted before.
      const ac = new AbortController();
      const waiting = send({ tag: `${name}-abort`, url: suite, runs }, { signal: ac.signal });
      setTimeout(() => ac.abort(new Error(`stop ${name}`)), 100);
      await expect(waiting).rejects.toThrow(`stop ${name}`);
      await expect(send({ tag: `${name}-pre`, url: suite, runs }, { signal: AbortSignal.abort(new Error('before')) })).rejects.toThrow('before');
      tags.aborted!.push(`${name}-abort`, `${name}-pre`);
    }
    // What waits is bounded: about 64 sends of 1 KiB each, then send() throws and sendAsync rejects, both QUEUE_FULL.
    const waiting: Promise<string>[] = [];
    for (let i = 0; i < 10; i++) {
      tags.sent!.push(`wait-${i}`);
      waiting.push(rt.sendAsync<string>('work', { tag: `wait-${i}`, url: suite, runs }));
    }
    let accepted = 0;
    const full = await expectCode(() => {
      for (;;) {
        rt.send('work', { tag: `send-${accepted}`, url: suite, runs, pad });
        tags.sent!.push(`send-${accepted++}`);
      }
    }, ErrorCodes.QUEUE_FULL);
    expect(full.message).toContain('sendBufferBytes 65536');
    expect(accepted).toBeGreaterThan(40);
    expect(accepted).toBeLessThan(70);
    await expectCode(rt.sendAsync('work', { tag: 'refused', url: suite, runs, pad }), ErrorCodes.QUEUE_FULL);
    expect(rt.stats('work').rejectedBy.queue_full).toBe(2);
    expect(rt.stats('work').stream!.sendWaitingBytes).toBeGreaterThan(60_000);
    expect(rt.stats('work').stream!.sendWaitingBytes).toBeLessThanOrEqual(64 << 10);
    let pAccepted = 0;
    await expectCode(() => {
      for (;;) {
        p.send({ tag: `psend-${pAccepted}`, url: suite, runs, pad });
        tags.sent!.push(`psend-${pAccepted++}`);
      }
    }, ErrorCodes.QUEUE_FULL);
    expect(pAccepted).toBeGreaterThan(40);
    expect(p.waitingBytes).toBeGreaterThan(60_000);
    expect(Date.now() - outageStart).toBeLessThan(5_000); // all of it seen while Redis stays down
    console.log(`outage: sendBufferBytes 64 KiB took ${accepted} sends of 1 KiB (mailbox), ${pAccepted} (producer), then RINGPOOL_QUEUE_FULL`);
    // Back (without persistence: the stream starts empty): what waited is written; what timed out or was aborted is not.
    srv = await server(port, dir, ['--appendonly', 'no']);
    const ids = await Promise.all(waiting);
    expect(ids.every((id) => /^\d+-\d+$/.test(id))).toBe(true);
    await p.close();
    expect(p.waitingBytes).toBe(0);
    await until(() => rt.stats('work').stream!.sendWaitingBytes === 0, 10_000, 'the mailbox\'s sends written');
    const check = createClient({ url });
    await check.connect();
    await until(() => rt.stats('work').stream!.connected, 10_000, 'reconnected');
    let got: string[] = [];
    for (const end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
      got = (await check.xRange(stream, '-', '+')).map((e) => (JSON.parse(e.message.d!) as { tag: string }).tag);
      if (got.length >= tags.sent!.length) break;
    }
    expect(got.sort()).toEqual([...tags.sent!].sort());
    await check.quit();
    await rt.close();
    await kill(srv);
  }, 60_000);
});

describe('Redis acknowledgements: each reply on its own (sortReplies)', () => {
  const loading = { status: 'rejected', reason: new Error('LOADING Redis is loading the dataset in memory') } as const;
  const noGroup = { status: 'rejected', reason: new Error('NOGROUP No such key') } as const;
  const ok = (value: unknown) => ({ status: 'fulfilled', value }) as const;

  it('writes again only the XACK chunk and the dead letters that failed; NOGROUP counts as done', () => {
    const acks = Array.from({ length: 2_500 }, (_, i) => `1-${i}`);
    const chunks = [acks.slice(0, 1_024), acks.slice(1_024, 2_048), acks.slice(2_048)];
    const r = sortReplies(chunks, [ok(1_024), loading, ok(452)], ['a', 'b', 'c', 'd'], [ok('9-0'), loading, noGroup, ok('9-1')]);
    expect(r.acked).toBe(1_476);
    expect(r.ackAgain).toEqual(acks.slice(1_024, 2_048));
    expect(r.ackDone).toEqual([...acks.slice(0, 1_024), ...acks.slice(2_048)]);
    expect(r.deadAgain).toEqual(['b']);
    expect(r.deadDone).toEqual(['a', 'c', 'd']);
    expect((r.err as Error).message).toMatch(/^LOADING/);
    const clean = sortReplies([['1-0']], [ok(1)], ['a'], [noGroup]);
    expect(clean.err).toBeNull();
    expect(clean.deadDone).toEqual(['a']);
  });
});
