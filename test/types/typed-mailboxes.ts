// Compile-time checks of typed mailboxes (issue #32): each @ts-expect-error line must fail to compile.
import { expectTypeOf } from 'vitest';
import { createRuntime, mailbox, type Runtime } from 'ringpool';
import type { Order, Receipt } from './orders-handler.js';

export async function check(): Promise<void> {
  // Typed from the handler module: names and payloads are checked, asks resolve to its result.
  const rt = createRuntime({
    mailboxes: {
      orders: { handler: mailbox<typeof import('./orders-handler.js')>(new URL('./orders-handler.js', import.meta.url)) },
      audit: { handler: new URL('./audit.js', import.meta.url) },
    },
  });
  rt.send('orders', { id: 1, sku: 'A', qty: 2 });
  rt.send('audit', { anything: true }); // a plain URL: its payload is unknown
  expectTypeOf(rt.ask('orders', { id: 1, sku: 'A', qty: 2 })).toEqualTypeOf<Promise<Receipt>>();
  expectTypeOf(await rt.sendAsync('orders', { id: 2, sku: 'B', qty: 1 })).toEqualTypeOf<number>();
  rt.sendBatch('orders', [{ id: 3, sku: 'C', qty: 1 }]);
  rt.stats('orders');
  // @ts-expect-error -- a typo in the mailbox name
  rt.send('ordrs', { id: 1, sku: 'A', qty: 2 });
  // @ts-expect-error -- a wrong payload shape
  rt.send('orders', { id: 1, sku: 'A' });
  // @ts-expect-error -- qty is a number
  await rt.sendAsync('orders', { id: 1, sku: 'A', qty: '2' });
  // @ts-expect-error -- every payload of a batch is checked
  rt.sendBatch('orders', [{ id: 3, sku: 'C', qty: 1 }, { sku: 'D' }]);
  // @ts-expect-error -- an ask's payload too
  await rt.ask('orders', { sku: 'A' });
  // @ts-expect-error -- and names everywhere
  rt.stats('ordres');

  // A type map, by annotation.
  const typed: Runtime<{ orders: { payload: Order; result: Receipt } }> = createRuntime({ mailboxes: { orders: { handler: new URL('./orders-handler.js', import.meta.url) } } });
  expectTypeOf(typed.ask('orders', { id: 1, sku: 'A', qty: 1 })).toEqualTypeOf<Promise<Receipt>>();
  // @ts-expect-error -- checked the same
  typed.send('orders', { id: 1 });

  // Untyped use keeps working: any name, any payload, and a Runtime goes where a Runtime goes.
  const plain = createRuntime({ mailboxes: { work: { handler: new URL('./work.js', import.meta.url) } } });
  const name: string = 'work';
  plain.send(name, { whatever: 1 });
  expectTypeOf(plain.ask<number>(name, 1)).toEqualTypeOf<Promise<number>>();
  const asPlain: Runtime = rt;
  void asPlain;
}
