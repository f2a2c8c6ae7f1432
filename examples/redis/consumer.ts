/**
 * A consumer process of examples/redis/main.ts: one mailbox fed by the
 * stream's consumer group, claimIdleMs 2 s so the takeover shows quickly.
 *   node dist/examples/redis/consumer.js <url> <stream> <consumer>
 */
import { createRuntime } from '../../runtime/index.js';

const [url, stream, consumer] = process.argv.slice(2) as [string, string, string];
const rt = createRuntime({
  mailboxes: {
    orders: {
      handler: new URL('../../../examples/handlers/slow-order.js', import.meta.url),
      maxThreads: 1,
      concurrency: 8,
      source: { redis: { url, stream, consumer, claimIdleMs: 2_000 } },
    },
  },
});
rt.on('error', (err) => console.error(`${consumer}: ${(err as { code?: string }).code} ${err.message}`));
await rt.start();
process.send?.('ready');
process.on('message', async (m) => {
  if (m !== 'close') return;
  await rt.close();
  process.exit(0);
});
