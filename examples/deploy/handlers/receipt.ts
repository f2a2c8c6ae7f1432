// examples/deploy: a receipt, from this pod's durable mailbox: "send the e-mail" (simulated, ~2 ms). What is left of
// this mailbox when the pod stops stays in its journal on the pod's volume and runs when the pod starts again.
import { setTimeout as sleep } from 'node:timers/promises';
import type { HandlerContext } from '../../../workers/index.js';

export interface Receipt {
  order: string;
  sku: string;
  qty: number;
  charged: number;
}

export default async function receipt(r: Receipt, ctx: HandlerContext): Promise<void> {
  await sleep(2, undefined, { signal: ctx.signal });
}
