/**
 * `npm run bench`: the suite (bench/suite.ts) with every flag given, then the
 * ask round trip (bench/ask.ts), many mailboxes on the shared pool
 * (bench/many.ts), the pool's fairness (bench/fairness.ts), the takeover time of a partitioned Redis
 * mailbox (bench/takeover.ts), the Redis calls across processes (bench/redis-cross.ts) and protecting the downstream (bench/protect.ts) in the same command. npm appends `-- flags` to
 * the end of a script, so a script `suite.js && ask.js` would hand them to
 * ask.js alone; this runner routes them.
 *
 * The flags are the suite's (bench/options.ts), checked here first: --help
 * prints them, and a refused flag exits 2, before anything runs.
 * The others run after a whole-suite run only: not with --only or
 * --systems (a narrowed look); they get the suite's --quick (and --runs).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { benchOptions } from './options.js';

const args = process.argv.slice(2);
const o = benchOptions(args);

function run(script: string, flags: string[], nodeFlags: string[] = []): number {
  const r = spawnSync(process.execPath, [...nodeFlags, fileURLToPath(new URL(script, import.meta.url)), ...flags], { stdio: 'inherit' });
  return r.status ?? 1;
}

const suite = run('./suite.js', args, ['--expose-gc']);
if (suite !== 0) process.exit(suite);
if (o.workloads.length < 5 || o.systems.length > 0) process.exit(0);
const ask = run('./ask.js', [...(o.quick ? ['--quick'] : []), '--runs', String(o.runs)]);
if (ask !== 0) process.exit(ask);
// Issue #28: many mailboxes on the shared pool (1 to 1,000), and a quiet mailbox beside a saturating one.
const many = run('./many.js', o.quick ? ['--counts', '1,10', '--seconds', '0.2', '--runs', '1'] : ['--runs', String(o.runs)]);
if (many !== 0) process.exit(many);
const fair = run('./fairness.js', o.quick ? ['--seconds', '0.3'] : []);
if (fair !== 0) process.exit(fair);
// Issue #29: takeover time after a SIGKILL on a partitioned Redis mailbox (20 kills at the default lease and renewal).
const take = run('./takeover.js', o.quick ? ['--quick'] : []);
if (take !== 0) process.exit(take);
// Issue #30: delayed precision at 10,000 pending, ask round trip across processes against BullMQ, W1 on a Redis Cluster.
const cross = run('./redis-cross.js', o.quick ? ['--quick'] : []);
if (cross !== 0) process.exit(cross);
// Issue #31: the rate limit's accuracy at 1,000/s and 10,000/s, adaptive concurrency against fixed 8, 16, 64.
process.exit(run('./protect.js', o.quick ? ['--quick'] : []));
