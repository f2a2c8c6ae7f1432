/**
 * examples/deploy: the service that runs in the container (examples/deploy/Dockerfile, k8s/).
 *
 * Two mailboxes:
 * - `orders`: fed by a Redis stream through a consumer group shared by every pod (scaled by KEDA on the
 *   group's lag); its handler calls a downstream, then sends a receipt to
 * - `receipts`: durable, journaled under JOURNAL_DIR on this pod's own volume.
 *
 * Metrics and probes on PORT (0.0.0.0): /metrics, /livez, /readyz. On SIGTERM (what Kubernetes sends, and
 * `docker stop`) it drains for CLOSE_TIMEOUT_MS and logs what was left per mailbox; terminationGracePeriodSeconds
 * must exceed that timeout. Logs are JSON lines on stdout.
 *
 *   node dist/examples/deploy/app.js --help
 */
import { hostname } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { createRuntime, mailbox, type CloseReport } from '../../runtime/index.js';
import { createMetrics, serve } from '../../metrics/index.js';

const log = (event: string, fields: object = {}): void => console.log(JSON.stringify({ time: new Date().toISOString(), event, ...fields }));

// ---- Configuration: a flag, else the environment variable, else the default. Anything wrong stops the start.
const OPTIONS = {
  'redis-url': { env: 'REDIS_URL', help: 'redis:// or rediss:// URL of the Redis holding the stream (required)' },
  stream: { env: 'REDIS_STREAM', default: 'orders', help: 'the stream key' },
  group: { env: 'REDIS_GROUP', default: 'ringpool', help: 'the consumer group, shared by every pod' },
  consumer: { env: 'HOSTNAME', default: hostname(), help: "this process's consumer name (the pod's name in Kubernetes)" },
  'journal-dir': { env: 'JOURNAL_DIR', default: '/data/journal', help: "the durable mailbox's journal (a volume of this pod)" },
  port: { env: 'PORT', default: '9464', help: '/metrics, /livez and /readyz (0 picks a free port)' },
  host: { env: 'HOST', default: '0.0.0.0', help: 'address to listen on' },
  threads: { env: 'THREADS', default: '2', help: 'consumer threads at most (match the CPU limit)' },
  'close-timeout-ms': { env: 'CLOSE_TIMEOUT_MS', default: '25000', help: 'how long SIGTERM drains before stopping' },
} as const satisfies Record<string, { env: string; default?: string; help: string }>;
type Name = keyof typeof OPTIONS;

const HELP = `Usage: node dist/examples/deploy/app.js [options]

Each option is a flag or an environment variable (the flag wins):
${Object.entries(OPTIONS)
  .map(([flag, o]) => `  --${`${flag} <value>`.padEnd(26)} ${o.env.padEnd(17)} ${o.help}${'default' in o ? ` (default ${o.default})` : ''}`)
  .join('\n')}
  --print-config                                 print the configuration read (password hidden) as JSON and exit
  --help                                         this text`;

function fail(problems: string[]): never {
  console.error(`examples/deploy/app: ${problems.join('; ')}\n(--help lists the options)`);
  process.exit(2);
}

function readConfig(argv: string[]) {
  let values: Record<string, string | boolean | undefined> = {};
  try {
    const options = Object.fromEntries(Object.keys(OPTIONS).map((k) => [k, { type: 'string' as const }]));
    ({ values } = parseArgs({ args: argv, strict: true, allowPositionals: false, options: { ...options, help: { type: 'boolean' }, 'print-config': { type: 'boolean' } } }));
  } catch (err) {
    fail([(err as Error).message]);
  }
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const problems: string[] = [];
  const raw = (name: Name): { value: string; from: string } => {
    const o = OPTIONS[name];
    const flag = values[name];
    if (typeof flag === 'string') return { value: flag, from: `--${name}` };
    const env = process.env[o.env];
    if (env !== undefined && env !== '') return { value: env, from: o.env };
    if ('default' in o) return { value: o.default, from: `the default of --${name}` };
    problems.push(`--${name} or ${o.env} is required: ${o.help}`);
    return { value: '', from: o.env };
  };
  const int = (name: Name, min: number, max: number): number => {
    const { value, from } = raw(name);
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) problems.push(`${from} must be an integer from ${min} to ${max}, got \`${value}\``);
    return n;
  };
  const word = (name: Name): string => {
    const { value, from } = raw(name);
    if (!/^\S+$/.test(value)) problems.push(`${from} must be a non-empty string without spaces, got \`${value}\``);
    return value;
  };
  const url = raw('redis-url');
  // Never echo the URL: it may carry a password.
  if (url.value !== '' && !(URL.canParse(url.value) && ['redis:', 'rediss:'].includes(new URL(url.value).protocol))) problems.push(`${url.from} must be a redis:// or rediss:// URL`);
  const journalDir = raw('journal-dir');
  if (!isAbsolute(journalDir.value)) problems.push(`${journalDir.from} must be an absolute path, got \`${journalDir.value}\``);
  const config = {
    redisUrl: url.value,
    stream: word('stream'),
    group: word('group'),
    consumer: word('consumer'),
    journalDir: journalDir.value,
    port: int('port', 0, 65535),
    host: word('host'),
    threads: int('threads', 1, 32),
    closeTimeoutMs: int('close-timeout-ms', 1, 600_000),
    printConfig: values['print-config'] === true,
  };
  if (problems.length > 0) fail(problems);
  return config;
}

const config = readConfig(process.argv.slice(2));
if (config.printConfig) {
  const shown = new URL(config.redisUrl);
  if (shown.password) shown.password = '***';
  console.log(JSON.stringify({ ...config, redisUrl: shown.href, printConfig: undefined }, null, 2));
  process.exit(0);
}

// ---- The runtime.
const rt = createRuntime({
  pool: { maxThreads: config.threads },
  mailboxes: {
    orders: {
      handler: mailbox<typeof import('./handlers/order.js')>(new URL('./handlers/order.js', import.meta.url)),
      maxThreads: config.threads,
      concurrency: 16, // the handler waits on I/O: 16 orders in flight per thread
      autoscale: { maxConcurrency: 16 }, // ...and no more: a pod's drain rate is bounded (README: the numbers)
      maxAttempts: 5,
      source: { redis: { url: config.redisUrl, stream: config.stream, group: config.group, consumer: config.consumer } },
    },
    receipts: {
      handler: mailbox<typeof import('./handlers/receipt.js')>(new URL('./handlers/receipt.js', import.meta.url)),
      maxThreads: 1,
      concurrency: 16,
      durability: { dir: join(config.journalDir, 'receipts'), fsync: 'always' },
    },
  },
});
rt.on('error', (err) => log('error', { code: (err as { code?: string }).code, message: err.message }));
rt.on('dead-letter', ({ mailbox: m, letter }) => log('dead-letter', { mailbox: m, reason: letter.reason, error: letter.lastError?.message }));

// ---- SIGTERM: stop taking work, drain, report what was left and where it stays.
const WHERE_LEFT_STAYS = {
  orders: 'pending in the Redis stream: another consumer claims it after claimIdleMs, or this pod at its next start',
  receipts: "in the journal on this pod's volume: it runs at the pod's next start",
} as const;
let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log('closing', { signal, timeoutMs: config.closeTimeoutMs });
  const report: CloseReport = await rt.close({ timeoutMs: config.closeTimeoutMs });
  for (const [m, left] of Object.entries(report.left)) {
    const n = left.ready + left.inFlight + left.delayed;
    log('left', { mailbox: m, ...left, ...(n > 0 ? { stays: WHERE_LEFT_STAYS[m as keyof typeof WHERE_LEFT_STAYS] } : {}) });
  }
  log('closed', { drained: report.drained });
  process.exit(report.drained ? 0 : 1);
}
process.once('SIGTERM', () => void stop('SIGTERM'));
process.once('SIGINT', () => void stop('SIGINT')); // docker run -it, Ctrl-C

// Metrics and probes before start(): /livez answers at once, /readyz turns 200 once start() has finished (a durable
// mailbox replays its journal meanwhile).
const registry = new Registry();
createMetrics(rt, { registry });
const server = await serve(registry, { port: config.port, host: config.host });
log('listening', { url: server.url, probes: { liveness: '/livez', readiness: '/readyz' } });

try {
  await rt.start();
  log('started', { stream: config.stream, group: config.group, consumer: config.consumer, journal: join(config.journalDir, 'receipts') });
} catch (err) {
  // Redis unreachable for startTimeoutMs, the journal locked by a live process, a handler that does not load;
  // or a SIGTERM during the start, which stop() reports.
  if (!stopping) {
    log('start-failed', { code: (err as { code?: string }).code, message: (err as Error).message });
    process.exit(1);
  }
}
