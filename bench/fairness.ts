/**
 * Fairness on the shared pool (issue #28): a quiet mailbox offered 1,000
 * messages/s (W4: send -> handler start, p50/p99/p99.9), alone and then beside
 * a saturating neighbour on the same pool of threads (a mailbox that keeps
 * 20,000 messages in its ring by sending each one to itself again, on every
 * thread). Each in a fresh runtime, all in one command; the target is the
 * quiet mailbox's p99 beside the neighbour within 2x of its p99 alone. A last
 * row puts both on threads of their own (`threads: 'dedicated'`), for comparison.
 *
 *   npm run bench:fairness -- [--seconds 5] [--threads 2]
 */
import { availableParallelism } from 'node:os';
import { BroadcastChannel } from 'node:worker_threads';
import { createRuntime, type MailboxOptions } from '../runtime/index.js';
import { header, percentile, table } from './machine.js';
import { stamped } from './messages.js';
import { fixture } from './paths.js';
import { LatencySink } from './session.js';
import { cli } from '../examples/cli.js';

const LATENCY_CHANNEL = 'ringpool-bench-latency';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const now = (): number => performance.timeOrigin + performance.now();

interface Row {
  case: string;
  p50: number;
  p99: number;
  p999: number;
  neighbourPerSec: number;
}

async function run(neighbour: boolean, seconds: number, threads: number, mode: 'shared' | 'dedicated' = 'shared'): Promise<Row> {
  const mailboxes: Record<string, MailboxOptions> = {
    quiet: { handler: fixture('ringpool-stamp.js'), minThreads: 1, maxThreads: 1, autoscale: false, threads: mode },
  };
  if (neighbour) mailboxes.noise = { handler: fixture('self-feed.js'), minThreads: threads, maxThreads: threads, autoscale: false, capacityBytes: 4 << 20, threads: mode };
  const rt = createRuntime({ mailboxes, pool: { maxThreads: threads } });
  const sink = new LatencySink();
  const channel = new BroadcastChannel(LATENCY_CHANNEL);
  channel.onmessage = (ev) => sink.pushMany((ev as { data: Float64Array }).data);
  await rt.start();
  if (neighbour) {
    for (let i = 0; i < 20_000; i++) rt.send('noise', { i });
    await sleep(200);
  }
  const before = neighbour ? rt.stats('noise').processed : 0;
  // Warm-up, then 1,000/s for `seconds`, open loop (what is due each wake-up).
  for (let i = 0; i < 50; i++) rt.send('quiet', { ...stamped(i), t: now() });
  await sink.take(50);
  const total = seconds * 1000;
  const t0 = performance.now();
  for (let i = 0; i < total; ) {
    const due = Math.min(total, Math.floor(performance.now() - t0) + 1);
    while (i < due) rt.send('quiet', { ...stamped(i++), t: now() });
    if (i < total) await sleep(1);
  }
  const lat = (await sink.take(total)).sort();
  const neighbourPerSec = neighbour ? ((rt.stats('noise').processed - before) / (performance.now() - t0)) * 1000 : 0;
  channel.close();
  await rt.destroy();
  return { case: neighbour ? `beside a saturating neighbour${mode === 'dedicated' ? ', threads of their own' : ''}` : 'alone', p50: percentile(lat, 50), p99: percentile(lat, 99), p999: percentile(lat, 99.9), neighbourPerSec };
}

const { values: flags } = cli({
  usage: 'npm run bench:fairness -- [flags]        (or: node dist/bench/fairness.js [flags])',
  flags: {
    seconds: { type: 'number', gt: 0, arg: 'S', default: 5, help: 'seconds the quiet mailbox is offered 1,000 msg/s, in each row' },
    threads: { type: 'number', integer: true, min: 1, default: Math.min(2, availableParallelism()), defaultText: 'min(2, cores)', help: "the pool's threads (the neighbour runs on all of them)" },
  },
});
const { seconds, threads } = flags;
header(`fairness on the shared pool (issue #28): ${availableParallelism()} cores, pool of ${threads} threads, quiet mailbox at 1,000 msg/s`);
const alone = await run(false, seconds, threads);
const beside = await run(true, seconds, threads);
// For comparison: the same two mailboxes on threads of their own (1 + `threads` threads beside the producer).
const dedicated = await run(true, seconds, threads, 'dedicated');
table(
  [alone, beside, dedicated].map((r) => ({
    quiet: r.case,
    'p50 µs': r.p50.toFixed(0),
    'p99 µs': r.p99.toFixed(0),
    'p99.9 µs': r.p999.toFixed(0),
    'p99 x alone': (r.p99 / alone.p99).toFixed(2),
    'neighbour msg/s': r.neighbourPerSec === 0 ? '-' : Math.round(r.neighbourPerSec).toLocaleString('en-US'),
  })),
);
console.log('   target: p99 beside the neighbour <= 2x alone');
