/**
 * Protecting the downstream (issue #31), in one command:
 * - the rate limit's accuracy: a backlog of no-op messages behind
 *   `rateLimit: { max, perMs: 1000 }` on 2 threads, at 1,000/s and 10,000/s;
 *   the achieved rate (messages started between the 10 % and 90 % marks over
 *   the time between them) against max (target: within 2 %);
 * - adaptive concurrency against fixed 8, 16 and 64 (2 threads) on the test
 *   downstream (examples/downstream/: an HTTP server in its own process, 8
 *   at once in 5 ms each, the rest queued; handlers call it with fetch):
 *   throughput and the server's queueing p50/p99 between the same marks, and
 *   the ratio of each row's throughput to the best fixed row's.
 * On 2 cores the server, the main thread and the two consumer threads share
 * them: the server's capacity (1,600/s) is below what the client can send,
 * so the rows compare what reaches the downstream, not raw speed.
 *
 *   npm run bench:protect -- [--quick | --tiny]   (--tiny: the suite's smoke test)
 */
import { createRuntime, type MailboxOptions, type Runtime } from '../runtime/index.js';
import { startDownstream, type Downstream, type DownstreamStats } from '../examples/downstream/index.js';
import { header, percentile } from './machine.js';
import { fixture } from './paths.js';
import { cli } from '../examples/cli.js';

const { values: flags } = cli({
  usage: 'npm run bench:protect -- [flags]        (or: node dist/bench/protect.js [flags])',
  flags: {
    quick: { type: 'boolean', help: 'shorter rows (1.5 s rate rows, 3,000 messages a concurrency row)' },
    tiny: { type: 'boolean', help: "the suite's smoke test: one rate row, 600 messages a concurrency row (figures mean little)" },
  },
});
const tiny = flags.tiny;
const quick = tiny || flags.quick;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Send n with `payload(i)`, then watch processed: the rate between the 10 % and 90 % marks, and `at` called at each mark. */
async function drain(rt: Runtime, n: number, payload: (i: number) => unknown, marks?: (which: 'lo' | 'hi') => void, sample?: () => void): Promise<number> {
  const batch: unknown[] = [];
  for (let i = 0; i < n; i++) {
    batch.push(payload(i));
    if (batch.length === 500 || i === n - 1) {
      rt.sendBatch('work', batch);
      batch.length = 0;
    }
  }
  const lo = Math.floor(n * 0.1);
  const hi = n - lo;
  let a = 0;
  let pa = 0;
  for (;;) {
    const p = rt.stats('work').processed;
    sample?.();
    if (a === 0 && p >= lo) {
      a = performance.now();
      pa = p;
      marks?.('lo');
    }
    if (p >= hi) {
      marks?.('hi');
      return ((p - pa) / (performance.now() - a)) * 1000;
    }
    await sleep(5);
  }
}

async function rateRow(max: number, seconds: number): Promise<void> {
  const rt = createRuntime({
    mailboxes: { work: { handler: fixture('noop.js'), minThreads: 2, maxThreads: 2, autoscale: false, capacityBytes: 16 << 20, rateLimit: { max, perMs: 1_000 } } },
  });
  await rt.start();
  try {
    const rate = await drain(rt, Math.round(max * seconds), (i) => i);
    console.log(`rate limit ${max}/s: achieved ${rate.toFixed(0)}/s = ${(rate / max).toFixed(4)}x of max (${((1 - rate / max) * 100).toFixed(2)} % under)`);
  } finally {
    await rt.close();
  }
}

interface Row {
  name: string;
  rate: number;
  server: DownstreamStats;
  running: number | null;
}

async function downstreamRow(d: Downstream, name: string, concurrency: MailboxOptions['concurrency'], n: number): Promise<Row> {
  const rt = createRuntime({
    mailboxes: { work: { handler: fixture('downstream-call.js'), minThreads: 2, maxThreads: 2, autoscale: false, concurrency, maxAttempts: 1 } as MailboxOptions },
  });
  await rt.start();
  let server: Promise<DownstreamStats> = d.stats(true);
  const running: number[] = [];
  let on = false;
  try {
    const rate = await drain(
      rt,
      n,
      () => ({ url: d.url }),
      (which) => {
        server = d.stats(true);
        on = which === 'lo';
      },
      () => {
        const a = rt.stats('work').adaptive;
        if (on && a !== null) running.push(a.running);
      },
    );
    running.sort((x, y) => x - y);
    return { name, rate, server: await server, running: running.length === 0 ? null : percentile(running, 50) };
  } finally {
    await rt.close();
  }
}

header('Protecting the downstream: the rate limit, adaptive concurrency against fixed');
for (const max of tiny ? [1_000] : [1_000, 10_000]) await rateRow(max, tiny ? 0.6 : quick ? 1.5 : 4);

const d = await startDownstream({ capacity: 8, serviceMs: 5 });
try {
  const n = tiny ? 600 : quick ? 3_000 : 10_000;
  const rows: Row[] = [];
  const plan: [string, MailboxOptions['concurrency']][] = tiny
    ? [['fixed 16', 8], ['adaptive', 'adaptive']]
    : [['fixed 8', 4], ['fixed 16', 8], ['fixed 64', 32], ['adaptive', 'adaptive']];
  for (const [name, c] of plan) rows.push(await downstreamRow(d, name, c, n));
  const best = Math.max(...rows.filter((r) => r.name !== 'adaptive').map((r) => r.rate));
  console.log(`downstream: ${8} at once, 5 ms each, the rest queued; ${n} messages a row on 2 threads`);
  console.log('row          msgs/s   x best fixed   server queue p50   p99 (ms)   most in it   running p50');
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(12)} ${r.rate.toFixed(0).padStart(6)}   ${(r.rate / best).toFixed(2).padStart(12)}x   ${r.server.queueP50Ms.toFixed(2).padStart(16)}   ${r.server.queueP99Ms.toFixed(2).padStart(8)}   ${String(r.server.maxPresent).padStart(10)}   ${r.running === null ? '-' : String(r.running)}`,
    );
  }
} finally {
  await d.close();
}
