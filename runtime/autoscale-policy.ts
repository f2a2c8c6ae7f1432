/**
 * The autoscaling policy: a pure function. No threads, no timers, no clock of
 * its own (`now` is an input), so it is tested deterministically.
 *
 * Each tick, for one mailbox:
 *
 *   B = ready + in flight,  S = EWMA of handler time per message (s),
 *   λ = EWMA of arrival rate (msg/s),  c = messages in flight per thread,
 *   one thread drains c / S msg/s, so
 *   raw = max(ready·S / (c·targetLag) + inFlight / c,  λ·S / (c·0.8))
 *
 * (In-flight messages are being served already: they count by the thread
 * slots they hold, not as backlog to clear, so one slow message in flight
 * asks for one thread, not ceil(S / targetLag).)
 *
 * (AWS's backlog-per-instance target and Little's law at 80 % utilisation;
 * the larger wins, as Kubernetes' HPA takes the larger of two metrics.)
 *
 * - Tolerance: when raw/current is within 1 ± tolerance, nothing changes.
 * - Up at once (at most maxStepUp threads a tick); down only to the highest
 *   recommendation of the last scaleDownWindowMs, and never on missing data.
 * - CPU-bound or I/O-bound: when more capacity is needed and the threads are
 *   not CPU-busy (event-loop utilisation below `busyElu`) and concurrency can
 *   grow, the policy doubles per-thread concurrency instead of adding threads.
 *   When they are busy, it adds threads up to max.
 * - Adaptive concurrency (`limit`, runtime/adaptive-policy.ts): the limit,
 *   not the autoscaler, says how many handlers run at once; concurrency is
 *   never changed, c is the limit's share per thread, and threads are added
 *   only when they are CPU-busy: a backlog behind a downstream that set the
 *   limit is not one more thread's to clear.
 */

export interface AutoscaleConfig {
  targetLagSeconds: number;
  min: number;
  max: number;
  tickMs: number;
  /** Relative change ignored, e.g. 0.1. */
  tolerance: number;
  scaleDownWindowMs: number;
  /** Most threads added in one tick. */
  maxStepUp: number;
  /** Per-thread concurrency bounds (minConcurrency..maxConcurrency). */
  maxConcurrency: number;
  /** The mailbox's own `concurrency`: the autoscaler never goes below it. @default 1 */
  minConcurrency?: number;
  /** Below this mean event-loop utilisation, threads count as waiting on I/O, not CPU-bound. */
  busyElu: number;
}

/** What `decide` sees of a mailbox at one tick. */
export interface Observation {
  now: number;
  ready: number;
  inFlight: number;
  /** Arrivals per second (EWMA); undefined when unknown. */
  arrivalRate: number | undefined;
  /** Seconds a handler takes per message (EWMA); undefined before any message was handled. */
  processingSeconds: number | undefined;
  /** Mean event-loop utilisation of the consumer threads over the last tick (0..1); undefined when unknown. */
  elu: number | undefined;
  threads: number;
  concurrency: number;
  /** The adaptive concurrency limit across the mailbox (handlers at once); undefined when concurrency is fixed. */
  limit?: number;
}

/** A past recommendation, kept for the scale-down window. */
export interface Recommendation {
  at: number;
  threads: number;
}

/** What `decide` answers. */
export interface Decision {
  threads: number;
  concurrency: number;
  /** Why, in words an operator can read. */
  reason: string;
  /** The raw, unclamped thread recommendation (NaN when data is missing). */
  raw: number;
  /** Recommendations to keep for the next tick (the scale-down window). */
  history: Recommendation[];
}

/** The defaults of the `autoscale` option. */
export const autoscaleDefaults = Object.freeze({
  targetLagSeconds: 1,
  tickMs: 1000,
  scaleDownWindowMs: 30_000,
  tolerance: 0.1,
  maxStepUp: 4,
  maxConcurrency: 64,
  busyElu: 0.6,
});

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));

/** The autoscaling decision for one mailbox at one tick: threads and concurrency, and why (pure; `autoscalePolicy` from `ringpool`). */
export function decide(cfg: AutoscaleConfig, o: Observation, past: readonly Recommendation[]): Decision {
  const current = o.threads;
  const limit = o.limit;
  // Adaptive: c is the limit's share of a thread (the concurrency word is only a ceiling then), and stays as it is.
  const c = limit === undefined ? Math.max(1, o.concurrency) : Math.max(1, Math.min(o.concurrency, limit / Math.max(1, current)));
  const keptC = Math.max(1, o.concurrency);
  const backlog = o.ready + o.inFlight;
  const keep = (reason: string, raw = NaN, hist: Recommendation[] = pruned(past, cfg, o.now)): Decision => ({
    threads: clamp(current, cfg.min, cfg.max),
    concurrency: keptC,
    reason,
    raw,
    history: hist,
  });

  const S = o.processingSeconds !== undefined && Number.isFinite(o.processingSeconds) ? o.processingSeconds : undefined;
  const arrivals = o.arrivalRate !== undefined && Number.isFinite(o.arrivalRate) ? o.arrivalRate : undefined;
  const elu = o.elu !== undefined && Number.isFinite(o.elu) ? o.elu : undefined;
  // Idle: nothing queued or running and (next to) nothing arriving (the arrival EWMA decays slowly toward 0).
  if (backlog === 0 && arrivals !== undefined && arrivals < 0.5) {
    // Known to be idle: no work needs no handler-time data. Down to min, through the window.
    const history = [...pruned(past, cfg, o.now), { at: o.now, threads: cfg.min }];
    const ceiling = Math.max(...history.map((h) => h.threads));
    const to = clamp(Math.min(current, ceiling), cfg.min, cfg.max);
    const reason =
      to < current ? `scale down: idle; highest recommendation in ${cfg.scaleDownWindowMs} ms is ${ceiling}` : to > current ? 'below min' : 'idle';
    return { threads: to, concurrency: keptC, reason, raw: 0, history };
  }
  if (S === undefined || !(S > 0)) {
    // No handler time yet: scale up only to serve a backlog (one thread at a time), never down.
    if (backlog > 0 && current < cfg.min) return { ...keep('below min'), threads: cfg.min };
    if (backlog > 0 && current === 0) return { ...keep('backlog with no thread'), threads: Math.max(1, cfg.min) };
    return keep('no processing-time data yet: hold');
  }
  const perThread = c / S;
  const forBacklog = o.ready / (perThread * cfg.targetLagSeconds) + o.inFlight / c;
  const lambda = arrivals ?? 0;
  const forArrivals = lambda / (perThread * 0.8);
  const raw = Math.max(forBacklog, forArrivals);
  const wanted = clamp(Math.ceil(raw - 1e-9), cfg.min, cfg.max);
  const history = [...pruned(past, cfg, o.now), { at: o.now, threads: wanted }];
  const why =
    forBacklog >= forArrivals
      ? `ready ${o.ready} x ${fmt(S)} s / (${fmt(c)} x ${cfg.targetLagSeconds} s lag) + ${o.inFlight} in flight / ${fmt(c)}`
      : `arrivals ${fmt(lambda)}/s x ${fmt(S)} s / (${fmt(c)} x 0.8)`;
  // Saturated threads gain nothing from running handlers side by side: give
  // back concurrency first. (0.9, well above busyElu: a band, so it does not
  // flap with the raise below.)
  const minC = Math.max(1, cfg.minConcurrency ?? 1);
  if (limit === undefined && elu !== undefined && elu >= Math.max(cfg.busyElu, 0.9) && c > minC) {
    const to = Math.max(minC, Math.floor(c / 2));
    return { threads: clamp(current, cfg.min, cfg.max), concurrency: to, reason: `CPU-bound (event-loop utilisation ${fmt(elu)}): concurrency ${c} -> ${to}`, raw, history };
  }

  if (current > 0 && Math.abs(raw / current - 1) <= cfg.tolerance) {
    return { threads: clamp(current, cfg.min, cfg.max), concurrency: keptC, reason: `within tolerance (${why} = ${fmt(raw)})`, raw, history };
  }
  // More capacity needed (raw, not clamped to max: at max threads, I/O-bound threads can still take more at once).
  if (Math.ceil(raw - 1e-9) > current) {
    // Adaptive and not CPU-bound: the limit (the downstream) sets the pace, not the threads.
    if (limit !== undefined && current > 0 && (elu === undefined || elu < cfg.busyElu)) {
      return { threads: current, concurrency: keptC, reason: `adaptive limit ${limit}: threads not CPU-busy, the downstream sets the pace (${why} = ${fmt(raw)})`, raw, history };
    }
    // Threads waiting on I/O: more messages per thread is cheaper than a thread.
    if (elu !== undefined && elu < cfg.busyElu && current > 0 && c < cfg.maxConcurrency) {
      return {
        threads: current,
        concurrency: Math.min(cfg.maxConcurrency, c * 2),
        reason: `I/O-bound (event-loop utilisation ${fmt(elu)} < ${cfg.busyElu}): concurrency ${c} -> ${Math.min(cfg.maxConcurrency, c * 2)} (${why} = ${fmt(raw)})`,
        raw,
        history,
      };
    }
    // Not knowing yet whether the threads are CPU- or I/O-bound (their first
    // ~100 ms), add none: the wrong choice would cost a thread for 30 s.
    if (elu === undefined && current > 0) {
      return { threads: current, concurrency: keptC, reason: `waiting for utilisation data before scaling up (${why} = ${fmt(raw)})`, raw, history: [...pruned(past, cfg, o.now)] };
    }
    const to = Math.min(wanted, current + cfg.maxStepUp, cfg.max);
    if (to > current) return { threads: to, concurrency: keptC, reason: `scale up: ${why} = ${fmt(raw)}`, raw, history };
    if (wanted >= current) return { threads: current, concurrency: keptC, reason: `at max (${cfg.max}): ${why} = ${fmt(raw)}`, raw, history };
  }
  if (wanted < current) {
    if (arrivals === undefined) return { ...keep('arrival rate unknown: no scale-down', raw), history };
    // Down only to the highest recommendation in the window (this one included).
    const ceiling = Math.max(...history.map((h) => h.threads));
    const to = clamp(Math.max(wanted, ceiling), cfg.min, cfg.max);
    if (to < current) return { threads: to, concurrency: keptC, reason: `scale down: highest recommendation in ${cfg.scaleDownWindowMs} ms is ${ceiling} (${why} = ${fmt(raw)})`, raw, history };
    return { threads: current, concurrency: keptC, reason: `hold: waiting out the scale-down window (highest ${ceiling})`, raw, history };
  }
  return { threads: current, concurrency: keptC, reason: `steady (${why} = ${fmt(raw)})`, raw, history };
}

function pruned(history: readonly Recommendation[], cfg: AutoscaleConfig, now: number): Recommendation[] {
  return history.filter((h) => now - h.at < cfg.scaleDownWindowMs);
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toPrecision(3);
}
