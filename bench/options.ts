/**
 * The suite's command-line flags: defaults, --quick, validation, --help
 * (parsed strictly by examples/cli.ts).
 * Message counts are per speed class (fast: ringpool, the hand-written ring,
 * piscina batched, raw postMessage; task: a pool task per message; redis:
 * BullMQ; stream: ringpool's Redis Streams mailbox) so every row runs about
 * a second at its own speed.
 */
import type { SpeedClass, WorkloadId } from './session.js';
import { cli, fail, usage, type Command, type NumberFlag, type Parsed } from '../examples/cli.js';
import { defaultResultsDir } from './paths.js';

export type Counts = Record<SpeedClass, number>;

export interface BenchOptions {
  runs: number;
  quick: boolean;
  workloads: WorkloadId[];
  /** Only subjects whose id or system contains one of these (empty: all). */
  systems: string[];
  w1: Counts;
  /** W1: a run offers its count again until it has lasted this long (a run of 0.3 s measured mostly its warm-up and the scheduler). */
  w1Seconds: number;
  w2: Counts;
  w3: Counts;
  w5: Counts;
  /** W4: seconds offered at each rate. */
  w4Seconds: number;
  /** W4: the fixed offered rate, msg/s. */
  w4Rate: number;
  /** W4: the second rate, as a share of the subject's W1 median. */
  w4Load: number;
  /** Multiplies every message count and the W4 duration. */
  scale: number;
  outDir: string;
  /** Also write the chart to docs/bench.svg (for docs/benchmarks.md). */
  docs: boolean;
  bullmqConcurrency: number;
}

const FULL = {
  w1: { fast: 300_000, task: 20_000, redis: 3_000, stream: 60_000 },
  w2: { fast: 20_000, task: 10_000, redis: 2_000, stream: 5_000 },
  w3: { fast: 200_000, task: 20_000, redis: 2_000, stream: 20_000 },
  // 20,000: at 5,000 the msgpack row ran 0.2 s and measured its warm-up (1.9x json; 3.6x at 30,000).
  w5: { fast: 20_000, task: 3_000, redis: 500, stream: 1_000 },
  w4Seconds: 2,
  w1Seconds: 2,
} as const;

/** One tiny iteration of everything: for CI, so the harness cannot rot (figures meaningless). */
const QUICK = {
  w1: { fast: 2_000, task: 300, redis: 100, stream: 500 },
  w2: { fast: 200, task: 200, redis: 50, stream: 50 },
  w3: { fast: 2_000, task: 300, redis: 100, stream: 100 },
  w5: { fast: 40, task: 30, redis: 10, stream: 10 },
  w4Seconds: 0.2,
  w1Seconds: 0,
} as const;

const COUNT_HELP: Record<'w1' | 'w2' | 'w3' | 'w5', string> = {
  w1: 'W1 messages',
  w2: 'W2 messages',
  w3: 'W3 burst size',
  w5: 'W5 64 KiB messages',
};

function countFlags(): Record<string, NumberFlag> {
  const flags: Record<string, NumberFlag> = {};
  for (const w of ['w1', 'w2', 'w3', 'w5'] as const) {
    for (const c of ['fast', 'task', 'redis', 'stream'] as const) {
      flags[`${w}-${c}`] = { type: 'number', integer: true, min: 1, help: `${COUNT_HELP[w]}, ${c} class`, defaultText: `${FULL[w][c]}, ${QUICK[w][c]} with --quick` };
    }
  }
  return flags;
}

/** The suite's command line (bench/suite.ts, and `npm run bench`, bench/run.ts). */
export const BENCH = {
  usage: 'npm run bench -- [flags]        (or: node --expose-gc dist/bench/suite.js [flags])',
  flags: {
    runs: { type: 'number', integer: true, min: 1, help: 'runs of every row; the tables show medians', defaultText: '3, 1 with --quick' },
    quick: { type: 'boolean', help: 'one tiny iteration of every row (CI smoke; figures mean nothing)' },
    only: { type: 'string', arg: 'w1,w4', expected: 'workloads w1..w5, comma-separated', help: 'workloads to run', defaultText: 'all: w1,w2,w3,w4,w5' },
    systems: { type: 'string', arg: 'a,b', expected: 'a comma-separated list', help: 'rows whose id or system contains one of these (e.g. ringpool,piscina)', defaultText: 'all' },
    ...countFlags(),
    'w1-seconds': { type: 'number', gt: 0, arg: 'S', help: 'W1: each run offers its count again until it has lasted S seconds', defaultText: `${FULL.w1Seconds}, ${QUICK.w1Seconds} with --quick` },
    'w4-seconds': { type: 'number', gt: 0, arg: 'S', help: 'W4 seconds at each offered rate', defaultText: `${FULL.w4Seconds}, ${QUICK.w4Seconds} with --quick` },
    'w4-rate': { type: 'number', gt: 0, arg: 'R', default: 1000, help: 'W4 fixed offered rate, msg/s' },
    'w4-load': { type: 'number', gt: 0, arg: 'F', default: 0.5, help: "W4 second rate as a share of the row's W1 median (needs w1 in the run)" },
    scale: { type: 'number', gt: 0, arg: 'F', default: 1, help: 'multiply every count and the W4 duration by F (e.g. 0.2 for a short look)' },
    out: { type: 'string', arg: 'DIR', expected: 'a folder', help: 'results folder', defaultText: 'bench/results/' },
    docs: { type: 'boolean', help: 'also write the chart to docs/bench.svg (for the README)' },
    'bullmq-concurrency': { type: 'number', integer: true, min: 1, default: 1, help: 'BullMQ worker concurrency' },
  },
  notes: `speed classes: fast = ringpool, the hand-written ring, piscina batched, raw postMessage;
task = a pool task per message (piscina.run, tinypool, workerpool); redis = BullMQ;
stream = ringpool's Redis Streams mailbox (consumer processes on the same Redis as BullMQ).
BullMQ uses REDIS_URL, else redis://127.0.0.1:6379, and is skipped (reason printed) if no Redis answers.`,
} as const satisfies Command;

export const USAGE = usage(BENCH);

function list(v: string | undefined): string[] {
  return (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

function build({ values: v }: Parsed<typeof BENCH.flags>): BenchOptions {
  const quick = v.quick;
  const base = quick ? QUICK : FULL;
  const o: BenchOptions = {
    runs: v.runs ?? (quick ? 1 : 3),
    quick,
    workloads: ['w1', 'w2', 'w3', 'w4', 'w5'],
    systems: [],
    w1: { ...base.w1 },
    w2: { ...base.w2 },
    w3: { ...base.w3 },
    w5: { ...base.w5 },
    w4Seconds: v['w4-seconds'] ?? base.w4Seconds,
    w1Seconds: v['w1-seconds'] ?? base.w1Seconds,
    w4Rate: v['w4-rate'],
    w4Load: v['w4-load'],
    scale: v.scale,
    outDir: v.out ?? defaultResultsDir.pathname,
    docs: v.docs,
    bullmqConcurrency: v['bullmq-concurrency'],
  };
  for (const w of ['w1', 'w2', 'w3', 'w5'] as const) {
    for (const c of ['fast', 'task', 'redis', 'stream'] as const) {
      const n = (v as unknown as Record<string, number | undefined>)[`${w}-${c}`];
      if (n !== undefined) o[w][c] = n;
    }
  }
  if (v.only !== undefined) {
    const ws = list(v.only).map((s) => s.toLowerCase());
    if (ws.length === 0 || ws.some((w) => !/^w[1-5]$/.test(w))) fail('--only', BENCH.flags.only.expected, v.only);
    o.workloads = ws as WorkloadId[];
  }
  if (v.systems !== undefined) {
    o.systems = list(v.systems);
    if (o.systems.length === 0) fail('--systems', BENCH.flags.systems.expected, v.systems);
  }
  if (o.scale !== 1) {
    for (const w of ['w1', 'w2', 'w3', 'w5'] as const) {
      for (const c of ['fast', 'task', 'redis', 'stream'] as const) o[w][c] = Math.max(1, Math.round(o[w][c] * o.scale));
    }
    o.w4Seconds *= o.scale;
    o.w1Seconds *= o.scale;
  }
  return o;
}

/** The suite's options from process.argv: the usage and exit 0 on --help, the refusal and exit 2 on a bad flag. */
export function benchOptions(argv: readonly string[] = process.argv.slice(2)): BenchOptions {
  return cli(BENCH, build, argv);
}
