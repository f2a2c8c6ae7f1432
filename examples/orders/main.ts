/**
 * The orders pipeline from the user's story: an API-like producer enqueues
 * orders; `payments`, `inventory` and `shipping` are separate mailboxes, each
 * with its own retry policy and thread bounds, chained with ctx.send(), all
 * three on the runtime's shared pool of threads (at most
 * os.availableParallelism(); a mailbox runs on up to its maxThreads of them). Inventory
 * is an actor per SKU (its stock is per-key state; see inventory.ts), read
 * at the end through a typed proxy. In the
 * middle third of the run the payment provider slows from 5 ms to 500 ms a
 * call: payments slows down (and its backlog grows), the producer does not.
 *
 *   npm run build && node dist/examples/orders/main.js [--seconds 9] [--rate 500]
 */
import { createRuntime } from '../../runtime/index.js';
import type inventory from './inventory.js';
import { cli } from '../cli.js';

const { values: flags } = cli({
  usage: 'npm run example:orders -- [flags]        (or: node dist/examples/orders/main.js [flags])',
  flags: {
    seconds: { type: 'number', gt: 0, arg: 'S', default: 9, help: 'how long the producer runs (the provider is slow in the middle third)' },
    rate: { type: 'number', gt: 0, arg: 'R', default: 500, help: 'orders a second' },
  },
});
const SECONDS = flags.seconds;
const RATE = flags.rate;
const handler = (name: string): URL => new URL(`../../../examples/orders/handlers/${name}.js`, import.meta.url);

const rt = createRuntime({
  mailboxes: {
    // I/O-bound: many payments in flight per thread, generous retries
    payments: { handler: handler('payments'), minThreads: 1, maxThreads: 2, concurrency: 64, maxAttempts: 5, backoff: { baseMs: 50, maxMs: 1000 } },
    // an actor per SKU: stock is per-key state, one SKU's orders run in order
    inventory: { handler: new URL('./inventory.js', import.meta.url), minThreads: 1, maxThreads: 2, maxAttempts: 3 },
    shipping: { handler: handler('shipping'), minThreads: 1, maxThreads: 1, maxAttempts: 3 },
  },
});
await rt.start();
console.log(`orders pipeline: ${RATE} orders/s for ${SECONDS} s; the payment provider takes 500 ms a call in the middle third (5 ms otherwise)`);
console.log('   t  provider  offered  max send()  payments: depth in-flight done  inventory done  shipping done');

let sent = 0;
let maxSendUs = 0;
let secondMaxUs = 0;
const t0 = performance.now();
const third = (SECONDS * 1000) / 3;
let sec = 0;
const status = setInterval(() => {
  sec++;
  const p = rt.stats('payments');
  const slow = performance.now() - t0 > third && performance.now() - t0 < 2 * third;
  console.log(
    `${String(sec).padStart(4)} ${(slow ? '500 ms' : '5 ms').padStart(9)} ${String(sent).padStart(8)} ${(secondMaxUs.toFixed(0) + ' µs').padStart(11)} ` +
      `${String(p.depth).padStart(15)} ${String(p.inFlight).padStart(9)} ${String(p.processed).padStart(5)} ${String(rt.stats('inventory').processed).padStart(15)} ${String(rt.stats('shipping').processed).padStart(14)}`,
  );
  secondMaxUs = 0;
}, 1000);

// SIGTERM (docs/operations.md, "Shutdown"): stop offering, drain within 25 s (under the 30 s a container runtime
// waits), say what was left; these mailboxes are in memory, so what is left is lost with the process.
let stopping = false;
process.once('SIGTERM', () => {
  stopping = true;
  clearInterval(status);
  void rt.close({ timeoutMs: 25_000 }).then((report) => {
    for (const [m, l] of Object.entries(report.left)) {
      if (l.ready + l.inFlight + l.delayed > 0) console.log(`left in ${m}: ${l.ready} ready, ${l.inFlight} in flight, ${l.delayed} delayed (in memory: lost)`);
    }
    console.log(`closed on SIGTERM: ${report.drained ? 'drained' : 'NOT drained'}`);
    process.exit(report.drained ? 0 : 1);
  });
});

while (!stopping && performance.now() - t0 < SECONDS * 1000) {
  const elapsed = performance.now() - t0;
  const providerMs = elapsed > third && elapsed < 2 * third ? 500 : 5;
  const due = Math.floor((elapsed / 1000) * RATE);
  while (sent < due) {
    const a = performance.now();
    rt.send('payments', { id: sent, sku: `SKU-${sent % 50}`, qty: 1 + (sent % 3), providerMs, sentAt: Date.now() });
    const us = (performance.now() - a) * 1000;
    if (us > maxSendUs) maxSendUs = us;
    if (us > secondMaxUs) secondMaxUs = us;
    sent++;
  }
  await new Promise((r) => setTimeout(r, 1));
}
if (stopping) await new Promise(() => {}); // the SIGTERM handler closes and exits
await rt.onIdle();
clearInterval(status);
const [p, i, s] = ['payments', 'inventory', 'shipping'].map((m) => rt.stats(m));
// Ask each SKU's actor for its stock (typed: stock() returns { left, reserved }).
const stock = rt.actor<typeof inventory>('inventory');
const skus = Array.from({ length: 50 }, (_, k) => `SKU-${k}`);
const levels = await Promise.all(skus.map((sku) => stock.ask.stock(sku)));
const reserved = levels.reduce((a, l) => a + l.reserved, 0);
let wanted = 0;
for (let id = 0; id < sent; id++) wanted += 1 + (id % 3);
console.log('\nsummary');
console.log(`  orders offered                 ${sent}`);
console.log(`  payments processed / retried   ${p!.processed} / ${p!.retried} (provider timeouts, retried with backoff)`);
console.log(`  inventory / shipping processed ${i!.processed} / ${s!.processed}`);
console.log(`  every order shipped            ${s!.processed === sent ? 'yes' : 'NO'}`);
console.log(`  units reserved (50 SKU actors) ${reserved} of ${wanted} ordered: ${reserved === wanted ? 'exact' : 'WRONG'}`);
console.log(`  slowest send() of the producer ${maxSendUs.toFixed(0)} µs (the producer never waited on payments)`);
const pool = rt.poolStats();
console.log(`  shared pool                    ${pool.threads} thread(s) of at most ${pool.maxThreads}, running ${pool.lanes} loops of 3 mailboxes`);
await rt.close();
