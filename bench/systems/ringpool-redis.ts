/**
 * ringpool's Redis Streams mailbox across processes: `processes` consumer
 * processes (bench/fixtures/redis-consumer.mjs, one consumer thread each) on
 * one stream of the local Redis (REDIS_URL, as BullMQ's rows), fed by
 * `redisProducer` in this process (sendAsync, up to 1,024 in flight, so each
 * event-loop turn's sends go as one pipeline). Handled counts and W4
 * latencies come back over IPC. Latency is handler start minus `msg.t`
 * across processes: both clocks are `performance.timeOrigin + now()`, which
 * agree across processes of one host to within a few microseconds.
 *
 * Keyed (`partitions` > 0, issue #29): sends carry one of 1,000 keys, round
 * robin, into a partitioned mailbox; the session starts once the processes
 * own every partition between them (they report it over IPC).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { redisProducer } from '../../runtime/source/redis/producer.js';
import { fixture } from '../paths.js';
import { LatencySink, Window, type Session, type SessionSpec } from '../session.js';
import { redisUrl } from './bullmq.js';

let sessions = 0;

/** Partitions of the keyed rows: 12 divides among 1, 2 and 3 processes. */
export const KEYED_PARTITIONS = 12;
const KEYS = 1_000;

export async function openRingpoolRedis(processes: number, spec: SessionSpec, partitions = 0): Promise<Session> {
  const url = redisUrl();
  const stream = `ringpool-bench-stream-${process.pid}-${++sessions}`;
  const sink = new LatencySink();
  const handled = new Array<number>(processes).fill(0);
  const owned = new Array<number>(processes).fill(0);
  let total = 0;
  let waiter: (() => void) | null = null;
  const children: ChildProcess[] = [];
  await Promise.all(
    Array.from({ length: processes }, (_, i) => {
      const c = fork(fileURLToPath(fixture('redis-consumer.mjs')), [url, stream, `bench-${process.pid}-${sessions}-${i}`, spec.handler, String(partitions)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(c);
      return new Promise<void>((resolve, reject) => {
        c.on('message', (m: unknown) => {
          if (m === 'ready') return resolve();
          const msg = m as { processed?: number; latencies?: number[]; owned?: number };
          if (msg.owned !== undefined) owned[i] = msg.owned;
          if (msg.latencies !== undefined) sink.pushMany(Float64Array.from(msg.latencies));
          if (msg.processed !== undefined) {
            total += msg.processed - handled[i]!;
            handled[i] = msg.processed;
            waiter?.();
          }
        });
        c.once('exit', (code) => reject(new Error(`bench consumer ${i} exited with ${code}`)));
      });
    }),
  );
  const producer = partitions > 0 ? redisProducer({ url, stream, partitions }) : redisProducer({ url, stream });
  // Keyed: measured once the partitions are spread over the processes (a rebalance mid-run is not the steady state).
  const t0 = Date.now();
  while (partitions > 0 && (owned.reduce((a, b) => a + b, 0) !== partitions || owned.some((n) => n !== partitions / processes)) && Date.now() - t0 < 30_000) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const window = new Window<string>(1024, () => undefined);
  const keys = Array.from({ length: KEYS }, (_, k) => ({ key: `k${k}` }));
  let sent = 0;
  return {
    send(message) {
      sent++;
      return window.track(partitions > 0 ? producer.sendAsync(message, keys[sent % KEYS]) : producer.sendAsync(message));
    },
    async drain() {
      await window.all();
      while (total < sent) {
        await new Promise<void>((r) => {
          waiter = r;
          setTimeout(r, 20);
        });
        waiter = null;
      }
    },
    latencies: (count) => sink.take(count),
    async close() {
      await producer.close();
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((r) => {
              if (c.exitCode !== null) return r();
              c.removeAllListeners('exit');
              c.once('exit', () => r());
              c.send('close');
            }),
        ),
      );
      const admin = createClient({ url });
      admin.on('error', () => undefined);
      await admin.connect();
      const keys = await admin.keys(`*${stream}*`);
      if (keys.length > 0) await admin.del(keys);
      await admin.quit();
    },
  };
}
