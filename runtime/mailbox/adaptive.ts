/**
 * A mailbox's adaptive concurrency (main thread, issue #31): every dispatcher
 * tick, the latency its loops measured (runtime/shared/adaptive.ts) goes to
 * the policy (runtime/adaptive-policy.ts) and the limit it learns goes back
 * to the ring header, where every loop of the mailbox reserves its starts.
 * A loop's thread gone, what it held goes back (release).
 */
import { availableParallelism } from 'node:os';
import { AdaptiveLimit, CPU_BUSY_ELU, type AdaptiveOptions } from '../adaptive-policy.js';
import { ADAPT_LIMIT, ADAPT_RUNNING, ADAPT_WAITS, releaseSlot, takeSamples } from '../shared/adaptive.js';

/** What stats() says of it. */
export interface AdaptiveStats {
  /** Handlers that may run at once across the mailbox now. */
  limit: number;
  /** Handlers running across the mailbox now. */
  running: number;
  /** The last window's mean handler time, and the no-load one it is compared with (ms; null before one). */
  latencyMs: number | null;
  noLoadLatencyMs: number | null;
  /** Requests the policy thinks wait in the downstream. */
  queue: number;
  /** 'measure', or a probe of the no-load latency under way. */
  phase: string;
  /** Why the limit is what it is, in words. */
  reason: string;
  /** Times a loop found the limit reached. */
  waits: number;
}

/** Cores this process may use, and the share of them in use at which latency counts as the CPU's. */
const CORES = availableParallelism();
const PROCESS_BUSY = 0.85;

export class Adaptive {
  private readonly policy: AdaptiveLimit;
  private cpuAt = process.cpuUsage();
  private tickAt: number;

  constructor(
    private readonly i32: Int32Array,
    opts: AdaptiveOptions,
    now: number,
  ) {
    this.policy = new AdaptiveLimit(opts, now);
    this.tickAt = now;
    Atomics.store(i32, ADAPT_LIMIT, this.policy.current);
  }

  /** The limit now. */
  get limit(): number {
    return this.policy.current;
  }

  /**
   * Every dispatcher tick: the samples since the last one to the policy, its
   * limit to the loops. CPU-busy (the policy then holds): the mailbox's
   * threads (`elu`, their mean event-loop utilisation), or the whole process
   * using nearly every core (threads descheduled by the OS wait too, and
   * that is no downstream's queue).
   */
  tick(now: number, elu: number | undefined): void {
    const cpu = process.cpuUsage();
    const used = (cpu.user + cpu.system - this.cpuAt.user - this.cpuAt.system) / 1000 / Math.max(1, now - this.tickAt) / CORES;
    this.cpuAt = cpu;
    this.tickAt = now;
    const busy = (elu !== undefined && elu >= CPU_BUSY_ELU) || used >= PROCESS_BUSY;
    const limit = this.policy.update(now, takeSamples(this.i32), busy);
    if (Atomics.load(this.i32, ADAPT_LIMIT) !== limit) Atomics.store(this.i32, ADAPT_LIMIT, limit);
  }

  /** The loop in `slot` is gone: what it held of the limit goes back. */
  release(slot: number): void {
    releaseSlot(this.i32, slot);
  }

  stats(): AdaptiveStats {
    const p = this.policy;
    return {
      limit: p.current,
      running: Atomics.load(this.i32, ADAPT_RUNNING),
      latencyMs: Number.isFinite(p.rtt) ? p.rtt : null,
      noLoadLatencyMs: Number.isFinite(p.rttMin) ? p.rttMin : null,
      queue: p.queue,
      phase: p.phase,
      reason: p.reason,
      waits: Atomics.load(this.i32, ADAPT_WAITS),
    };
  }
}
