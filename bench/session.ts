/**
 * What the harness asks of every system it measures: open a session with a
 * handler, offer it messages, wait until they are handled. The workloads
 * (workloads.ts) are written once against this interface; each system
 * (systems/*.ts) implements it in its own natural way.
 */

/** The handler a session runs on its consumer side (bench/fixtures/work.js). */
export type HandlerKind = 'noop' | 'burn' | 'stamp';

export interface SessionSpec {
  handler: HandlerKind;
  /**
   * W3: size the queue for a burst (ringpool: a 16 MiB ring; peers that
   * return a promise per submit: no window, their own queue takes it all).
   */
  burst?: boolean;
}

export interface Session {
  /**
   * Offer one message. Returns undefined when it was taken at once, or a
   * promise when the system pushes back (a full ring, a full window of
   * unacknowledged tasks): await it before offering the next.
   */
  send(message: unknown): void | Promise<void>;
  /** Resolves when everything offered so far has been handled. */
  drain(): Promise<void>;
  /**
   * 'stamp' sessions: the end-to-end latencies (µs) of the next `count`
   * handled messages, once they are all in (in arrival order, not send order).
   */
  latencies(count: number): Promise<Float64Array>;
  /** Figures of the system's own to add to the workload's (a journal's fsyncs/s), read before close. */
  extra?(): Figures;
  close(): Promise<void>;
}

export type Figures = Record<string, number>;

/** Where a message count comes from: how fast the system is, roughly. */
export type SpeedClass = 'fast' | 'task' | 'redis' | 'stream';

/** The message form a subject takes: an object (json, v8 and every peer), or bytes (ringpool's raw codec). */
export type PayloadForm = 'object' | 'bytes';

/** One row of the benchmark: a system in one configuration. */
export interface Subject {
  /** Stable id, used in JSON and by --systems. */
  id: string;
  /** What the tables print. */
  label: string;
  /** The system (ringpool, piscina.run, ...), for colours and comparisons. */
  system: string;
  threads: number;
  speed: SpeedClass;
  payload: PayloadForm;
  workloads: readonly WorkloadId[];
  /** Null when it can run here, else the reason to skip it (printed). */
  available(): Promise<string | null>;
  open(spec: SessionSpec): Promise<Session>;
}

export type WorkloadId = 'w1' | 'w2' | 'w3' | 'w4' | 'w5';

/** Collects latency samples as they arrive; `take(count)` waits for them. */
export class LatencySink {
  private chunks: Float64Array[] = [];
  private have = 0;
  private waiter: (() => void) | null = null;

  push(us: number): void {
    this.pushMany(Float64Array.of(us));
  }

  pushMany(samples: Float64Array): void {
    this.chunks.push(samples);
    this.have += samples.length;
    this.waiter?.();
  }

  /** The next `count` samples (and drops them), failing after `timeoutMs` if fewer arrive. */
  async take(count: number, timeoutMs = 30_000): Promise<Float64Array> {
    const deadline = performance.now() + timeoutMs;
    while (this.have < count) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`only ${this.have} of ${count} latency samples arrived in ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 100));
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = null;
    }
    const all = new Float64Array(this.have);
    let at = 0;
    for (const c of this.chunks) {
      all.set(c, at);
      at += c.length;
    }
    this.chunks = count < all.length ? [all.slice(count)] : [];
    this.have -= count;
    return all.subarray(0, count);
  }
}

/**
 * A bounded window of outstanding promises, for the peers whose submit call
 * returns a promise (piscina.run, tinypool, workerpool, BullMQ): at most
 * `size` in flight, so a producer feels backpressure instead of queueing
 * unboundedly in memory.
 */
export class Window<T> {
  private inFlight = 0;
  private waiters: Array<() => void> = [];
  private failure: unknown = null;

  constructor(
    private readonly size: number,
    private readonly onResult: (value: T) => void,
  ) {}

  /** Track `p`; returns a promise to await when the window is now full. */
  track(p: PromiseLike<T>): void | Promise<void> {
    this.inFlight++;
    p.then(
      (v) => {
        this.inFlight--;
        this.onResult(v);
        this.wake();
      },
      (err: unknown) => {
        this.inFlight--;
        this.failure ??= err;
        this.wake();
      },
    );
    if (this.inFlight >= this.size) return this.below(this.size);
  }

  /** Resolves when fewer than `n` are in flight (throws the first failure seen). */
  async below(n: number): Promise<void> {
    while (this.inFlight >= n) await new Promise<void>((r) => this.waiters.push(r));
    if (this.failure !== null) throw this.failure;
  }

  /** Resolves when nothing is in flight. */
  all(): Promise<void> {
    return this.below(1);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** Resolves on the next turn of the event loop (lets replies and timers run). */
export function tick(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
