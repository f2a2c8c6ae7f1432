/**
 * The suite's command-line flags: defaults, --quick, validation, --help.
 * Message counts are per speed class (fast: ringpool, the hand-written ring,
 * piscina batched, raw postMessage; task: a pool task per message; redis:
 * BullMQ; stream: ringpool's Redis Streams mailbox) so every row runs about
 * a second at its own speed.
 */
import type { SpeedClass, WorkloadId } from './session.js';
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
  /** Also write the chart to docs/bench.svg (for the README). */
  docs: boolean;
  bullmqConcurrency: number;
  help: boolean;
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

export const USAGE = `npm run bench -- [flags]        (or: node --expose-gc dist/bench/suite.js [flags])

  --runs N                runs of every row; the tables show medians (default 3)
  --quick                 one tiny iteration of every row (CI smoke; figures mean nothing)
  --only w1,w4            workloads to run (default all: w1 w2 w3 w4 w5)
  --systems a,b           rows whose id or system contains one of these (e.g. ringpool,piscina)
  --w1-fast N --w1-task N --w1-redis N    W1 messages per speed class (${FULL.w1.fast}, ${FULL.w1.task}, ${FULL.w1.redis}; --w1-stream ${FULL.w1.stream})
  --w1-seconds S          W1: each run offers its count again until it has lasted S seconds (${FULL.w1Seconds})
  --w2-fast N --w2-task N --w2-redis N    W2 messages (${FULL.w2.fast}, ${FULL.w2.task}, ${FULL.w2.redis})
  --w3-fast N --w3-task N --w3-redis N    W3 burst size (${FULL.w3.fast}, ${FULL.w3.task}, ${FULL.w3.redis})
  --w5-fast N --w5-task N --w5-redis N    W5 64 KiB messages (${FULL.w5.fast}, ${FULL.w5.task}, ${FULL.w5.redis})
  --w4-seconds S          W4 seconds at each offered rate (${FULL.w4Seconds})
  --w4-rate R             W4 fixed offered rate, msg/s (1000)
  --w4-load F             W4 second rate as a share of the row's W1 median (0.5; needs w1 in the run)
  --scale F               multiply every count and the W4 duration by F (e.g. 0.2 for a short look)
  --out DIR               results folder (default bench/results/)
  --docs                  also write the chart to docs/bench.svg (for the README)
  --bullmq-concurrency N  BullMQ worker concurrency (1)
  --help

speed classes: fast = ringpool, the hand-written ring, piscina batched, raw postMessage;
task = a pool task per message (piscina.run, tinypool, workerpool); redis = BullMQ;
stream = ringpool's Redis Streams mailbox (consumer processes on the same Redis as BullMQ).
BullMQ uses REDIS_URL, else redis://127.0.0.1:6379, and is skipped (reason printed) if no Redis answers.`;

function fail(msg: string): never {
  throw new Error(`${msg}\n\n${USAGE}`);
}

function positive(flag: string, v: string | undefined, integer: boolean): number {
  const n = Number(v);
  if (v === undefined || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    fail(`--${flag} must be a positive ${integer ? 'integer' : 'number'}, got ${v === undefined ? 'nothing' : `\`${v}\``}`);
  }
  return n;
}

export function parseOptions(argv: readonly string[]): BenchOptions {
  const quick = argv.includes('--quick');
  const base = quick ? QUICK : FULL;
  const o: BenchOptions = {
    runs: quick ? 1 : 3,
    quick,
    workloads: ['w1', 'w2', 'w3', 'w4', 'w5'],
    systems: [],
    w1: { ...base.w1 },
    w2: { ...base.w2 },
    w3: { ...base.w3 },
    w5: { ...base.w5 },
    w4Seconds: base.w4Seconds,
    w1Seconds: base.w1Seconds,
    w4Rate: 1000,
    w4Load: 0.5,
    scale: 1,
    outDir: defaultResultsDir.pathname,
    docs: false,
    bullmqConcurrency: 1,
    help: argv.includes('--help') || argv.includes('-h'),
  };
  const args = [...argv];
  while (args.length > 0) {
    const raw = args.shift()!;
    if (raw === '--quick' || raw === '--help' || raw === '-h') continue;
    if (raw === '--docs') {
      o.docs = true;
      continue;
    }
    if (!raw.startsWith('--')) fail(`unexpected argument \`${raw}\``);
    const eq = raw.indexOf('=');
    const flag = eq > 0 ? raw.slice(2, eq) : raw.slice(2);
    const value = eq > 0 ? raw.slice(eq + 1) : args.shift();
    const counts = /^(w[1235])-(fast|task|redis|stream)$/.exec(flag);
    if (counts) {
      o[counts[1] as 'w1' | 'w2' | 'w3' | 'w5'][counts[2] as SpeedClass] = positive(flag, value, true);
      continue;
    }
    switch (flag) {
      case 'runs':
        o.runs = positive(flag, value, true);
        break;
      case 'only': {
        const ws = (value ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
        const bad = ws.filter((w) => !/^w[1-5]$/.test(w));
        if (ws.length === 0 || bad.length > 0) fail(`--only takes workloads w1..w5, got \`${value ?? ''}\``);
        o.workloads = ws as WorkloadId[];
        break;
      }
      case 'systems':
        o.systems = (value ?? '').split(',').map((s) => s.trim()).filter(Boolean);
        if (o.systems.length === 0) fail('--systems takes a comma-separated list');
        break;
      case 'w1-seconds':
        o.w1Seconds = positive(flag, value, false);
        break;
      case 'w4-seconds':
        o.w4Seconds = positive(flag, value, false);
        break;
      case 'w4-rate':
        o.w4Rate = positive(flag, value, false);
        break;
      case 'w4-load':
        o.w4Load = positive(flag, value, false);
        break;
      case 'scale':
        o.scale = positive(flag, value, false);
        break;
      case 'out':
        if (!value) fail('--out takes a folder');
        o.outDir = value;
        break;
      case 'bullmq-concurrency':
        o.bullmqConcurrency = positive(flag, value, true);
        break;
      default:
        fail(`unknown flag --${flag}`);
    }
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
