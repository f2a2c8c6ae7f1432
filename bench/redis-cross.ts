/**
 * The Redis mailbox calls across processes (issue #30), in one command:
 * - delayed precision: 10,000 delayed messages pending at once (delays 1-6 s)
 *   over 3 consumer processes; lateness = handler start minus (send time +
 *   delay), p50/p99/max; target p99 <= 50 ms;
 * - ask round trip across processes at 1,000 asks/s (this process asks, 2
 *   consumer processes answer), p50/p99, against BullMQ's `add` +
 *   `job.waitUntilFinished(queueEvents)` at the same rate (its worker in
 *   this process: it has no other way to answer);
 * - W1 on a Redis Cluster (3 masters started here, the stream's slot on one
 *   of them) against the single Redis: msgs/s from a producer (pipelined
 *   XADD) to handled in one consumer process, and the ratio.
 *
 *   npm run bench:redis-cross -- [--quick | --tiny]   (--tiny: the suite's smoke test)
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BroadcastChannel } from 'node:worker_threads';
import { createRuntime } from '../runtime/index.js';
import { redisProducer } from '../runtime/source/redis/index.js';
import { header, percentile } from './machine.js';
import { fixture } from './paths.js';
import { cli } from '../examples/cli.js';

const { values: flags } = cli({
  usage: 'npm run bench:redis-cross -- [flags]        (or: node dist/bench/redis-cross.js [flags])',
  about: 'REDIS_URL, else redis://127.0.0.1:6379 (skipped, reason printed, if no Redis answers); the cluster is started here (redis-server).',
  flags: {
    quick: { type: 'boolean', help: 'fewer messages (2,000 delayed, 1,000 asks, W1 20,000 once)' },
    tiny: { type: 'boolean', help: "the suite's smoke test: 200 delayed, 200 asks, W1 2,000 (figures mean little)" },
  },
});
const tiny = flags.tiny;
const quick = tiny || flags.quick;
// The Redis clients and BullMQ load once the flags are read (--help and a refused flag answer without them).
const [{ Queue, QueueEvents, Worker }, { Redis }, { createClient }, { startCluster }, { redisAvailable, redisUrl }] = await Promise.all([
  import('bullmq'),
  import('ioredis'),
  import('redis'),
  import('../test/redis-cluster.js'),
  import('./systems/bullmq.js'),
]);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const url = redisUrl();
const why = await redisAvailable(url);
if (why !== null) {
  console.log(`redis-cross: skipped: ${why}`);
  process.exit(0);
}
header('Redis mailboxes across processes: delayed precision, ask round trip, W1 on a Redis Cluster');
const admin = createClient({ url });
admin.on('error', () => undefined);
await admin.connect();
const tag = `ringpool-bench-cross-${process.pid}`;
let n = 0;
const procs: ChildProcess[] = [];

/** A consumer process (bench/fixtures/redis-consumer.mjs); resolves once it is ready. */
async function consumer(stream: string, kind: string, extra: object = {}): Promise<ChildProcess & { processed: number }> {
  const c = fork(fileURLToPath(fixture('redis-consumer.mjs')), [url, stream, `c-${process.pid}-${n++}`, kind, '0', '-', '-', JSON.stringify(extra)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }) as ChildProcess & { processed: number };
  c.processed = 0;
  procs.push(c);
  c.on('message', (m: unknown) => {
    const p = (m as { processed?: number }).processed;
    if (p !== undefined) c.processed = p;
  });
  await new Promise<void>((resolve, reject) => {
    c.on('message', (m) => m === 'ready' && resolve());
    c.once('exit', (code) => reject(new Error(`consumer exited with ${code}`)));
  });
  return c;
}
async function closeAll(): Promise<void> {
  for (const c of procs.splice(0)) {
    c.send('close');
    await new Promise((r) => (c.exitCode === null ? c.once('exit', r) : r(null)));
  }
}
const fmt = (us: number): string => (us >= 10_000 ? `${(us / 1000).toFixed(0)} ms` : `${(us / 1000).toFixed(1)} ms`);

// ------------------------------------------------------------------ delayed precision

{
  const N = tiny ? 200 : quick ? 2_000 : 10_000;
  const stream = `${tag}-delayed`;
  const late: number[] = [];
  const channel = new BroadcastChannel('ringpool-bench-latency');
  for (let i = 0; i < 3; i++) {
    const c = await consumer(stream, 'stamp');
    c.on('message', (m: unknown) => {
      const l = (m as { latencies?: number[] }).latencies;
      if (l !== undefined) late.push(...l);
    });
  }
  const p = redisProducer({ url, stream });
  const t0 = Date.now();
  for (let i = 0; i < N; i++) {
    const d = 1_000 + Math.floor(Math.random() * (tiny ? 300 : quick ? 2_000 : 5_000));
    // The stamp handler reports (start - t): t is when it is due.
    p.send({ t: Date.now() + d }, { delayMs: d });
  }
  await p.close();
  const sentIn = Date.now() - t0;
  const end = Date.now() + 30_000;
  while (late.length < N && Date.now() < end) await sleep(50);
  channel.close();
  await closeAll();
  const s = Float64Array.from(late).sort();
  const p99 = percentile(s, 99);
  console.log(`delayed: ${N} pending (sent in ${sentIn} ms), 3 consumer processes: lateness p50 ${fmt(percentile(s, 50))}, p99 ${fmt(p99)}, max ${fmt(s[s.length - 1] ?? NaN)}, min ${fmt(s[0] ?? NaN)} (${late.length} of ${N} reported)`);
  console.log(`${p99 <= 50_000 ? ' met  ' : 'MISSED'} delayed p99 within [d, d + 50 ms]: ${fmt(p99)} late`);
}

// ------------------------------------------------------------------ ask round trip, vs BullMQ

const RATE = 1_000;
const ASKS = tiny ? 200 : quick ? 1_000 : 5_000;
/** Send `count` calls at `rate`/s (each its own promise), the round trips in µs. */
async function paced(call: () => Promise<unknown>, count: number, rate: number): Promise<Float64Array> {
  const rtts: number[] = [];
  const waits: Promise<unknown>[] = [];
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const t = performance.now();
    waits.push(call().then(() => rtts.push((performance.now() - t) * 1000)));
  }
  await Promise.all(waits);
  return Float64Array.from(rtts).sort();
}
{
  const stream = `${tag}-ask`;
  await consumer(stream, 'echo');
  await consumer(stream, 'echo');
  // This process asks; its own mailbox reads the stream too (one thread), as a process of the group would.
  const rt = createRuntime({ mailboxes: { bench: { handler: fixture('echo.js'), minThreads: 1, maxThreads: 1, autoscale: false, source: { redis: { url, stream, consumer: `asker-${process.pid}` } } } } });
  await rt.start();
  for (let i = 0; i < (tiny ? 20 : 200); i++) await rt.ask('bench', { i }, { timeoutMs: 10_000 });
  const ours = await paced(() => rt.ask('bench', { i: 1 }, { timeoutMs: 10_000 }), ASKS, RATE);
  await rt.close();
  await closeAll();

  const name = `${tag}-bullmq`;
  const conn = () => new Redis(url, { maxRetriesPerRequest: null });
  const queue = new Queue(name, { connection: conn(), defaultJobOptions: { removeOnComplete: { age: 600 }, removeOnFail: { age: 600 } } });
  queue.setMaxListeners(0); // waitUntilFinished adds one a job
  const events = new QueueEvents(name, { connection: conn() });
  events.setMaxListeners(0);
  const worker = new Worker(name, async (job) => job.data, { connection: conn(), concurrency: 16 });
  await events.waitUntilReady();
  await worker.waitUntilReady();
  const bull = async (): Promise<unknown> => (await queue.add('a', { i: 1 })).waitUntilFinished(events, 10_000);
  for (let i = 0; i < (tiny ? 20 : 200); i++) await bull();
  const theirs = await paced(bull, ASKS, RATE);
  await worker.close();
  await events.close();
  await queue.obliterate({ force: true });
  await queue.close();
  const row = (label: string, s: Float64Array) => `  ${label.padEnd(58)} p50 ${fmt(percentile(s, 50)).padStart(8)}  p99 ${fmt(percentile(s, 99)).padStart(8)}`;
  console.log(`ask round trip at ${RATE}/s, ${ASKS} calls:`);
  console.log(row('ringpool ask(), Redis mailbox, answered by another process', ours));
  console.log(row('BullMQ add + waitUntilFinished (QueueEvents), in-process worker', theirs));
  console.log(`  ratio p50 ${(percentile(theirs, 50) / percentile(ours, 50)).toFixed(2)}x, p99 ${(percentile(theirs, 99) / percentile(ours, 99)).toFixed(2)}x (BullMQ / ringpool: above 1, ringpool is faster)`);
}

// ------------------------------------------------------------------ W1: a Redis Cluster against the single Redis

async function w1(stream: string, on: object, count: number): Promise<number> {
  const c = await consumer(stream, 'noop', 'cluster' in on ? on : {});
  const p = redisProducer({ ...on, stream } as never);
  await p.whenReady();
  const t = performance.now();
  for (let i = 0; i < count; i++) {
    p.send({ i, sku: 'SKU-ABCDEFGH', qty: 3 });
    if ((i & 4095) === 4095) await sleep(0);
  }
  await p.close();
  while (c.processed < count) await sleep(2);
  const rate = count / ((performance.now() - t) / 1000);
  await closeAll();
  return rate;
}
{
  const count = tiny ? 2_000 : quick ? 20_000 : 100_000;
  const cluster = await startCluster(3);
  try {
    const single: number[] = [];
    const clustered: number[] = [];
    for (let r = 0; r < (quick ? 1 : 3); r++) {
      single.push(await w1(`{${tag}-w1-${r}}`, { url }, count));
      clustered.push(await w1(`{${tag}-w1c-${r}}`, { cluster: { nodes: cluster.nodes } }, count));
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    console.log(`W1, ${count} messages, 1 consumer process: single Redis ${single.map((x) => x.toFixed(0)).join(', ')} msg/s; 3-master cluster ${clustered.map((x) => x.toFixed(0)).join(', ')} msg/s; cluster/single ${(med(clustered) / med(single)).toFixed(2)}x (medians)`);
  } finally {
    await cluster.stop();
  }
}

const keys = await admin.keys(`*${tag}*`);
for (const k of keys) await admin.del(k);
await admin.quit();
process.exit(0);
