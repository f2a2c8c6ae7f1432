// The fuzz of issue 26: every public call and option (createRuntime's options, send, sendAsync,
// sendBatch, sendBatchAsync, ask, actor(), deadLetters() list/redrive/purge, stats, resize,
// autoscale, close/destroy options; a handler's ctx.send/ctx.sendBatch; serve() and createMetrics()
// options; redisProducer() options and its sends against the suite's Redis; the console API's query
// strings, bodies and headers) gets wrong types, out-of-range numbers and hostile strings from a
// seeded PRNG (FUZZ_SEED to replay another). Each call must return normally or end in a
// RingpoolError with a code (HTTP: a 4xx JSON error with a stable code), within a timeout (nothing
// hangs); Object.prototype is never touched; and messages sent validly between the hostile calls
// are all processed (nothing lost), as are the valid producer's entries in the stream.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BroadcastChannel } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime, ErrorCodes, type Runtime } from 'ringpool';
import { createMetrics, serve, type MetricsServer } from 'ringpool/metrics';
import { redisProducer } from 'ringpool/redis';
import { fixture, until } from '../helpers.js';
import { readReply } from '../net.js';
// @ts-expect-error a plain-JS fixture (worker threads load it too)
import { allow, hostile, hostileNumber, hostileObject, hostileString, isCoded, label, mutate, prng } from '../fixtures/fuzz-values.js';

const SEED = Number(process.env.FUZZ_SEED ?? 26);
const CODES: string[] = Object.values(ErrorCodes);
const CALL_MS = 3_000;
type Rng = (() => number) & { int(n: number): number; pick<T>(xs: readonly T[]): T; chance(p: number): boolean };

/** Every call's failure (not a coded refusal, a hang, a 5xx): the test fails listing them all. */
const failures: string[] = [];
/** Abort reasons of the signals handed out: a wait aborted by one rejects with it, as documented. */
const reasons = new Set<unknown>();

/** Run `fn` (sync or async) within CALL_MS; a throw or rejection must be a coded RingpoolError. */
async function attempt(what: string, fn: () => unknown, ms = CALL_MS): Promise<{ ok: boolean; value?: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const value = await Promise.race([
      (async () => fn())(),
      new Promise((_, reject) => (timer = setTimeout(() => reject(HANG), ms))),
    ]);
    tally(what, 'ok');
    return { ok: true, value };
  } catch (err) {
    tally(what, (err as { code?: string })?.code ?? 'other');
    if (err === HANG) failures.push(`${what}: no answer within ${ms} ms`);
    else if (!isCoded(err, CODES) && !reasons.has(err)) {
      failures.push(`${what}: threw ${describeErr(err)}`);
      if (process.env.FUZZ_DEBUG !== undefined) console.error(what, err, new Error('here').stack);
    }
    return { ok: false };
  } finally {
    clearTimeout(timer);
  }
}
const HANG = Symbol('hang');
const tallies = new Map<string, number>();
function tally(what: string, outcome: string): void {
  if (process.env.FUZZ_TALLY === undefined) return;
  const k = `${what.replace(/^#\d+ /, '').replace(/\(.*$/, '').replace(/ #\d+$/, '')} -> ${outcome}`;
  tallies.set(k, (tallies.get(k) ?? 0) + 1);
}
afterAll(() => {
  if (process.env.FUZZ_TALLY !== undefined) console.log([...tallies].sort().map(([k, n]) => `${n}\t${k}`).join('\n'));
});

function describeErr(err: unknown): string {
  try {
    if (err instanceof Error) return `${err.name}${(err as { code?: string }).code ? ` (${(err as { code?: string }).code})` : ''}: ${err.message.slice(0, 200)}`;
    return `a non-Error: ${label(err)}`;
  } catch {
    return '(unreadable)';
  }
}

/** A hostile value, and every aborted signal's reason noted (see `reasons`). */
function anyValue(rng: Rng): unknown {
  return note(hostile(rng));
}
function anyObject(rng: Rng, keys: string[], valid: Record<string, unknown> = {}): unknown {
  return note(hostileObject(rng, keys, valid));
}
/** Mostly `base` (valid) with a few things made hostile; now and then a wholly hostile value or object. */
function options(rng: Rng, base: Record<string, unknown>): unknown {
  const r = rng();
  if (r < 0.08) return anyValue(rng);
  if (r < 0.2) return anyObject(rng, Object.keys(base), base);
  return note(mutate(rng, base));
}
function note<T>(v: T): T {
  try {
    if (v instanceof AbortSignal && v.aborted) reasons.add(v.reason);
    if (v !== null && typeof v === 'object' && !(v instanceof AbortSignal)) {
      for (const x of Object.values(v)) if (x instanceof AbortSignal && x.aborted) reasons.add(x.reason);
    }
  } catch {
    // a trap: nothing to note
  }
  return v;
}

const protoBefore = Object.getOwnPropertyNames(Object.prototype).join();
function checkPrototype(where: string): void {
  if (Object.getOwnPropertyNames(Object.prototype).join() !== protoBefore || ({} as { polluted?: unknown }).polluted !== undefined) {
    failures.push(`${where}: Object.prototype changed`);
  }
}

function report(section: string): void {
  checkPrototype(section);
  const seen = failures.splice(0);
  // One line a distinct failure (the same defect found by many calls once), with the seed to replay.
  const distinct = [...new Set(seen.map((f) => f.replace(/\d+/g, 'N')))];
  expect(distinct, `${section}, FUZZ_SEED=${SEED}: ${seen.length} failures\n${seen.slice(0, 40).join('\n')}`).toEqual([]);
}

// ------------------------------------------------------------------ the runtime under fuzz

const MAILBOXES = ['j', 'mp', 'v8', 'raw', 'dur', 'act', 'dl', 'ctx'];
let rt: Runtime;
let dir: string;
const oracle = { sent: new Set<string>(), seen: new Set<string>(), n: 0 };
let channel: BroadcastChannel;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ringpool-fuzz-'));
  channel = new BroadcastChannel('ringpool-fuzz-oracle');
  channel.onmessage = (e) => oracle.seen.add((e as { data: string }).data);
  const box = { minThreads: 1, maxThreads: 1, capacityBytes: 1 << 20, autoscale: false as const, leaseMs: 5_000 };
  rt = createRuntime({
    mailboxes: {
      j: { handler: fixture('fuzz-sink.js'), ...box },
      mp: { handler: fixture('fuzz-sink.js'), codec: 'msgpack', ...box },
      v8: { handler: fixture('fuzz-sink.js'), codec: 'v8', ...box },
      raw: { handler: fixture('fuzz-sink.js'), codec: 'raw', ...box },
      act: { handler: fixture('counter-actor.js'), ...box },
      dl: { handler: fixture('fuzz-dead.js'), maxAttempts: 1, ...box },
      ctx: { handler: fixture('fuzz-ctx.js'), ...box },
      dur: { handler: fixture('fuzz-sink.js'), codec: 'msgpack', durability: { dir: join(dir, 'dur'), fsync: 'never' }, ...box },
    },
  });
  await rt.start();
});

afterAll(async () => {
  channel?.close();
  await rt?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/** A valid message between the hostile calls: the handler reports it once handled. */
function sendOracle(rng: Rng): void {
  const box = rng.pick(['j', 'mp', 'v8', 'dur']);
  const n = oracle.n++;
  const how = rng.int(3);
  try {
    if (how === 0) rt.send(box, { oracle: n });
    else if (how === 1) rt.sendBatch(box, [{ oracle: n }]);
    else {
      rt.sendAsync(box, { oracle: n }).catch((err) => failures.push(`a valid sendAsync to ${box} was refused: ${describeErr(err)}`));
    }
    oracle.sent.add(`${box}:${n}`);
  } catch (err) {
    failures.push(`a valid send to ${box} was refused: ${describeErr(err)}`);
  }
}

/** One hostile call of the runtime's API. */
async function runtimeCall(rng: Rng, i: number): Promise<void> {
  const box = rng.chance(0.85) ? rng.pick(MAILBOXES) : (anyValue(rng) as string);
  // Not to msgpack: an array that claims 2 ** 31 elements (msgpackr encodes them all; README, Limitations).
  allow.lyingArrays = box !== 'mp' && box !== 'dur';
  const payload = rng.chance(0.3) ? { ok: i } : anyValue(rng);
  const valid = { key: 'k', delayMs: 1, timeoutMs: 500, signal: new AbortController().signal };
  const opts = () => (rng.chance(0.1) ? undefined : options(rng, valid));
  const payloads = () => (rng.chance(0.5) ? [payload, anyValue(rng)] : anyValue(rng));
  const name = `#${i}`;
  switch (rng.int(14)) {
    case 0:
      await attempt(`${name} send(${label(box)}, ${label(payload)}, opts)`, () => rt.send(box, payload, opts() as never));
      break;
    case 1:
      await attempt(`${name} sendAsync(${label(box)}, ${label(payload)}, opts)`, () => rt.sendAsync(box, payload, opts() as never));
      break;
    case 2: {
      const p = payloads();
      await attempt(`${name} sendBatch(${label(box)}, ${label(p)}, opts)`, () => rt.sendBatch(box, p as never, options(rng, { key: rng.chance(0.5) ? 'k' : (m: unknown, i: number) => `k${i}`, delayMs: 0 }) as never));
      break;
    }
    case 3: {
      const p = payloads();
      await attempt(`${name} sendBatchAsync(${label(box)}, ${label(p)}, opts)`, () => rt.sendBatchAsync(box, p as never, opts() as never));
      break;
    }
    case 4:
      // A key of its own: a hostile send may delay key 'k' for 1e21 ms, and a keyed message waits for its key's earlier ones.
      await attempt(`${name} ask(${label(box)}, ${label(payload)}, opts)`, () => rt.ask(box, payload, options(rng, { key: 'ask-k', timeoutMs: 1_000, signal: valid.signal }) as never));
      break;
    case 5: {
      const method = rng.chance(0.5) ? rng.pick(['add', 'get', 'whoami']) : hostileString(rng);
      const key = rng.chance(0.5) ? 'k1' : anyValue(rng);
      const defaults = rng.chance(0.5) ? undefined : options(rng, { timeoutMs: 1_000, signal: valid.signal });
      await attempt(`${name} actor(${label(box)}).ask.${label(method)}(${label(key)})`, () => (rt.actor(box, defaults as never).ask as any)[method](key, anyValue(rng)));
      await attempt(`${name} actor(${label(box)}).tell.${label(method)}(${label(key)})`, () => (rt.actor(box).tell as any)[method](key, 1));
      await attempt(`${name} actor(${label(box)}).request(${label(key)})`, () => rt.actor(box).request(key as never, { add: 1 } as never, options(rng, { timeoutMs: 1_000, signal: valid.signal }) as never));
      await attempt(`${name} actor(${label(box)}).send(${label(key)})`, () => rt.actor(box).send(key as never, payload as never));
      break;
    }
    case 6:
      await attempt(`${name} stats(${label(box)})`, () => rt.stats(box));
      break;
    case 7: {
      const n = rng.chance(0.5) ? 1 : anyValue(rng);
      await attempt(`${name} resize(${label(box)}, ${label(n)})`, () => rt.resize(box, n as never));
      // Back to one thread (a valid resize to 0 would leave the mailbox without consumers).
      if (typeof box === 'string' && MAILBOXES.includes(box)) rt.resize(box, 1);
      break;
    }
    case 8: {
      const on = rng.chance(0.3) ? false : anyValue(rng);
      await attempt(`${name} autoscale(${label(box)}, ${label(on)})`, () => rt.autoscale(box, on as never));
      break;
    }
    case 9:
      await attempt(`${name} workerStats(${label(box)})`, () => rt.workerStats(box));
      break;
    case 10: {
      const filter = rng.chance(0.3) ? (l: { id: number }) => l.id % 2 === 0 : anyValue(rng);
      const op = rng.pick(['list', 'redrive', 'purge', 'size']);
      await attempt(`${name} deadLetters(${label(box)}).${op}(${label(filter)})`, () => {
        const d = rt.deadLetters(box) as any;
        return op === 'size' ? d.size : d[op](filter);
      });
      break;
    }
    case 11:
      // Dead letters to redrive and purge.
      await attempt(`${name} send('dl')`, () => rt.send('dl', { dead: i }));
      break;
    case 12:
      await attempt(`${name} send('raw', bytes, opts)`, () => rt.send('raw', rng.chance(0.5) ? new Uint8Array([1, 2, 3]) : payload, opts() as never));
      break;
    default:
      await attempt(`${name} send(${label(box)}, ${label(payload)}) keyed by a hostile string`, () => rt.send(box, payload, { key: hostileString(rng) }));
  }
}

describe('fuzz: every public call and option ends in a coded RingpoolError or works; nothing hangs or is lost', () => {
  it('createRuntime() options, and start() of some of those accepted', async () => {
    const rng = prng(SEED) as Rng;
    const handler = fixture('fuzz-sink.js');
    const url = process.env.REDIS_URL!;
    const bases = (i: number): Array<Record<string, unknown>> => [
      {
        mailboxes: {
          m: {
            handler, minThreads: 0, maxThreads: 2, capacityBytes: 1 << 20, maxMessageBytes: 1024, maxAttempts: 3, backoff: { baseMs: 1, maxMs: 10 },
            leaseMs: 1_000, overflow: 'reject', codec: 'json', batchSize: 8, deadLetterLimit: 10, resourceLimits: { maxOldGenerationSizeMb: 64 }, concurrency: 2,
            autoscale: { targetLagSeconds: 1, tickMs: 100, scaleDownWindowMs: 1_000, tolerance: 0.1, maxStepUp: 1, maxConcurrency: 4, busyElu: 0.5 },
          },
        },
        startTimeoutMs: 5_000,
        tickMs: 50,
      },
      { mailboxes: { d: { handler, minThreads: 0, codec: 'msgpack', durability: { dir: join(dir, `d${i}`), fsync: 'never', intervalMs: 5, segmentBytes: 1 << 20 } } } },
      { mailboxes: { r: { handler, minThreads: 0, source: { redis: { url, stream: `ringpool-fuzz-rt-${process.pid}-${i}`, group: 'g', consumer: `c${i}`, claimIdleMs: 1_000, readCount: 16, blockMs: 100 } } } } },
    ];
    const before = readdirSync(process.cwd()).join();
    let started = 0;
    for (let i = 0; i < 800; i++) {
      const o = options(rng, rng.pick(bases(i)));
      const r = await attempt(`createRuntime #${i} (${label(o)})`, () => createRuntime(o as never));
      if (!r.ok) continue;
      const made = r.value as Runtime;
      if (started < 12 && rng.chance(0.5)) {
        started++;
        await attempt(`start() #${i} of accepted options`, () => made.start(), 10_000);
      }
      await attempt(`destroy #${i}`, () => made.destroy());
    }
    // A relative durability dir from a hostile string ('__proto__', '../..') was not made here.
    expect(readdirSync(process.cwd()).join()).toBe(before);
    const redis = createClient({ url });
    await redis.connect();
    for (const k of await redis.keys(`ringpool-fuzz-rt-${process.pid}-*`)) await redis.del(k);
    await redis.quit();
    report('createRuntime');
  }, 60_000);

  it('the runtime API, with valid sends between the hostile calls: all of those processed', async () => {
    const rng = prng(SEED + 1) as Rng;
    for (let i = 0; i < 4_000; i++) {
      if (rng.chance(0.3)) sendOracle(rng);
      await runtimeCall(rng, i);
    }
    await until(() => oracle.seen.size >= oracle.sent.size, 15_000, `every valid message processed (${oracle.seen.size} of ${oracle.sent.size})`).catch(() => undefined);
    const lost = [...oracle.sent].filter((k) => !oracle.seen.has(k));
    expect(lost, 'valid messages not processed').toEqual([]);
    // Whatever a hostile call got accepted decodes and runs: the sink never fails, so a failure is a damaged record.
    await new Promise((r) => setTimeout(r, 200));
    if (process.env.FUZZ_TALLY !== undefined) for (const box of ['j', 'mp', 'v8', 'raw', 'dur']) console.log(box, rt.deadLetters(box).list().map((l) => `${l.reason} ${l.lastError?.message}`).slice(0, 5));
    for (const box of ['j', 'mp', 'v8', 'raw', 'dur']) expect(rt.stats(box).failed, `failed attempts in '${box}' (a record sent damaged?)`).toBe(0);
    expect(oracle.sent.size).toBeGreaterThan(1_000);
    report('runtime API');
  }, 60_000);

  it("a handler's ctx.send and ctx.sendBatch on a worker thread", async () => {
    const bad: string[] = [];
    let sent = 0;
    for (let s = 0; s < 20; s++) {
      const r = (await rt.ask('ctx', { seed: SEED * 100 + s, calls: 150, targets: ['j', 'mp', 'v8', 'raw', 'dur', 'nope', 'ctx'] }, { timeoutMs: 10_000 })) as { bad: string[]; sent: number };
      bad.push(...r.bad);
      sent += r.sent;
    }
    failures.push(...bad);
    expect(sent).toBeGreaterThan(0);
    report('ctx');
  }, 60_000);

  it('close() and destroy() options', async () => {
    const rng = prng(SEED + 2) as Rng;
    for (let i = 0; i < 60; i++) {
      const r = createRuntime({ mailboxes: { c: { handler: fixture('fuzz-sink.js'), minThreads: 0 } } });
      const o = options(rng, { timeoutMs: 10 });
      await attempt(`close(${label(o)}) #${i}`, () => r.close(o as never));
      await attempt(`destroy(${label(o)}) #${i}`, () => (r.destroy as (o: unknown) => unknown)(o));
    }
    report('close/destroy');
  });

  it('serve() and createMetrics() options', async () => {
    const rng = prng(SEED + 3) as Rng;
    const servers: MetricsServer[] = [];
    const registry = new Registry();
    for (let i = 0; i < 400; i++) {
      const o = options(rng, { port: 0, host: rng.pick(['127.0.0.1', 'localhost', '::1']), console: true, admin: { token: 'tok', origins: ['https://ops.example.com'] } });
      const r = await attempt(`serve(registry, ${label(o)}) #${i}`, () => serve(rng.chance(0.95) ? registry : (anyValue(rng) as Registry), o as never));
      if (r.ok) servers.push(r.value as MetricsServer);
    }
    await Promise.all(servers.map((s) => s.close()));
    for (let i = 0; i < 100; i++) {
      const r = createRuntime({ mailboxes: { [`x${i}`]: { handler: fixture('fuzz-sink.js'), minThreads: 0 } } });
      const o = options(rng, { registry: new Registry(), prefix: 'fz_', buckets: [0.001, 0.01, 1] });
      await attempt(`createMetrics(rt, ${label(o)}) #${i}`, () => createMetrics(r, o as never));
      await r.destroy();
    }
    report('serve/createMetrics');
  });

  it('the console API: query strings, bodies and headers', async () => {
    const rng = prng(SEED + 4) as Rng;
    const token = 'fuzz-token-0123456789';
    const registry = new Registry();
    createMetrics(rt, { registry });
    const server = await serve(registry, { port: 0, console: true, admin: { token } });
    try {
      for (let i = 0; i < 5; i++) rt.send('dl', { dead: `c${i}` });
      for (let i = 0; i < 1_500; i++) {
        const mailbox = rng.chance(0.7) ? rng.pick(['j', 'dl', 'act']) : hostileString(rng);
        const route = rng.pick(['', '/redrive', '/purge']);
        const path = rng.chance(0.9) ? `/api/mailboxes/${rng.chance(0.8) ? encode(mailbox) : mailbox.slice(0, 200)}/dead-letters${route}` : rng.pick(['/api', '/api/', '/api/mailboxes/', '/api/events?x=1', '/console.js', '/api/mailboxes//dead-letters', '__proto__', '/__proto__', '/constructor', '/api/%zz', '*']);
        const query = rng.chance(0.5) ? `?${queryString(rng)}` : '';
        const method = rng.chance(0.8) ? (route === '' ? 'GET' : 'POST') : rng.pick(['PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'GET', 'POST']);
        const headers: Record<string, string> = {};
        if (rng.chance(0.85)) headers.authorization = rng.chance(0.8) ? `Bearer ${token}` : rng.pick(['Bearer', 'Bearer  ', `bearer ${token} x`, 'Basic x', `Bearer ${'t'.repeat(5000)}`, 'Bearer \u00ff']);
        if (rng.chance(0.8)) headers['content-type'] = rng.chance(0.8) ? 'application/json' : rng.pick(['text/plain', 'application/jsonx', 'application/json; charset=latin1', '']);
        if (rng.chance(0.1)) headers.origin = rng.pick(['null', 'http://evil.example', server.url, 'file://', 'not a url', `http://127.0.0.1:${server.port}`]);
        if (rng.chance(0.05)) headers.host = rng.pick(['evil.example', '', `localhost:${server.port}`, '[::1]', '127.0.0.1:1']);
        const body = method === 'GET' || method === 'HEAD' ? undefined : bodyText(rng);
        const what = `#${i} ${method} ${path.slice(0, 80)}${query.slice(0, 60)} ${headers['content-type'] ?? ''} body ${body === undefined ? 'none' : body.slice(0, 60)}`;
        const r = await httpCall(server.url, path + query, method, headers, body);
        if (r === null) failures.push(`${what}: no answer within ${CALL_MS} ms`);
        else if (r.status >= 500) failures.push(`${what}: ${r.status} ${r.text.slice(0, 200)}`);
        else if (r.status >= 400 && method !== 'HEAD' && (r.json === undefined || typeof r.json.code !== 'string' || !/^RINGPOOL_CONSOLE_[A-Z_]+$/.test(r.json.code))) {
          if (path.startsWith('/api') || ['/', '/console.js', '/console.css'].includes(path)) failures.push(`${what}: ${r.status} without a JSON error code: ${r.text.slice(0, 120)}`);
        }
      }
      // Still serving: the page, the API, and a valid purge.
      expect((await httpCall(server.url, '/api/mailboxes', 'GET', {}, undefined))?.status).toBe(200);
      const purged = await httpCall(server.url, '/api/mailboxes/dl/dead-letters/purge', 'POST', { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, '{"all":true}');
      expect(purged?.status).toBe(200);
    } finally {
      await server.close();
    }
    report('console API');
  }, 60_000);

  it('redisProducer() options and sends (the suite Redis): valid entries all in the stream', async () => {
    const rng = prng(SEED + 5) as Rng;
    const url = process.env.REDIS_URL!;
    const stream = `ringpool-fuzz-${process.pid}`;
    const admin = createClient({ url });
    await admin.connect();
    try {
      for (let i = 0; i < 200; i++) {
        const o = options(rng, { url, stream: `${stream}-opts`, codec: rng.pick(['json', 'msgpack', 'v8', 'raw']), maxMessageBytes: 1024, onError: () => undefined });
        const r = await attempt(`redisProducer(${label(o)}) #${i}`, () => redisProducer(o as never));
        if (r.ok) await attempt(`redisProducer #${i}.close()`, () => (r.value as { close(): Promise<void> }).close());
      }
      const p = redisProducer({ url, stream, maxMessageBytes: 64 << 10 });
      const valid: number[] = [];
      const waits: Promise<unknown>[] = [];
      for (let i = 0; i < 600; i++) {
        if (rng.chance(0.3)) {
          p.send({ oracle: i });
          valid.push(i);
          continue;
        }
        const v = anyValue(rng);
        if (rng.chance(0.5)) await attempt(`producer.send(${label(v)}) #${i}`, () => p.send(v));
        else waits.push(attempt(`producer.sendAsync(${label(v)}) #${i}`, () => p.sendAsync(v)));
      }
      await Promise.all(waits);
      await attempt('producer.close()', () => p.close());
      await attempt('producer.close() again', () => p.close());
      await attempt('send after close', () => p.send({ late: true }));
      const entries = await admin.xRange(stream, '-', '+');
      const got = entries.map((e) => parse(e.message.d!)).filter((m): m is { oracle: number } => m !== null && typeof m === 'object' && typeof (m as { oracle?: unknown }).oracle === 'number');
      expect(got.map((m) => m.oracle)).toEqual(valid);
    } finally {
      for (const k of await admin.keys(`${stream}*`)) await admin.del(k);
      await admin.quit();
    }
    report('redisProducer');
  }, 60_000);
});

function queryString(rng: Rng): string {
  const parts: string[] = [];
  for (let k = rng.int(4); k >= 0; k--) {
    const name = rng.pick(['offset', 'limit', 'reason', '__proto__', 'constructor', 'x']);
    const value = rng.pick([String(hostileNumber(rng)), hostileString(rng).slice(0, 100), '1', '50', '', 'max_attempts', '%zz', '9'.repeat(400)]);
    parts.push(`${encode(name)}=${rng.chance(0.8) ? encode(value) : value.replace(/[^\x21-\x7e]/g, '')}`);
  }
  return parts.join('&');
}

/** encodeURIComponent, with a lone surrogate sent as its UTF-8 replacement (encodeURIComponent throws on it). */
function encode(s: string): string {
  return encodeURIComponent(s.toWellFormed());
}

function bodyText(rng: Rng): string {
  switch (rng.int(6)) {
    case 0:
      return rng.pick(['', '{', 'null', '[]', '"x"', '1e999', '{"ids":[1,', '\u0000', '{"a":1}{"b":2}']);
    case 1:
      return JSON.stringify({ [rng.pick(['ids', 'refs', 'all', 'id', '__proto__', 'constructor'])]: jsonable(rng) });
    case 2:
      return `{"__proto__":{"all":true},"constructor":{"prototype":{"polluted":1}},"ids":${rng.chance(0.5) ? '[1]' : '"x"'}}`;
    case 3:
      return '['.repeat(100_000) + ']'.repeat(100_000);
    case 4:
      return JSON.stringify({ ids: [rng.pick([1, -1, 1.5, 1e300, 2 ** 53, 0])], refs: [hostileString(rng).slice(0, 100)] });
    default:
      return JSON.stringify({ all: rng.pick([true, false, 'true', 1, null, [true]]) , ...(rng.chance(0.3) ? { ids: [] } : {}) });
  }
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined; // an entry of a hostile send (undefined encodes as nothing)
  }
}

function jsonable(rng: Rng): unknown {
  return rng.pick([null, true, 1, -0, 1e308, 'x', hostileString(rng).slice(0, 1000), [], [1, 2], ['a'], {}, { all: true }, [[1]], 'k'.repeat(70)]);
}

function httpCall(base: string, path: string, method: string, headers: Record<string, string>, body: string | undefined): Promise<{ status: number; text: string; json: any } | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      req.destroy();
      resolve(null);
    }, CALL_MS);
    let req: ReturnType<typeof request>;
    try {
      const u = new URL(base);
      req = request({ host: u.hostname, port: u.port, path, method, headers }, (res) => {
        if (res.headers['content-type']?.startsWith('text/event-stream')) {
          // The live feed stays open: its headers are the answer.
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, text: '', json: undefined });
          req.destroy();
          return;
        }
        void readReply(res).then(({ status, text, json }) => {
          clearTimeout(timer);
          resolve({ status, text, json });
        });
        res.on('error', () => undefined);
      });
    } catch (err) {
      // The client refuses to send it (a character HTTP does not allow): nothing reached the server.
      clearTimeout(timer);
      resolve({ status: 499, text: String(err), json: { code: 'RINGPOOL_CONSOLE_CLIENT_REFUSED' } });
      return;
    }
    req.on('error', (err) => {
      clearTimeout(timer);
      // The server closed the connection after a refusal of an unread body: that is an answer too.
      resolve({ status: 499, text: String(err), json: { code: 'RINGPOOL_CONSOLE_CLOSED' } });
    });
    if (body !== undefined) req.write(body);
    req.end();
  });
}
