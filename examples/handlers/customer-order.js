// examples/redis: a customer's order takes 1 ms of waiting on a downstream, then is written down in the
// customer's ledger (a Redis list, RPUSH of its seq) with the fencing epoch it ran under. Keyed by customer:
// a customer's orders run one at a time, in the order they were placed, whichever process owns the partition.
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from 'redis';

let client = null;
function redis(url) {
  client ??= createClient({ url }).on('error', () => undefined).connect();
  return client;
}

export default async function order(o, ctx) {
  if (typeof o?.seq !== 'number') throw new Error('not an order');
  await sleep(1);
  const c = await redis(o.url);
  await c.rPush(`${o.ledger}:${ctx.key}`, `${o.seq}:${ctx.fence}`);
}
