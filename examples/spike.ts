/**
 * A spike, absorbed: offered load at 5x one thread's capacity for a while,
 * then quiet. The queue takes the burst, the autoscaler adds threads within a
 * tick, the backlog drains, and the threads come back down after the window.
 * One line a second, a summary at the end.
 *
 *   npm run build && node dist/examples/spike.js [--spike 10] [--work 200] [--factor 5] [--max 2] [--window 5000] [--tick 1000]
 */
import { availableParallelism } from 'node:os';
import { Registry } from 'prom-client';
import { createRuntime, type ScaleEvent } from '../runtime/index.js';
import { createMetrics } from '../metrics/index.js';
import { cli } from './cli.js';

const { values: flags } = cli({
  usage: 'npm run example:spike -- [flags]        (or: node dist/examples/spike.js [flags])',
  flags: {
    spike: { type: 'number', gt: 0, arg: 'S', default: 10, help: 'seconds of the spike' },
    work: { type: 'number', gt: 0, arg: 'US', default: 200, help: 'µs of CPU a message' },
    factor: { type: 'number', gt: 0, arg: 'F', default: 5, help: "offered load during the spike, in multiples of one thread's capacity" },
    max: { type: 'number', integer: true, min: 1, default: Math.min(2, availableParallelism()), defaultText: 'min(2, cores)', help: 'most consumer threads (maxThreads)' },
    window: { type: 'number', gt: 0, arg: 'MS', default: 5000, help: "the autoscaler's scale-down window" },
    tick: { type: 'number', gt: 0, arg: 'MS', default: 1000, help: "the autoscaler's tick" },
  },
});
const SPIKE_S = flags.spike;
const WORK_US = flags.work;
const FACTOR = flags.factor;
const MAX = flags.max;
const WINDOW_MS = flags.window;
const TICK_MS = flags.tick;
const perThread = Math.round(1e6 / WORK_US);
const offered = perThread * FACTOR;

/** p99 of the observations between two cumulative bucket snapshots (linear inside the bucket). */
function p99(prev: Map<string, number>, cur: Map<string, number>): number {
  const les = [...cur.keys()].filter((k) => k !== '+Inf').sort((a, b) => Number(a) - Number(b));
  const total = (cur.get('+Inf') ?? 0) - (prev.get('+Inf') ?? 0);
  if (total <= 0) return NaN;
  const rank = 0.99 * total;
  let lower = 0;
  let below = 0;
  for (const le of les) {
    const n = (cur.get(le) ?? 0) - (prev.get(le) ?? 0);
    if (n >= rank) return lower + ((Number(le) - lower) * (rank - below)) / Math.max(1, n - below);
    lower = Number(le);
    below = n;
  }
  return lower;
}

async function e2eBuckets(registry: Registry): Promise<Map<string, number>> {
  const json = await registry.getMetricsAsJSON();
  const h = json.find((m) => m.name === 'ringpool_end_to_end_seconds');
  const out = new Map<string, number>();
  for (const v of (h?.values ?? []) as Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>) {
    if (v.metricName?.endsWith('_bucket')) out.set(String(v.labels.le), v.value);
  }
  return out;
}

async function main(): Promise<void> {
  const rt = createRuntime({
    mailboxes: {
      jobs: {
        handler: new URL('../../examples/handlers/burn.js', import.meta.url),
        minThreads: 1,
        maxThreads: MAX,
        capacityBytes: 64 << 20,
        autoscale: { targetLagSeconds: 1, tickMs: TICK_MS, scaleDownWindowMs: WINDOW_MS },
      },
    },
  });
  const registry = new Registry();
  createMetrics(rt, { registry });
  const scale: Array<ScaleEvent & { at: number }> = [];
  const t0 = performance.now();
  rt.on('scale', (e) => scale.push({ ...e, at: performance.now() - t0 }));
  await rt.start();
  console.log(
    `spike: ${offered}/s offered for ${SPIKE_S} s (${FACTOR}x one thread's ~${perThread}/s at ${WORK_US} µs a message), then quiet; ` +
      `threads 1..${MAX}, autoscale tick ${TICK_MS} ms, scale-down window ${WINDOW_MS} ms`,
  );
  console.log('   t  offered/s  processed/s     depth   lag(s)  threads  e2e p99(ms)');

  let sent = 0;
  let lastSent = 0;
  let lastProcessed = 0;
  let prevBuckets = await e2eBuckets(registry);
  let peakP99 = 0;
  let maxDepth = 0;
  let sec = 0;
  const line = async (): Promise<void> => {
    sec++;
    const s = rt.stats('jobs');
    const cur = await e2eBuckets(registry);
    const p = p99(prevBuckets, cur) * 1000;
    prevBuckets = cur;
    if (p > peakP99) peakP99 = p;
    if (s.depth > maxDepth) maxDepth = s.depth;
    console.log(
      `${String(sec).padStart(4)} ${String(sent - lastSent).padStart(10)} ${String(s.processed - lastProcessed).padStart(12)} ${String(s.depth).padStart(9)} ` +
        `${s.estimatedLagSeconds.toFixed(1).padStart(8)} ${String(s.threads).padStart(8)} ${(Number.isNaN(p) ? '-' : p.toFixed(1)).padStart(12)}`,
    );
    lastSent = sent;
    lastProcessed = s.processed;
  };
  const status = setInterval(() => void line(), 1000);

  // The spike: every 1 ms, send what the rate owes.
  const spikeEnd = t0 + SPIKE_S * 1000;
  while (performance.now() < spikeEnd) {
    const due = Math.floor(((performance.now() - t0) / 1000) * offered);
    while (sent < due) rt.send('jobs', { us: WORK_US, n: sent++ });
    await new Promise((r) => setTimeout(r, 1));
  }
  const drainStart = performance.now();
  await rt.onIdle();
  const drained = performance.now() - drainStart;
  // Quiet: wait for the threads to come back down.
  while (rt.stats('jobs').threads > 1) await new Promise((r) => setTimeout(r, 100));
  clearInterval(status);
  await line();
  const s = rt.stats('jobs');
  const firstUp = scale.find((e) => e.to > e.from);
  const lastDown = [...scale].reverse().find((e) => e.to < e.from);
  console.log('\nsummary');
  const rows: Array<[string, string | number]> = [
    ['offered / processed', `${sent} / ${s.processed}`],
    ['lost', sent - s.processed - s.deadLettered],
    ['peak backlog', maxDepth],
    ['backlog drained after the spike in', `${(drained / 1000).toFixed(1)} s`],
    ['spike start → scale-up decision', firstUp ? `${firstUp.at.toFixed(0)} ms (tick ${TICK_MS} ms)` : 'none'],
    ['threads at peak', Math.max(1, ...scale.map((e) => e.to))],
    ['back to 1 thread at', lastDown ? `${(lastDown.at / 1000).toFixed(1)} s` : '-'],
    ['peak end-to-end p99 (1 s windows)', `${peakP99.toFixed(0)} ms`],
  ];
  for (const [k, v] of rows) console.log(`  ${k.padEnd(36)} ${v}`);
  for (const e of scale) console.log(`  scale at ${(e.at / 1000).toFixed(2)} s: ${e.from} -> ${e.to} threads (${e.reason})`);
  await rt.close();
}

await main();
