// Charges the order with a (simulated) payment provider, then hands it to inventory.
// The provider's latency comes with the order (the producer plays the slow episode).
export default async function charge(order, ctx) {
  await new Promise((resolve) => setTimeout(resolve, order.providerMs));
  if (ctx.attempt === 1 && order.id % 97 === 13) throw new Error(`payment ${order.id}: provider timed out`);
  // keyed by SKU: the inventory actor of that SKU takes it (in order, with its stock)
  ctx.send('inventory', { id: order.id, qty: order.qty, sentAt: order.sentAt }, { key: order.sku });
}
