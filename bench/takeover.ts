/**
 * Takeover after a SIGKILL on a partitioned Redis mailbox (issue #29): two
 * consumer processes share 4 partitions (2 each); a steady trickle of keyed
 * messages runs; one process is SIGKILLed, and the time until the other holds
 * every partition the dead one owned (each one's fencing epoch moved on and
 * its lease is held again) is one sample. A fresh process then replaces the
 * dead one and the partitions settle at 2 each before the next kill. Target:
 * p99 <= ownerLeaseMs + ownerRenewMs + 100 ms (the dead lease runs out
 * within ownerLeaseMs of its last renewal, and the survivor looks every
 * ownerRenewMs).
 *
 *   npm run bench:takeover -- [--kills 20] [--lease 5000] [--renew 1000]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { redisProducer } from '../runtime/source/redis/index.js';
import { header, percentile } from './machine.js';
import { fixture } from './paths.js';
import { cli, fail } from '../examples/cli.js';

const { kills, lease, renew } = cli(
  {
    usage: 'npm run bench:takeover -- [flags]        (or: node dist/bench/takeover.js [flags])',
    about: 'REDIS_URL, else redis://127.0.0.1:6379 (skipped, reason printed, if no Redis answers).',
    flags: {
      kills: { type: 'number', integer: true, min: 1, help: 'SIGKILLs, one sample each', defaultText: '20, 3 with --quick' },
      lease: { type: 'number', integer: true, min: 100, max: 600_000, arg: 'MS', help: 'ownerLeaseMs of the consumers', defaultText: '5000, 1000 with --quick' },
      renew: { type: 'number', integer: true, min: 10, arg: 'MS', help: 'ownerRenewMs of the consumers (at most half of --lease)', defaultText: '1000, 200 with --quick' },
      quick: { type: 'boolean', help: 'the shorter defaults above' },
    },
  },
  ({ values: v }) => {
    const o = { kills: v.kills ?? (v.quick ? 3 : 20), lease: v.lease ?? (v.quick ? 1_000 : 5_000), renew: v.renew ?? (v.quick ? 200 : 1_000) };
    // The source's own bounds (runtime/source/redis/options.ts), checked before any consumer starts.
    if (o.renew > Math.floor(o.lease / 2)) fail('--renew', `an integer from 10 to ${Math.floor(o.lease / 2)} (half of --lease)`, String(o.renew));
    return o;
  },
);
// The Redis client loads once the flags are read (--help and a refused flag answer without it).
const [{ createClient }, { redisAvailable, redisUrl }] = await Promise.all([import('redis'), import('./systems/bullmq.js')]);
const P = 4;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const url = redisUrl();
const why = await redisAvailable(url);
if (why !== null) {
  console.log(`takeover: skipped: ${why}`);
  process.exit(0);
}
header(`Takeover after SIGKILL, partitioned Redis mailbox: ${kills} kills, ${P} partitions over 2 processes, ownerLeaseMs ${lease}, ownerRenewMs ${renew}`);
const stream = `ringpool-bench-takeover-${process.pid}`;
const admin = createClient({ url });
admin.on('error', () => undefined);
await admin.connect();

interface Proc {
  c: ChildProcess;
  owned: number;
}
let n = 0;
async function start(): Promise<Proc> {
  const c = fork(fileURLToPath(fixture('redis-consumer.mjs')), [url, stream, `take-${process.pid}-${n++}`, 'noop', String(P), String(lease), String(renew)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const p: Proc = { c, owned: 0 };
  c.on('message', (m: unknown) => {
    const o = (m as { owned?: number }).owned;
    if (o !== undefined) p.owned = o;
  });
  await new Promise<void>((resolve, reject) => {
    c.on('message', (m) => m === 'ready' && resolve());
    c.once('exit', (code) => reject(new Error(`consumer exited with ${code}`)));
  });
  return p;
}
const epochs = async (): Promise<number[]> => (await admin.mGet(Array.from({ length: P }, (_, i) => `{${stream}}:epoch:ringpool:${i}`))).map(Number);
const held = async (): Promise<boolean[]> => (await admin.mGet(Array.from({ length: P }, (_, i) => `{${stream}}:owner:ringpool:${i}`))).map((v) => v !== null);

const procs = [await start(), await start()];
const producer = redisProducer({ url, stream, partitions: P });
let sending = true;
const trickle = (async () => {
  for (let i = 0; sending; i++) {
    producer.send({ i }, { key: `k${i % 100}` });
    if (i % 10 === 0) await sleep(5);
  }
})();
const samples: number[] = [];
for (let k = 0; k < kills; k++) {
  const t = Date.now();
  while (!procs.every((p) => p.owned === P / 2) && Date.now() - t < 60_000) await sleep(20);
  await sleep(Math.random() * renew); // a kill anywhere in the renewal cycle
  const before = await epochs();
  const victim = procs.shift()!;
  victim.c.kill('SIGKILL');
  const killedAt = performance.now();
  await new Promise((r) => victim.c.once('exit', r));
  // Its partitions: those whose lease the survivor does not hold now (it held P/2 before the kill).
  for (;;) {
    const [e, h] = await Promise.all([epochs(), held()]);
    const moved = e.filter((x, i) => x > before[i]!).length;
    if (moved >= P / 2 && h.every(Boolean)) break;
    await sleep(2);
  }
  const ms = performance.now() - killedAt;
  samples.push(ms);
  console.log(`  kill ${String(k + 1).padStart(2)}: taken over in ${ms.toFixed(0)} ms`);
  if (k + 1 < kills) procs.push(await start());
}
sending = false;
await trickle;
await producer.close();
for (const p of procs) p.c.kill('SIGKILL');
const keys = await admin.keys(`*${stream}*`);
if (keys.length > 0) await admin.del(keys);
await admin.quit();
samples.sort((a, b) => a - b);
const p50 = percentile(samples, 50);
const p99 = percentile(samples, 99);
const target = lease + renew + 100;
console.log(`takeover after SIGKILL: p50 ${p50.toFixed(0)} ms, p99 ${p99.toFixed(0)} ms, max ${samples[samples.length - 1]!.toFixed(0)} ms over ${samples.length} kills`);
console.log(`${p99 <= target ? ' met  ' : 'MISSED'} takeover p99 <= ownerLeaseMs + ownerRenewMs + 100 ms: ${p99.toFixed(0)} ms vs ${target} ms`);
process.exit(0);
