/**
 * W4's wake-up gap, step by step: messages at a fixed rate (1,000/s, the
 * consumer parked in between), each timestamped at every step of its way
 * from send() to its handler, through the runtime's trace points
 * (runtime/shared/faults.ts), next to the hand-written ring's end to end in
 * the same command. Prints the median (and p99) of each step.
 *
 *   npm run bench:trace [-- --seconds 3 --rate 1000 --codec json]
 */
import { BroadcastChannel } from 'node:worker_threads';
import { createRuntime, type CodecOption } from '../runtime/index.js';
import { setFaultHook } from '../runtime/shared/faults.js';
import { header, percentile } from './machine.js';
import { openNaiveRing } from './naive-ring.js';
import { stamped } from './messages.js';
import { fixture } from './paths.js';
import { cli } from '../examples/cli.js';

const { values: flags } = cli({
  usage: 'npm run bench:trace -- [flags]        (or: node dist/bench/trace.js [flags])',
  flags: {
    seconds: { type: 'number', gt: 0, arg: 'S', default: 3, help: 'seconds of messages at the rate' },
    rate: { type: 'number', gt: 0, arg: 'R', default: 1000, help: 'messages a second (the consumer parks in between)' },
    codec: { type: 'string', choices: ['json', 'msgpack', 'v8'], default: 'json', help: "the mailbox's codec (raw takes bytes, not these messages)" },
  },
});
const SECONDS = flags.seconds;
const RATE = flags.rate;
const CODEC: CodecOption = flags.codec as CodecOption;
const clock = (): number => performance.timeOrigin + performance.now();
/** The send time W4 stamps (the ring's consumer takes its handler start with the same expression). */
const now = clock;

const sleepUntil = (t: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, t - performance.now())));

async function traceRingpool(): Promise<Record<string, number[]>> {
  const rt = createRuntime({
    mailboxes: { trace: { handler: fixture('ringpool-trace.js'), minThreads: 1, maxThreads: 1, autoscale: false, codec: CODEC } },
  });
  await rt.start();
  const total = Math.round(RATE * SECONDS);
  const call = new Float64Array(total);
  const encoded = new Float64Array(total);
  const published = new Float64Array(total);
  const woke = new Uint8Array(total);
  const returned = new Float64Array(total);
  const consumer = new Float64Array((total + 1000) * 4);
  let got = 0;
  let traced = 0;
  const channel = new BroadcastChannel('ringpool-bench-trace');
  channel.onmessage = (ev) => {
    const d = (ev as { data: Float64Array }).data;
    consumer.set(d, got * 4);
    got += d.length / 4;
    for (let k = 0; k < d.length; k += 4) if (d[k]! >= 0) traced++;
  };
  let cur = 0;
  setFaultHook((point, tag) => {
    if (point === 'encoded') encoded[cur] = clock();
    else if (point === 'published') {
      published[cur] = clock();
      woke[cur] = tag;
    }
  });
  // Warm up, then one message every 1/RATE s (the consumer parks in between).
  for (let i = 0; i < 500; i++) rt.send('trace', { ...stamped(-1), i: -1 });
  await rt.onIdle();
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    await sleepUntil(t0 + (i * 1000) / RATE);
    cur = i;
    const m = { ...stamped(i), i };
    call[i] = clock();
    rt.send('trace', m);
    returned[i] = clock();
  }
  await rt.onIdle();
  while (traced < total) await new Promise((r) => setTimeout(r, 20));
  setFaultHook(null);
  channel.close();
  await rt.close();
  const steps: Record<string, number[]> = {
    'send(): call -> encoded': [],
    'send(): encoded -> published (reserve, write, publish, notify)': [],
    'send(): published -> returned': [],
    'consumer: published -> back from the futex': [],
    'consumer: back from the futex -> claimed': [],
    'consumer: claimed -> handler starts (decode, ctx, call)': [],
    'end to end: call -> handler starts': [],
  };
  let parked = 0;
  for (let k = 0; k < got; k++) {
    const [i, w, c, h] = [consumer[k * 4]!, consumer[k * 4 + 1]!, consumer[k * 4 + 2]!, consumer[k * 4 + 3]!];
    if (i < 0) continue;
    const us = (a: number, b: number): number => (b - a) * 1000;
    steps['send(): call -> encoded']!.push(us(call[i]!, encoded[i]!));
    steps['send(): encoded -> published (reserve, write, publish, notify)']!.push(us(encoded[i]!, published[i]!));
    steps['send(): published -> returned']!.push(us(published[i]!, returned[i]!));
    // Only messages that found the consumer parked (it was woken for them) say how long a wake-up takes.
    if (woke[i] === 1 && w > published[i]!) {
      parked++;
      steps['consumer: published -> back from the futex']!.push(us(published[i]!, w));
      steps['consumer: back from the futex -> claimed']!.push(us(w, c));
    }
    steps['consumer: claimed -> handler starts (decode, ctx, call)']!.push(us(c, h));
    steps['end to end: call -> handler starts']!.push(us(call[i]!, h));
    const wokeHere = woke[i] === 1 && w > published[i]!;
    perMessage.push([us(call[i]!, encoded[i]!), us(encoded[i]!, published[i]!), us(published[i]!, returned[i]!), wokeHere ? us(published[i]!, w) : NaN, wokeHere ? us(w, c) : NaN, us(c, h), us(call[i]!, h), call[i]!]);
  }
  console.log(`ringpool (codec ${String(CODEC)}): ${traced} messages traced, ${parked} found the consumer parked`);
  return steps;
}

/** Each traced message's steps (µs, in the order of `steps`; NaN: it did not find the consumer parked), then its send time. */
const perMessage: number[][] = [];

/** Where the slowest 1 % of messages spent their time: each step's median among them (the tail's make-up, not each step's own tail). */
function tail(names: string[]): void {
  const byE2e = [...perMessage].sort((a, b) => b[6]! - a[6]!);
  const slow = byE2e.slice(0, Math.max(1, Math.ceil(byE2e.length / 100)));
  console.log(`\nthe slowest 1 % (${slow.length} messages, end to end >= ${slow[slow.length - 1]![6]!.toFixed(0)} µs): each step's median among them`);
  names.forEach((name, k) => {
    const v = slow.map((r) => r[k]!).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
    console.log(`${name.padEnd(66)} ${v.length === 0 ? '       -' : percentile(v, 50).toFixed(1).padStart(8)}  (${v.length} of them)`);
  });
  if (process.env.TRACE_ROWS) for (const r of slow.slice(0, 12)) console.log(r.slice(0, 7).map((x) => x.toFixed(0).padStart(6)).join(''));
  // When they were sent: spread over the run, or in bursts (a GC, a timer, a neighbour on the cores).
  const t0 = Math.min(...perMessage.map((r) => r[7]!));
  console.log(`sent at (ms into the run): ${slow.map((r) => (r[7]! - t0).toFixed(0)).sort((a, b) => Number(a) - Number(b)).join(' ')}`);
}

async function ringEndToEnd(): Promise<number[]> {
  const s = await openNaiveRing('stamp');
  for (let i = 0; i < 500; i++) await s.send(stamped(i));
  await s.drain();
  await s.latencies(500);
  const total = Math.round(RATE * SECONDS);
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    await sleepUntil(t0 + (i * 1000) / RATE);
    const m = stamped(i);
    m.t = now();
    await s.send(m);
  }
  await s.drain();
  const lat = [...(await s.latencies(total))];
  await s.close();
  return lat;
}

const row = (name: string, v: number[]): string => {
  const sorted = [...v].sort((a, b) => a - b);
  return `${name.padEnd(66)} ${percentile(sorted, 50).toFixed(1).padStart(8)} ${percentile(sorted, 99).toFixed(1).padStart(8)}`;
};

header(`W4's wake-up, step by step: ${RATE} msg/s for ${SECONDS} s, 1 consumer thread`);
const steps = await traceRingpool();
const ring = await ringEndToEnd();
console.log(`${'step'.padEnd(66)} ${'p50 µs'.padStart(8)} ${'p99 µs'.padStart(8)}`);
for (const [name, v] of Object.entries(steps)) console.log(row(name, v));
console.log(row('hand-written ring, end to end: call -> handler starts', ring));
tail(Object.keys(steps));
