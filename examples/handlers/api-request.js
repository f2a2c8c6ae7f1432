// Demo backend (runs on the consumer threads): one API request costs
// `req.work` µs of CPU (parse, validate, price) and one call to a downstream
// service: normally a far API with room, simulated with a timer (5 ms);
// during the saturated episode a real HTTP call with fetch to the demo's
// saturated downstream (examples/downstream/: a few calls at once, the rest
// queued in it). Poison requests fail on every attempt (retried, then
// dead-lettered); 1 request in 500 meets a transient downstream error once
// (retried, then fine).
//
// The episode follows a wall-clock schedule the demo puts in the
// environment before the threads start (worker threads copy process.env when
// they spawn), so every thread, even one added later, agrees on it. On Ctrl-C
// the demo ends the episode early through a BroadcastChannel, so the drain is
// quick. Neither is ringpool machinery: they stand in for the real world.
import { setTimeout as sleep } from 'node:timers/promises';

const schedule = JSON.parse(process.env.RINGPOOL_DEMO_DOWNSTREAM ?? '{}');
const fastMs = schedule.fastMs ?? 5;
const url = schedule.url;
const slowFrom = schedule.slowFrom ?? 0; // epoch ms
let slowTo = schedule.slowTo ?? 0;

const channel = new BroadcastChannel('ringpool-demo-downstream');
channel.onmessage = (e) => {
  if (e.data?.type === 'recovered') slowTo = Math.min(slowTo, e.data.at);
};
channel.unref();

/** Whether a call made now meets the saturated downstream. */
function saturated() {
  const now = Date.now();
  return url !== undefined && now >= slowFrom && now < slowTo;
}

function burn(us) {
  const end = performance.now() + us / 1000;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
  return x;
}

export default async function handleRequest(req, ctx) {
  if (req.poison) throw new Error(`request ${req.id}: body does not parse (poison: fails on every attempt)`);
  burn(req.work);
  if (saturated()) {
    const res = await fetch(url, { method: 'POST', body: '{}' });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`request ${req.id}: downstream answered ${res.status}`);
  } else await sleep(fastMs);
  if (ctx.attempt === 1 && req.id % 500 === 250) throw new Error(`request ${req.id}: downstream answered 503 (transient)`);
  return req.items.length;
}
