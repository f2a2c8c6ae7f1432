/**
 * `npm run bench`: the suite (bench/suite.ts) with every flag given, then the
 * ask round trip (bench/ask.ts) in the same command. npm appends `-- flags` to
 * the end of a script, so a script `suite.js && ask.js` would hand them to
 * ask.js alone; this runner routes them.
 *
 * ask runs after a whole-suite run only: not with --help, --only or --systems
 * (a narrowed look); it gets the suite's --quick and --runs.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseOptions } from './options.js';

const args = process.argv.slice(2);

function run(script: string, flags: string[], nodeFlags: string[] = []): number {
  const r = spawnSync(process.execPath, [...nodeFlags, fileURLToPath(new URL(script, import.meta.url)), ...flags], { stdio: 'inherit' });
  return r.status ?? 1;
}

// The suite validates the flags and prints their errors; once it has passed, they parse.
const suite = run('./suite.js', args, ['--expose-gc']);
if (suite !== 0) process.exit(suite);
const o = parseOptions(args);
if (o.help || o.workloads.length < 5 || o.systems.length > 0) process.exit(0);
process.exit(run('./ask.js', [...(o.quick ? ['--quick'] : []), '--runs', String(o.runs)]));
