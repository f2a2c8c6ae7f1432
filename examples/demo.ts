/**
 * The first demo: a producer offers orders at a fixed rate, the `orders`
 * mailbox absorbs them, consumer threads price them (CPU work), failures are
 * retried, poison orders end as dead letters. One status line a second and a
 * summary at the end.
 *
 *   npm start                      (runs 10 s)
 *   npm start -- --duration 5 --rate 20000 --threads 2 --work 50
 *   npm start -- --help
 */
import { availableParallelism } from 'node:os';
import { createRuntime, type DeadLetterEvent } from '../runtime/index.js';

interface DemoOptions {
  duration: number;
  rate: number;
  threads: number;
  work: number;
  poison: number;
}

const HELP = `ringpool demo: a producer, a queue, consumer threads, retries and dead letters.

Usage: npm start -- [options]
  --duration <s>   how long the producer offers load            (default 10)
  --rate <n>       orders offered per second                    (default 20000)
  --threads <n>    most consumer threads                        (default ${availableParallelism()})
  --work <µs>      CPU time a handler spends per order          (default 40)
  --poison <n>     poison orders mixed in (dead-lettered)       (default 5)
  --help           this text
Ctrl-C stops the producer, drains what was accepted, and prints the summary.`;

function parse(argv: string[]): DemoOptions {
  const o: DemoOptions = { duration: 10, rate: 20_000, threads: availableParallelism(), work: 40, poison: 5 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') {
      console.log(HELP);
      process.exit(0);
    }
    const key = a.replace(/^--/, '') as keyof DemoOptions;
    if (!(key in o)) {
      console.error(`unknown option ${a}\n\n${HELP}`);
      process.exit(2);
    }
    const v = Number(argv[++i]);
    if (!Number.isFinite(v) || v < 0) {
      console.error(`${a} needs a number >= 0, got ${argv[i]}`);
      process.exit(2);
    }
    o[key] = v;
  }
  return o;
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const rt = createRuntime({
    mailboxes: {
      orders: {
        handler: new URL('../../examples/handlers/order.js', import.meta.url),
        minThreads: 1,
        maxThreads: Math.max(1, o.threads),
        maxAttempts: 3,
        backoff: { baseMs: 20, maxMs: 500 },
        capacityBytes: 16 << 20,
      },
    },
  });
  const dead: DeadLetterEvent[] = [];
  rt.on('dead-letter', (e) => dead.push(e));
  await rt.start();
  console.log(
    `ringpool demo: offering ${o.rate} orders/s for ${o.duration} s, ${o.work} µs of CPU each, up to ${o.threads} threads ` +
      `(one thread can do ~${Math.round(1e6 / Math.max(1, o.work + 5))}/s)`,
  );
  console.log('  t   offered/s  processed/s    depth  in-flight  threads  retried  dead  rejected');

  let offered = 0;
  let refused = 0;
  let stopping = false;
  const poisonAt = new Set(Array.from({ length: o.poison }, (_, i) => Math.floor(((i + 1) * o.rate * o.duration) / (o.poison + 1))));
  process.once('SIGINT', () => {
    stopping = true;
    console.log('\nSIGINT: stopping the producer, draining…');
  });

  const t0 = performance.now();
  let lastOffered = 0;
  let lastProcessed = 0;
  let maxSendUs = 0;
  const status = setInterval(() => {
    const s = rt.stats('orders');
    const t = Math.round((performance.now() - t0) / 1000);
    console.log(
      `${String(t).padStart(3)} ${String(offered - lastOffered).padStart(11)} ${String(s.processed - lastProcessed).padStart(12)} ` +
        `${String(s.depth).padStart(8)} ${String(s.inFlight).padStart(10)} ${String(s.threads).padStart(8)} ${String(s.retried).padStart(8)} ` +
        `${String(s.deadLettered).padStart(5)} ${String(s.rejected).padStart(9)}`,
    );
    lastOffered = offered;
    lastProcessed = s.processed;
  }, 1000);

  // The producer: a 1 ms tick sends what the rate owes; send() never waits.
  const end = t0 + o.duration * 1000;
  while (!stopping && performance.now() < end) {
    const due = Math.floor(((performance.now() - t0) / 1000) * o.rate);
    while (offered < due) {
      const id = offered++;
      const a = performance.now();
      try {
        rt.send('orders', { id, sku: `SKU-${id % 1000}`, qty: 1 + (id % 5), work: o.work, poison: poisonAt.has(id) });
      } catch {
        refused++; // queue full: counted, the demo does not wait
      }
      const us = (performance.now() - a) * 1000;
      if (us > maxSendUs) maxSendUs = us;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  const produceMs = performance.now() - t0;
  await rt.onIdle();
  clearInterval(status);
  const s = rt.stats('orders');
  const total = performance.now() - t0;
  const report = await rt.close({ timeoutMs: 5_000 });
  console.log('\nsummary');
  const rows: Array<[string, string | number]> = [
    ['offered', offered],
    ['accepted (enqueued)', s.enqueued],
    ['refused (queue full)', refused],
    ['processed', s.processed],
    ['failed attempts / retried', `${s.failed} / ${s.retried}`],
    ['dead-lettered', `${s.deadLettered} (${dead.map((d) => d.letter.reason).join(', ') || '-'})`],
    ['worker crashes / lease timeouts', `${s.workerCrashes} / ${s.handlerTimeouts}`],
    ['producer time / drained after', `${(produceMs / 1000).toFixed(1)} s / ${((total - produceMs) / 1000).toFixed(2)} s`],
    ['throughput (processed / total time)', `${Math.round(s.processed / (total / 1000))} orders/s`],
    ['slowest send()', `${maxSendUs.toFixed(1)} µs`],
    ['everything accounted for', s.enqueued === s.processed + s.deadLettered && report.drained ? 'yes' : 'NO'],
  ];
  for (const [k, v] of rows) console.log(`  ${k.padEnd(38)} ${v}`);
  for (const d of dead.slice(0, 5)) console.log(`  dead letter #${d.letter.id}: ${d.letter.reason}: ${d.letter.lastError?.message}`);
}

await main();
