/**
 * A consumer process of examples/redis/main.ts: one mailbox fed by the
 * stream's consumer group, with 8 partitions for keyed orders (a customer's
 * orders run in order, on whichever process owns its partition), and
 * claimIdleMs 2 s and an owner lease of 2 s so the takeover shows quickly.
 * Tells the parent, every second, which partitions it owns.
 *   node dist/examples/redis/consumer.js <url> <stream> <consumer>
 */
import { createRuntime } from '../../runtime/index.js';
import { cli } from '../cli.js';

const [url, stream, consumer] = cli({
  usage: 'node dist/examples/redis/consumer.js <url> <stream> <consumer>        (started by examples/redis/main.ts)',
  flags: {},
  positionals: [
    { name: 'url', help: 'the Redis URL' },
    { name: 'stream', help: 'the stream its consumer group reads' },
    { name: 'consumer', help: "this process's consumer name in the group" },
  ],
}).positionals as [string, string, string];
const rt = createRuntime({
  mailboxes: {
    orders: {
      handler: new URL('../../../examples/handlers/customer-order.js', import.meta.url),
      maxThreads: 1,
      concurrency: 8,
      source: { redis: { url, stream, consumer, claimIdleMs: 2_000, partitions: 8, ownerLeaseMs: 2_000, ownerRenewMs: 500 } },
    },
  },
});
rt.on('error', (err) => {
  const code = (err as { code?: string }).code;
  // A partition taken back from the killed process is reported by the survivor only as it happens; others are worth a line.
  console.error(`${consumer}: ${code} ${err.message}`);
});
await rt.start();
process.send?.('ready');
const report = setInterval(() => process.send?.({ owned: rt.stats('orders').source?.partitions?.owned ?? [] }), 1_000);
// The parent's 'close', or SIGTERM (docs/operations.md, "Shutdown"): drain within 25 s; what is left stays pending in
// the stream under this consumer, claimed by another process after claimIdleMs (2 s here) or by this name's next start.
const stop = async (): Promise<void> => {
  clearInterval(report);
  const r = await rt.close({ timeoutMs: 25_000 });
  const l = r.left.orders;
  if (l !== undefined && l.ready + l.inFlight + l.delayed > 0) console.error(`${consumer}: left pending in the stream: ${l.ready} ready, ${l.inFlight} in flight, ${l.delayed} delayed`);
  process.exit(r.drained ? 0 : 1);
};
process.on('message', (m) => {
  if (m === 'close') void stop();
});
process.once('SIGTERM', () => void stop());
