// Compile-time checks of rt.actor<T>(): each @ts-expect-error line must fail to compile.
import { expectTypeOf } from 'vitest';
import type { Runtime } from 'ringpool';
import type orders from './orders-actor.js';

export async function check(rt: Runtime): Promise<void> {
  const o = rt.actor<typeof orders>('orders');

  const r = await o.ask.reserve('order-1', 'SKU-1', 2);
  expectTypeOf(r).toEqualTypeOf<{ ok: boolean; left: number }>();
  expectTypeOf(o.ask.restock('order-1', 'SKU-1', 5)).toEqualTypeOf<Promise<number>>();
  expectTypeOf(o.tell.reserve('order-1', 'SKU-1', 1)).toEqualTypeOf<number>();
  expectTypeOf(o.request('order-1', { sku: 'SKU-1' })).toEqualTypeOf<Promise<number>>();

  // @ts-expect-error -- qty must be a number
  await o.ask.reserve('order-1', 'SKU-1', '2');
  // @ts-expect-error -- the key comes first and is a string
  await o.ask.reserve(1, 'SKU-1', 2);
  // @ts-expect-error -- a missing argument
  await o.ask.reserve('order-1', 'SKU-1');
  // @ts-expect-error -- no such method
  await o.ask.cancel('order-1');
  // @ts-expect-error -- handle() takes { sku }
  await o.request('order-1', { qty: 1 });
  // @ts-expect-error -- tell has the same argument types
  o.tell.restock('order-1', 5, 'SKU-1');
}
