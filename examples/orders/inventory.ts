/**
 * Inventory as an actor, one per SKU: its stock lives in the thread that owns
 * the SKU, and one SKU's reservations run one at a time, in order, so stock
 * never goes wrong without a lock. Payments send it `{ id, qty, ... }` with
 * `{ key: sku }` (handle); the main thread reads stock through a typed proxy
 * (`rt.actor<typeof inventory>('inventory').ask.stock(sku)`).
 */
import { actor } from 'ringpool/worker';

export const INITIAL_STOCK = 1_000_000;

interface Stock {
  sku: string;
  left: number;
  reserved: number;
}

interface Item {
  id: number;
  qty: number;
  sentAt: number;
}

export default actor({
  // A real service would load the SKU's row here.
  init: (sku: string): Stock => ({ sku, left: INITIAL_STOCK, reserved: 0 }),
  handle(state: Stock, item: Item, ctx) {
    let h = 0;
    for (let i = 0; i < 2000; i++) h = (h * 31 + state.sku.charCodeAt(i % state.sku.length)) | 0;
    state.left -= item.qty;
    state.reserved += item.qty;
    ctx.send('shipping', { id: item.id, bin: h & 1023, sentAt: item.sentAt });
    return state.left;
  },
  methods: {
    stock(state: Stock) {
      return { left: state.left, reserved: state.reserved };
    },
  },
  // Keep every SKU for the whole run (a real service would passivate after a while and reload in init).
  idleMs: Infinity,
});
