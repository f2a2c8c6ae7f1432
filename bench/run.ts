/**
 * `npm run bench`: the suite (bench/suite.ts) with every flag given, then the
 * ask round trip (bench/ask.ts) in the same command. npm appends `-- flags` to
 * the end of a script, so a script `suite.js && ask.js` would hand them to
 * ask.js alone; this runner routes them.
 *
 * ask runs after a whole-suite run only: not with --help, --only or --systems
 * (a narrowed look); it gets --quick and --runs when the suite did.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));

function run(script: string, flags: string[], nodeFlags: string[] = []): number {
  const r = spawnSync(process.execPath, [...nodeFlags, here(script), ...flags], { stdio: 'inherit' });
  return r.status ?? 1;
}

const suite = run('./suite.js', args, ['--expose-gc']);
const narrowed = args.some((a) => a === '--help' || a === '-h' || /^--(only|systems)(=|$)/.test(a));
if (suite !== 0 || narrowed) process.exit(suite);

const askFlags: string[] = [];
if (args.includes('--quick')) askFlags.push('--quick');
const runs = args.findIndex((a) => a === '--runs' || a.startsWith('--runs='));
const runsValue = runs < 0 ? undefined : args[runs]!.includes('=') ? args[runs]!.split('=')[1] : args[runs + 1];
if (runsValue !== undefined) askFlags.push('--runs', runsValue);
process.exit(run('./ask.js', askFlags));
