// Demo handler: "price" an order with ~payload.work µs of CPU, fail now and then,
// and refuse orders marked poison for good.
import { UnrecoverableError } from 'ringpool/worker';

function burn(us) {
  const end = performance.now() + us / 1000;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
  return x;
}

export default function priceOrder(order, ctx) {
  if (order.poison) throw new UnrecoverableError(`order ${order.id}: unknown SKU ${order.sku}`);
  // a flaky downstream: 2% of first attempts fail and are retried with backoff
  if (ctx.attempt === 1 && order.id % 50 === 7) throw new Error(`order ${order.id}: pricing service timed out`);
  burn(order.work);
  return order.qty * 9.99;
}
