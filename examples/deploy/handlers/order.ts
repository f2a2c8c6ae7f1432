// examples/deploy: an order read from the Redis stream (on a consumer thread). It waits ~20 ms on a downstream
// (a payment API, simulated with a timer), then hands its receipt to the durable 'receipts' mailbox of this pod:
// the stream entry is acknowledged to Redis only once the receipt is on this pod's disk (a ctx.send to a durable
// mailbox is journaled before its sender counts as done).
import { setTimeout as sleep } from 'node:timers/promises';
import { UnrecoverableError, type HandlerContext } from '../../../workers/index.js';

export interface Order {
  id: string;
  sku: string;
  qty: number;
}

/** What the downstream call costs, per order: the S of the numbers in examples/deploy/README.md. */
export const DOWNSTREAM_MS = 20;

export default async function order(o: Order, ctx: HandlerContext): Promise<void> {
  if (typeof o?.id !== 'string' || typeof o.sku !== 'string' || !Number.isInteger(o.qty)) {
    throw new UnrecoverableError('not an order: { id: string, sku: string, qty: integer }'); // dead-lettered at once
  }
  await sleep(DOWNSTREAM_MS, undefined, { signal: ctx.signal });
  ctx.send('receipts', { order: o.id, sku: o.sku, qty: o.qty, charged: Date.now() });
}
