/**
 * ask() round trip at low load (one call at a time, the thread parked in
 * between as it would be at low load, or spinning when calls come back to
 * back): ringpool ask() with a plain handler and through a typed actor proxy,
 * next to piscina.run() and a raw postMessage round trip, in one command.
 * Then asks with 100 in flight: calls/s.
 *
 *   npm run build && node dist/bench/ask.js [--calls 5000] [--runs 3] [--quick]
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { createRuntime, type ActorDefinition } from '../runtime/index.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { header, machine, median, percentile, table } from './machine.js';
import { defaultResultsDir, fixture } from './paths.js';
import { cli } from '../examples/cli.js';

const { values: flags } = cli({
  usage: 'npm run bench:ask -- [flags]        (or: node dist/bench/ask.js [flags])',
  flags: {
    calls: { type: 'number', integer: true, min: 1, help: 'sequential calls per row (100 in flight: 4x as many)', defaultText: '5000, 500 with --quick' },
    runs: { type: 'number', integer: true, min: 1, help: 'runs of every row; the table shows medians', defaultText: '3, 1 with --quick' },
    quick: { type: 'boolean', help: 'one short run (CI smoke; figures mean little)' },
  },
});
const QUICK = flags.quick;
const CALLS = flags.calls ?? (QUICK ? 500 : 5000);
const RUNS = flags.runs ?? (QUICK ? 1 : 3);
const ECHO = fixture('echo.js');
const ECHO_ACTOR = fixture('echo-actor.js');
/** The type of bench/fixtures/echo-actor.js's default export. */
type EchoActor = ActorDefinition<{ n: number }, unknown, unknown, { bump: (state: { n: number }, by: number) => { n: number } }>;
const MSG = { id: 1, user: 'user-000042', sku: 'SKU-ABCDEFGH', qty: 3 };

interface Rtt {
  p50: number;
  p99: number;
  perSecond: number;
}

/** Time `n` sequential calls; `gapMs` > 0 waits between them (the callee parks: the low-load case). */
async function sequential(call: () => Promise<unknown>, n: number, gapMs: number): Promise<number[]> {
  for (let i = 0; i < 200; i++) await call(); // warm up
  const us: number[] = [];
  for (let i = 0; i < n; i++) {
    if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
    const a = performance.now();
    await call();
    us.push((performance.now() - a) * 1000);
  }
  return us.sort((a, b) => a - b);
}

async function concurrent(call: () => Promise<unknown>, n: number, width: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next++ < n) await call();
    }),
  );
  return (n / (performance.now() - t0)) * 1000;
}

async function measure(make: () => Promise<{ call: () => Promise<unknown>; close: () => Promise<unknown> }>, gapMs: number): Promise<Rtt> {
  const { call, close } = await make();
  const us = await sequential(call, gapMs > 0 ? Math.min(CALLS, 1000) : CALLS, gapMs);
  const perSecond = await concurrent(call, CALLS * 4, 100);
  await close();
  return { p50: percentile(us, 50), p99: percentile(us, 99), perSecond };
}

const systems: Record<string, () => Promise<{ call: () => Promise<unknown>; close: () => Promise<unknown> }>> = {
  'ringpool ask()': async () => {
    const rt = createRuntime({ mailboxes: { echo: { handler: ECHO, minThreads: 1, maxThreads: 1, autoscale: false } } });
    await rt.start();
    return { call: () => rt.ask('echo', MSG), close: () => rt.close() };
  },
  'ringpool actor proxy ask.bump()': async () => {
    const rt = createRuntime({ mailboxes: { a: { handler: ECHO_ACTOR, minThreads: 1, maxThreads: 1, autoscale: false } } });
    await rt.start();
    const ref = rt.actor<EchoActor>('a');
    let k = 0;
    return { call: () => ref.ask.bump(`k${k++ % 100}`, 1), close: () => rt.close() };
  },
  'piscina.run()': async () => {
    const pool = new Piscina({ filename: ECHO.href, minThreads: 1, maxThreads: 1 });
    await pool.run(MSG);
    return { call: () => pool.run(MSG), close: () => pool.destroy() };
  },
  'raw postMessage round trip': async () => {
    const w = new Worker(
      `const { parentPort } = require('node:worker_threads'); parentPort.on('message', ({ port, msg }) => { port.on('message', (m) => port.postMessage(m)); });`,
      { eval: true },
    );
    const { port1, port2 } = new MessageChannel();
    w.postMessage({ port: port2 }, [port2]);
    const waiting: Array<(v: unknown) => void> = [];
    port1.on('message', (m) => waiting.shift()!(m));
    return {
      call: () =>
        new Promise((resolve) => {
          waiting.push(resolve);
          port1.postMessage(MSG);
        }),
      close: async () => {
        port1.close();
        await w.terminate();
      },
    };
  },
};

async function main(): Promise<void> {
  header(`ask() round trip: ${CALLS} sequential calls (back to back, and 1 ms apart: the callee parks), then 100 in flight; median of ${RUNS} runs`);
  const rows: Array<Record<string, string | number>> = [];
  const raw: Record<string, { busy: Rtt[]; parked: Rtt[] }> = {};
  for (let r = 0; r < RUNS; r++) {
    for (const [name, make] of Object.entries(systems)) {
      const e = (raw[name] ??= { busy: [], parked: [] });
      e.busy.push(await measure(make, 0));
      e.parked.push(await measure(make, 1));
    }
  }
  for (const [system, { busy, parked }] of Object.entries(raw)) {
    rows.push({
      system,
      'p50 µs (back to back)': median(busy.map((x) => x.p50)).toFixed(1),
      'p99 µs (back to back)': median(busy.map((x) => x.p99)).toFixed(1),
      'p50 µs (1 ms apart)': median(parked.map((x) => x.p50)).toFixed(1),
      'p99 µs (1 ms apart)': median(parked.map((x) => x.p99)).toFixed(1),
      'calls/s (100 in flight)': Math.round(median(busy.map((x) => x.perSecond))),
    });
  }
  table(rows);
  mkdirSync(defaultResultsDir, { recursive: true });
  const file = new URL(`ask-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, defaultResultsDir);
  const data = JSON.stringify({ machine: machine(), calls: CALLS, runs: RUNS, raw, rows }, null, 2);
  writeFileSync(file, data);
  writeFileSync(new URL('ask-latest.json', defaultResultsDir), data);
  console.log(`\nwrote ${file.pathname}`);
}

await main();
