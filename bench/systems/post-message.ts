/**
 * Peer: raw worker_threads, no pool library. Each message is JSON text sent
 * with `postMessage` to the next worker in turn; the worker parses it, runs
 * the handler and acknowledges with one `postMessage` back. At most `window`
 * messages are unacknowledged.
 */
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { fixture } from '../paths.js';
import { LatencySink, type HandlerKind, type Session } from '../session.js';

export async function openPostMessage(threads: number, handler: HandlerKind, window = 1024): Promise<Session> {
  const workers = Array.from({ length: threads }, () => new Worker(fixture('post-message-worker.js'), { workerData: { kind: handler } }));
  await Promise.all(workers.map((w) => once(w, 'online')));

  const sink = new LatencySink();
  let sent = 0;
  let acked = 0;
  let failure: Error | null = null;
  let waiter: (() => void) | null = null;
  const wake = (): void => {
    const w = waiter;
    waiter = null;
    w?.();
  };
  for (const w of workers) {
    w.on('message', (ack: number) => {
      acked++;
      if (handler === 'stamp') sink.push(ack);
      wake();
    });
    w.on('error', (err) => {
      failure = err;
      wake();
    });
  }
  /** Resolves when at most `n` messages are unacknowledged. */
  const atMost = async (n: number): Promise<void> => {
    while (sent - acked > n) {
      if (failure !== null) throw failure;
      await new Promise<void>((r) => (waiter = r));
    }
  };

  let next = 0;
  return {
    send(message) {
      workers[next]!.postMessage(JSON.stringify(message));
      next = (next + 1) % threads;
      sent++;
      if (sent - acked >= window) return atMost(window - 1);
    },
    drain: () => atMost(0),
    latencies: (count) => sink.take(count),
    async close() {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
