/**
 * A mailbox's size (main thread): the autoscaler's wiring (observe and decide
 * every tick, runtime/autoscale-policy.ts), resize() pins, and how many loops
 * and messages in flight per loop that gives. It knows no mailbox: the ring
 * (the loops' figures, CONCURRENCY_WORD), what it observes and whom it tells
 * (callbacks the wiring passes in).
 */
import { CONCURRENCY_WORD } from '../shared/layout.js';
import type { Ring } from '../shared/ring.js';
import type { ResolvedAutoscale, ResolvedMailbox } from '../mailbox-options.js';
import { autoscaleDefaults, decide, type Recommendation } from '../autoscale-policy.js';
import type { ConsumerState, ScaleEvent } from './types.js';

export interface ScalingDeps {
  mailbox: string;
  ring: Ring;
  opts: Pick<ResolvedMailbox, 'minThreads' | 'maxThreads' | 'concurrency' | 'autoscale'>;
  /** ms since the epoch (clock.ts's now(), or a test's). */
  clock: () => number;
  /** The loops' slots and states (consumers.ts, through the wiring). */
  loops: () => Iterable<{ readonly slot: number; readonly state: ConsumerState }>;
  /** What it sizes for: messages ready and in flight now. */
  load: () => { depth: number; inFlight: number };
  /** The adaptive concurrency limit now, or undefined when concurrency is fixed (adaptive.ts). */
  limit?: () => number | undefined;
  /** Publishes per second, once known (counters.ts). */
  arrivalRate: () => number | undefined;
  /** The desired size may have changed: start or stop loops to match (consumers.ts). */
  onDesired: () => void;
  emitScale(ev: ScaleEvent): void;
}

export class Scaling {
  /** Threads wanted now. */
  desired: number;
  /** Messages in flight per thread. */
  concurrency: number;
  lastReason = '';
  readonly decisions = { up: 0, down: 0 };
  private cfg: ResolvedAutoscale | null;
  private pinned: number | null = null;
  private history: Recommendation[] = [];
  private lastDecisionAt = 0;
  private handlerSeconds: number | undefined = undefined;

  constructor(private readonly d: ScalingDeps) {
    const o = d.opts;
    this.desired = o.minThreads;
    this.cfg = o.autoscale === false ? null : o.autoscale;
    this.concurrency = o.concurrency;
    Atomics.store(d.ring.i32, CONCURRENCY_WORD, o.concurrency);
  }

  /**
   * What this process could drain per second (msg/s) from handler time:
   * the threads it may run (maxThreads while autoscaling, else the size it
   * keeps) x messages in flight per thread / seconds per message; undefined
   * before a handler time is known.
   */
  capacity(): number | undefined {
    const s = this.handlerSeconds;
    if (s === undefined || !(s > 0)) return undefined;
    const threads = this.cfg === null ? this.desired : this.d.opts.maxThreads;
    return (threads * this.concurrency) / s;
  }

  /** Whether the autoscaler sizes the mailbox now. */
  get autoscaling(): boolean {
    return this.cfg !== null;
  }

  /**
   * Observe and decide every dispatcher tick, apply a scale-up at once and
   * anything else every `autoscale.tickMs`; start or stop loops to match.
   * With autoscale off (option or `rt.resize()`), keep the pinned size
   * (minThreads by default).
   */
  tick(t: number): void {
    const deps = this.d;
    const cfg = this.cfg;
    const ring = deps.ring;
    let handlerMs = 0;
    let n = 0;
    for (const c of deps.loops()) {
      if (c.state !== 'running') continue;
      const h = ring.slot(c.slot).handlerMs();
      if (h > 0) {
        handlerMs += h;
        n++;
      }
    }
    if (n > 0) this.handlerSeconds = handlerMs / n / 1000;
    if (cfg === null) {
      this.setDesired(this.pinned ?? deps.opts.minThreads, this.concurrency, this.pinned === null ? 'autoscale off: minThreads' : 'pinned by resize()', false);
      return;
    }
    const s = deps.load();
    const d = decide(
      { ...cfg, min: deps.opts.minThreads, max: deps.opts.maxThreads, minConcurrency: deps.opts.concurrency },
      {
        now: t,
        ready: s.depth,
        inFlight: s.inFlight,
        arrivalRate: deps.arrivalRate(),
        processingSeconds: this.handlerSeconds,
        elu: this.elu(),
        threads: this.desired,
        concurrency: this.concurrency,
        limit: deps.limit?.(),
      },
      this.history,
    );
    // Up at once (checked every dispatcher tick, so a spike is answered
    // within one autoscale tick); anything else only every autoscale.tickMs.
    // Concurrency moves only at the autoscale cadence: one utilisation reading must not double it several times.
    const up = d.threads > this.desired && d.concurrency === this.concurrency;
    if (!up && t - this.lastDecisionAt < cfg.tickMs) {
      deps.onDesired();
      return;
    }
    this.lastDecisionAt = t;
    this.history = d.history;
    this.setDesired(d.threads, d.concurrency, d.reason);
  }

  /** Apply a size: emit 'scale' when it changes, count the decision, start or stop loops. */
  private setDesired(threads: number, concurrency: number, reason: string, byAutoscaler = true): void {
    const deps = this.d;
    const from = this.desired;
    const fromC = this.concurrency;
    this.lastReason = reason;
    if (concurrency !== fromC) {
      this.concurrency = concurrency;
      Atomics.store(deps.ring.i32, CONCURRENCY_WORD, concurrency);
    }
    if (threads !== from) {
      this.desired = threads;
      if (byAutoscaler) {
        if (threads > from) this.decisions.up++;
        else this.decisions.down++;
      }
    }
    if (threads !== from || concurrency !== fromC) {
      deps.emitScale({ mailbox: deps.mailbox, from, to: threads, concurrency, reason });
    }
    deps.onDesired();
  }

  /** The running loops' mean event-loop utilisation over their last ~100 ms, or undefined (adaptive concurrency reads it too). */
  elu(): number | undefined {
    let sum = 0;
    let n = 0;
    for (const c of this.d.loops()) {
      if (c.state !== 'running') continue;
      const e = this.d.ring.slot(c.slot).elu();
      if (!Number.isNaN(e)) {
        sum += e;
        n++;
      }
    }
    return n > 0 ? sum / n : undefined;
  }

  /** Pin the thread count (autoscale off). */
  resize(threads: number): void {
    this.pinned = threads;
    this.cfg = null;
    this.setDesired(threads, this.concurrency, 'pinned by resize()', false);
  }

  /** Turn the autoscaler off (keeping the size it had) or hand the size back to it. */
  setAutoscale(on: boolean): void {
    if (!on) {
      this.pinned ??= this.desired;
      this.cfg = null;
      return;
    }
    this.pinned = null;
    this.cfg = this.d.opts.autoscale === false ? { ...autoscaleDefaults } : this.d.opts.autoscale;
    this.lastDecisionAt = 0;
    // The size it had counts as a recommendation: no scale-down before the window has passed.
    this.history = [{ at: this.d.clock(), threads: this.desired }];
  }
}
