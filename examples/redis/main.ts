/**
 * One stream, a group of consumer processes: the Redis Streams mailbox,
 * with keyed orders across processes. This process produces (a
 * `redisProducer`, as a web tier would) 20,000 orders of 200 customers,
 * keyed by customer, into 8 partitions, and starts two consumer processes
 * (examples/redis/consumer.ts), which share the partitions. One is
 * SIGKILLed halfway: the other takes its partitions over once their lease
 * runs out (2 s), finishes what the dead one had pending first, then reads
 * on. Two lines a second; at the end, each customer's ledger is checked: its
 * orders ran in the order they were placed (an order the killed process ran
 * but had not acknowledged runs again, right after the kill). Every key is
 * deleted afterwards.
 *
 *   npm run example:redis                  (REDIS_URL, else redis://127.0.0.1:6379)
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { redisProducer } from '../../runtime/source/redis/index.js';
import { cli } from '../cli.js';

cli({
  usage: 'npm run example:redis        (or: node dist/examples/redis/main.js)',
  about: 'Keyed orders across two consumer processes on one stream, one SIGKILLed halfway. On REDIS_URL, else redis://127.0.0.1:6379. No flags but --help.',
  flags: {},
});
const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const stream = `ringpool-example-${process.pid}`;
const ledger = `${stream}:ledger`;
const N = 20_000;
const CUSTOMERS = 200;
const P = 8;
const admin = createClient({ url });
admin.on('error', () => undefined);
try {
  await admin.connect();
} catch {
  console.log(`no Redis answered at ${url}: start one (apt-get install redis-server) or set REDIS_URL`);
  process.exit(0);
}

const names = ['east', 'west'];
const owned = new Map<string, number[]>();
const consumers: ChildProcess[] = names.map((name) => {
  const c = fork(fileURLToPath(new URL('./consumer.js', import.meta.url)), [url, stream, name], { stdio: 'inherit' });
  c.on('message', (m) => {
    if (typeof m === 'object' && m !== null && 'owned' in m) owned.set(name, (m as { owned: number[] }).owned);
  });
  return c;
});
await Promise.all(consumers.map((c) => new Promise((r) => c.once('message', r))));
// Both up: the partitions settle at 4 each (each process takes its share of the free ones).
while (names.some((n) => owned.get(n)?.length !== P / 2)) await new Promise((r) => setTimeout(r, 100));
console.log(`two consumer processes on stream '${stream}' (${url}), ${P} partitions; producing ${N.toLocaleString('en-US')} orders of ${CUSTOMERS} customers, keyed by customer`);

const p = redisProducer({ url, stream, partitions: P });
for (let i = 0; i < N; i++) p.send({ seq: Math.floor(i / CUSTOMERS), url, ledger, sku: `sku-${i % 50}` }, { key: `customer-${i % CUSTOMERS}` });
await p.close();

const partitionStreams = Array.from({ length: P }, (_, i) => `{${stream}}:p:${i}`);
const group = async (key: string): Promise<{ lag: number; pending: number }> => {
  const g = ((await admin.sendCommand(['XINFO', 'GROUPS', key])) as Array<Record<string, unknown>>)[0];
  return { lag: Number(g?.lag ?? 0), pending: Number(g?.pending ?? 0) };
};
let killed = false;
for (let s = 0.5; ; s += 0.5) {
  await new Promise((r) => setTimeout(r, 500));
  const all = await Promise.all(partitionStreams.map(group));
  const lag = all.reduce((n, g) => n + g.lag, 0);
  const pending = all.reduce((n, g) => n + g.pending, 0);
  const who = names.map((n) => `${n} [${(killed && n === 'east' ? [] : owned.get(n) ?? []).join(',')}]`).join('  ');
  console.log(`${s.toFixed(1).padStart(5)} s  lag ${String(lag).padStart(6)}  pending ${String(pending).padStart(4)}  partitions: ${who}`);
  if (!killed && lag < N * 0.7) {
    killed = true;
    consumers[0]!.kill('SIGKILL');
    console.log(`      SIGKILL of 'east' (partitions ${(owned.get('east') ?? []).join(',')}): 'west' takes them over once their lease runs out`);
  }
  if (lag === 0 && pending === 0) break;
}
consumers[1]!.send('close');
await new Promise((r) => consumers[1]!.once('exit', r));

// Each customer's ledger: seqs in the order they ran. Going back is allowed only across the kill (an order run
// by 'east' and not acknowledged runs again on 'west'); a gap never.
let outOfOrder = 0;
let again = 0;
let orders = 0;
for (let c = 0; c < CUSTOMERS; c++) {
  const rows = (await admin.lRange(`${ledger}:customer-${c}`, 0, -1)).map((r) => r.split(':').map(Number) as [number, number]);
  const seen = new Set<number>();
  for (let i = 0; i < rows.length; i++) {
    const [seq, fence] = rows[i]!;
    if (seen.has(seq)) again++;
    seen.add(seq);
    if (i > 0 && seq < rows[i - 1]![0] && fence === rows[i - 1]![1]) outOfOrder++;
    if (i > 0 && seq > rows[i - 1]![0] + 1) outOfOrder++;
  }
  orders += seen.size;
}
console.log(`done: ${orders.toLocaleString('en-US')} of ${N.toLocaleString('en-US')} orders ran; per customer, out of order: ${outOfOrder}; run again after the kill: ${again}`);
const keys = await admin.keys(`*${stream}*`);
if (keys.length > 0) await admin.del(keys);
await admin.quit();
