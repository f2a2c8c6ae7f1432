/**
 * The consumer's and the producer's cost per message in W1's shape, for a
 * profiler (issue #34): one mailbox, 1 thread, a handler that does nothing,
 * N sends from the main thread (or sendBatch calls), then drain. Prints
 * msg/s, the send loop's own time per message, and how often the ring was
 * full (the producer then waited: the consumer is the bound).
 *
 *   npm run bench:hot-path -- --messages 2000000 --codec raw
 *   node --cpu-prof --cpu-prof-dir=prof dist/bench/hot-path.js --codec raw   (a profile per thread)
 */
import { Registry } from 'prom-client';
import { createRuntime, ErrorCodes, type CodecOption } from '../runtime/index.js';
import { createMetrics } from '../metrics/index.js';
import { cli } from '../examples/cli.js';
import { fixture } from './paths.js';
import { TINY_BYTES, tiny } from './messages.js';

const { values: flags } = cli({
  usage: 'npm run bench:hot-path -- [flags]        (or: node dist/bench/hot-path.js [flags])',
  flags: {
    messages: { type: 'number', integer: true, min: 1, arg: 'N', default: 2_000_000, help: 'messages timed (after a warm-up of a tenth, at most 200,000)' },
    codec: { type: 'string', choices: ['json', 'msgpack', 'v8', 'raw'], default: 'raw', help: "the mailbox's codec (raw sends W1's ~100-byte JSON as bytes)" },
    batch: { type: 'number', integer: true, min: 0, arg: 'N', default: 0, help: 'send in sendBatch calls of N (0: one send() each)' },
    metrics: { type: 'boolean', default: false, help: 'export prom-client metrics, scraped once a second' },
  },
});
const N = flags.messages;
const codec = flags.codec as CodecOption;
const batch = flags.batch;

const rt = createRuntime({
  mailboxes: { bench: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 1, autoscale: false, codec, capacityBytes: 8 << 20 } },
});
let scraper: NodeJS.Timeout | undefined;
if (flags.metrics) {
  const registry = new Registry();
  createMetrics(rt, { registry });
  scraper = setInterval(() => void registry.metrics(), 1000);
}
await rt.start();
const make = codec === 'raw' ? (): unknown => TINY_BYTES : tiny;
let waits = 0;

async function offer(n: number): Promise<void> {
  let pending: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const m = make(i);
    if (batch > 0) {
      pending.push(m);
      if (pending.length < batch) continue;
      const b = pending;
      pending = [];
      try {
        rt.sendBatch('bench', b);
      } catch (err) {
        if ((err as { code?: string }).code !== ErrorCodes.QUEUE_FULL) throw err;
        waits++;
        await rt.sendBatchAsync('bench', b);
      }
      continue;
    }
    try {
      rt.send('bench', m);
    } catch (err) {
      if ((err as { code?: string }).code !== ErrorCodes.QUEUE_FULL) throw err;
      waits++;
      await rt.sendAsync('bench', m);
    }
  }
  if (pending.length > 0) await rt.sendBatchAsync('bench', pending);
}

await offer(Math.min(200_000, Math.ceil(N / 10)));
await rt.onIdle();
waits = 0;
const t0 = performance.now();
await offer(N);
const t1 = performance.now();
await rt.onIdle();
const ms = performance.now() - t0;
console.log(
  `${String(codec)}${batch > 0 ? `, sendBatch of ${batch}` : ''}${flags.metrics ? ', metrics on' : ''}: ${((N / ms) * 1000).toLocaleString('en-US', { maximumFractionDigits: 0 })} msg/s; ` +
    `send loop ${(((t1 - t0) * 1e6) / N).toFixed(0)} ns a message; the ring was full ${waits} times`,
);
clearInterval(scraper);
await rt.close();
