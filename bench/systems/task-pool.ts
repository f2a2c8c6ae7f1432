/**
 * The thread-pool peers (piscina, tinypool, workerpool) share one session:
 * each message is JSON text handed to `run()` (a task per message), or
 * gathered into batches of `batch` texts per `run()` (flushed when full, or
 * `lingerMs` after the first message of a partial batch, as a batching
 * producer would). At most `window` tasks are outstanding.
 */
import { LatencySink, Window, type HandlerKind, type Session } from '../session.js';

/** The one call a pool must offer: run the named task on `task`. */
export interface TaskPool {
  run(task: unknown, name: string): PromiseLike<unknown>;
  destroy(): PromiseLike<unknown>;
}

export interface TaskPoolConfig {
  threads: number;
  /** Messages per run() (1: a task per message). */
  batch: number;
  /** A partial batch is sent this long after its first message. */
  lingerMs: number;
  /** Most tasks outstanding before send() pushes back. */
  window: number;
}

export async function openTaskPool(pool: TaskPool, cfg: TaskPoolConfig, handler: HandlerKind): Promise<Session> {
  const name = cfg.batch > 1 ? `${handler}Batch` : handler;
  // Start every thread before anything is timed: tasks that each keep a thread busy for a
  // few ms, four per thread at once, so the pool has to spread them over all its threads
  // (a pool that starts threads lazily, or is slow to boot one, would otherwise do it mid-run).
  const warm = JSON.stringify({ burn: 2_000_000 });
  await Promise.all(Array.from({ length: cfg.threads * 4 }, () => pool.run(cfg.batch > 1 ? [warm] : warm, cfg.batch > 1 ? 'burnBatch' : 'burn')));

  const sink = new LatencySink();
  const window = new Window<unknown>(cfg.window, (r) => {
    if (handler !== 'stamp') return;
    if (Array.isArray(r)) sink.pushMany(Float64Array.from(r as number[]));
    else sink.push(r as number);
  });

  let pending: string[] = [];
  let linger: NodeJS.Timeout | null = null;
  const flush = (): void | Promise<void> => {
    if (linger !== null) clearTimeout(linger);
    linger = null;
    if (pending.length === 0) return;
    const texts = pending;
    pending = [];
    return window.track(pool.run(texts, name));
  };

  return {
    send(message) {
      const text = JSON.stringify(message);
      if (cfg.batch === 1) return window.track(pool.run(text, name));
      pending.push(text);
      if (pending.length >= cfg.batch) return flush();
      // A failure here is kept by the window and thrown by drain().
      linger ??= setTimeout(() => void flush()?.catch(() => undefined), cfg.lingerMs);
    },
    async drain() {
      await flush();
      await window.all();
    },
    latencies: (count) => sink.take(count),
    async close() {
      if (linger !== null) clearTimeout(linger);
      await window.all().catch(() => undefined);
      await pool.destroy();
    },
  };
}
