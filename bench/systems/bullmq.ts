/**
 * Peer: BullMQ on the local Redis (REDIS_URL, else redis://127.0.0.1:6379).
 * The producer's `queue.add()` and an in-process `Worker` (its processor runs
 * on the main thread, as BullMQ's default does) share this process, so the
 * end-to-end timestamps compare. Each session uses a fresh queue name and
 * obliterates it at the end. Skipped, with the reason printed, when no Redis
 * answers.
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { fixture } from '../paths.js';
import { LatencySink, Window, type HandlerKind, type Session } from '../session.js';

export function redisUrl(): string {
  return process.env.REDIS_URL || 'redis://127.0.0.1:6379';
}

/** Null when a Redis answers PING at `url`, else why not. */
export async function redisAvailable(url = redisUrl()): Promise<string | null> {
  const r = new Redis(url, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  r.on('error', () => undefined); // reported through connect()/ping() below
  try {
    await r.connect();
    const pong = await r.ping();
    return pong === 'PONG' ? null : `Redis at ${url} answered PING with ${pong}`;
  } catch (err) {
    return `no Redis answered at ${url} (${(err as Error).message}); start one or set REDIS_URL`;
  } finally {
    r.disconnect();
  }
}

interface WorkModule {
  handle(kind: HandlerKind, msg: unknown): number | undefined;
}

let sessions = 0;

/**
 * `bulk` 0: one `queue.add()` a message. `bulk` N: messages are buffered and
 * go as `queue.addBulk()` of up to N (one per event-loop turn at least), as
 * a producer that batches would send them.
 */
export async function openBullmq(concurrency: number, handler: HandlerKind, window = 1000, bulk = 0): Promise<Session> {
  const { handle } = (await import(fixture('work.js').href)) as WorkModule;
  const url = redisUrl();
  // BullMQ needs maxRetriesPerRequest: null on its connections; each gets its own.
  const producerConn = new Redis(url, { maxRetriesPerRequest: null });
  const workerConn = new Redis(url, { maxRetriesPerRequest: null });
  const name = `ringpool-bench-${process.pid}-${++sessions}`;
  const queue = new Queue(name, { connection: producerConn, defaultJobOptions: { removeOnComplete: true, removeOnFail: true } });

  const sink = new LatencySink();
  let completed = 0;
  let failure: Error | null = null;
  let waiter: (() => void) | null = null;
  const worker = new Worker(
    name,
    async (job) => {
      const r = handle(handler, job.data);
      if (r !== undefined) sink.push(r);
    },
    { connection: workerConn, concurrency },
  );
  worker.on('completed', () => {
    completed++;
    waiter?.();
  });
  worker.on('failed', (_job, err) => {
    failure ??= err;
    waiter?.();
  });
  await Promise.all([queue.waitUntilReady(), worker.waitUntilReady()]);

  let added = 0;
  const adds = new Window<unknown>(bulk > 0 ? Math.max(1, Math.floor(window / bulk)) : window, () => undefined);
  let buffer: Array<{ name: string; data: unknown }> = [];
  let flushing: Promise<void> | null = null;
  const flush = (): void | Promise<void> => {
    const jobs = buffer;
    buffer = [];
    if (jobs.length > 0) return adds.track(queue.addBulk(jobs));
  };
  return {
    send(message) {
      added++;
      if (bulk === 0) return adds.track(queue.add('m', message));
      buffer.push({ name: 'm', data: message });
      if (buffer.length >= bulk) return flush();
      // The rest of this turn's messages join the batch.
      flushing ??= new Promise<void>((r) => setImmediate(r)).then(() => {
        flushing = null;
        return flush();
      });
    },
    async drain() {
      if (bulk > 0) {
        await flushing;
        await flush();
      }
      await adds.all();
      while (completed < added) {
        if (failure !== null) throw failure;
        await new Promise<void>((r) => {
          waiter = r;
          setTimeout(r, 50); // a 'completed' event missed by a race only costs a poll
        });
        waiter = null;
      }
    },
    latencies: (count) => sink.take(count),
    async close() {
      await worker.close();
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      await Promise.all([producerConn.quit(), workerConn.quit()]);
    },
  };
}
