// The console's queue view, actions, history and mounting (issue #33), against a real runtime with real threads:
// GET .../messages (ready, in flight with thread and start, delayed) and .../messages/<id>; POST promote, threads,
// autoscale, purge by age, each needing the token and each written to the event log; GET /api/history (the
// snapshots and events of the last minutes); consoleHandler() mounted under a basePath in a plain node:http server.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { consoleHandler, createMetrics, serve, type MetricsServer } from 'ringpool/metrics';
import type { Runtime } from 'ringpool';
import { expectCode, fixture, runtime, until } from '../helpers.js';

const TOKEN = 'console-queue-token-0123456789';
const admin = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function setup(): Promise<{ rt: Runtime; base: string; registry: Registry }> {
  const rt = runtime({
    mailboxes: {
      work: { handler: fixture('console-work.js'), maxAttempts: 1, minThreads: 1, maxThreads: 2, concurrency: 2, autoscale: false },
    },
  });
  const registry = new Registry();
  createMetrics(rt, { registry });
  await rt.start();
  const server: MetricsServer = await serve(registry, { port: 0, console: true, admin: { token: TOKEN } });
  closers.push(() => rt.close({ timeoutMs: 500 }), () => server.close());
  return { rt, base: server.url, registry };
}

const get = async (base: string, path: string): Promise<{ status: number; body: any }> => {
  const r = await fetch(`${base}${path}`);
  return { status: r.status, body: await r.json() };
};
const post = async (base: string, path: string, body: unknown, headers: Record<string, string> = admin): Promise<{ status: number; body: any }> => {
  const r = await fetch(`${base}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
};

describe('console: the queue, actions and history', () => {
  it('lists ready, in-flight and delayed messages, finds one by id, promotes a delayed one with the token', async () => {
    const { rt, base } = await setup();
    rt.resize('work', 1);
    const running = [rt.send('work', { n: 1, ms: 2_000 }), rt.send('work', { n: 2, ms: 2_000 })];
    await until(() => rt.stats('work').inFlight === 2, 5_000, 'two in flight');
    const waiting = rt.send('work', { n: 3 });
    const later = rt.send('work', { n: 4, note: '<b>later</b>' }, { delayMs: 60_000 });

    const inFlight = await get(base, '/api/mailboxes/work/messages?state=in-flight');
    expect(inFlight.status).toBe(200);
    expect(inFlight.body.total).toBe(2);
    expect(inFlight.body.messages.map((m: { id: number }) => m.id).sort()).toEqual([...running].sort());
    expect(inFlight.body.messages[0].thread).toBeGreaterThan(0);
    expect(inFlight.body.messages.some((m: { runningSince: number | null }) => m.runningSince !== null)).toBe(true);
    expect((await get(base, '/api/mailboxes/work/messages?state=ready')).body).toMatchObject({ total: 1, messages: [{ id: waiting, attempt: 1 }] });
    expect((await get(base, '/api/mailboxes/work/messages?state=delayed&limit=1')).body).toMatchObject({ total: 1, messages: [{ id: later, state: 'delayed' }] });
    expect((await get(base, `/api/mailboxes/work/messages/${later}`)).body).toMatchObject({ id: later, payload: { n: 4, note: '<b>later</b>' } });
    expect((await get(base, '/api/mailboxes/work/messages/999999')).status).toBe(404);
    expect((await get(base, '/api/mailboxes/work/messages?state=gone')).status).toBe(400);
    expect((await get(base, '/api/mailboxes/work/messages?limit=0')).status).toBe(400);
    expect((await get(base, '/api/mailboxes/work/messages/abc')).status).toBe(400);

    // Promote: refused without the token, then done with it; the message runs at once.
    expect((await post(base, `/api/mailboxes/work/messages/${later}/promote`, {}, { 'content-type': 'application/json' })).status).toBe(401);
    expect(rt.inspect('work', { state: 'delayed' }).total).toBe(1);
    expect((await post(base, `/api/mailboxes/work/messages/${later}/promote`, {})).body).toEqual({ mailbox: 'work', id: later, promoted: true });
    expect((await post(base, `/api/mailboxes/work/messages/${later}/promote`, {})).status).toBe(404);
    await until(() => rt.stats('work').processed === 4, 10_000, 'all four ran');
    const h = await get(base, '/api/history');
    expect(h.body.events.some((e: { type: string; text: string }) => e.type === 'action' && e.text.includes(`message ${later} promoted`))).toBe(true);
  });

  it('resizes threads and turns the autoscaler on and off with the token; a bad body changes nothing', async () => {
    const { rt, base } = await setup();
    expect((await post(base, '/api/mailboxes/work/threads', { threads: 2 })).body).toEqual({ mailbox: 'work', threads: 2, autoscale: false });
    await until(() => rt.stats('work').threads === 2, 5_000, 'two threads');
    expect((await post(base, '/api/mailboxes/work/threads', { threads: 9 })).status).toBe(400); // over maxThreads
    expect((await post(base, '/api/mailboxes/work/threads', { threads: 1, extra: 1 })).status).toBe(400);
    expect((await post(base, '/api/mailboxes/work/threads', { threads: 1 }, { 'content-type': 'application/json', authorization: 'Bearer wrong' })).status).toBe(401);
    expect(rt.stats('work').threads).toBe(2);
    expect((await post(base, '/api/mailboxes/work/autoscale', { on: true })).body).toEqual({ mailbox: 'work', autoscale: true });
    expect(rt.stats('work').autoscale).toBe(true);
    expect((await post(base, '/api/mailboxes/work/autoscale', { on: 'yes' })).status).toBe(400);
    expect((await post(base, '/api/mailboxes/work/autoscale', { on: false })).body.autoscale).toBe(false);
    expect((await get(base, '/api/mailboxes/work/threads')).status).toBe(405);
    const texts = (await get(base, '/api/history')).body.events.map((e: { text: string }) => e.text);
    expect(texts).toEqual(expect.arrayContaining(['resized to 2 threads (autoscaler off)', 'autoscaler on', 'autoscaler off']));
  });

  it('sets, changes and lifts the rate limit while the mailbox runs', async () => {
    const { rt, base } = await setup();
    expect((await post(base, '/api/mailboxes/work/rate-limit', { max: 10, perMs: 1_000 })).body).toEqual({ mailbox: 'work', rateLimit: { max: 10, perMs: 1_000, scope: 'process' } });
    for (let i = 0; i < 60; i++) rt.send('work', { n: i });
    await new Promise((r) => setTimeout(r, 1_500));
    const limited = rt.stats('work').processed;
    expect(limited).toBeGreaterThanOrEqual(5);
    expect(limited).toBeLessThanOrEqual(20); // 10 a second (plus a start in hand), not 60 at once
    expect((await post(base, '/api/mailboxes/work/rate-limit', { max: 0, perMs: 1_000 })).status).toBe(400);
    expect((await post(base, '/api/mailboxes/work/rate-limit', { off: true, max: 5 })).status).toBe(400);
    expect(rt.stats('work').rateLimit).toEqual({ max: 10, perMs: 1_000, scope: 'process' });
    expect((await post(base, '/api/mailboxes/work/rate-limit', { off: true })).body).toEqual({ mailbox: 'work', rateLimit: null });
    await until(() => rt.stats('work').processed === 60, 5_000, 'the rest at once');
    expectCode(() => rt.setRateLimit('work', { max: 5, perMs: 100, scope: 'group' }), 'RINGPOOL_INVALID_OPTION');
    const texts = (await get(base, '/api/history')).body.events.map((e: { text: string }) => e.text);
    expect(texts).toEqual(expect.arrayContaining(['rate limit set to 10 per 1000 ms', 'rate limit lifted']));
  });

  it('purges the letters dead for longer than a time', async () => {
    const { rt, base } = await setup();
    for (let i = 0; i < 3; i++) rt.send('work', { n: i, always: true });
    await until(() => rt.deadLetters('work').size === 3, 5_000, 'three dead');
    await new Promise((r) => setTimeout(r, 400));
    for (let i = 0; i < 2; i++) rt.send('work', { n: 10 + i, always: true });
    await until(() => rt.deadLetters('work').size === 5, 5_000, 'five dead');
    expect((await post(base, '/api/mailboxes/work/dead-letters/purge', { olderThanMs: 250, all: true })).status).toBe(400);
    expect((await post(base, '/api/mailboxes/work/dead-letters/purge', { olderThanMs: -1 })).status).toBe(400);
    expect(rt.deadLetters('work').size).toBe(5);
    expect((await post(base, '/api/mailboxes/work/dead-letters/purge', { olderThanMs: 250 })).body).toEqual({ mailbox: 'work', purged: 3 });
    expect(rt.deadLetters('work').list().map((l) => l.payload)).toEqual([{ n: 10, always: true }, { n: 11, always: true }]);
  });

  it('keeps the last minutes on the server: a page opening now gets snapshots from before it, and the events', async () => {
    const { rt, base } = await setup();
    rt.send('work', { n: 1, always: true });
    for (let i = 0; i < 20; i++) rt.send('work', { n: i, ms: 5 });
    await new Promise((r) => setTimeout(r, 2_500));
    const h = (await get(base, '/api/history')).body;
    expect(h.intervalMs).toBe(1_000);
    expect(h.snapshots.length).toBeGreaterThanOrEqual(2);
    const ts = h.snapshots.map((s: { t: number }) => s.t);
    expect([...ts].sort((a, b) => a - b)).toEqual(ts);
    expect(h.snapshots.at(-1).mailboxes[0]).toMatchObject({ name: 'work', processed: 20, failed: 1 });
    expect(h.events.find((e: { type: string }) => e.type === 'dead-letter')).toMatchObject({ mailbox: 'work', reason: 'max_attempts', text: expect.stringContaining('dead-lettered') });
  });
});

describe('console: mounted in an existing server', () => {
  it('serves under its basePath with relative URLs, passes other paths on, and keeps its admin checks', async () => {
    const rt = runtime({ mailboxes: { work: { handler: fixture('console-work.js'), minThreads: 1, maxThreads: 1 } } });
    const registry = new Registry();
    createMetrics(rt, { registry });
    await rt.start();
    const handler = consoleHandler(registry, { basePath: '/ops/queue', admin: { token: TOKEN } });
    // The application's own server: its routes, the console under /ops/queue (its own authentication would go first).
    const server: Server = createServer((req, res) => handler(req, res, () => res.writeHead(200, { 'content-type': 'text/plain' }).end('the app')));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    closers.push(() => rt.close({ timeoutMs: 500 }), () => new Promise((r) => server.close(r)), () => handler.close());

    const redirect = await fetch(`${base}/ops/queue?x=1`, { redirect: 'manual' });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get('location')).toBe('/ops/queue/?x=1');
    const page = await fetch(`${base}/ops/queue/`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).not.toMatch(/(?:src|href)="\//); // relative: works under any basePath
    expect((await fetch(`${base}/ops/queue/console.js`)).headers.get('content-type')).toMatch(/javascript/);
    expect((await fetch(`${base}/ops/queue/uplot.js`)).status).toBe(200);
    expect((await get(base, '/ops/queue/api/mailboxes')).body).toMatchObject({ admin: true, mailboxes: [{ name: 'work' }] });
    expect(await (await fetch(`${base}/other`)).text()).toBe('the app');
    expect(await (await fetch(`${base}/ops/queuex/`)).text()).toBe('the app');
    // Admin: the page's own origin (the request's Host) is accepted, a foreign one refused.
    const own = await post(base, '/ops/queue/api/mailboxes/work/pause', { ms: 60_000 }, { ...admin, origin: base });
    expect(own.status).toBe(200);
    expect(rt.stats('work').paused).toBe(true);
    expect((await post(base, '/ops/queue/api/mailboxes/work/resume', {}, { ...admin, origin: 'https://evil.example' })).status).toBe(403);
    expect(rt.stats('work').paused).toBe(true);
    // Express mounts it as app.use('/ops/queue', handler): req.url is shortened, req.originalUrl is the whole path.
    const express: Server = createServer((req, res) => {
      const full = req.url ?? '/';
      if (!full.startsWith('/ops/queue')) return void res.writeHead(200).end('the app');
      Object.assign(req, { originalUrl: full, url: full.slice('/ops/queue'.length) || '/' });
      handler(req, res, () => res.writeHead(404).end('next'));
    });
    await new Promise<void>((r) => express.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => express.close(r)));
    const ebase = `http://127.0.0.1:${(express.address() as AddressInfo).port}`;
    expect((await get(ebase, '/ops/queue/api/mailboxes')).body).toMatchObject({ mailboxes: [{ name: 'work' }] });
    expect((await fetch(`${ebase}/ops/queue/`)).headers.get('content-type')).toMatch(/html/);
    expectCode(() => consoleHandler(registry, { basePath: '/ops/' }), 'RINGPOOL_INVALID_OPTION');
    expectCode(() => consoleHandler(registry, { basePath: '/a/../b' }), 'RINGPOOL_INVALID_OPTION');
    expectCode(() => consoleHandler(registry, { bogus: 1 } as never), 'RINGPOOL_INVALID_OPTION');
  });
});
