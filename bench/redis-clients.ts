/**
 * `npm run bench:redis-clients`: which Redis client the Redis Streams source
 * (issue #16) should use, measured on the commands it sends: pipelined XADD
 * (a producer), and XREADGROUP COUNT 256 + one XACK per batch (a consumer).
 * node-redis 6 (`redis`; its automatic pipelining, and an explicit pipeline) against
 * ioredis (an explicit pipeline), alternating, on REDIS_URL (else
 * redis://127.0.0.1:6379), each run on a fresh stream it deletes after.
 *
 *   npm run bench:redis-clients -- [--messages N] [--runs R]
 */
import { median } from './machine.js';
import { cli } from '../examples/cli.js';

const { values: flags } = cli({
  usage: 'npm run bench:redis-clients -- [flags]        (or: node dist/bench/redis-clients.js [flags])',
  about: 'REDIS_URL, else redis://127.0.0.1:6379 (skipped, reason printed, if no Redis answers).',
  flags: {
    messages: { type: 'number', integer: true, min: 1, default: 100_000, help: 'entries each client adds, then reads back, per run' },
    runs: { type: 'number', integer: true, min: 1, default: 3, help: 'runs of every client, alternating; medians shown' },
  },
});
const N = flags.messages;
const RUNS = flags.runs;
// The clients load once the flags are read (--help and a refused flag answer without them).
const [{ createClient }, { Redis }, { redisAvailable, redisUrl }] = await Promise.all([import('redis'), import('ioredis'), import('./systems/bullmq.js')]);
const CHUNK = 256;
const PAYLOAD = JSON.stringify({ id: 0, name: 'order', qty: 3, price: 12.5, tags: ['a', 'b'], note: 'x'.repeat(30) });
let streams = 0;

interface Client {
  name: string;
  /** Add `n` entries, up to CHUNK in flight. */
  produce(key: string, n: number): Promise<void>;
  /** Read them back in a group, COUNT CHUNK, acking each batch with one XACK. */
  consume(key: string, n: number): Promise<void>;
  drop(key: string): Promise<void>;
  close(): Promise<void>;
}

async function nodeRedis(url: string, explicit: boolean): Promise<Client> {
  const c = createClient({ url });
  c.on('error', () => undefined);
  await c.connect();
  return {
    name: explicit ? 'node-redis 6 (execAsPipeline)' : 'node-redis 6 (auto-pipelined)',
    async produce(key, n) {
      for (let i = 0; i < n; i += CHUNK) {
        if (explicit) {
          const m = c.multi();
          for (let k = i; k < Math.min(n, i + CHUNK); k++) m.xAdd(key, '*', { p: PAYLOAD });
          await m.execAsPipeline();
          continue;
        }
        const batch: Promise<unknown>[] = [];
        for (let k = i; k < Math.min(n, i + CHUNK); k++) batch.push(c.xAdd(key, '*', { p: PAYLOAD }));
        await Promise.all(batch);
      }
    },
    async consume(key, n) {
      await c.xGroupCreate(key, 'g', '0', { MKSTREAM: true });
      let got = 0;
      while (got < n) {
        const r = (await c.xReadGroup('g', 'c1', { key, id: '>' }, { COUNT: CHUNK })) as Array<{ messages: Array<{ id: string }> }> | null;
        const ids = r?.[0]?.messages.map((m) => m.id) ?? [];
        if (ids.length === 0) break;
        await c.xAck(key, 'g', ids);
        got += ids.length;
      }
      if (got !== n) throw new Error(`node-redis read ${got} of ${n}`);
    },
    drop: async (key) => void (await c.del(key)),
    close: async () => void (await c.quit()),
  };
}

async function ioredis(url: string): Promise<Client> {
  const c = new Redis(url, { maxRetriesPerRequest: null });
  return {
    name: 'ioredis (a pipeline per 256)',
    async produce(key, n) {
      for (let i = 0; i < n; i += CHUNK) {
        const p = c.pipeline();
        for (let k = i; k < Math.min(n, i + CHUNK); k++) p.xadd(key, '*', 'p', PAYLOAD);
        await p.exec();
      }
    },
    async consume(key, n) {
      await c.xgroup('CREATE', key, 'g', '0', 'MKSTREAM');
      let got = 0;
      while (got < n) {
        const r = (await c.xreadgroup('GROUP', 'g', 'c1', 'COUNT', CHUNK, 'STREAMS', key, '>')) as Array<[string, Array<[string, string[]]>]> | null;
        const ids = r?.[0]?.[1].map((m) => m[0]) ?? [];
        if (ids.length === 0) break;
        await c.xack(key, 'g', ...ids);
        got += ids.length;
      }
      if (got !== n) throw new Error(`ioredis read ${got} of ${n}`);
    },
    drop: async (key) => void (await c.del(key)),
    close: async () => void (await c.quit()),
  };
}

async function main(): Promise<number> {
  const url = redisUrl();
  const why = await redisAvailable(url);
  if (why !== null) {
    console.log(`skip: ${why}`);
    return 0;
  }
  const clients = [await nodeRedis(url, false), await nodeRedis(url, true), await ioredis(url)];
  const figures = new Map<string, { xadd: number[]; read: number[] }>(clients.map((c) => [c.name, { xadd: [], read: [] }]));
  console.log(`# ${N.toLocaleString('en-US')} entries of ${PAYLOAD.length} bytes a run, ${RUNS} runs, alternating, on ${url}`);
  for (let run = 1; run <= RUNS; run++) {
    for (const c of run % 2 === 1 ? clients : [...clients].reverse()) {
      const key = `ringpool-bench-clients-${process.pid}-${++streams}`;
      try {
        let t = performance.now();
        await c.produce(key, N);
        const xadd = (N / (performance.now() - t)) * 1000;
        t = performance.now();
        await c.consume(key, N);
        const read = (N / (performance.now() - t)) * 1000;
        figures.get(c.name)!.xadd.push(xadd);
        figures.get(c.name)!.read.push(read);
        console.log(`run ${run}  ${c.name}: XADD ${Math.round(xadd).toLocaleString('en-US')}/s, XREADGROUP+XACK ${Math.round(read).toLocaleString('en-US')}/s`);
      } finally {
        await c.drop(key);
      }
    }
  }
  console.log('\nclient                           XADD/s (median)  XREADGROUP+XACK/s (median)');
  const base = figures.get(clients[2]!.name)!;
  for (const c of clients) {
    const f = figures.get(c.name)!;
    const x = median(f.xadd);
    const r = median(f.read);
    console.log(`${c.name.padEnd(32)} ${Math.round(x).toLocaleString('en-US').padStart(15)}  ${Math.round(r).toLocaleString('en-US').padStart(26)}   (x ioredis: ${(x / median(base.xadd)).toFixed(2)}, ${(r / median(base.read)).toFixed(2)})`);
  }
  for (const c of clients) await c.close();
  return 0;
}

process.exit(await main());
