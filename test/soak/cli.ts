/**
 * `npm run soak -- --seconds 300 --seed N`: soak rounds one after another
 * (seeds N, N+1, ...) until the time is up or one fails. Prints each round's
 * figures and, for a failing one, its violations and its seed to replay.
 * Exit code 1 when a round failed.
 */
import { parseArgs } from 'node:util';
import { runSoak } from './soak.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    seed: { type: 'string' },
    messages: { type: 'string' },
    // Fix part of the mix (the rest comes from the seed), e.g. --set keyedConcurrency=1 --set maxAttempts=3.
    set: { type: 'string', multiple: true, default: [] },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log('npm run soak -- [--seconds S (60)] [--seed N (random)] [--messages M (24000)] [--set name=value ...]');
  console.log('  --set fixes one of the mix: looseConcurrency, keyedConcurrency, keys, leaseMs, maxAttempts (numbers), churn, feed, journal, adaptive (true/false), only (loose, keyed or tight: every message to that mailbox), threads (shared or dedicated)');
  process.exit(0);
}
const seconds = Number(values.seconds);
const first = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
const messages = values.messages === undefined ? undefined : Number(values.messages);
if (!(seconds > 0) || !Number.isInteger(first) || (messages !== undefined && !(messages > 0))) {
  console.error('--seconds must be > 0, --seed an integer, --messages > 0');
  process.exit(2);
}
const config: Record<string, number | boolean | string> = {};
for (const kv of values.set) {
  const [k, v] = kv.split('=');
  const known = ['looseConcurrency', 'keyedConcurrency', 'keys', 'leaseMs', 'maxAttempts', 'churn', 'feed', 'journal', 'adaptive', 'only', 'threads'];
  if (k === undefined || v === undefined || !known.includes(k)) {
    console.error(`--set ${kv}: expected name=value, name one of ${known.join(', ')}`);
    process.exit(2);
  }
  config[k] = v === 'true' ? true : v === 'false' ? false : k === 'only' || k === 'threads' ? v : Number(v);
}
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
