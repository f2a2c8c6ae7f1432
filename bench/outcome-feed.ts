/**
 * Issue #14 asks how the store and the source learn of successes: an "ack
 * feed" per consumer slot, or a walk over the DONE records before reclaim.
 * Both are measured here against the plain ack, on the same ring, codec and
 * producer, with one consumer thread, in one command; then the built feed
 * (the walk) inside a whole ringpool runtime, with and without a store.
 *
 *   npm run build && node dist/bench/outcome-feed.js
 */
import { Piscina } from 'piscina';
import { Ring } from '../runtime/shared/ring.js';
import { JsonCodec } from '../runtime/shared/codec.js';
import { CLAIMED } from '../runtime/shared/layout.js';
import { OutcomeFeed } from '../runtime/mailbox/outcomes.js';
import { createRuntime, Outcome, type MessageStore, type OutcomeBatch } from '../runtime/index.js';
import { header, median, table } from './machine.js';

const CONSUMER = new URL('../../bench/fixtures/feed-consumer.js', import.meta.url).href;
const NOOP = new URL('../../bench/fixtures/noop.js', import.meta.url);
const N = 300_000;
const FEED_IDS = 1 << 16;
const msg = { id: 1, user: 'user-000042', sku: 'SKU-ABCDEFGH', qty: 3, price: 19.99, tags: ['a', 'bb', 'ccc'] };

type Mode = 'none' | 'slot' | 'walk';

/** The main thread's side of each mode, run between sends: what it learns of acks. */
function drainer(mode: Mode, ring: Ring, feed: SharedArrayBuffer | null): () => number {
  let seen = 0;
  let sum = 0;
  if (mode === 'slot') {
    const fw = new Int32Array(feed!, 0, 2);
    const ids = new Float64Array(feed!, 8);
    const mask = ids.length - 1;
    let read = 0;
    return () => {
      const w = Atomics.load(fw, 0);
      while (read !== w) {
        sum += ids[read & mask]!;
        read = (read + 1) | 0;
        seen++;
      }
      Atomics.store(fw, 1, read);
      return seen;
    };
  }
  if (mode === 'walk') {
    // The real feed (runtime/mailbox/outcomes.ts): it also reports ACCEPTED and CLAIMED.
    const follower = new OutcomeFeed('bench', ring, [{ outcomes: (b) => countAcks(b, (n) => (seen += n)) }], (err) => {
      throw err;
    });
    return () => {
      follower.follow();
      return seen;
    };
  }
  return () => (Atomics.load(ring.i32, CLAIMED) >>> 0);
}

async function raw(mode: Mode): Promise<number> {
  const sab = Ring.allocate({ capacityBytes: 8 << 20, maxPayloadBytes: 1024, followed: mode === 'walk' });
  const ring = new Ring(sab);
  const stop = new SharedArrayBuffer(4);
  const feed = mode === 'slot' ? new SharedArrayBuffer(8 + FEED_IDS * 8) : null;
  const pool = new Piscina({ filename: CONSUMER, minThreads: 1, maxThreads: 1, atomics: 'disabled' });
  const task = pool.run({ sab, stop, feed, mode });
  const drain = drainer(mode, ring, feed);
  const codec = new JsonCodec();
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const len = codec.prepare(msg);
    while (!ring.write(codec, len, null, 0, 1, ring.nextId(), 0, 0, codec.ascii)) {
      drain();
      await new Promise((r) => setImmediate(r));
    }
    if ((i & 255) === 0) drain();
  }
  while (drain() < N) await new Promise((r) => setImmediate(r));
  const dt = performance.now() - t0;
  Atomics.store(new Int32Array(stop), 0, 1);
  await task;
  await pool.destroy();
  return (N / dt) * 1000;
}

function countAcks(b: OutcomeBatch, add: (n: number) => void): void {
  let n = 0;
  for (let i = 0; i < b.n; i++) if (b.kind[i] === Outcome.ACKED) n++;
  add(n);
}

/** A store that only counts acks: the cost of the feed itself inside a runtime. */
class CountingStore implements MessageStore {
  acked = 0;
  async open(): Promise<[]> {
    return [];
  }
  outcomes(b: OutcomeBatch): void {
    countAcks(b, (n) => (this.acked += n));
  }
  async close(): Promise<void> {}
}

async function whole(withStore: boolean): Promise<number> {
  const store = withStore ? new CountingStore() : undefined;
  const rt = createRuntime({ mailboxes: { m: { handler: NOOP, minThreads: 1, maxThreads: 1, autoscale: false, ...(store ? { store } : {}) } } });
  await rt.start();
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    while (true) {
      try {
        rt.send('m', msg);
        break;
      } catch {
        await new Promise((r) => setImmediate(r));
      }
    }
  }
  await rt.onIdle();
  const dt = performance.now() - t0;
  await rt.close();
  if (store && store.acked !== N) throw new Error(`the store heard ${store.acked} acks of ${N}`);
  return (N / dt) * 1000;
}

header('How a store learns of acks: per-slot ack feed vs a walk over DONE records (W1 messages, 1 consumer thread)');
const rows: Record<string, number[]> = {};
for (let r = 0; r < 3; r++) {
  (rows['raw ring: ack only (the in-memory path)'] ??= []).push(await raw('none'));
  (rows['raw ring: ack + per-slot ack feed'] ??= []).push(await raw('slot'));
  (rows['raw ring: ack + the outcome feed (walk over DONE before reclaim)'] ??= []).push(await raw('walk'));
  (rows['ringpool, no store'] ??= []).push(await whole(false));
  (rows['ringpool, a store on the outcome feed'] ??= []).push(await whole(true));
}
const base = median(rows['raw ring: ack only (the in-memory path)']!);
const rp = median(rows['ringpool, no store']!);
table(
  Object.entries(rows).map(([shape, v]) => ({
    shape,
    'msgs/s': Math.round(median(v)),
    'x baseline': (median(v) / (shape.startsWith('ringpool') ? rp : base)).toFixed(2),
  })),
);
console.log('baseline: the raw-ring rows against "ack only", the ringpool rows against "no store"');
