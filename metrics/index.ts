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
import type { Registry } from 'prom-client';
import { Runtime as RuntimeClass, type Runtime } from '../runtime/runtime.js';
import type { Mailbox, MailboxStats } from '../runtime/mailbox/index.js';
import type { PoolStats } from '../runtime/pool/shared.js';
import { DEFAULT_BOUNDS, MAX_BOUNDS, type HistogramSnapshot } from '../runtime/shared/histogram.js';
import { ErrorCodes, RingpoolError, invalidOption, optionThrew } from '../runtime/shared/errors.js';
import { REJECT_REASONS } from '../runtime/shared/layout.js';
import { isRegistry, noteDetached, noteExported } from './exported.js';

export { serve, type ConsoleOptions, type MetricsServer, type ServeOptions } from './serve.js';
export type { HealthReport, MailboxHealth } from './health.js';
export { consoleHandler, type ConsoleHandler, type ConsoleHandlerOptions } from './console/mount.js';

/** `createMetrics(rt, options)`. */
export interface MetricsOptions {
  /** Where to register. Never prom-client's global registry unless you pass it. */
  registry: Registry;
  /** Prefix of every metric name. @default 'ringpool_' */
  prefix?: string;
  /** Histogram bucket upper bounds, seconds, ascending (at most 64). @default 10 µs doubling to ~42 s (23 buckets) */
  buckets?: readonly number[];
}

/** What `createMetrics` answers. */
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

  private pool(pick: (p: PoolStats) => number): number {
    let n = 0;
    for (const rt of this.runtimes) n += pick(rt.poolStats());
    return n;
  }

  /** Mailboxes with a circuit breaker only (stats().breaker). */
  private eachBreaker(pick: (b: NonNullable<MailboxStats['breaker']>) => number): () => Value[] {
    return () => this.snapshots().flatMap((s) => (s.stats.breaker === null || s.stats.breaker === undefined ? [] : [{ labels: { mailbox: s.mailbox }, value: pick(s.stats.breaker) }]));
  }

  /** Mailboxes with adaptive concurrency only (stats().adaptive). */
  private eachAdaptive(pick: (a: NonNullable<MailboxStats['adaptive']>) => number): () => Value[] {
    return () => this.snapshots().flatMap((s) => (s.stats.adaptive === null || s.stats.adaptive === undefined ? [] : [{ labels: { mailbox: s.mailbox }, value: pick(s.stats.adaptive) }]));
  }

  /** Redis mailboxes only (stats().stream). */
  private eachStream(pick: (s: NonNullable<MailboxStats['stream']>) => number): () => Value[] {
    return () => this.snapshots().flatMap((s) => (s.stats.stream === undefined ? [] : [{ labels: { mailbox: s.mailbox }, value: pick(s.stats.stream) }]));
  }

  /** Redis mailboxes whose fleet recommendation is known (stats().stream.fleet). */
  private eachFleet(pick: (f: NonNullable<NonNullable<MailboxStats['stream']>['fleet']>) => number): () => Value[] {
    return () => this.snapshots().flatMap((s) => (s.stats.stream?.fleet === undefined ? [] : [{ labels: { mailbox: s.mailbox }, value: pick(s.stats.stream.fleet) }]));
  }

  /** Partitioned Redis mailboxes only (stats().stream.partitions). */
  private eachPartitioned(pick: (s: NonNullable<NonNullable<MailboxStats['stream']>['partitions']>) => number): () => Value[] {
    return () => this.snapshots().flatMap((s) => (s.stats.stream?.partitions === undefined ? [] : [{ labels: { mailbox: s.mailbox }, value: pick(s.stats.stream.partitions) }]));
  }

  /** Each partition's lag, for the partitions this process owns. */
  private partitionLag(): () => Value[] {
    return () =>
      this.snapshots().flatMap((s) => {
        const ps = s.stats.stream?.partitions;
        return ps === undefined ? [] : ps.owned.map((p) => ({ labels: { mailbox: s.mailbox, partition: String(p) }, value: ps.lag[p]! }));
      });
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
      gauge('mailbox_paused', 'Mailboxes that start nothing new now (rt.pause, or a handler\'s ctx.retryAfter): 1, else 0.', this.each((s) => (s.paused ? 1 : 0))),
      counter('rate_limit_waits_total', 'Times a consumer thread found no start to take under the mailbox\'s rateLimit (once a wait).', this.each((s) => s.limitWaits)),
      gauge('breaker_state', 'Mailboxes with a circuit breaker: 0 closed, 1 open (starts nothing), 2 half-open (one probe).', this.eachBreaker((b) => (b.state === 'closed' ? 0 : b.state === 'open' ? 1 : 2))),
      counter('breaker_opens_total', 'Mailboxes with a circuit breaker: times it opened (from closed, or after a failed probe).', this.eachBreaker((b) => b.opens)),
      gauge('concurrency_limit', "Mailboxes with concurrency 'adaptive': handlers that may run at once across the mailbox, learned from their latency.", this.eachAdaptive((a) => a.limit)),
      gauge('concurrency_limit_latency_seconds', "Mailboxes with concurrency 'adaptive': the last window's mean handler time the limit was decided on.", this.eachAdaptive((a) => (a.latencyMs ?? 0) / 1000)),
      counter('concurrency_limit_waits_total', "Mailboxes with concurrency 'adaptive': times a consumer thread found the limit reached (once a wait).", this.eachAdaptive((a) => a.waits)),
      counter('pause_waits_total', 'Times a consumer thread waited because the mailbox was paused (once a wait).', this.each((s) => s.pauseWaits)),
      gauge('worker_threads_desired', 'Consumer threads the scaler wants.', this.each((s) => s.desiredThreads)),
      gauge('worker_threads_min', 'minThreads of the mailbox.', this.each((s) => s.minThreads)),
      gauge('worker_threads_max', 'maxThreads of the mailbox.', this.each((s) => s.maxThreads)),
      gauge('pool_threads', "Threads of the runtime's shared pool running now (summed over the runtimes this registry exports).", () => [{ labels: {}, value: this.pool((p) => p.threads) }]),
      gauge('pool_lanes', "Consumer loops on the shared pool's threads (a mailbox has one per pool thread it runs on).", () => [{ labels: {}, value: this.pool((p) => p.lanes) }]),
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
      gauge('stream_consumers', 'Redis mailboxes: consumers the group has (XINFO GROUPS; -1 until known).', this.eachStream((s) => s.consumers)),
      gauge(
        'stream_desired_consumers',
        "Redis mailboxes: consumer processes the group needs (the autoscaler's law for the fleet: lag + pending and the arrival rate against this process's drain rate); scale the fleet on it (KEDA prometheus scaler, HPA external metric).",
        this.eachFleet((f) => f.desired),
      ),
      gauge('stream_connected', 'Redis mailboxes: 1 while both connections to Redis answer, else 0.', this.eachStream((s) => (s.connected ? 1 : 0))),
      counter('stream_claimed_total', 'Redis mailboxes: entries taken over from consumers idle past claimIdleMs (XAUTOCLAIM).', this.eachStream((s) => s.claimed)),
      counter('stream_acked_total', 'Redis mailboxes: entries acknowledged (XACK) after their handler succeeded.', this.eachStream((s) => s.acked)),
      counter('stream_reconnects_total', 'Redis mailboxes: reconnections after a dropped connection.', this.eachStream((s) => s.reconnects)),
      counter('stream_trimmed_total', 'Redis mailboxes: entries trimmed from the stream before they ran (acknowledged and dropped).', this.eachStream((s) => s.trimmed)),
      counter('stream_resets_total', 'Redis mailboxes: times the stream or group was found gone (NOGROUP) and recreated.', this.eachStream((s) => s.resets)),
      gauge('stream_delayed', "Redis mailboxes: messages waiting in the stream's delayed set (delayMs, from every sender), as of the last move pass.", this.eachStream((s) => s.delayed)),
      gauge('stream_delayed_next_due_seconds', 'Redis mailboxes: until the earliest delayed message is due (-1: none).', this.eachStream((s) => (s.nextDueInMs < 0 ? -1 : s.nextDueInMs / 1000))),
      counter('stream_delayed_moved_total', 'Redis mailboxes: due delayed messages this process moved into the stream.', this.eachStream((s) => s.delayedMoved)),
      gauge('stream_asks_open', 'Redis mailboxes: asks of this process waiting for their reply from whichever process runs them.', this.eachStream((s) => s.asksOpen)),
      counter('stream_replies_received_total', "Redis mailboxes: replies read from this process's reply stream (settled an ask, or dropped).", this.eachStream((s) => s.repliesReceived)),
      counter('stream_replies_dropped_total', 'Redis mailboxes: replies read for asks no longer open (timed out, or answered by an earlier run).', this.eachStream((s) => s.repliesDropped)),
      counter('stream_replies_sent_total', 'Redis mailboxes: replies this process sent for the asks it ran (results and final errors).', this.eachStream((s) => s.repliesSent)),
      gauge('stream_partitions_owned', 'Partitioned Redis mailboxes: partitions this process owns (reads, or finishes before giving back).', this.eachPartitioned((p) => p.owned.length)),
      gauge('stream_members', 'Partitioned Redis mailboxes: live processes of the group, as this one last saw them.', this.eachPartitioned((p) => p.members)),
      counter('stream_rebalances_total', 'Partitioned Redis mailboxes: partitions this process took from, or gave back to, the group at a clean point.', this.eachPartitioned((p) => p.rebalances)),
      counter('stream_takeovers_total', 'Partitioned Redis mailboxes: partitions this process took whose last owner had not given them back (it died or paused past its lease).', this.eachPartitioned((p) => p.takeovers)),
      counter('stream_fenced_total', 'Partitioned Redis mailboxes: acknowledgements, retry counts and dead letters Redis refused because another process had taken the partition.', this.eachPartitioned((p) => p.fenced)),
      counter('stream_fenced_skipped_total', 'Partitioned Redis mailboxes: records of a partition this process had lost, not run here (the new owner runs them).', this.eachPartitioned((p) => p.fencedSkipped)),
      gauge('stream_partition_lag', 'Partitioned Redis mailboxes: entries of each owned partition not yet delivered to the group.', this.partitionLag()),
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

const attached = new WeakMap<Runtime, RuntimeMetrics>();

function checkBuckets(b: unknown): readonly number[] {
  const n: unknown = Array.isArray(b) ? b.length : undefined;
  if (typeof n !== 'number' || !Number.isInteger(n) || n === 0 || n > MAX_BOUNDS) throw invalidOption('buckets', `an array of 1 to ${MAX_BOUNDS} numbers`, b);
  // Copied as read (each element once): a Proxy cannot pass the check with one value and keep another.
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const v: unknown = (b as unknown[])[i];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (i > 0 && v <= xs[i - 1]!)) {
      throw invalidOption(`buckets[${i}]`, 'a finite number > 0, greater than the one before', v);
    }
    xs.push(v);
  }
  return Object.freeze(xs);
}

/** createMetrics()'s options, each read once and checked (a getter or trap that throws: RINGPOOL_INVALID_OPTION). */
function metricsOptions(options: unknown): { registry: Registry; prefix: string; bounds: readonly number[]; buckets: unknown } {
  if (options === null || typeof options !== 'object') throw invalidOption('registry', 'a prom-client Registry', undefined);
  try {
    const { registry, prefix = 'ringpool_', buckets } = options as Record<string, unknown>;
    if (!isRegistry(registry)) throw invalidOption('registry', 'a prom-client Registry', registry);
    if (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) throw invalidOption('prefix', 'a Prometheus metric name prefix', prefix);
    return { registry, prefix, bounds: buckets === undefined ? DEFAULT_BOUNDS : checkBuckets(buckets), buckets };
  } catch (err) {
    throw optionThrew('createMetrics options', err);
  }
}

/**
 * Export `rt` on `options.registry`. Every series carries a `mailbox` label;
 * the only other labels are `reason` and `direction`, from fixed lists. Two
 * runtimes may share a registry if their mailbox names differ. The runtime's
 * series go away when it closes.
 */
export function createMetrics(rt: Runtime, options: MetricsOptions): RuntimeMetrics {
  if (!(rt instanceof RuntimeClass)) throw invalidOption('createMetrics(rt)', 'a Runtime (createRuntime())', rt);
  const { registry, prefix, bounds, buckets } = metricsOptions(options);
  if (attached.has(rt)) throw new RingpoolError(ErrorCodes.INVALID_STATE, 'this runtime already has metrics attached', {});
  if (rt.state === 'closed') throw new RingpoolError(ErrorCodes.CLOSED, 'the runtime is closed', {});
  let byPrefix = exporters.get(registry);
  if (byPrefix === undefined) exporters.set(registry, (byPrefix = new Map()));
  let exp = byPrefix.get(prefix);
  if (exp === undefined) {
    exp = new Exporter(registry, prefix, bounds);
    byPrefix.set(prefix, exp);
  } else if (exp.boundsOf().join() !== bounds.join()) {
    throw invalidOption('buckets', `the buckets already used on this registry with prefix '${prefix}'`, buckets);
  }
  const e = exp;
  e.attach(rt);
  noteExported(registry, rt);
  for (const m of rt.mailboxes) rt.mailbox(m)!.enableMetrics(bounds);
  const handle: RuntimeMetrics = {
    registry,
    prefix,
    detach: () => {
      e.detach(rt);
      noteDetached(registry, rt);
      attached.delete(rt);
      rt.off('close', onClose);
    },
  };
  const onClose = (): void => handle.detach();
  rt.on('close', onClose);
  attached.set(rt, handle);
  return handle;
}

