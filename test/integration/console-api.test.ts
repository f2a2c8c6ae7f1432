// The operator console's HTTP API (issue #18), against a real runtime with
// real threads: every endpoint, and every refusal (token, Origin, Host, body,
// ids, mailbox), each checked to change nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'redis';
import { BroadcastChannel } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetrics, serve, type MetricsServer } from 'ringpool/metrics';
import type { Runtime } from 'ringpool';
import { expectCode, fixture, runtime, until, untilAsync } from '../helpers.js';
import { readReply, type HttpReply } from '../net.js';

const TOKEN = 'console-test-token-0123456789';

/** One request with full control of the headers (fetch refuses to set Host). */
function call(base: string, path: string, opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<HttpReply> {
  const u = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = request(u, { method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      void readReply(res).then(resolve);
    });
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

const admin = (extra: Record<string, string> = {}): Record<string, string> => ({ authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...extra });

const servers: MetricsServer[] = [];
afterEach(async () => {
  await Promise.allSettled(servers.splice(0).map((s) => s.close()));
});

async function setup(opts: { token?: string; console?: boolean } = {}): Promise<{ rt: Runtime; server: MetricsServer; base: string; registry: Registry }> {
  const rt = runtime({
    mailboxes: {
      work: { handler: fixture('console-work.js'), maxAttempts: 2, backoff: { baseMs: 1, maxMs: 2 }, minThreads: 1, maxThreads: 1 },
      'other:box': { handler: fixture('console-work.js'), minThreads: 1, maxThreads: 2, autoscale: false },
    },
  });
  const registry = new Registry();
  createMetrics(rt, { registry });
  await rt.start();
  const server = await serve(registry, { port: 0, console: opts.console ?? true, admin: { token: 'token' in opts ? opts.token : TOKEN } });
  servers.push(server);
  return { rt, server, base: server.url, registry };
}

/** Dead-letter `n` messages on 'work' (they succeed if redriven after `okInMs`). */
async function deadLetter(rt: Runtime, n: number, okInMs = 300): Promise<number[]> {
  const okAfter = Date.now() + okInMs;
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push(rt.send('work', { n: i, okAfter }));
  await until(() => rt.deadLetters('work').size === n, 10_000, `${n} dead letters`);
  return ids;
}

describe('console API', () => {
  it('serves the page and its assets with a CSP, and nothing of it without console: true', async () => {
    const { base } = await setup();
    const page = await call(base, '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(String(page.headers['content-security-policy'])).toContain("script-src 'self'");
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.text).toContain('console.js');
    expect((await call(base, '/console.js')).headers['content-type']).toMatch(/^text\/javascript/);
    expect((await call(base, '/console.css')).status).toBe(200);
    expect((await call(base, '/metrics')).status).toBe(200); // the same server still gives /metrics
    const off = await setup({ console: false });
    expect((await call(off.base, '/')).status).toBe(404);
    expect((await call(off.base, '/api/mailboxes')).status).toBe(404);
  });

  it('GET /api/mailboxes gives every mailbox stats and whether admin calls are on', async () => {
    const { rt, base } = await setup();
    rt.send('other:box', { n: 1 });
    await rt.onIdle();
    const r = await call(base, '/api/mailboxes');
    expect(r.status).toBe(200);
    expect(r.json.admin).toBe(true);
    const names = r.json.mailboxes.map((m: { name: string }) => m.name);
    expect(names).toEqual(['work', 'other:box']);
    const other = r.json.mailboxes[1];
    expect(other).toMatchObject({ name: 'other:box', kind: 'memory', enqueued: 1, processed: 1, depth: 0, threads: 1 });
    const ro = await setup({ token: undefined });
    expect((await call(ro.base, '/api/mailboxes')).json.admin).toBe(false);
  });

  it('pages dead letters with their payloads, errors, attempts and reasons, filtered by reason', async () => {
    const { rt, base } = await setup();
    await deadLetter(rt, 7);
    const all = await call(base, '/api/mailboxes/work/dead-letters');
    expect(all.status).toBe(200);
    expect(all.json).toMatchObject({ mailbox: 'work', total: 7, offset: 0, limit: 50, reasons: { max_attempts: 7, poison: 0, timeout: 0, unrecoverable: 0 } });
    // Oldest dead first, as the store lists them.
    const order = rt.deadLetters('work').list().map((l) => l.id);
    expect(all.json.letters.map((l: { id: number }) => l.id)).toEqual(order);
    const first = all.json.letters[0];
    expect(first).toMatchObject({ attempts: 2, reason: 'max_attempts', key: null });
    expect(first.payload).toEqual(rt.deadLetters('work').list()[0]!.payload);
    expect(first.lastError.message).toMatch(/^not before/);
    expect(first.lastError.stack).toContain('console-work.js');
    expect(first.firstError.name).toBe('Error');
    expect(typeof first.deadAt).toBe('number');
    const page = await call(base, '/api/mailboxes/work/dead-letters?offset=5&limit=10');
    expect(page.json.letters.map((l: { id: number }) => l.id)).toEqual(order.slice(5));
    expect(page.json.total).toBe(7);
    const none = await call(base, '/api/mailboxes/work/dead-letters?reason=poison');
    expect(none.json).toMatchObject({ total: 0, letters: [] });
    // A name with a colon, percent-encoded.
    expect((await call(base, '/api/mailboxes/other%3Abox/dead-letters')).json.total).toBe(0);
  });

  it('refuses a bad page query or an unknown mailbox with a 4xx JSON error', async () => {
    const { base } = await setup();
    for (const q of ['offset=-1', 'offset=x', 'limit=0', 'limit=501', 'limit=1.5', 'reason=nope']) {
      const r = await call(base, `/api/mailboxes/work/dead-letters?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.json.code, q).toBe('RINGPOOL_CONSOLE_BAD_QUERY');
      expect(typeof r.json.error).toBe('string');
    }
    const unknown = await call(base, '/api/mailboxes/nope/dead-letters');
    expect(unknown.status).toBe(404);
    expect(unknown.json.code).toBe('RINGPOOL_CONSOLE_UNKNOWN_MAILBOX');
    expect((await call(base, '/api/nothing')).status).toBe(404);
    const wrongMethod = await call(base, '/api/mailboxes', { method: 'DELETE' });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.json.code).toBe('RINGPOOL_CONSOLE_METHOD_NOT_ALLOWED');
  });

  it('redrives the chosen letters with the token; they run again and succeed', async () => {
    const { rt, base } = await setup();
    const ids = await deadLetter(rt, 3, 200);
    const done: number[] = [];
    const ch = new BroadcastChannel('ringpool-console-test');
    ch.onmessage = (e) => done.push((e as { data: number }).data);
    try {
      await new Promise((r) => setTimeout(r, 250)); // past okAfter: a redriven one now succeeds
      const r = await call(base, '/api/mailboxes/work/dead-letters/redrive', { method: 'POST', headers: admin(), body: JSON.stringify({ ids: [ids[1]] }) });
      expect(r.status).toBe(200);
      expect(r.json).toEqual({ mailbox: 'work', redriven: 1 });
      await until(() => done.includes(1), 5_000, 'the redriven message to run');
      expect(rt.deadLetters('work').list().map((l) => l.id).sort()).toEqual([ids[0]!, ids[2]!].sort());
      // All of them, said explicitly.
      const rest = await call(base, '/api/mailboxes/work/dead-letters/redrive', { method: 'POST', headers: admin(), body: '{"all":true}' });
      expect(rest.json.redriven).toBe(2);
      await until(() => done.length === 3, 5_000, 'all redriven to run');
      expect(rt.stats('work').processed).toBe(3);
    } finally {
      ch.close();
    }
  });

  it('purges the chosen letters, or all', async () => {
    const { rt, base } = await setup();
    const ids = await deadLetter(rt, 4);
    const r = await call(base, '/api/mailboxes/work/dead-letters/purge', { method: 'POST', headers: admin(), body: JSON.stringify({ ids: [ids[0], ids[3], 999_999] }) });
    expect(r.json).toEqual({ mailbox: 'work', purged: 2 });
    expect(rt.deadLetters('work').list().map((l) => l.id).sort()).toEqual([ids[1], ids[2]].sort());
    const all = await call(base, '/api/mailboxes/work/dead-letters/purge', { method: 'POST', headers: admin(), body: '{"all":true}' });
    expect(all.json.purged).toBe(2);
    expect(rt.deadLetters('work').size).toBe(0);
  });

  it('refuses admin calls without the token (401), with none configured (403), or from a foreign Origin (403); nothing changes', async () => {
    const { rt, base, server } = await setup();
    await deadLetter(rt, 2);
    const post = (headers: Record<string, string>, path = '/api/mailboxes/work/dead-letters/purge', b = '{"all":true}') => call(base, path, { method: 'POST', headers, body: b });
    const cases: Array<[string, Record<string, string>, number, string, string?]> = [
      ['no header', { 'content-type': 'application/json' }, 401, 'RINGPOOL_CONSOLE_UNAUTHORIZED'],
      ['wrong token', admin({ authorization: `Bearer ${TOKEN}x` }), 401, 'RINGPOOL_CONSOLE_UNAUTHORIZED'],
      ['a prefix of it', admin({ authorization: `Bearer ${TOKEN.slice(0, 10)}` }), 401, 'RINGPOOL_CONSOLE_UNAUTHORIZED'],
      ['Basic', admin({ authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` }), 401, 'RINGPOOL_CONSOLE_UNAUTHORIZED'],
      ['token in a cookie', { 'content-type': 'application/json', cookie: `token=${TOKEN}; authorization=Bearer%20${TOKEN}` }, 401, 'RINGPOOL_CONSOLE_UNAUTHORIZED'],
      ['token in the query', { 'content-type': 'application/json' }, 401, 'RINGPOOL_CONSOLE_UNAUTHORIZED', `/api/mailboxes/work/dead-letters/purge?token=${TOKEN}&access_token=${TOKEN}`],
      ['foreign Origin', admin({ origin: 'http://evil.example' }), 403, 'RINGPOOL_CONSOLE_BAD_ORIGIN'],
      ['Origin on another port', admin({ origin: `http://127.0.0.1:${server.port + 1}` }), 403, 'RINGPOOL_CONSOLE_BAD_ORIGIN'],
      ['Origin null', admin({ origin: 'null' }), 403, 'RINGPOOL_CONSOLE_BAD_ORIGIN'],
    ];
    for (const [what, headers, status, code, path] of cases) {
      const r = await post(headers, path);
      expect(r.status, what).toBe(status);
      expect(r.json.code, what).toBe(code);
    }
    // GET on an admin route is not a way in either.
    expect((await call(base, '/api/mailboxes/work/dead-letters/purge', { headers: admin() })).status).toBe(405);
    expect(rt.deadLetters('work').size).toBe(2);
    // The page's own Origin passes.
    const own = await post(admin({ origin: server.url }));
    expect(own.json.purged).toBe(2);

    const ro = await setup({ token: undefined });
    await deadLetter(ro.rt, 1);
    const r = await call(ro.base, '/api/mailboxes/work/dead-letters/redrive', { method: 'POST', headers: admin(), body: '{"all":true}' });
    expect(r.status).toBe(403);
    expect(r.json.code).toBe('RINGPOOL_CONSOLE_ADMIN_DISABLED');
    expect(ro.rt.deadLetters('work').size).toBe(1);
  });

  it('refuses a bad body: malformed JSON, not an object, ids not integers, over 1 MiB, an unknown mailbox; nothing changes', async () => {
    const { rt, base } = await setup();
    await deadLetter(rt, 2);
    const purge = (body: string | Buffer, headers = admin(), path = '/api/mailboxes/work/dead-letters/purge') => call(base, path, { method: 'POST', headers, body });
    const cases: Array<[string, string | Buffer, number, string, Record<string, string>?, string?]> = [
      ['malformed', '{"ids": [1,', 400, 'RINGPOOL_CONSOLE_BAD_JSON'],
      ['an array', '[1,2]', 400, 'RINGPOOL_CONSOLE_BAD_BODY'],
      ['a number', '42', 400, 'RINGPOOL_CONSOLE_BAD_BODY'],
      ['ids a string', '{"ids":"1"}', 400, 'RINGPOOL_CONSOLE_BAD_BODY'],
      ['ids with a float', '{"ids":[1,2.5]}', 400, 'RINGPOOL_CONSOLE_BAD_BODY'],
      ['ids with a string', '{"ids":[1,"2"]}', 400, 'RINGPOOL_CONSOLE_BAD_BODY'],
      ['ids null', '{"ids":null}', 400, 'RINGPOOL_CONSOLE_BAD_BODY'],
      ['over 1 MiB', Buffer.alloc((1 << 20) + 10, 0x20), 413, 'RINGPOOL_CONSOLE_BODY_TOO_LARGE'],
      ['not JSON', 'ids=1', 415, 'RINGPOOL_CONSOLE_UNSUPPORTED_MEDIA_TYPE', admin({ 'content-type': 'application/x-www-form-urlencoded' })],
      ['unknown mailbox', '{}', 404, 'RINGPOOL_CONSOLE_UNKNOWN_MAILBOX', admin(), '/api/mailboxes/nope/dead-letters/purge'],
    ];
    for (const [what, body, status, code, headers, path] of cases) {
      const r = await purge(body, headers, path);
      expect(r.status, what).toBe(status);
      expect(r.json?.code, what).toBe(code);
      expect(rt.deadLetters('work').size, what).toBe(2);
    }
    // An over-large body sent in chunks with no Content-Length is cut off too.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = request(new URL('/api/mailboxes/work/dead-letters/purge', base), { method: 'POST', headers: admin() }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(-1)); // the server may close before we finish writing: also a refusal
      const chunk = Buffer.alloc(64 << 10, 0x20);
      for (let i = 0; i < 20; i++) req.write(chunk);
      req.end();
      setTimeout(() => reject(new Error('no answer')), 5_000).unref();
    });
    expect([413, -1]).toContain(chunked);
    expect(rt.deadLetters('work').size).toBe(2);
  });

  it('a body that names nothing it knows changes nothing (400): a misspelt key, an unknown one, none; "all" is said with {"all": true}', async () => {
    const { rt, base } = await setup();
    const ids = await deadLetter(rt, 3);
    const post = (action: string, body?: string) => call(base, `/api/mailboxes/work/dead-letters/${action}`, { method: 'POST', headers: admin(), body });
    const cases: Array<[string, string | undefined]> = [
      ['a misspelt key', '{"id":[1]}'],
      ['the misspelt key with the real one\'s value', JSON.stringify({ id: [ids[0]] })],
      ['a known key beside an unknown one', JSON.stringify({ ids: [ids[0]], force: true })],
      ['an empty object', '{}'],
      ['no body', undefined],
      ['__proto__', '{"__proto__":{"all":true}}'],
      ['constructor', '{"constructor":{"all":true}}'],
      ['all false', '{"all":false}'],
      ['all a string', '{"all":"true"}'],
      ['all 1', '{"all":1}'],
      ['all beside ids', JSON.stringify({ all: true, ids: [ids[0]] })],
      ['refs not strings', '{"refs":[1]}'],
      ['refs an object', '{"refs":{"0":"1"}}'],
      ['ids huge', '{"ids":[1e300]}'],
    ];
    for (const action of ['purge', 'redrive']) {
      for (const [what, body] of cases) {
        const r = await post(action, body);
        expect(r.status, `${action}: ${what}`).toBe(400);
        expect(r.json?.code, `${action}: ${what}`).toBe('RINGPOOL_CONSOLE_BAD_BODY');
        expect(rt.deadLetters('work').size, `${action}: ${what}`).toBe(3);
      }
    }
    // The error names the key it does not know.
    expect((await post('purge', '{"id":[1]}')).json.error).toMatch(/'id'/);
    // An empty selection is a selection: nothing.
    expect((await post('purge', '{"ids":[],"refs":[]}')).json).toEqual({ mailbox: 'work', purged: 0 });
    expect((await post('purge', JSON.stringify({ all: true }))).json).toEqual({ mailbox: 'work', purged: 3 });
    expect(rt.deadLetters('work').size).toBe(0);
  });

  it('answers only its own Host names on loopback (DNS rebinding)', async () => {
    const { base, server } = await setup();
    expect((await call(base, '/api/mailboxes', { headers: { host: 'evil.example:' + server.port } })).status).toBe(403);
    expect((await call(base, '/', { headers: { host: 'evil.example' } })).json.code).toBe('RINGPOOL_CONSOLE_BAD_HOST');
    expect((await call(base, '/api/mailboxes', { headers: { host: `localhost:${server.port}` } })).status).toBe(200);
    // /metrics is for Prometheus, whatever Host it scrapes with.
    expect((await call(base, '/metrics', { headers: { host: 'prometheus-target:9464' } })).status).toBe(200);
  });

  it('GET /api/events streams a snapshot a second, and dead letters and scale decisions as they happen', async () => {
    const { rt, base } = await setup();
    const ac = new AbortController();
    const res = await fetch(`${base}/api/events`, { signal: ac.signal });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events: any[] = [];
    const reading = (async () => {
      const dec = new TextDecoder();
      let buf = '';
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += dec.decode(chunk, { stream: true });
          for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const data = frame.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
            if (data !== '') events.push({ at: Date.now(), ...JSON.parse(data) });
          }
        }
      } catch {
        // aborted
      }
    })();
    try {
      await until(() => events.some((e) => e.type === 'snapshot'), 3_000, 'the first snapshot');
      const snap = events.find((e) => e.type === 'snapshot');
      expect(snap.mailboxes.map((m: { name: string }) => m.name)).toEqual(['work', 'other:box']);
      expect(snap.mailboxes[0]).toMatchObject({ kind: 'memory', depth: 0, threads: 1, concurrency: 1, deadLetterSize: 0 });
      for (let i = 0; i < 200; i++) rt.send('other:box', { n: i });
      const sentAt = Date.now();
      rt.send('work', { n: 1, always: true });
      await until(() => events.some((e) => e.type === 'dead-letter'), 2_000, 'the dead-letter event');
      const dead = events.find((e) => e.type === 'dead-letter');
      expect(dead).toMatchObject({ mailbox: 'work', reason: 'max_attempts', attempts: 2 });
      expect(dead.at - sentAt).toBeLessThan(2_000);
      // A later snapshot counts them, with rates and end-to-end quantiles.
      await until(() => events.some((e) => e.type === 'snapshot' && e.at > sentAt && e.mailboxes[1].processed === 200), 4_000, 'a snapshot after the sends');
      const later = events.filter((e) => e.type === 'snapshot' && e.at > sentAt).find((e) => e.mailboxes[1].processed === 200);
      expect(later.mailboxes[0].deadLetterSize).toBe(1);
      const counted = events.filter((e) => e.type === 'snapshot' && e.at > sentAt).map((e) => e.mailboxes[1]);
      expect(counted.some((m: { processedPerSec: number; e2eP50Ms: number | null }) => m.processedPerSec > 0 && m.e2eP50Ms !== null && m.e2eP50Ms > 0)).toBe(true);
      // Size changes arrive as they are made.
      rt.resize('other:box', 2);
      await until(() => events.some((e) => e.type === 'scale'), 2_000, 'the scale event');
      expect(events.find((e) => e.type === 'scale')).toMatchObject({ mailbox: 'other:box', from: 1, to: 2, threads: 2 });
      const snaps = events.filter((e) => e.type === 'snapshot');
      expect(snaps.length).toBeGreaterThanOrEqual(2);
      expect(snaps[snaps.length - 1].t - snaps[0].t).toBeGreaterThanOrEqual(900);
    } finally {
      ac.abort();
      await reading;
    }
  });

  it('takes only valid console options', async () => {
    const registry = new Registry();
    await expectCode(serve(registry, { port: 0, console: 'yes' as never }), 'RINGPOOL_INVALID_OPTION');
    await expectCode(serve(registry, { port: 0, console: true, admin: { token: '' } }), 'RINGPOOL_INVALID_OPTION');
    await expectCode(serve(registry, { port: 0, console: true, admin: { token: 42 as never } }), 'RINGPOOL_INVALID_OPTION');
    await expectCode(serve(registry, { port: 0, console: true, admin: { origins: ['not a url'] } }), 'RINGPOOL_INVALID_OPTION');
  });

  it('shows durable and Redis mailboxes like the others, with their dead letters, redrive and purge', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ringpool-console-'));
    const stream = `ringpool-test-console-${process.pid}-${Date.now()}`;
    const url = process.env.REDIS_URL!;
    const redis = createClient({ url });
    redis.on('error', () => undefined);
    try {
      const rt = runtime({
        mailboxes: {
          disk: { handler: fixture('console-work.js'), maxAttempts: 1, minThreads: 1, maxThreads: 1, durability: { dir, fsync: 'always' } },
          stream: { handler: fixture('console-work.js'), maxAttempts: 1, minThreads: 1, maxThreads: 1, source: { redis: { url, stream, blockMs: 100 } } },
        },
      });
      const registry = new Registry();
      createMetrics(rt, { registry });
      await rt.start();
      const server = await serve(registry, { port: 0, console: true, admin: { token: TOKEN } });
      servers.push(server);
      const boxes = (await call(server.url, '/api/mailboxes')).json.mailboxes;
      expect(boxes.map((b: { name: string; kind: string }) => [b.name, b.kind])).toEqual([['disk', 'durable'], ['stream', 'redis']]);
      expect(boxes[0].journal).toBeDefined();
      expect(boxes[1].stream).toBeDefined();
      await rt.sendAsync('disk', { n: 1, always: true, err: 'disk fails' });
      rt.send('stream', { n: 2, always: true, err: 'stream fails' });
      await until(() => rt.deadLetters('disk').size === 1, 10_000, 'the durable dead letter');
      const disk = await call(server.url, '/api/mailboxes/disk/dead-letters');
      expect(disk.json).toMatchObject({ total: 1, letters: [{ payload: { n: 1 }, reason: 'max_attempts', lastError: { message: 'disk fails' } }] });
      let page: HttpReply | undefined;
      for (const end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
        page = await call(server.url, '/api/mailboxes/stream/dead-letters');
        if (page.json.total === 1) break;
      }
      expect(page!.json).toMatchObject({ total: 1, reasons: { max_attempts: 1 }, letters: [{ payload: { n: 2 }, reason: 'max_attempts', lastError: { message: 'stream fails' } }] });
      const purged = await call(server.url, '/api/mailboxes/stream/dead-letters/purge', { method: 'POST', headers: admin(), body: JSON.stringify({ ids: [page!.json.letters[0].id] }) });
      expect(purged.json).toEqual({ mailbox: 'stream', purged: 1 });
      expect((await call(server.url, '/api/mailboxes/stream/dead-letters')).json.total).toBe(0);
      const purgedDisk = await call(server.url, '/api/mailboxes/disk/dead-letters/purge', { method: 'POST', headers: admin(), body: '{"all":true}' });
      expect(purgedDisk.json.purged).toBe(1);
      await rt.close({ timeoutMs: 5_000 });
    } finally {
      await redis.connect().catch(() => undefined);
      if (redis.isOpen) {
        for (const k of await redis.keys(`${stream}*`)) await redis.del(k);
        await redis.quit();
      }
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('a Redis mailbox read by two processes: an id two letters share is refused (409), refs pick one', async () => {
    const stream = `ringpool-test-console-dup-${process.pid}-${Date.now()}`;
    const url = process.env.REDIS_URL!;
    const redis = createClient({ url });
    redis.on('error', () => undefined);
    const make = (consumer: string) =>
      runtime({ mailboxes: { s: { handler: fixture('console-work.js'), maxAttempts: 1, minThreads: 1, maxThreads: 1, source: { redis: { url, stream, consumer, blockMs: 100 } } } } });
    let a: Runtime | undefined;
    let b: Runtime | undefined;
    try {
      // Each runtime numbers what it reads from 0: their letters share ids.
      // b reads its three alone and leaves, then a reads three: which
      // process reads an entry is never left to chance.
      await redis.connect();
      b = make('cb');
      await b.start();
      for (let i = 0; i < 3; i++) b.send('s', { n: i, always: true });
      await untilAsync(async () => (await redis.xLen(`${stream}:dead`)) === 3, 10_000, "b's three dead letters");
      await b.destroy();
      a = make('ca');
      const registry = new Registry();
      createMetrics(a, { registry });
      await a.start();
      const server = await serve(registry, { port: 0, console: true, admin: { token: TOKEN } });
      servers.push(server);
      for (let i = 3; i < 6; i++) a.send('s', { n: i, always: true });
      let page: HttpReply | undefined;
      let dup: number | undefined;
      for (const end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
        page = await call(server.url, '/api/mailboxes/s/dead-letters');
        const ids: number[] = page.json.letters.map((l: { id: number }) => l.id);
        dup = ids.find((id, k) => ids.indexOf(id) !== k);
        if (page.json.total === 6 && dup !== undefined) break;
      }
      expect(dup, 'two letters with one id').toBeDefined();
      const refs: string[] = page!.json.letters.map((l: { ref: string }) => l.ref);
      expect(new Set(refs).size).toBe(6);
      const refused = await call(server.url, '/api/mailboxes/s/dead-letters/purge', { method: 'POST', headers: admin(), body: JSON.stringify({ ids: [dup] }) });
      expect(refused.status).toBe(409);
      expect(refused.json.code).toBe('RINGPOOL_CONSOLE_AMBIGUOUS_ID');
      expect((await call(server.url, '/api/mailboxes/s/dead-letters')).json.total).toBe(6);
      const one = page!.json.letters.find((l: { id: number }) => l.id === dup);
      const purged = await call(server.url, '/api/mailboxes/s/dead-letters/purge', { method: 'POST', headers: admin(), body: JSON.stringify({ refs: [one.ref] }) });
      expect(purged.json).toEqual({ mailbox: 's', purged: 1 });
      const left = (await call(server.url, '/api/mailboxes/s/dead-letters')).json;
      expect(left.total).toBe(5);
      expect(left.letters.map((l: { ref: string }) => l.ref)).not.toContain(one.ref);
      expect(left.letters.filter((l: { id: number }) => l.id === dup)).toHaveLength(1);
    } finally {
      await Promise.allSettled([a?.destroy(), b?.destroy()]);
      await redis.connect().catch(() => undefined);
      if (redis.isOpen) {
        for (const k of await redis.keys(`${stream}*`)) await redis.del(k);
        await redis.quit();
      }
    }
  }, 30_000);

  it('a refused admin call does not read a large body: the connection closes after the reply', async () => {
    const { rt, base } = await setup();
    await deadLetter(rt, 1);
    // Declared 200 MiB, no token: refused at once (413 before anything else), and the socket is closed, not drained.
    const status = await new Promise<{ status: number; connection: string | undefined; sent: number }>((resolve, reject) => {
      let sent = 0;
      const req = request(new URL('/api/mailboxes/work/dead-letters/purge', base), { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(200 << 20) } }, (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, sent });
        req.destroy();
      });
      req.on('error', () => undefined);
      const chunk = Buffer.alloc(64 << 10, 0x20);
      const pump = (): void => {
        while (sent < 200 << 20 && req.write(chunk)) sent += chunk.length;
      };
      req.on('drain', pump);
      pump();
      setTimeout(() => reject(new Error('no answer')), 5_000).unref();
    });
    expect(status.status).toBe(413);
    expect(status.connection).toBe('close');
    // Without a declared length, a refusal for the token also closes the connection rather than read what follows.
    const r = await call(base, '/api/mailboxes/work/dead-letters/purge', { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, body: '{"all":true}' });
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(rt.deadLetters('work').size).toBe(1);
  });

  it('gives payload bytes (a Buffer, a Uint8Array), Maps, Sets and BigInts as tagged JSON', async () => {
    const rt = runtime({ mailboxes: { mp: { handler: fixture('console-work.js'), codec: 'msgpack', maxAttempts: 1, minThreads: 1, maxThreads: 1 } } });
    const registry = new Registry();
    createMetrics(rt, { registry });
    await rt.start();
    const server = await serve(registry, { port: 0, console: true });
    servers.push(server);
    rt.send('mp', { always: true, buf: Buffer.from('hi'), u8: new Uint8Array([1, 2]), map: new Map([['k', 1]]), set: new Set([3]), big: 12345678901234567890n });
    await until(() => rt.deadLetters('mp').size === 1, 10_000, 'the dead letter');
    const l = (await call(server.url, '/api/mailboxes/mp/dead-letters')).json.letters[0];
    expect(l.payload.buf).toEqual({ $bytes: Buffer.from('hi').toString('base64'), type: expect.any(String) });
    expect(l.payload.u8).toEqual({ $bytes: Buffer.from([1, 2]).toString('base64'), type: 'Uint8Array' });
    expect(l.payload.map).toEqual({ $map: [['k', 1]] });
    expect(l.payload.set).toEqual({ $set: [3] });
    expect(l.payload.big).toEqual({ $bigint: '12345678901234567890' });
  });

  it('serve() closed leaves no listener on the runtime; a new page after a quiet gap gets no rate averaged over it', async () => {
    const { rt, server, registry } = await setup();
    const before = { close: rt.listenerCount('close'), scale: rt.listenerCount('scale'), dead: rt.listenerCount('dead-letter') };
    for (let i = 0; i < 3; i++) {
      const s = await serve(registry, { port: 0, console: true });
      const ac = new AbortController();
      const res = await fetch(`${s.url}/api/events`, { signal: ac.signal });
      await res.body!.getReader().read();
      ac.abort();
      await s.close();
    }
    // Each server's listeners (its close-with-the-runtime, the console's feed) go with it.
    expect({ close: rt.listenerCount('close'), scale: rt.listenerCount('scale'), dead: rt.listenerCount('dead-letter') }).toEqual(before);
    // A first snapshot has no interval: its rates are null, not 0 or an average since the last page left.
    const first = async (): Promise<any> => {
      const ac = new AbortController();
      const res = await fetch(`${server.url}/api/events`, { signal: ac.signal });
      const reader = res.body!.getReader();
      let text = '';
      while (!text.includes('"type":"snapshot"') || !text.includes('\n\n', text.indexOf('"type":"snapshot"'))) text += new TextDecoder().decode((await reader.read()).value);
      ac.abort();
      const frame = text.split('\n\n').find((f) => f.includes('"type":"snapshot"'))!;
      return JSON.parse(frame.slice(frame.indexOf('data: ') + 6));
    };
    for (let i = 0; i < 50; i++) rt.send('other:box', { n: i });
    await rt.onIdle();
    expect((await first()).mailboxes[1].processedPerSec).toBeNull();
    await new Promise((r) => setTimeout(r, 100)); // the page left: the hub forgets
    expect((await first()).mailboxes[1].processedPerSec).toBeNull();
  });
});
