/**
 * `ringpool/metrics`: Prometheus metrics for a runtime, with prom-client.
 * Main thread only; worker threads never load this module or prom-client.
 *
 * Every value is read at scrape time: counters and gauges from the runtime's
 * `stats()`, histograms from the shared-memory blocks the consumer threads
 * write (runtime/shared/histogram.ts). Nothing is sent per message.
 *
 * ```js
 * import { Registry } from 'prom-client';
 * import { createMetrics, serve } from 'ringpool/metrics';
 * const registry = new Registry();
 * createMetrics(rt, { registry });
 * const server = await serve(registry, { port: 9464 });
 * ```
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Runtime } from '../runtime/runtime.js';
import type { Mailbox, MailboxStats } from '../runtime/mailbox/index.js';
import { DEFAULT_BOUNDS, MAX_BOUNDS, type HistogramSnapshot } from '../runtime/shared/histogram.js';
import { ErrorCodes, RingpoolError, invalidOption } from '../runtime/shared/errors.js';
import { REJECT_REASONS } from '../runtime/shared/layout.js';

export interface MetricsOptions {
  /** Where to register. Never prom-client's global registry unless you pass it. */
  registry: Registry;
  /** Prefix of every metric name. @default 'ringpool_' */
  prefix?: string;
  /** Histogram bucket upper bounds, seconds, ascending (at most 64). @default 10 µs doubling to ~42 s (23 buckets) */
  buckets?: readonly number[];
}

export interface RuntimeMetrics {
  readonly registry: Registry;
  readonly prefix: string;
  /** Stop exporting this runtime's series (also done when the runtime closes). */
  detach(): void;
}

type Labels = Record<string, string | number>;
interface Value {
  labels: Labels;
  value: number;
  metricName?: string;
}
interface Snapshot {
  mailbox: string;
  box: Mailbox;
  stats: MailboxStats;
}

/** A prom-client-compatible metric whose values come from a function at scrape time. */
class ScrapedMetric {
  readonly aggregator = 'sum';
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'gauge' | 'counter' | 'histogram',
    private readonly read: () => Value[],
  ) {}
  get(): { name: string; help: string; type: string; values: Value[]; aggregator: string } {
    return { name: this.name, help: this.help, type: this.type, values: this.read(), aggregator: this.aggregator };
  }
  reset(): void {}
}

/** The metrics of one (registry, prefix): shared by every runtime exported there. */
class Exporter {
  readonly runtimes = new Set<Runtime>();
  private bounds: readonly number[];
  private cache: { at: number; snaps: Snapshot[] } | null = null;

  constructor(
    readonly registry: Registry,
    readonly prefix: string,
    bounds: readonly number[],
  ) {
    this.bounds = bounds;
    for (const m of this.definitions()) registry.registerMetric(m as never);
  }

  boundsOf(): readonly number[] {
    return this.bounds;
  }

  /** One stats() per mailbox per scrape, however many metrics read it. */
  private snapshots(): Snapshot[] {
    const t = Date.now();
    if (this.cache !== null && t - this.cache.at < 50) return this.cache.snaps;
    const snaps: Snapshot[] = [];
    for (const rt of this.runtimes) {
      for (const mailbox of rt.mailboxes) {
        const box = rt.mailbox(mailbox)!;
        snaps.push({ mailbox, box, stats: box.stats() });
      }
    }
    this.cache = { at: t, snaps };
    return snaps;
  }

  private each(pick: (s: MailboxStats) => number): () => Value[] {
    return () => this.snapshots().map((s) => ({ labels: { mailbox: s.mailbox }, value: pick(s.stats) }));
  }

  /** Redis mailboxes only (stats().stream). */
  private eachStream(pick: (s: NonNullable<MailboxStats['stream']>) => number): () => Value[] {
    return () => this.snapshots().flatMap((s) => (s.stats.stream === undefined ? [] : [{ labels: { mailbox: s.mailbox }, value: pick(s.stats.stream) }]));
  }

  private byLabel<K extends string>(label: string, keys: readonly K[], pick: (s: MailboxStats, k: K) => number): () => Value[] {
    return () => this.snapshots().flatMap((s) => keys.map((k) => ({ labels: { mailbox: s.mailbox, [label]: k }, value: pick(s.stats, k) })));
  }

  private histogram(name: string, pick: (h: NonNullable<ReturnType<Mailbox['histograms']>>) => HistogramSnapshot): () => Value[] {
    return () => {
      const out: Value[] = [];
      for (const s of this.snapshots()) {
        const hs = s.box.histograms();
        if (hs === null) continue;
        const h = pick(hs);
        for (let i = 0; i < hs.bounds.length; i++) {
          out.push({ labels: { mailbox: s.mailbox, le: hs.bounds[i]! }, value: h.cumulative[i]!, metricName: `${name}_bucket` });
        }
        out.push({ labels: { mailbox: s.mailbox, le: '+Inf' }, value: h.cumulative[hs.bounds.length]!, metricName: `${name}_bucket` });
        out.push({ labels: { mailbox: s.mailbox }, value: h.sum, metricName: `${name}_sum` });
        out.push({ labels: { mailbox: s.mailbox }, value: h.count, metricName: `${name}_count` });
      }
      return out;
    };
  }

  private definitions(): ScrapedMetric[] {
    const p = this.prefix;
    const gauge = (n: string, help: string, read: () => Value[]): ScrapedMetric => new ScrapedMetric(p + n, help, 'gauge', read);
    const counter = (n: string, help: string, read: () => Value[]): ScrapedMetric => new ScrapedMetric(p + n, help, 'counter', read);
    const histogram = (n: string, help: string, pick: Parameters<Exporter['histogram']>[1]): ScrapedMetric =>
      new ScrapedMetric(p + n, help, 'histogram', this.histogram(p + n, pick));
    return [
      gauge('queue_depth', 'Ready messages not yet claimed by a thread (SQS ApproximateNumberOfMessagesVisible).', this.each((s) => s.depth)),
      gauge('queue_capacity_bytes', 'Size of the mailbox ring in bytes.', this.each((s) => s.capacityBytes)),
      gauge('queue_used_bytes', 'Bytes of the ring in use (ready, in flight, not yet reclaimed).', this.each((s) => s.usedBytes)),
      gauge('messages_in_flight', 'Messages claimed by a thread and not yet acked or failed (SQS ...NotVisible).', this.each((s) => s.inFlight)),
      gauge('messages_delayed', 'Messages waiting for a retry backoff or a delayMs.', this.each((s) => s.delayed)),
      gauge('oldest_message_age_seconds', 'Age of the oldest ready message, since it became ready (SQS ApproximateAgeOfOldestMessage).', this.each((s) => s.oldestAgeSeconds)),
      gauge('estimated_lag_seconds', 'Queue depth divided by the recent drain rate (EWMA over ~5 s): how long the backlog takes to clear.', this.each((s) => s.estimatedLagSeconds)),
      gauge('dead_letters', 'Dead letters held in the store now.', this.each((s) => s.deadLetterSize)),
      counter('dead_letters_dropped_total', 'Dead letters dropped because the store was at deadLetterLimit (oldest first).', this.each((s) => s.deadLettersDropped)),
      gauge('worker_threads', 'Consumer threads running.', this.each((s) => s.threads)),
      gauge('worker_threads_desired', 'Consumer threads the scaler wants.', this.each((s) => s.desiredThreads)),
      gauge('worker_threads_min', 'minThreads of the mailbox.', this.each((s) => s.minThreads)),
      gauge('worker_threads_max', 'maxThreads of the mailbox.', this.each((s) => s.maxThreads)),
      counter('messages_enqueued_total', 'Accepted sends (first sends and redriven dead letters; not retries or redeliveries).', this.each((s) => s.enqueued)),
      counter('messages_processed_total', 'Messages whose handler succeeded (acked).', this.each((s) => s.processed)),
      counter('messages_failed_total', 'Failed attempts (handler threw, its thread crashed, or it ran past leaseMs). Counts attempts, not messages.', this.each((s) => s.failed)),
      counter('messages_retried_total', 'Failed attempts scheduled again after a backoff. Counts attempts, not messages.', this.each((s) => s.retried)),
      counter('messages_redelivered_total', 'Messages put back after a thread crash or lease expiry.', this.each((s) => s.redelivered)),
      counter('messages_rejected_total', 'Refused sends, by reason.', this.byLabel('reason', REJECT_REASONS, (s, r) => s.rejectedBy[r])),
      counter('messages_dead_lettered_total', 'Messages moved to the dead-letter store, by reason.', this.byLabel('reason', ['max_attempts', 'poison', 'timeout', 'unrecoverable'] as const, (s, r) => s.deadLetteredBy[r])),
      counter('worker_crashes_total', 'Consumer threads that died (exit, uncaught error, OOM) and were replaced.', this.each((s) => s.workerCrashes)),
      counter('handler_timeouts_total', 'Handlers that ran past leaseMs; their thread was replaced.', this.each((s) => s.handlerTimeouts)),
      counter('autoscaler_decisions_total', 'Thread-count decisions, by direction.', this.byLabel('direction', ['up', 'down'] as const, (s, d) => s.scaleDecisions[d])),
      gauge('stream_lag', 'Redis mailboxes: entries of the stream not yet delivered to the group (XINFO GROUPS lag; -1 when Redis cannot tell).', this.eachStream((s) => s.lag)),
      gauge('stream_pending', 'Redis mailboxes: entries delivered to the group and not yet acknowledged, all consumers (XINFO GROUPS pending).', this.eachStream((s) => s.pending)),
      gauge('stream_held', 'Redis mailboxes: entries this process holds (in its ring, running, or waiting to retry).', this.eachStream((s) => s.held)),
      gauge('stream_connected', 'Redis mailboxes: 1 while both connections to Redis answer, else 0.', this.eachStream((s) => (s.connected ? 1 : 0))),
      counter('stream_claimed_total', 'Redis mailboxes: entries taken over from consumers idle past claimIdleMs (XAUTOCLAIM).', this.eachStream((s) => s.claimed)),
      counter('stream_acked_total', 'Redis mailboxes: entries acknowledged (XACK) after their handler succeeded.', this.eachStream((s) => s.acked)),
      counter('stream_reconnects_total', 'Redis mailboxes: reconnections after a dropped connection.', this.eachStream((s) => s.reconnects)),
      counter('stream_trimmed_total', 'Redis mailboxes: entries trimmed from the stream before they ran (acknowledged and dropped).', this.eachStream((s) => s.trimmed)),
      counter('stream_resets_total', 'Redis mailboxes: times the stream or group was found gone (NOGROUP) and recreated.', this.eachStream((s) => s.resets)),
      histogram('enqueue_duration_seconds', 'Time spent inside send() on the main thread (encode, reserve, write, publish).', (h) => h.enqueue),
      histogram('queue_wait_seconds', 'Time from enqueue (or re-enqueue) to claim by a thread, each delivery.', (h) => h.queueWait),
      histogram('processing_seconds', 'Handler start to ack or failure, each attempt.', (h) => h.processing),
      histogram('end_to_end_seconds', 'First send to successful ack, retries included; _count equals processed since metrics were attached.', (h) => h.endToEnd),
    ];
  }

  attach(rt: Runtime): void {
    for (const other of this.runtimes) {
      for (const m of rt.mailboxes) {
        if (other.mailboxes.includes(m)) {
          throw new RingpoolError(
            ErrorCodes.INVALID_OPTION,
            `another runtime already exports mailbox '${m}' on this registry with prefix '${this.prefix}': use another registry, prefix, or mailbox name`,
            { mailbox: m, prefix: this.prefix },
          );
        }
      }
    }
    this.runtimes.add(rt);
    this.cache = null;
  }

  detach(rt: Runtime): void {
    this.runtimes.delete(rt);
    this.cache = null;
  }
}

const exporters = new WeakMap<Registry, Map<string, Exporter>>();
/** serve() calls on a registry, told of each runtime exported there (also after they started). */
const watchers = new WeakMap<Registry, Set<(rt: Runtime) => void>>();

/** Duck-typed: a Registry from another copy of prom-client (not deduplicated by npm) works too. */
function isRegistry(r: unknown): r is Registry {
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof (r as Registry).registerMetric === 'function' &&
    typeof (r as Registry).metrics === 'function' &&
    typeof (r as Registry).contentType === 'string'
  );
}
const attached = new WeakMap<Runtime, RuntimeMetrics>();

function checkBuckets(b: unknown): readonly number[] {
  if (!Array.isArray(b) || b.length === 0 || b.length > MAX_BOUNDS) throw invalidOption('buckets', `an array of 1 to ${MAX_BOUNDS} numbers`, b);
  for (let i = 0; i < b.length; i++) {
    const v = b[i];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (i > 0 && v <= b[i - 1])) {
      throw invalidOption(`buckets[${i}]`, 'a finite number > 0, greater than the one before', v);
    }
  }
  return Object.freeze([...b]);
}

/**
 * Export `rt` on `options.registry`. Every series carries a `mailbox` label;
 * the only other labels are `reason` and `direction`, from fixed lists. Two
 * runtimes may share a registry if their mailbox names differ. The runtime's
 * series go away when it closes.
 */
export function createMetrics(rt: Runtime, options: MetricsOptions): RuntimeMetrics {
  if (options === null || typeof options !== 'object' || !isRegistry(options.registry)) {
    throw invalidOption('registry', 'a prom-client Registry', options?.registry);
  }
  if (attached.has(rt)) throw new RingpoolError(ErrorCodes.INVALID_STATE, 'this runtime already has metrics attached', {});
  if (rt.state === 'closed') throw new RingpoolError(ErrorCodes.CLOSED, 'the runtime is closed', {});
  const prefix = options.prefix ?? 'ringpool_';
  if (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) throw invalidOption('prefix', 'a Prometheus metric name prefix', prefix);
  const bounds = options.buckets === undefined ? DEFAULT_BOUNDS : checkBuckets(options.buckets);
  const { registry } = options;
  let byPrefix = exporters.get(registry);
  if (byPrefix === undefined) exporters.set(registry, (byPrefix = new Map()));
  let exp = byPrefix.get(prefix);
  if (exp === undefined) {
    exp = new Exporter(registry, prefix, bounds);
    byPrefix.set(prefix, exp);
  } else if (exp.boundsOf().join() !== bounds.join()) {
    throw invalidOption('buckets', `the buckets already used on this registry with prefix '${prefix}'`, options.buckets);
  }
  const e = exp;
  e.attach(rt);
  for (const watch of watchers.get(registry) ?? []) watch(rt);
  for (const m of rt.mailboxes) rt.mailbox(m)!.enableMetrics(bounds);
  const handle: RuntimeMetrics = {
    registry,
    prefix,
    detach: () => {
      e.detach(rt);
      attached.delete(rt);
      rt.off('close', onClose);
    },
  };
  const onClose = (): void => handle.detach();
  rt.on('close', onClose);
  attached.set(rt, handle);
  return handle;
}

export interface MetricsServer {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

export interface ServeOptions {
  /** 0 picks a free port. @default 9464 */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
}

type MailboxHealth = { state: 'running' | 'draining' | 'stopped'; depth: number; threads: number; inFlight: number; redis?: 'connected' | 'unreachable' };

function health(registry: Registry): { status: 'ok' | 'unavailable'; mailboxes: Record<string, MailboxHealth> } {
  const mailboxes: Record<string, MailboxHealth> = {};
  let ok = true;
  for (const exp of exporters.get(registry)?.values() ?? []) {
    for (const rt of exp.runtimes) {
      const state = rt.state === 'running' ? 'running' : rt.state === 'closing' ? 'draining' : 'stopped';
      if (state === 'stopped') ok = false;
      for (const m of rt.mailboxes) {
        const s = rt.stats(m);
        mailboxes[m] = { state, depth: s.depth, threads: s.threads, inFlight: s.inFlight };
        if (s.stream !== undefined) {
          // A Redis mailbox that cannot reach Redis takes no new work: unhealthy until it reconnects.
          mailboxes[m].redis = s.stream.connected ? 'connected' : 'unreachable';
          if (!s.stream.connected && state === 'running') ok = false;
        }
      }
    }
  }
  return { status: ok ? 'ok' : 'unavailable', mailboxes };
}

/**
 * Serve `registry` over node:http: `GET /metrics` (Prometheus text format) and
 * `GET /healthz` (JSON; 200 while every runtime on the registry runs or
 * drains and every Redis mailbox reaches Redis, 503 otherwise). Closes itself when the last runtime exported on the
 * registry closes.
 */
export async function serve(registry: Registry, options: ServeOptions = {}): Promise<MetricsServer> {
  if (!isRegistry(registry)) throw invalidOption('registry', 'a prom-client Registry', registry);
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 9464;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidOption('port', 'an integer from 0 to 65535', port);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
      );
    } else if (path === '/healthz') {
      const h = health(registry);
      res.writeHead(h.status === 'ok' ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(h));
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actual = (server.address() as AddressInfo).port;
  let closed: Promise<void> | null = null;
  const close = (): Promise<void> => {
    if (closed === null) {
      closed = new Promise((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
    }
    return closed;
  };
  // Close with the last runtime on this registry: those exported now, and those exported later.
  const open = new Set<Runtime>();
  const watch = (rt: Runtime): void => {
    if (open.has(rt) || rt.state === 'closed') return;
    open.add(rt);
    rt.once('close', () => {
      open.delete(rt);
      if (open.size === 0) void close();
    });
  };
  let set = watchers.get(registry);
  if (set === undefined) watchers.set(registry, (set = new Set()));
  set.add(watch);
  void server.once('close', () => set!.delete(watch));
  for (const e of exporters.get(registry)?.values() ?? []) for (const rt of e.runtimes) watch(rt);
  server.unref();
  return { port: actual, url: `http://${host.includes(':') ? `[${host}]` : host}:${actual}`, close };
}
