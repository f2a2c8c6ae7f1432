/**
 * `npm run soak -- --seconds 300 --seed N`: soak rounds one after another
 * (seeds N, N+1, ...) until the time is up or one fails. Prints each round's
 * figures and, for a failing one, its violations and its seed to replay.
 * Exit code 1 when a round failed.
 */
import { cli, fail, toNumber } from '../../examples/cli.js';
import { runSoak } from './soak.js';

/** What --set takes: each name's values. */
const SETTABLE: Record<string, 'number' | 'boolean' | readonly string[]> = {
  looseConcurrency: 'number',
  keyedConcurrency: 'number',
  keys: 'number',
  leaseMs: 'number',
  maxAttempts: 'number',
  churn: 'boolean',
  feed: 'boolean',
  journal: 'boolean',
  adaptive: 'boolean',
  only: ['loose', 'keyed', 'tight'],
  threads: ['shared', 'dedicated'],
};
const KNOWN = Object.keys(SETTABLE);
const { seconds, first, messages, config } = cli(
  {
    usage: 'npm run soak -- [flags]        (or: node dist/test/soak/cli.js [flags])',
    flags: {
      seconds: { type: 'number', gt: 0, arg: 'S', default: 60, help: 'rounds start until S seconds have passed (one at least)' },
      seed: { type: 'number', integer: true, help: "the first round's seed (the next ones count up)", defaultText: 'random' },
      messages: { type: 'number', integer: true, min: 1, arg: 'M', help: 'messages a round', defaultText: '24000' },
      // Fix part of the mix (the rest comes from the seed), e.g. --set keyedConcurrency=1 --set maxAttempts=3.
      set: { type: 'string', multiple: true, arg: 'name=value', expected: 'name=value', help: 'fix one of the mix (repeatable; the rest comes from the seed)' },
    },
    notes:
      '--set names: looseConcurrency, keyedConcurrency, keys, leaseMs, maxAttempts (numbers), churn, feed, journal, adaptive (true/false), ' +
      'only (loose, keyed or tight: every message to that mailbox), threads (shared or dedicated)',
  },
  ({ values: v }) => {
    const config: Record<string, number | boolean | string> = {};
    for (const kv of v.set) {
      const eq = kv.indexOf('=');
      const [k, val] = eq < 0 ? [kv, undefined] : [kv.slice(0, eq), kv.slice(eq + 1)];
      const kind = Object.hasOwn(SETTABLE, k) ? SETTABLE[k] : undefined;
      if (kind === undefined || val === undefined) fail('--set', `name=value, name one of ${KNOWN.join(', ')}`, kv);
      if (kind === 'number') config[k] = toNumber(`--set ${k}`, val, { integer: true, min: 1 });
      else if (kind === 'boolean') {
        if (val !== 'true' && val !== 'false') fail(`--set ${k}`, 'true or false', val);
        config[k] = val === 'true';
      } else {
        if (!kind.includes(val)) fail(`--set ${k}`, `one of ${kind.join(', ')}`, val);
        config[k] = val;
      }
    }
    return { seconds: v.seconds, first: v.seed ?? Math.floor(Math.random() * 2 ** 31), messages: v.messages, config };
  },
);
const end = Date.now() + seconds * 1000;
let failed = 0;
let rounds = 0;
for (let seed = first; rounds === 0 || Date.now() < end; seed++) {
  const r = await runSoak({ seed, config, ...(messages ? { messages } : {}) });
  rounds++;
  const f = r.fates;
  console.log(
    `seed ${r.seed}: ${r.violations.length === 0 ? 'clean' : 'FAILED'} in ${(r.ms / 1000).toFixed(1)} s; ${r.messages} messages ` +
      `(${f.throw1} throw1, ${f.exit1} exit1, ${f.hang1} hang1, ${f.spin1} spin1, ${f.throwAlways} throwAlways, ${f.exitAlways} exitAlways, ${f.sleep} sleep), ` +
      `${r.crashes} crashes, ${r.timeouts} timeouts, ${r.duplicates} duplicates; ${JSON.stringify(r.config)}, peak concurrency ${JSON.stringify(r.peakConcurrency)}`,
  );
  if (r.violations.length > 0) {
    failed++;
    for (const v of r.violations) console.log(`  ${v}`);
    break;
  }
}
console.log(`${rounds - failed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
