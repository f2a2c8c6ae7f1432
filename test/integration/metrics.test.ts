import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { freePort } from '../net.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMetrics, serve, type HealthReport } from 'ringpool/metrics';
import { expectCode, fixture, runtime, until } from '../helpers.js';

/** `name{labels}` → value, from Prometheus text format. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

async function scrape(url: string): Promise<{ text: string; type: string | null }> {
  const res = await fetch(`${url}/metrics`);
  return { text: await res.text(), type: res.headers.get('content-type') };
}

/** 1000 messages: 10 always fail (dead-lettered after 3 attempts), 90 fail once, 900 succeed. */
async function knownWorkload() {
  const rt = runtime({
    mailboxes: { m: { handler: fixture('fail.js'), minThreads: 1, maxThreads: 2, maxAttempts: 3, backoff: { baseMs: 1, maxMs: 4 } } },
  });
  const registry = new Registry();
  createMetrics(rt, { registry });
  await rt.start();
  for (let i = 0; i < 1000; i++) rt.send('m', { n: i, failures: i % 100 === 0 ? 'always' : i % 10 === 0 ? 1 : 0 });
  await rt.onIdle();
  const server = await serve(registry, { port: 0 });
  return { rt, registry, server };
}

describe('metrics', () => {
  it('a scrape after a known workload has exact counters; histogram _count = processed; gauges back to 0', async () => {
    const { rt, server } = await knownWorkload();
    const { text, type } = await scrape(server.url);
    expect(type).toBe('text/plain; version=0.0.4; charset=utf-8');
    const m = parse(text);
    const l = '{mailbox="m"}';
    expect(m.get(`ringpool_messages_enqueued_total${l}`)).toBe(1000);
    expect(m.get(`ringpool_messages_processed_total${l}`)).toBe(990);
    expect(m.get('ringpool_messages_dead_lettered_total{mailbox="m",reason="max_attempts"}')).toBe(10);
    expect(m.get(`ringpool_messages_failed_total${l}`)).toBe(90 + 30);
    expect(m.get(`ringpool_messages_retried_total${l}`)).toBe(90 + 20);
    expect(m.get(`ringpool_end_to_end_seconds_count${l}`)).toBe(990);
    expect(m.get('ringpool_end_to_end_seconds_bucket{mailbox="m",le="+Inf"}')).toBe(990);
    expect(m.get(`ringpool_processing_seconds_count${l}`)).toBe(990 + 120);
    expect(m.get(`ringpool_queue_wait_seconds_count${l}`)).toBe(990 + 120);
    expect(m.get(`ringpool_enqueue_duration_seconds_count${l}`)).toBe(1000);
    expect(m.get(`ringpool_queue_depth${l}`)).toBe(0);
    expect(m.get(`ringpool_messages_in_flight${l}`)).toBe(0);
    expect(m.get(`ringpool_messages_delayed${l}`)).toBe(0);
    expect(m.get(`ringpool_dead_letters${l}`)).toBe(10);
    expect(m.get(`ringpool_worker_threads_max${l}`)).toBe(2);
    // The shared pool the mailbox runs on (issue #28): what rt.poolStats() says.
    expect(m.get('ringpool_pool_threads')).toBe(rt.poolStats().threads);
    expect(m.get('ringpool_pool_threads')).toBeGreaterThanOrEqual(1);
    expect(m.get('ringpool_pool_lanes')).toBe(rt.poolStats().lanes);
    // buckets are cumulative and end at _count
    const buckets = [...m].filter(([k]) => k.startsWith('ringpool_processing_seconds_bucket')).map(([, v]) => v);
    expect(buckets.length).toBe(24);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!).toBeGreaterThanOrEqual(buckets[i - 1]!);
    expect(m.get(`ringpool_processing_seconds_sum${l}`)).toBeGreaterThan(0);
    expect(rt.stats('m').processed).toBe(990);
    // promtool (Debian's prometheus package) accepts the exposition
    execFileSync('promtool', ['check', 'metrics'], { input: text });
  });

  it('/healthz reports each mailbox; the server and the series go away when the runtime closes', async () => {
    const { rt, registry, server } = await knownWorkload();
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok', mailboxes: { m: { state: 'running', depth: 0, threads: expect.any(Number), inFlight: 0 } } });
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    await rt.close();
    await expect(fetch(`${server.url}/metrics`)).rejects.toThrow();
    expect(await registry.metrics()).not.toContain('mailbox="m"');
  });

  it('/livez and /readyz through the lifecycle: starting and recovering, running, draining (ready red, live green throughout)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ringpool-probes-'));
    const rt = runtime({
      mailboxes: {
        m: { handler: fixture('slow.js'), minThreads: 1, maxThreads: 1 },
        d: { handler: fixture('slow.js'), minThreads: 1, maxThreads: 1, durability: { dir } },
      },
    });
    const registry = new Registry();
    createMetrics(rt, { registry });
    const server = await serve(registry, { port: 0 });
    const probe = async (path: string): Promise<[number, HealthReport]> => {
      const res = await fetch(`${server.url}${path}`);
      return [res.status, (await res.json()) as HealthReport];
    };
    const [liveCode] = await probe('/livez');
    expect(liveCode).toBe(200);
    const [readyCode, ready] = await probe('/readyz');
    expect(readyCode).toBe(503);
    expect(ready.mailboxes).toMatchObject({ m: { state: 'starting', notReady: 'starting' }, d: { state: 'starting', notReady: 'recovering' } });
    expect((await probe('/healthz'))[0]).toBe(503);
    await rt.start();
    for (const p of ['/livez', '/readyz', '/healthz']) {
      const [code, body] = await probe(p);
      expect(code, p).toBe(200);
      expect(body.mailboxes.m).toEqual({ state: 'running', depth: 0, threads: 1, inFlight: 0 });
    }
    rt.send('m', { ms: 1_500 });
    await until(() => rt.stats('m').inFlight === 1, 5_000, 'the slow message runs');
    const closing = rt.close({ timeoutMs: 10_000 });
    const [drainReady, drain] = await probe('/readyz');
    expect(drainReady).toBe(503);
    expect(drain.mailboxes.m).toMatchObject({ state: 'draining', notReady: 'draining', inFlight: 1 });
    expect((await probe('/livez'))[0]).toBe(200);
    expect((await closing).drained).toBe(true);
  });

  it('10,000 distinct error messages create no new series', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('fail.js'), maxAttempts: 1, minThreads: 1, maxThreads: 1 } } });
    const registry = new Registry();
    createMetrics(rt, { registry });
    await rt.start();
    rt.send('m', { n: 'first', failures: 'always' });
    await rt.onIdle();
    const before = parse(await registry.metrics()).size;
    for (let i = 0; i < 10_000; i++) rt.send('m', { n: `unique-${i}-${Math.random()}`, failures: 'always' });
    await rt.onIdle();
    const after = parse(await registry.metrics());
    expect(after.size).toBe(before);
    expect(after.get('ringpool_messages_dead_lettered_total{mailbox="m",reason="max_attempts"}')).toBe(10_001);
  });

  it('two runtimes on two registries do not collide; on one registry they need distinct mailbox names', async () => {
    const mk = (name: string) => runtime({ mailboxes: { [name]: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 1 } } });
    const a = mk('orders');
    const b = mk('orders');
    const ra = new Registry();
    const rb = new Registry();
    createMetrics(a, { registry: ra });
    createMetrics(b, { registry: rb });
    await Promise.all([a.start(), b.start()]);
    a.send('orders', 1);
    for (let i = 0; i < 3; i++) b.send('orders', i);
    await Promise.all([a.onIdle(), b.onIdle()]);
    expect(parse(await ra.metrics()).get('ringpool_messages_processed_total{mailbox="orders"}')).toBe(1);
    expect(parse(await rb.metrics()).get('ringpool_messages_processed_total{mailbox="orders"}')).toBe(3);
    const shared = new Registry();
    const c = mk('payments');
    createMetrics(c, { registry: shared });
    const err = await expectCode(() => createMetrics(mk('payments'), { registry: shared }), 'RINGPOOL_INVALID_OPTION');
    expect(err.message).toMatch(/already exports mailbox 'payments'/);
    createMetrics(mk('shipping'), { registry: shared });
    const text = await shared.metrics();
    expect(text).toContain('ringpool_queue_depth{mailbox="payments"} 0');
    expect(text).toContain('ringpool_queue_depth{mailbox="shipping"} 0');
    // never prom-client's global registry unless passed
    const { register } = await import('prom-client');
    expect(register.getSingleMetric('ringpool_queue_depth')).toBeUndefined();
  });

  it('a real Prometheus scrapes serve() and answers a query with the exact count', async () => {
    const { server } = await knownWorkload();
    const dir = mkdtempSync(join(tmpdir(), 'ringpool-prom-'));
    const promPort = await freePort();
    writeFileSync(
      join(dir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ringpool\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['127.0.0.1:${server.port}']\n`,
    );
    const prom = spawn(
      'prometheus',
      [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    prom.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    try {
      const base = `http://127.0.0.1:${promPort}`;
      await until(() => prom.exitCode === null && log.includes('Server is ready to receive web requests'), 20_000, `prometheus ready (${log.slice(-300)})`);
      let value: string | undefined;
      const q = encodeURIComponent('ringpool_messages_processed_total{mailbox="m"}');
      const deadline = Date.now() + 20_000;
      while (value === undefined && Date.now() < deadline) {
        const body = (await (await fetch(`${base}/api/v1/query?query=${q}`)).json()) as { data: { result: Array<{ value: [number, string] }> } };
        value = body.data.result[0]?.value[1];
        if (value === undefined) await new Promise((r) => setTimeout(r, 250));
      }
      expect(value).toBe('990');
    } finally {
      prom.kill('SIGTERM');
      if (prom.exitCode === null) await once(prom, 'exit');
    }
  }, 60_000);
});

describe('examples for operators', () => {
  it('the alert rules pass promtool check rules', () => {
    const out = execFileSync('promtool', ['check', 'rules', fileURLToPathSafe('../../examples/prometheus/alerts.yml')], { encoding: 'utf8' });
    expect(out).toMatch(/SUCCESS: 7 rules found/);
  });

  it('the Grafana dashboard and the alerts only use metric names a scrape exposes', async () => {
    const { server } = await knownWorkload();
    // Metrics of mailboxes that protect their downstream (issue #31) show only for them: a mailbox with each.
    const guarded = runtime({
      mailboxes: { p: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 1, concurrency: 'adaptive', rateLimit: { max: 100, perMs: 1_000 }, breaker: {} } },
    });
    const registry = new Registry();
    createMetrics(guarded, { registry });
    await guarded.start();
    const text = (await scrape(server.url)).text + (await registry.metrics());
    await guarded.close();
    const exposed = new Set([...parse(text).keys()].map((k) => k.replace(/\{.*$/, '')));
    const used = (text: string): string[] => [...new Set(text.match(/ringpool_[a-z_]+/g) ?? [])];
    const dashboard = readFileSync(fileURLToPathSafe('../../examples/grafana/ringpool-dashboard.json'), 'utf8');
    JSON.parse(dashboard);
    const alerts = readFileSync(fileURLToPathSafe('../../examples/prometheus/alerts.yml'), 'utf8');
    for (const name of [...used(dashboard), ...used(alerts)]) expect(exposed.has(name), name).toBe(true);
    expect(used(dashboard).length).toBeGreaterThan(10);
  });
});

function fileURLToPathSafe(rel: string): string {
  return new URL(rel, import.meta.url).pathname;
}
