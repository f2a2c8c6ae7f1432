// examples/redis: an order takes 1 ms of waiting on a downstream (a database, a payment API), simulated with a timer.
import { setTimeout as sleep } from 'node:timers/promises';

export default async function order(o) {
  await sleep(1);
  if (typeof o?.order !== 'number') throw new Error('not an order');
}
