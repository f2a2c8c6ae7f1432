/**
 * `npm run bench:journal -- [--messages N] [--gib G]`: this machine's
 * fdatasync, the recovery time of a journal of N messages all unfinished
 * (default 1M), and of a G GiB journal (default 1) that consumers kept up
 * with (all acked but one in 1,000), without the suite.
 */
import { cli } from '../examples/cli.js';
import { bigJournalBench, fdatasyncProbe, recoveryBench } from './journal.js';

const { values: flags } = cli({
  usage: 'npm run bench:journal -- [flags]        (or: node dist/bench/journal-cli.js [flags])',
  flags: {
    messages: { type: 'number', integer: true, min: 1, default: 1_000_000, help: 'messages in the all-unfinished journal' },
    gib: { type: 'number', min: 0, arg: 'G', default: 1, help: 'size of the mostly-acked journal, GiB (0: skip it)' },
  },
});
const p = fdatasyncProbe();
console.log(`fdatasync after a 16 KiB append: p50 ${p.p50Ms.toFixed(3)} ms, p99 ${p.p99Ms.toFixed(3)} ms`);
const rc = await recoveryBench(flags.messages);
console.log(`recovery, all unfinished: ${rc.messages.toLocaleString('en-US')} messages, ${(rc.journalBytes / 1e6).toFixed(0)} MB journal, start() ${rc.startMs.toFixed(0)} ms (${rc.mbPerSec.toFixed(0)} MB/s)`);
const gib = flags.gib;
if (gib > 0) {
  const s = await bigJournalBench(gib * 2 ** 30);
  console.log(`recovery, mostly acked: ${(s.bytes / 2 ** 30).toFixed(2)} GiB journal, start() ${s.startMs.toFixed(0)} ms, ${s.recovered.toLocaleString('en-US')} messages back (${(s.bytes / 1e6 / (s.startMs / 1000)).toFixed(0)} MB/s)`);
}
process.exit(0);
