// A typed handler module, for the compile-time checks in typed-mailboxes.ts (never run).
import type { HandlerContext } from 'ringpool/worker';

export interface Order {
  id: number;
  sku: string;
  qty: number;
}

export interface Receipt {
  id: number;
  total: number;
}

/** What the app's mailboxes take: ctx.send is typed with it. */
export interface AppMailboxes {
  [name: string]: { payload: unknown; result: unknown };
  orders: { payload: Order; result: Receipt };
  audit: { payload: { event: string }; result: void };
}

export default async function handle(order: Order, ctx: HandlerContext<AppMailboxes>): Promise<Receipt> {
  ctx.send('audit', { event: `order ${order.id}` });
  // @ts-expect-error -- audit takes { event }
  ctx.send('audit', { id: order.id });
  return { id: order.id, total: order.qty * 10 };
}
