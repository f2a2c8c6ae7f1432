/**
 * One stream, a group of consumer processes: the Redis Streams mailbox.
 * This process produces (a `redisProducer`, as a web tier would) and starts
 * two consumer processes (examples/redis/consumer.ts) on a fresh stream; one
 * is SIGKILLed halfway, and the other takes its pending entries over after
 * claimIdleMs. One line a second; at the end, what ran and what was taken
 * over. The stream and its dead letters are deleted afterwards.
 *
 *   npm run example:redis                  (REDIS_URL, else redis://127.0.0.1:6379)
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { redisProducer } from '../../runtime/source/redis/index.js';

const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const stream = `ringpool-example-${process.pid}`;
const N = 20_000;
const admin = createClient({ url });
admin.on('error', () => undefined);
try {
  await admin.connect();
} catch {
  console.log(`no Redis answered at ${url}: start one (apt-get install redis-server) or set REDIS_URL`);
  process.exit(0);
}

const consumers: ChildProcess[] = ['east', 'west'].map((name) => fork(fileURLToPath(new URL('./consumer.js', import.meta.url)), [url, stream, name], { stdio: 'inherit' }));
await Promise.all(consumers.map((c) => new Promise((r) => c.once('message', r))));
console.log(`two consumer processes on stream '${stream}' (${url}); producing ${N.toLocaleString('en-US')} orders`);

const p = redisProducer({ url, stream });
for (let i = 0; i < N; i++) p.send({ order: i, sku: `sku-${i % 50}`, qty: 1 + (i % 3) });
await p.close();

const pending = async (): Promise<number> => Number(((await admin.sendCommand(['XPENDING', stream, 'ringpool'])) as unknown[])[0]);
let killed = false;
for (let s = 1; ; s++) {
  await new Promise((r) => setTimeout(r, 1_000));
  const info = ((await admin.sendCommand(['XINFO', 'GROUPS', stream])) as Array<Record<string, unknown>>)[0]!;
  console.log(`${String(s).padStart(3)} s  lag ${String(info.lag).padStart(6)}  pending ${String(info.pending).padStart(4)}  consumers ${info.consumers}`);
  if (!killed && Number(info.lag) < N / 2) {
    killed = true;
    const held = ((await admin.sendCommand(['XPENDING', stream, 'ringpool', '-', '+', '1000', 'east'])) as unknown[]).length;
    consumers[0]!.kill('SIGKILL');
    console.log(`      SIGKILL of 'east', holding ${held} entries: 'west' takes them over after claimIdleMs`);
  }
  if (Number(info.lag) === 0 && (await pending()) === 0) break;
}
consumers[1]!.send('close');
await new Promise((r) => consumers[1]!.once('exit', r));
console.log(`done: every entry acknowledged; dead letters in '${stream}:dead': ${await admin.xLen(`${stream}:dead`)}`);
await admin.del([stream, `${stream}:dead`]);
await admin.quit();
