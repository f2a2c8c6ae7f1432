/**
 * The demo (`npm start`): an API takes a burst of requests and hands them to
 * a backend through a ringpool mailbox, for real, on this machine.
 *
 * The story: the API normally receives ~500 requests/s; for 2 seconds it
 * receives ~10,000/s, while one backend thread handles ~2,000/s (500 µs of CPU
 * plus a 5 ms downstream call per request, 16 in flight a thread). The queue
 * absorbs the burst, the autoscaler adds a thread (2 at most: this box has 2
 * cores), the backlog drains, the thread is retired. Later the downstream
 * is saturated for 3 seconds (a database at its connection limit: a real
 * HTTP server in its own process, examples/downstream/, 8 calls at once in
 * 50 ms each, the rest queued in it): the consumers slow down, the producer
 * does not. With adaptive concurrency (the default; --no-protect turns it
 * off) the handlers in flight follow what the downstream serves, so the
 * backlog waits in the queue, not in the downstream; without it the
 * autoscaler, seeing idle threads, raises concurrency and lengthens the
 * downstream's own queue. The summary says what the downstream saw. A
 * handful of poison requests end in the dead-letter store. One status line a second, /metrics and the operator console served on 127.0.0.1, a summary
 * table and an SVG timeline at the end.
 *
 *   npm start
 *   npm start -- --short --port 0
 *   npm start -- --help
 */
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { Registry } from 'prom-client';
import { createRuntime, RingpoolError, ErrorCodes, type DeadLetterEvent, type ScaleEvent } from '../runtime/index.js';
import { createMetrics, serve, type MetricsServer } from '../metrics/index.js';
import { timelineSvg } from './timeline-svg.js';
import { startDownstream } from './downstream/index.js';
import { cli, type Command } from './cli.js';

// ---------------------------------------------------------------- options

interface DemoOptions {
  duration: number;
  base: number;
  rate: number;
  burst: number;
  perThread: number;
  downstream: number;
  slow: number;
  slowFor: number;
  slowCapacity: number;
  threads: number;
  concurrency: number;
  poison: number;
  port: number;
  out: string;
  short: boolean;
  json: boolean;
  /** Adaptive concurrency on (--no-protect: a fixed concurrency the autoscaler may raise). */
  protect: boolean;
  /** --port was given (else a taken default port falls back to a free one). */
  portGiven: boolean;
}

const DEFAULTS = {
  duration: 24,
  base: 500,
  rate: 10_000,
  burst: 2,
  perThread: 2_000,
  downstream: 5,
  slow: 50,
  slowFor: 3,
  slowCapacity: 8,
  threads: Math.min(2, availableParallelism()),
  concurrency: 16,
  poison: 5,
  port: 9464,
};
/** --short: the same story in a few seconds (a lighter burst: the CI box is shared). */
const SHORT = { duration: 6, rate: 5_000, burst: 1, slowFor: 1, poison: 3 };

const DEMO = {
  usage: 'npm start -- [options]',
  about: `ringpool demo: an API burst absorbed by a queue, on this machine, for real.

The API receives --base requests/s, then --rate requests/s for --burst seconds;
the backend spends 1e6/--per-thread µs of CPU and one downstream call
(--downstream ms) per request. For --slow-for seconds the downstream is
saturated: a real HTTP server that serves --slow-capacity calls at once in
--slow ms each and queues the rest. Adaptive concurrency keeps the calls in
flight near what it serves (--no-protect: fixed, raised by the autoscaler).
The autoscaler runs 1..--threads consumer threads. Status each second,
/metrics on 127.0.0.1, a summary and an SVG timeline at the end.`,
  flags: {
    duration: { type: 'number', gt: 0, arg: '<s>', help: 'how long the API sends', defaultText: `${DEFAULTS.duration}, ${SHORT.duration} with --short` },
    base: { type: 'number', min: 0, arg: '<n>', help: 'normal traffic, requests/s', defaultText: `${DEFAULTS.base}` },
    rate: { type: 'number', min: 0, arg: '<n>', help: 'burst traffic, requests/s', defaultText: `${DEFAULTS.rate}, ${SHORT.rate} with --short` },
    burst: { type: 'number', min: 0, arg: '<s>', help: 'burst length, from 10 % of the duration', defaultText: `${DEFAULTS.burst}, ${SHORT.burst} with --short` },
    'per-thread': { type: 'number', gt: 0, arg: '<n>', help: 'backend requests/s one thread can do (CPU)', defaultText: `${DEFAULTS.perThread}` },
    downstream: { type: 'number', min: 0, arg: '<ms>', help: 'downstream call, normally', defaultText: `${DEFAULTS.downstream}` },
    slow: { type: 'number', min: 0, arg: '<ms>', help: 'a call to the saturated downstream, served', defaultText: `${DEFAULTS.slow}` },
    'slow-capacity': { type: 'number', integer: true, min: 1, arg: '<n>', help: 'calls the saturated downstream serves at once', defaultText: `${DEFAULTS.slowCapacity}` },
    'slow-for': { type: 'number', min: 0, arg: '<s>', help: 'saturated episode length, from 65 % of the duration', defaultText: `${DEFAULTS.slowFor}, ${SHORT.slowFor} with --short` },
    'no-protect': { type: 'boolean', help: 'fixed concurrency (the autoscaler may raise it), not adaptive' },
    threads: { type: 'number', integer: true, min: 1, arg: '<n>', help: 'most consumer threads (maxThreads)', defaultText: `${DEFAULTS.threads}: min(2, cores)` },
    concurrency: { type: 'number', integer: true, min: 1, arg: '<n>', help: 'requests in flight per thread (the autoscaler may raise it)', defaultText: `${DEFAULTS.concurrency}` },
    poison: { type: 'number', integer: true, min: 0, arg: '<n>', help: 'poison requests (fail every attempt)', defaultText: `${DEFAULTS.poison}, ${SHORT.poison} with --short` },
    port: { type: 'number', integer: true, min: 0, max: 65535, arg: '<n>', help: '/metrics port on 127.0.0.1, 0 picks a free one', defaultText: `${DEFAULTS.port}, a free one if taken` },
    out: { type: 'string', arg: '<file>', expected: 'a file name', help: 'where to write the SVG timeline', defaultText: resolve(tmpdir(), 'ringpool-demo-timeline.svg') },
    short: { type: 'boolean', help: 'the whole run in a few seconds' },
    json: { type: 'boolean', help: 'print the summary as JSON on the last line' },
  },
  notes: 'Ctrl-C stops the API, drains what the queue accepted (rt.close()) and prints the summary; twice stops at once.',
} as const satisfies Command;

/** The flags (examples/cli.ts: --help exits 0, a refused flag exits 2); given numbers win over --short's. */
function parse(argv: string[]): DemoOptions {
  return cli(
    DEMO,
    ({ values: v }) => {
      const given: Partial<Record<keyof typeof DEFAULTS, number>> = {
        duration: v.duration,
        base: v.base,
        rate: v.rate,
        burst: v.burst,
        perThread: v['per-thread'],
        downstream: v.downstream,
        slow: v.slow,
        slowFor: v['slow-for'],
        slowCapacity: v['slow-capacity'],
        threads: v.threads,
        concurrency: v.concurrency,
        poison: v.poison,
        port: v.port,
      };
      for (const k of Object.keys(given) as Array<keyof typeof given>) if (given[k] === undefined) delete given[k];
      const out = resolve(v.out ?? DEMO.flags.out.defaultText);
      return { ...DEFAULTS, ...(v.short ? SHORT : {}), ...given, out, short: v.short, json: v.json, protect: !v['no-protect'], portGiven: v.port !== undefined };
    },
    argv,
  );
}

// ---------------------------------------------------------------- histogram reading

type Buckets = Array<[number, number]>; // [upper bound (Infinity for +Inf), cumulative count]

/** The cumulative buckets of one histogram of the registry (ringpool/metrics reads shared memory at this call). */
async function buckets(registry: Registry, name: string): Promise<Buckets> {
  const m = registry.getSingleMetric(name);
  if (m === undefined) return [];
  const got = await m.get();
  const out: Buckets = [];
  for (const v of got.values as Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>) {
    if (v.metricName?.endsWith('_bucket')) out.push([v.labels.le === '+Inf' ? Infinity : Number(v.labels.le), v.value]);
  }
  return out.sort((a, b) => a[0] - b[0]);
}

/**
 * Quantile q of the observations between two cumulative snapshots, linear
 * inside a bucket (so this is good to within a bucket: a factor √2 here).
 * NaN when nothing was observed in between.
 */
function quantile(q: number, cur: Buckets, prev: Buckets = []): number {
  const before = new Map(prev);
  const total = (cur.at(-1)?.[1] ?? 0) - (before.get(Infinity) ?? 0);
  if (total <= 0) return NaN;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, c] of cur) {
    const n = c - (before.get(le) ?? 0);
    if (n >= rank) {
      if (le === Infinity) return lower;
      return lower + ((le - lower) * (rank - below)) / Math.max(1e-9, n - below);
    }
    if (le !== Infinity) lower = le;
    below = n;
  }
  return lower;
}

// ---------------------------------------------------------------- formatting

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
function dur(seconds: number): string {
  if (!Number.isFinite(seconds)) return '-';
  if (seconds < 1e-3) return `${(seconds * 1e6).toFixed(0)} µs`;
  if (seconds < 1) return `${(seconds * 1e3).toFixed(seconds < 0.01 ? 1 : 0)} ms`;
  return `${seconds.toFixed(1)} s`;
}
const pad = (s: string | number, n: number): string => String(s).padStart(n);

// ---------------------------------------------------------------- the run

interface Sample {
  t: number;
  offered: number;
  processed: number;
  depth: number;
  threads: number;
  concurrency: number;
}
interface Second {
  t: number;
  offered: number;
  processed: number;
  p99: number;
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const MAILBOX = 'requests';
  const workUs = Math.round(1e6 / o.perThread);
  const burstFrom = Math.round(o.duration * 0.1 * 10) / 10;
  const burstTo = burstFrom + o.burst;
  const slowFrom = Math.round(o.duration * 0.65 * 10) / 10;
  const slowTo = slowFrom + o.slowFor;
  const autoscale = o.short ? { targetLagSeconds: 1, tickMs: 250, scaleDownWindowMs: 1000 } : { targetLagSeconds: 1, tickMs: 500, scaleDownWindowMs: 2000 };
  const perThreadIo = (o.concurrency * 1000) / (o.downstream + workUs / 1000);
  const perThreadReal = Math.min(o.perThread, perThreadIo);
  // The ring holds the whole burst with room to spare (~200 bytes a request), so send() never finds it full.
  const burstBacklog = Math.max(0, o.rate - perThreadReal * o.threads) * o.burst + o.base * (o.slowFor + 1);
  const capacityBytes = Math.min(256 << 20, Math.max(16 << 20, 2 ** Math.ceil(Math.log2(burstBacklog * 200 * 2))));

  // The time axis starts now; the downstream's schedule is wall-clock, in the
  // environment before the threads spawn (see examples/handlers/api-request.js).
  const t0 = performance.now();
  const epoch0 = Date.now();
  const now = (): number => (performance.now() - t0) / 1000;
  // The saturated downstream: a real server in its own process (examples/downstream/), called only during the episode.
  const saturated = await startDownstream({ capacity: o.slowCapacity, serviceMs: o.slow });
  const downstreamPlan = { fastMs: o.downstream, url: saturated.url, slowFrom: epoch0 + slowFrom * 1000, slowTo: epoch0 + slowTo * 1000 };
  process.env.RINGPOOL_DEMO_DOWNSTREAM = JSON.stringify(downstreamPlan);
  const downstream = new BroadcastChannel('ringpool-demo-downstream');

  const rt = createRuntime({
    mailboxes: {
      [MAILBOX]: {
        handler: new URL('../../examples/handlers/api-request.js', import.meta.url),
        minThreads: 1,
        maxThreads: o.threads,
        // Protected: handlers in flight bounded by a limit learned from their latency; the autoscaler then sizes threads only.
        ...(o.protect ? { concurrency: 'adaptive' as const, adaptive: { initial: o.concurrency, max: 64 * o.threads } } : { concurrency: o.concurrency }),
        maxAttempts: 3,
        backoff: { baseMs: 50, maxMs: 500 },
        capacityBytes,
        autoscale,
      },
    },
  });
  // Buckets a factor √2 apart (10 µs to ~84 s) instead of the default doubling: the demo's p99 lines read finer.
  const registry = new Registry();
  createMetrics(rt, { registry, buckets: Array.from({ length: 47 }, (_, k) => Number((1e-5 * 2 ** (k / 2)).toPrecision(4))) });
  let server: MetricsServer;
  // The operator console too; redrive and purge from it with RINGPOOL_ADMIN_TOKEN set (read-only without).
  const served = { host: '127.0.0.1', console: true, admin: { token: process.env.RINGPOOL_ADMIN_TOKEN || undefined } };
  try {
    server = await serve(registry, { port: o.port, ...served });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || o.portGiven) throw err;
    server = await serve(registry, { port: 0, ...served });
  }

  const dead: DeadLetterEvent[] = [];
  const scales: Array<ScaleEvent & { t: number }> = [];
  const log = (s: string): void => console.log(s);
  rt.on('error', (err) => console.error(`runtime error: ${err.message}`));
  rt.on('dead-letter', (e) => {
    dead.push(e);
    log(`      » ${now().toFixed(1)}s dead letter: request ${(e.letter.payload as { id: number }).id} after ${e.letter.attempts} attempts (${e.letter.reason}): ${e.letter.lastError?.message ?? ''}`);
  });
  rt.on('scale', (e) => {
    scales.push({ ...e, t: now() });
    const what = e.from !== e.to ? `threads ${e.from} -> ${e.to}` : `concurrency -> ${e.concurrency} a thread`;
    const why = e.reason.length > 110 ? `${e.reason.slice(0, 107)}...` : e.reason;
    log(`      » ${now().toFixed(1)}s autoscaler: ${what} (${why})`);
  });
  await rt.start();

  const cores = cpus();
  log(`ringpool demo: an API burst absorbed by a queue, on this machine (${cores.length} cores, ${cores[0]?.model.trim() ?? 'cpu'}, Node ${process.version})`);
  log(
    `  the story: an API takes ${int(o.base)} requests/s, then ${int(o.rate)}/s for ${o.burst} s (from ${burstFrom} s); the backend does ~${int(o.perThread)}/s a thread ` +
      `(${workUs} µs CPU + a ${o.downstream} ms downstream call, ${o.concurrency} in flight a thread); threads 1..${o.threads}`,
  );
  log(
    `  scaled to this box: ${o.threads} consumer thread${o.threads > 1 ? 's' : ''} (the producer and dispatcher share the ${cores.length} cores), so at most ~${int(perThreadReal * o.threads)}/s ` +
      `against ${int(o.rate)}/s: the queue has to absorb the burst`,
  );
  log(
    `  saturated downstream from ${slowFrom} s to ${slowTo} s (${o.slowCapacity} calls at once in ${o.slow} ms, the rest queued in it: ${int((o.slowCapacity * 1000) / o.slow)}/s at most); ` +
      `${o.protect ? 'adaptive concurrency on (--no-protect: off)' : 'adaptive concurrency OFF (--no-protect)'}; ${o.poison} poison requests; ring ${capacityBytes >> 20} MiB`,
  );
  log(`  autoscale tick ${autoscale.tickMs} ms, scale-down window ${autoscale.scaleDownWindowMs} ms`);
  log(`  console: ${server.url}/  (live mailboxes and dead letters; ${served.admin.token === undefined ? 'read-only: set RINGPOOL_ADMIN_TOKEN to redrive and purge' : 'admin token from RINGPOOL_ADMIN_TOKEN'})`);
  log(`  metrics: ${server.url}/metrics  (probes: ${server.url}/livez, ${server.url}/readyz)${o.port !== 0 && server.port !== o.port ? `  (port ${o.port} was taken)` : ''}`);
  log('');
  log(`     t  phase    offered/s  processed/s     depth  lag(s)  oldest(s)  threads x ${o.protect ? 'limit' : 'conc '}  e2e p99`);

  // Ctrl-C: stop the API, end the slow episode (so the drain is quick), drain, summarise. Twice: stop now.
  let stopping = false;
  let interrupted = false;
  let forcedNow = false;
  let forceStop: () => void = () => {};
  const forced = new Promise<void>((r) => (forceStop = r)).then(() => void (forcedNow = true));
  // SIGTERM (a container's stop, Kubernetes) as Ctrl-C: drain within close()'s timeout, report what was left.
  const onSignal = (): void => {
    if (!interrupted) {
      stopping = true;
      interrupted = true;
      const at = Date.now();
      downstream.postMessage({ type: 'recovered', at });
      process.env.RINGPOOL_DEMO_DOWNSTREAM = JSON.stringify({ ...downstreamPlan, slowTo: Math.min(downstreamPlan.slowTo, at) });
      log(`\n      » ${now().toFixed(1)}s Ctrl-C or SIGTERM: the API stops sending; draining what the queue accepted (Ctrl-C again stops at once)`);
      return;
    }
    log('      » second Ctrl-C: stopping now');
    forceStop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  // Sampling: every 100 ms for the timeline and the peaks; a status line every second.
  const samples: Sample[] = [];
  const seconds: Second[] = [];
  let peakDepth = 0;
  let peakDepthAt = 0;
  let peakThreads = 0;
  let peakConcurrency = 0;
  let saturatedInFlight = 0;
  let offered = 0;
  const sample = (): void => {
    const s = rt.stats(MAILBOX);
    const t = now();
    const c = s.adaptive?.limit ?? s.concurrency;
    samples.push({ t, offered, processed: s.processed, depth: s.depth, threads: s.threads, concurrency: c });
    if (s.depth > peakDepth) [peakDepth, peakDepthAt] = [s.depth, t];
    peakThreads = Math.max(peakThreads, s.threads);
    peakConcurrency = Math.max(peakConcurrency, c);
    if (t >= slowFrom && t < slowTo) saturatedInFlight = Math.max(saturatedInFlight, s.inFlight);
  };
  const sampler = setInterval(sample, 100);
  let prevE2e = await buckets(registry, 'ringpool_end_to_end_seconds');
  let lastOffered = 0;
  let lastProcessed = 0;
  let lastLineAt = 0;
  let producing = true;
  const phase = (t: number): string =>
    t >= burstFrom && t < burstTo ? 'BURST' : t >= slowFrom && t < slowTo ? 'satur' : producing ? 'base' : 'drain';
  const statusLine = async (): Promise<void> => {
    const t = now();
    const s = rt.stats(MAILBOX);
    const e2e = await buckets(registry, 'ringpool_end_to_end_seconds');
    const p99 = quantile(0.99, e2e, prevE2e);
    prevE2e = e2e;
    const span = Math.max(1e-3, t - lastLineAt);
    const row: Second = { t, offered: (offered - lastOffered) / span, processed: (s.processed - lastProcessed) / span, p99 };
    seconds.push(row);
    [lastOffered, lastProcessed, lastLineAt] = [offered, s.processed, t];
    log(
      `${pad(t.toFixed(1), 6)}  ${phase(t - 0.5).padEnd(6)} ${pad(int(row.offered), 11)} ${pad(int(row.processed), 12)} ${pad(int(s.depth), 9)} ` +
        `${pad(s.estimatedLagSeconds.toFixed(1), 7)} ${pad(s.oldestAgeSeconds.toFixed(2), 10)} ${pad(`${s.threads} x ${s.adaptive?.limit ?? s.concurrency}`, 15)}  ${dur(p99)}`,
    );
  };
  let statusBusy = false;
  const status = setInterval(() => {
    if (statusBusy) return;
    statusBusy = true;
    void statusLine().finally(() => (statusBusy = false));
  }, 1000);

  // The API: a 1 ms tick sends what the traffic owes by now. send() is
  // synchronous and never waits: a full ring would throw RINGPOOL_QUEUE_FULL
  // at once (counted below; the ring is sized so it does not happen).
  const loopDelay = monitorEventLoopDelay({ resolution: 5 });
  loopDelay.enable();
  const owed = (t: number): number => o.base * t + (o.rate - o.base) * Math.max(0, Math.min(t, burstTo) - burstFrom);
  const poisonAt = Array.from({ length: o.poison }, (_, i) => (o.duration * 0.8 * (i + 1)) / (o.poison + 1));
  const poisonIds: number[] = [];
  let queueFull = 0;
  let otherRefusals = 0;
  let maxSendUs = 0;
  let maxSendAt = 0;
  // Every send's time (µs), for exact percentiles; a very long run keeps the first 4 million.
  const sendUs = new Float64Array(Math.min(4_000_000, Math.ceil(o.base * o.duration + o.rate * o.burst) + 1024));
  let sendN = 0;
  // GC pauses on this thread, to tell a send() that met one from one the OS descheduled.
  let gcMaxMs = 0;
  let gcCount = 0;
  const gcSpans: Array<[number, number]> = [];
  const slowSendSpans: Array<[number, number]> = [];
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcCount++;
      gcMaxMs = Math.max(gcMaxMs, e.duration);
      if (gcSpans.length < 100_000) gcSpans.push([e.startTime, e.startTime + e.duration]);
    }
  });
  gc.observe({ entryTypes: ['gc'] });
  const startedAt = now();
  const base = owed(startedAt);
  while (!stopping && now() < o.duration) {
    const t = now();
    const due = Math.floor(owed(t) - base);
    while (offered < due) {
      const id = offered;
      const poison = poisonIds.length < poisonAt.length && t >= poisonAt[poisonIds.length]!;
      const req: Record<string, unknown> = { id, route: 'POST /api/orders', user: `u-${id % 997}`, items: [{ sku: `SKU-${id % 1000}`, qty: 1 + (id % 3) }], work: workUs };
      if (poison) req.poison = true;
      const a = performance.now();
      try {
        rt.send(MAILBOX, req);
        if (poison) poisonIds.push(id);
      } catch (err) {
        if (err instanceof RingpoolError && err.code === ErrorCodes.QUEUE_FULL) queueFull++;
        else otherRefusals++;
      }
      const us = (performance.now() - a) * 1000;
      if (us > maxSendUs) [maxSendUs, maxSendAt] = [us, t];
      if (sendN < sendUs.length) sendUs[sendN++] = us;
      if (us > 1000 && slowSendSpans.length < 10_000) slowSendSpans.push([a, a + us / 1000]);
      offered++;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  producing = false;
  const producedFor = now() - startedAt;
  loopDelay.disable();
  gc.disconnect();
  const sends = sendUs.subarray(0, sendN).sort();
  const sendPct = (q: number): number => (sendN === 0 ? NaN : sends[Math.min(sendN - 1, Math.floor(q * sendN))]!);
  const sendsOver1ms = slowSendSpans.length;
  const slowSendsInGc = slowSendSpans.filter(([a, b]) => gcSpans.some(([g0, g1]) => g0 < b && g1 > a)).length;

  // Drain, then give the autoscaler its window to retire the extra threads.
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  await Promise.race([rt.onIdle(), forced]);
  const drainedAt = now();
  const downBy = performance.now() + autoscale.scaleDownWindowMs + 4 * autoscale.tickMs + 3000;
  while (!stopping && rt.stats(MAILBOX).threads > 1 && performance.now() < downBy) await Promise.race([sleep(100), forced]);
  clearInterval(status);
  clearInterval(sampler);
  sample();
  while (statusBusy) await sleep(10);
  await statusLine();
  const e2eAll = await buckets(registry, 'ringpool_end_to_end_seconds');
  const finalThreads = rt.stats(MAILBOX).threads;
  // close() drains what is left (nothing, unless a second Ctrl-C cut the drain short) and stops the threads, within
  // 25 s: under the 30 s a container runtime or Kubernetes (terminationGracePeriodSeconds) waits after SIGTERM.
  const report = await (forcedNow ? rt.destroy() : Promise.race([rt.close({ timeoutMs: 25_000 }), forced.then(() => rt.destroy())]));
  downstream.close();
  const seen = await saturated.stats();
  await saturated.close();
  const s = rt.stats(MAILBOX);
  const total = now();

  // ---------------------------------------------------------------- summary
  const left = report.left[MAILBOX] ?? { ready: 0, inFlight: 0, delayed: 0 };
  const lost = s.enqueued - s.processed - s.deadLettered;
  const deadReasons = Object.entries(s.deadLetteredBy).filter(([, n]) => n > 0).map(([r, n]) => `${r} x${n}`).join(', ') || '-';
  const poisonDead = dead.filter((d) => (d.letter.payload as { poison?: boolean }).poison === true).length;
  const producerBlocked = queueFull > 0 || otherRefusals > 0 || s.enqueued !== offered;
  // A scale-up shorter than the 100 ms sampler still counts: the decisions say how many threads ran.
  for (const e of scales) peakThreads = Math.max(peakThreads, e.to);
  const firstUp = scales.find((e) => e.to > e.from);
  const lastDown = [...scales].reverse().find((e) => e.to < e.from);
  const e2eP50 = quantile(0.5, e2eAll);
  const e2eP99 = quantile(0.99, e2eAll);
  const sendP50 = sendPct(0.5);
  const sendP99 = sendPct(0.99);
  const sendP999 = sendPct(0.999);
  const peakProcessed = Math.max(0, ...seconds.map((r) => r.processed));
  // Rates for the timeline over 0.5 s windows of the 100 ms samples.
  const rate = (pick: (p: Sample) => number): Array<[number, number]> =>
    samples.slice(5).map((p, i) => [p.t - 0.25, (pick(p) - pick(samples[i]!)) / Math.max(1e-3, p.t - samples[i]!.t)]);

  // The SVG timeline.
  const svg = timelineSvg({
    title: `ringpool demo: ${int(offered)} requests, burst ${int(o.rate)}/s for ${o.burst} s, backend ~${int(o.perThread)}/s a thread, 1..${o.threads} threads`,
    subtitle: `${cores.length} cores, Node ${process.version}; peak depth ${int(peakDepth)}, lost ${lost}, dead-lettered ${s.deadLettered}, max send() ${maxSendUs.toFixed(0)} µs, QUEUE_FULL ${queueFull}`,
    seconds: Math.max(total, o.duration),
    bands: [
      { from: burstFrom, to: Math.min(burstTo, producedFor + startedAt), label: `burst ${int(o.rate)}/s`, color: '#d9480f' },
      { from: slowFrom, to: Math.min(slowTo, interrupted ? producedFor + startedAt : slowTo), label: `downstream saturated`, color: '#7048e8' },
    ].filter((b) => b.to > b.from),
    panels: [
      {
        title: 'requests/s',
        series: [
          { label: 'offered', color: '#d9480f', points: rate((p) => p.offered) },
          { label: 'processed', color: '#1c7ed6', points: rate((p) => p.processed) },
        ],
        format: (v) => (v >= 1000 ? `${v / 1000}k` : String(v)),
      },
      {
        title: 'queue depth',
        series: [{ label: 'ready messages', color: '#2b8a3e', area: true, points: samples.map((p) => [p.t, p.depth]) }],
        format: (v) => (v >= 1000 ? `${v / 1000}k` : String(v)),
        minMax: 10,
      },
      {
        title: 'threads',
        series: [
          { label: 'consumer threads', color: '#e67700', step: true, points: samples.map((p) => [p.t, p.threads]) },
          { label: o.protect ? 'adaptive limit' : 'concurrency a thread', color: '#868e96', step: true, dashed: true, right: true, points: samples.map((p) => [p.t, p.concurrency]) },
        ],
        minMax: o.threads,
        integer: true,
      },
      {
        title: 'end-to-end p99 (each second, log scale)',
        series: [{ label: 'send -> ack', color: '#c2255c', points: seconds.map((r) => [r.t - 0.5, r.p99]) }],
        log: true,
        format: (v) => (v >= 1 ? `${v}s` : v >= 1e-3 ? `${Number((v * 1e3).toPrecision(3))}ms` : `${Number((v * 1e6).toPrecision(3))}µs`),
      },
    ],
  });
  writeFileSync(o.out, svg);

  const summary = {
    offered,
    accepted: s.enqueued,
    queueFull,
    otherRefusals,
    processed: s.processed,
    deadLettered: s.deadLettered,
    deadLetteredBy: s.deadLetteredBy,
    poison: poisonIds.length,
    poisonDeadLettered: poisonDead,
    retried: s.retried,
    lost,
    leftAtClose: left.ready + left.inFlight + left.delayed,
    drained: report.drained,
    peakProcessedPerSecond: Math.round(peakProcessed),
    peakDepth,
    peakDepthAtSeconds: Number(peakDepthAt.toFixed(2)),
    peakThreads,
    finalThreads,
    maxThreads: o.threads,
    peakConcurrency,
    firstScaleUpAtSeconds: firstUp ? Number(firstUp.t.toFixed(2)) : null,
    backToOneThreadAtSeconds: lastDown && finalThreads <= 1 ? Number(lastDown.t.toFixed(2)) : null,
    maxSendMicros: Number(maxSendUs.toFixed(1)),
    sendP50Micros: Number(sendP50.toFixed(2)),
    sendP99Micros: Number(sendP99.toFixed(2)),
    sendP999Micros: Number(sendP999.toFixed(2)),
    sendsOver1ms,
    sendsOver1msDuringGc: slowSendsInGc,
    mainLoopDelayMaxMs: Number((loopDelay.max / 1e6).toFixed(1)),
    mainGcMaxMs: Number(gcMaxMs.toFixed(1)),
    e2eP50Seconds: Number(e2eP50.toFixed(6)),
    e2eP99Seconds: Number(e2eP99.toFixed(6)),
    producerBlocked,
    interrupted,
    producedForSeconds: Number(producedFor.toFixed(2)),
    drainedAtSeconds: Number(drainedAt.toFixed(2)),
    totalSeconds: Number(total.toFixed(2)),
    protect: o.protect,
    downstream: { served: seen.served, maxInIt: seen.maxPresent, queueP50Ms: Number(seen.queueP50Ms.toFixed(2)), queueP99Ms: Number(seen.queueP99Ms.toFixed(2)), inFlightMax: saturatedInFlight },
    svg: o.out,
    metricsUrl: `${server.url}/metrics`,
  };
  const rows: Array<[string, string]> = [
    ['offered (requests the API sent)', int(offered)],
    ['accepted by send()', `${int(s.enqueued)}   (QUEUE_FULL ${queueFull}, other refusals ${otherRefusals})`],
    ['processed', `${int(s.processed)}   (at most ${int(peakProcessed)}/s in a second, on ${peakThreads} thread${peakThreads > 1 ? 's' : ''})`],
    ['dead-lettered', `${s.deadLettered} (${deadReasons}); poison sent ${poisonIds.length}, of them dead-lettered ${poisonDead}`],
    ['retried attempts', `${int(s.retried)} (transient 503s, then the poison requests)`],
    ['lost (accepted - processed - dead)', `${lost} ${lost === 0 ? '(ok: every request processed or dead-lettered)' : forcedNow ? '(stopped at once: what was left is lost with the process, as the in-memory promise says)' : '(NOT OK)'}${left.ready + left.inFlight + left.delayed > 0 ? `; left at close: ${JSON.stringify(left)}` : ''}`],
    ['peak depth', `${int(peakDepth)} at ${peakDepthAt.toFixed(1)} s`],
    [
      'threads: peak / final',
      `${peakThreads} / ${finalThreads}   (first scale-up ${firstUp ? `${firstUp.t.toFixed(1)} s` : '-'}, back to 1 at ${lastDown && finalThreads <= 1 ? `${lastDown.t.toFixed(1)} s` : '-'}; ${o.protect ? `adaptive limit up to ${peakConcurrency} across the threads` : `concurrency ${o.concurrency}..${peakConcurrency} a thread`})`,
    ],
    [
      'send() p50 / p99 / p99.9 / max',
      `${sendP50.toFixed(1)} / ${sendP99.toFixed(1)} / ${sendP999.toFixed(1)} / ${maxSendUs.toFixed(0)} µs (max at ${maxSendAt.toFixed(1)} s)`,
    ],
    [
      'sends over 1 ms',
      `${sendsOver1ms} of ${int(sendN)}${sendsOver1ms > 0 ? `: ${slowSendsInGc} met a GC pause; ${sendsOver1ms - slowSendsInGc} did not (most likely the OS gave the core to a consumer: ${o.threads} CPU-bound consumers and the producer on ${cores.length} cores)` : ''}`,
    ],
    ['main thread: event-loop delay max / GC', `${(loopDelay.max / 1e6).toFixed(1)} ms / ${gcCount} GCs, longest ${gcMaxMs.toFixed(1)} ms (while the API sent)`],
    ['end-to-end p50 / p99 (whole run)', `${dur(e2eP50)} / ${dur(e2eP99)} (ringpool_end_to_end_seconds, buckets √2 apart)`],
    ['producer blocked', producerBlocked ? 'YES' : 'no (every send accepted at once, none waited)'],
    [
      `producer ran / ${forcedNow ? 'stopped' : 'drained'} at / total`,
      `${producedFor.toFixed(1)} s / ${drainedAt.toFixed(1)} s / ${total.toFixed(1)} s${forcedNow ? ' (Ctrl-C twice)' : interrupted ? ' (Ctrl-C)' : ''}`,
    ],
    [
      'the saturated downstream saw',
      `${int(seen.served)} calls, at most ${seen.maxPresent} in it at once (it serves ${o.slowCapacity}), waiting in its queue p50 ${seen.queueP50Ms.toFixed(1)} / p99 ${seen.queueP99Ms.toFixed(1)} ms; ` +
        `${o.protect ? `adaptive concurrency (limit ${s.adaptive?.limit ?? '-'} at the end)` : 'fixed concurrency (--no-protect)'}, at most ${saturatedInFlight} in flight meanwhile`,
    ],
    ['timeline (SVG)', o.out],
  ];
  log('\nsummary');
  for (const [k, v] of rows) log(`  ${k.padEnd(38)} ${v}`);
  if (o.json) console.log(JSON.stringify(summary));
  await server.close();
}

await main();
