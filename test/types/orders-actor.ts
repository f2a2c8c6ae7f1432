// A typed actor module, for the compile-time checks in types.test.ts (never run).
import { actor } from 'ringpool/worker';

interface Stock {
  bySku: Map<string, number>;
}

export default actor({
  init: (): Stock => ({ bySku: new Map() }),
  handle(state: Stock, msg: { sku: string }) {
    return state.bySku.get(msg.sku) ?? 0;
  },
  methods: {
    // `state` is typed from init(), `this` is the message context
    reserve(state, sku: string, qty: number) {
      if (this.key === undefined) throw new Error('keyed only');
      const left = (state.bySku.get(sku) ?? 0) - qty;
      state.bySku.set(sku, left);
      return { ok: left >= 0, left };
    },
    async restock(state: Stock, sku: string, qty: number): Promise<number> {
      state.bySku.set(sku, (state.bySku.get(sku) ?? 0) + qty);
      return state.bySku.get(sku)!;
    },
  },
});
