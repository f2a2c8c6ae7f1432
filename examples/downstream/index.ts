/**
 * Start the test downstream (server.ts) in a child process and steer it: a
 * real HTTP server on loopback with a fixed capacity that queues the rest,
 * for the tests, the benchmark and the demo of protecting a downstream
 * (issue #31). Handlers call it with fetch.
 */
import { fork, type ChildProcess } from 'node:child_process';

export interface DownstreamCommand {
  /** Requests served at once (the rest wait in its queue). */
  capacity?: number;
  /** Time to serve one (ms). */
  serviceMs?: number;
  /** Answer 503 for this long (ms, from now). */
  downForMs?: number;
  /** Answer 429 with Retry-After: retryAfterS for this long (ms, from now). */
  busyForMs?: number;
  retryAfterS?: number;
  /** Zero the figures after reporting them. */
  reset?: boolean;
}

export interface DownstreamStats {
  served: number;
  /** Answered 503 or 429. */
  refused: number;
  capacity: number;
  serviceMs: number;
  /** Requests in it now, served or queued. */
  present: number;
  maxPresent: number;
  /** Time requests waited in its queue before being served (ms). */
  queueP50Ms: number;
  queueP99Ms: number;
  /** Requests that arrived in each second since it started (or since the last reset, counted from its start). */
  perSecond: number[];
}

export interface Downstream {
  url: string;
  /** Change it, and get its figures (after the change). */
  set(c: DownstreamCommand): Promise<DownstreamStats>;
  stats(reset?: boolean): Promise<DownstreamStats>;
  close(): Promise<void>;
}

export async function startDownstream(o: { capacity: number; serviceMs: number }): Promise<Downstream> {
  const child: ChildProcess = fork(new URL('./server.js', import.meta.url), [String(o.capacity), String(o.serviceMs)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the downstream exited (${code}) before it listened`)));
    child.once('message', (m) => resolve((m as { port: number }).port));
  });
  let seq = 0;
  const waiting = new Map<number, (s: DownstreamStats) => void>();
  child.on('message', (m) => {
    const r = m as { seq?: number; stats?: DownstreamStats };
    if (r.seq !== undefined) waiting.get(r.seq)?.(r.stats!);
    if (r.seq !== undefined) waiting.delete(r.seq);
  });
  const set = (c: DownstreamCommand): Promise<DownstreamStats> =>
    new Promise((resolve) => {
      const s = ++seq;
      waiting.set(s, resolve);
      child.send({ ...c, seq: s });
    });
  return {
    url: `http://127.0.0.1:${port}/`,
    set,
    stats: (reset = false) => set({ reset }),
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill();
      }),
  };
}
