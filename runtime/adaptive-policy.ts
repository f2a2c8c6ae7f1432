/**
 * Adaptive concurrency (`concurrency: 'adaptive'`, issue #31): how many
 * handlers of a mailbox may run at once, learned from their latency. A pure
 * class: no threads, no timers, no clock of its own (`now` is an input), so
 * it is tested with a fake clock and a model downstream.
 *
 * TCP Vegas, as Netflix's concurrency-limits applies it to requests, with
 * BBR's way of keeping the no-load latency honest:
 *
 *   rtt    = mean handler time of the successes in a window (>= 100 ms, >= rtt)
 *   rttMin = the lowest window mean since the last probe
 *   queue  = L * (1 - rttMin / rtt)      requests waiting in the downstream, estimated
 *
 *   queue < 0.5        L += max(1, L / 2)     latency at its minimum: grow fast, until the
 *                                             first shrink and then after 3 such windows in a row
 *                                             (TCP's slow start; a downstream that got room)
 *   queue < alpha      L += 1
 *   queue > beta       L = L - queue + beta, to a quarter at most, by 1 at least
 *   else               hold                   alpha = 1.5 max(1, log10 L), beta = 2.5 max(1, log10 L)
 *
 * - Growth only when the limit is used (at least half of it ran on average
 *   in the window, by Little's law: the handler time summed over the
 *   window's length): an idle mailbox says nothing about the downstream. An
 *   unused limit decays toward twice what ran (10 % a window), so a quiet
 *   spell does not leave a burst's limit waiting for a changed downstream.
 * - A downstream that queues shows it as latency: L settles where one to
 *   three requests wait in it (alpha..beta), enough to keep it busy while a
 *   client turns a reply into the next request, few enough that a request
 *   seldom waits a whole service time.
 * - rttMin expires (PROBE_EVERY_MS): for two windows the limit drops to
 *   what the downstream serves at once by the estimate (L - queue, that is
 *   L * rttMin / rtt); the first window drains what ran, the second measures
 *   the downstream with nothing queued in it and becomes the new rttMin. A
 *   right estimate costs no throughput (the downstream stays full); a stale
 *   one (a downstream slower for good, read as a queue) drops the limit far
 *   enough to see the new latency. (BBR's ProbeRTT, aimed rather than halved.)
 * - Sooner than the probe: when what the downstream serves at once by the
 *   estimate, L * rttMin / rtt, falls under half a request, rttMin is stale
 *   (no downstream serves less than one) and the window's latency replaces it.
 *   A minimum well under the last (a downstream with room again) lets the
 *   limit grow fast at once.
 * - While the consumer threads are CPU-busy (event-loop utilisation >= 0.6,
 *   or the process using 85 % of the cores) and the limit is used, their
 *   latency is not read (it is their own CPU queue, not the downstream's, and
 *   a limit shrunk by it would starve the CPU of the I/O it overlaps): the
 *   limit holds, or grows (a quarter a window) up to what Little's law says
 *   keeps the present throughput going at the downstream's no-load latency,
 *   with half again for room: 1.5 * rate * rttMin. Never further: a limit
 *   that grew on while the CPU was the bottleneck only queued more in the
 *   downstream (a machine busy with other work read as 256).
 * - Failed attempts are not samples (a 503 in 1 ms is no latency); outages
 *   are the breaker's business.
 */
import { invalidOption } from './shared/errors.js';

export interface AdaptiveOptions {
  /** Lowest limit. @default 1 */
  min: number;
  /** Highest limit (each thread's own concurrency too). @default 256 */
  max: number;
  /** Where it starts (from below: the first windows measure the downstream near no load). @default 4 */
  initial: number;
}

export const adaptiveDefaults: Readonly<AdaptiveOptions> = Object.freeze({ min: 1, max: 256, initial: 4 });

/** Mean event-loop utilisation of the consumer threads at which latency counts as theirs (CPU), not the downstream's. */
export const CPU_BUSY_ELU = 0.6;
/** Shortest window a decision is made on (ms). */
export const WINDOW_MS = 100;
/** How long a no-load latency is trusted before the limit drops to measure it again (ms). */
export const PROBE_EVERY_MS = 10_000;

/** One window's figures, read from the mailbox's shared words. */
export interface AdaptiveSample {
  /** Successful handler runs that ended in the window. */
  count: number;
  /** Their summed handler time (ms). */
  sumMs: number;
  /** The most handlers running at once in the window. */
  peak: number;
}

export type AdaptivePhase = 'measure' | 'probe-drain' | 'probe';

export class AdaptiveLimit {
  /** The limit, fractional inside; `current` is what is published. */
  private l: number;
  rttMin = Infinity;
  private rttMinAt = 0;
  /** The last window's mean handler time (ms); NaN before one. */
  rtt = NaN;
  queue = 0;
  /** Attempts ended per ms in the last window (Little's law with rttMin bounds growth while CPU-busy). */
  rate = 0;
  phase: AdaptivePhase = 'measure';
  /** The limit before a probe lowered it. */
  private saved = 0;
  private windowStart: number;
  private count = 0;
  private sumMs = 0;
  private peak = 0;
  /** Growing fast: from the start until the first shrink. */
  private slowStart = true;
  /** Windows in a row with the latency at its minimum. */
  private lowStreak = 0;
  /** Decisions made, and why the last one (for stats). */
  decisions = 0;
  reason = 'starting';

  constructor(
    readonly opts: AdaptiveOptions,
    now: number,
  ) {
    this.l = Math.min(opts.max, Math.max(opts.min, opts.initial));
    this.windowStart = now;
  }

  /** The limit to publish: handlers that may run at once across the mailbox. */
  get current(): number {
    return Math.max(this.opts.min, Math.floor(this.l));
  }

  /**
   * Add what happened since the last call; decide when the window is long
   * enough. Returns the limit (changed or not).
   */
  update(now: number, s: AdaptiveSample, cpuBusy = false): number {
    this.count += s.count;
    this.sumMs += s.sumMs;
    if (s.peak > this.peak) this.peak = s.peak;
    const elapsed = now - this.windowStart;
    const minWindow = Math.max(WINDOW_MS, Number.isFinite(this.rtt) ? this.rtt : 0);
    if (elapsed < minWindow || this.count === 0) return this.current;
    const rtt = this.sumMs / this.count;
    // Handlers running on average (Little's law): the peak alone is fooled by a batch claimed at once.
    const busy = Math.min(this.peak, this.sumMs / elapsed);
    this.rate = this.count / elapsed;
    this.count = 0;
    this.sumMs = 0;
    this.peak = 0;
    this.windowStart = now;
    this.decide(now, rtt, busy, cpuBusy);
    return this.current;
  }

  private decide(now: number, rtt: number, busy: number, cpuBusy: boolean): void {
    this.rtt = rtt;
    this.decisions++;
    if (cpuBusy && this.phase === 'measure' && busy * 2 >= this.l) {
      // The consumer threads are CPU-bound: latency is their own CPU queue, not the downstream's, and the CPU is the
      // bottleneck (the autoscaler's business). The limit does not shrink on it; it grows only up to what keeps this
      // throughput going at the no-load latency (Little's law), with half again for room, so it never binds first
      // and never floods the downstream either.
      // Busy from the first window: its latency (the CPU queue in it) stands in for the no-load one. Fixed from then
      // on, it bounds the growth as well: what runs while the CPU is the bottleneck cannot raise it.
      if (!Number.isFinite(this.rttMin)) this.rttMin = rtt;
      this.rttMinAt = now;
      const need = Math.ceil(1.5 * this.rate * this.rttMin);
      if (this.l < need) this.l = Math.min(this.opts.max, need, this.l + Math.max(1, this.l / 4));
      this.reason = `threads CPU-busy (latency ${fmt(rtt)} ms is theirs): holds, ${this.current} (${need} keep ${fmt(this.rate * 1000)}/s going at ${fmt(this.rttMin)} ms)`;
      return;
    }
    if (this.phase === 'probe-drain') {
      // What ran before the drop ended in this window: not a no-load reading.
      this.phase = 'probe';
      this.reason = 'probe: draining';
      return;
    }
    if (this.phase === 'probe') {
      this.rttMin = rtt;
      this.rttMinAt = now;
      this.phase = 'measure';
      this.l = this.saved;
      this.reason = `probe: no-load latency ${fmt(rtt)} ms`;
      return;
    }
    if (rtt < this.rttMin) {
      // Well under the minimum: the downstream has room it did not have: grow fast if it stays low.
      if (rtt < 0.8 * this.rttMin) this.lowStreak = 2;
      this.rttMin = rtt;
      this.rttMinAt = now;
    } else if ((this.l * this.rttMin) / rtt < 0.5) {
      // What the downstream serves at once by the estimate, L * rttMin / rtt, is under half a request: no downstream
      // serves less than one, so the no-load latency is stale (a slower downstream read as a queue). Take this one.
      this.rttMin = rtt;
      this.rttMinAt = now;
      this.lowStreak = 2;
      this.reason = `no-load latency stale: ${fmt(rtt)} ms now`;
      return;
    }
    if (now - this.rttMinAt > PROBE_EVERY_MS) {
      this.saved = this.l;
      this.l = Math.min(this.l, Math.max(this.opts.min, Math.floor((this.l * this.rttMin) / rtt)));
      this.phase = 'probe-drain';
      this.reason = `probe: limit ${this.current} for two windows to measure the no-load latency again`;
      return;
    }
    const L = this.l;
    const q = (this.queue = Math.max(0, L * (1 - this.rttMin / rtt)));
    const lg = Math.log10(Math.max(L, 1));
    const alpha = 0.75 * Math.max(1, lg);
    const beta = 1.5 * Math.max(1, lg);
    const used = busy * 2 >= L;
    let next = L;
    if (q > beta) next = Math.min(L - 1, Math.max(L / 4, L - q + beta));
    else if (!used) {
      // Unused, it tells nothing of the downstream: no growth, and a limit far above what runs decays toward twice that,
      // so a downstream that changed meanwhile does not get a burst of the old limit.
      this.l = Math.max(this.opts.min, Math.min(L, Math.max(2 * busy, 0.9 * L)));
      this.reason = `unused: ${fmt(busy)} of ${fmt(L)} ran on average; ${this.current}`;
      return;
    } else if (q < 0.5 && (this.slowStart || ++this.lowStreak >= 3)) next = L + Math.max(1, L / 2);
    else if (q < alpha) next = L + 1;
    if (q >= 0.5) this.lowStreak = 0;
    if (next < L) this.slowStart = false;
    this.l = Math.min(this.opts.max, Math.max(this.opts.min, next));
    this.reason = `queue ${fmt(q)} (latency ${fmt(rtt)} ms, no-load ${fmt(this.rttMin)} ms): ${next > L ? 'grow' : next < L ? 'shrink' : 'hold'} to ${this.current}`;
  }
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toPrecision(3);
}

const KEYS = ['min', 'max', 'initial'];

/**
 * `concurrency: 'adaptive'` and its `adaptive` options: the resolved options,
 * or null (a fixed concurrency; `adaptive` without it is refused, it would
 * silently do nothing).
 */
export function resolveAdaptive(path: string, concurrency: unknown, v: unknown): AdaptiveOptions | null {
  if (concurrency !== 'adaptive') {
    if (v !== undefined) throw invalidOption(`${path}.adaptive`, "undefined unless concurrency is 'adaptive'", v);
    return null;
  }
  if (v === undefined) return { ...adaptiveDefaults };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalidOption(`${path}.adaptive`, `an object { ${KEYS.join(', ')} }`, v);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KEYS.includes(k)) throw invalidOption(`${path}.adaptive.${k}`, `one of ${KEYS.join(', ')} (unknown option)`, o[k]);
  const int = (k: keyof AdaptiveOptions, lo: number): number => {
    const x = o[k] === undefined ? adaptiveDefaults[k] : o[k];
    if (typeof x !== 'number' || !Number.isInteger(x) || x < lo || x > 1024) throw invalidOption(`${path}.adaptive.${k}`, `an integer from ${lo} to 1024`, x);
    return x;
  };
  const min = int('min', 1);
  const max = o.max === undefined ? Math.max(min, adaptiveDefaults.max) : int('max', min);
  if (max < min) throw invalidOption(`${path}.adaptive.max`, `an integer from adaptive.min (${min}) to 1024`, max);
  const initial = o.initial === undefined ? Math.min(max, Math.max(min, adaptiveDefaults.initial)) : int('initial', min);
  if (initial > max) throw invalidOption(`${path}.adaptive.initial`, `an integer from adaptive.min (${min}) to adaptive.max (${max})`, initial);
  return { min, max, initial };
}
