/**
 * `npm run bench:journal -- [--messages N] [--gib G]`: this machine's
 * fdatasync, the recovery time of a journal of N messages all unfinished
 * (default 1M), and of a G GiB journal (default 1) that consumers kept up
 * with (all acked but one in 1,000), without the suite.
 */
import { bigJournalBench, fdatasyncProbe, recoveryBench } from './journal.js';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const p = fdatasyncProbe();
console.log(`fdatasync after a 16 KiB append: p50 ${p.p50Ms.toFixed(3)} ms, p99 ${p.p99Ms.toFixed(3)} ms`);
const rc = await recoveryBench(arg('--messages', 1_000_000));
console.log(`recovery, all unfinished: ${rc.messages.toLocaleString('en-US')} messages, ${(rc.journalBytes / 1e6).toFixed(0)} MB journal, start() ${rc.startMs.toFixed(0)} ms (${rc.mbPerSec.toFixed(0)} MB/s)`);
const gib = arg('--gib', 1);
if (gib > 0) {
  const s = await bigJournalBench(gib * 2 ** 30);
  console.log(`recovery, mostly acked: ${(s.bytes / 2 ** 30).toFixed(2)} GiB journal, start() ${s.startMs.toFixed(0)} ms, ${s.recovered.toLocaleString('en-US')} messages back (${(s.bytes / 1e6 / (s.startMs / 1000)).toFixed(0)} MB/s)`);
}
process.exit(0);
