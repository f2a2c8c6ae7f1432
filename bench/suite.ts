/**
 * `npm run bench`: ringpool against its peers, issue #6. Same machine, same
 * command, systems in turn, median of runs; a table per workload, the issue's
 * targets checked, and JSON, Markdown and an SVG chart written to
 * bench/results/ (<timestamp>.* and latest.*).
 *
 *   npm run bench                      the full suite (~10 min on 2 cores)
 *   npm run bench -- --quick           one tiny iteration of every row (CI)
 *   npm run bench -- --help            flags: --runs, --only, --systems, counts, ...
 *
 * Rows run one at a time, each in a fresh session (pool, runtime or queue),
 * opened before the clock starts and closed after it stops. Workloads run in
 * order (W4 needs each row's W1 median) and, within a workload, the runs are
 * interleaved (run 1 of every row, then run 2, ...) so a slow spell of the
 * machine does not land on one row only.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkClocks } from './clock.js';
import { goals, goalsText } from './goals.js';
import { machine, median } from './machine.js';
import { bigJournalBench, durabilityTable, fdatasyncProbe, recoveryBench } from './journal.js';
import { calibrateBurn } from './messages.js';
import { benchOptions, type BenchOptions } from './options.js';
import { docsChart } from './paths.js';
import { consoleTable, markdownTable, summaryTables, tables, type RowResult, type SuiteResult } from './report.js';
import type { Session, Subject, WorkloadId } from './session.js';
import { benchChart } from './svg.js';
import { w1, w2, w3, w4, w5, type Figures } from './workloads.js';

const TITLES: Record<WorkloadId, string> = {
  w1: 'W1 tiny',
  w2: 'W2 cpu',
  w3: 'W3 burst',
  w4: 'W4 latency',
  w5: 'W5 large',
};

const gc = (globalThis as { gc?: () => void }).gc;

/** One row, one run: open a fresh session, measure, close. */
async function runOne(w: WorkloadId, s: Subject, o: BenchOptions, iterations: number, w1Median: number | undefined): Promise<Figures> {
  const session = await s.open({ handler: w === 'w2' ? 'burn' : w === 'w4' ? 'stamp' : 'noop', burst: w === 'w3' });
  try {
    const f = await measure(session, w, s, o, iterations, w1Median);
    return { ...f, ...session.extra?.() };
  } finally {
    await session.close();
  }
}

function measure(session: Session, w: WorkloadId, s: Subject, o: BenchOptions, iterations: number, w1Median: number | undefined): Promise<Figures> {
  switch (w) {
    case 'w1':
      return w1(session, o.w1[s.speed], s.payload, o.w1Seconds);
    case 'w2':
      return w2(session, o.w2[s.speed], s.threads, iterations);
    case 'w3':
      return w3(session, o.w3[s.speed]);
    case 'w4':
      return w4(session, o.w4Rate, w1Median === undefined ? null : Math.max(1, Math.round(w1Median * o.w4Load)), o.w4Seconds);
    case 'w5':
      return w5(session, o.w5[s.speed], s.payload);
  }
}

/** Rejects after `ms` (a hung system must not hang the suite). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms / 1000} s`)), ms))),
  ]);
}

function summary(w: WorkloadId, f: Figures): string {
  const n = (x: number | undefined, d = 0): string => (x ?? NaN).toLocaleString('en-US', { maximumFractionDigits: d });
  switch (w) {
    case 'w1':
      return `${n(f.msgsPerSec)} msgs/s`;
    case 'w2':
      return `${n(f.msgsPerSec)} msgs/s, ${n((f.shareOfIdeal ?? NaN) * 100, 1)} % of ideal`;
    case 'w3':
      return `send p50 ${n(f.sendP50Us, 2)} µs, p99 ${n(f.sendP99Us, 2)} µs, drained in ${n(f.drainMs)} ms`;
    case 'w4':
      return `${n(f['fixed.rate'])}/s: p50 ${n(f['fixed.p50Us'], 1)} µs p99 ${n(f['fixed.p99Us'], 1)} µs` +
        (f['load.rate'] === undefined ? '' : `; ${n(f['load.rate'])}/s: p50 ${n(f['load.p50Us'], 1)} µs p99 ${n(f['load.p99Us'], 1)} µs`);
    case 'w5':
      return `${n(f.msgsPerSec)} msgs/s, ${n(f.mbPerSec)} MB/s`;
  }
}

function medians(runs: Figures[]): Figures | null {
  if (runs.length === 0) return null;
  const keys = new Set(runs.flatMap((r) => Object.keys(r)));
  const out: Figures = {};
  for (const k of keys) {
    const xs = runs.map((r) => r[k]).filter((x): x is number => x !== undefined && Number.isFinite(x));
    if (xs.length > 0) out[k] = median(xs);
  }
  return out;
}

async function main(): Promise<number> {
  // --help and a refused flag exit here, before the line-up (BullMQ, Redis clients) is even loaded.
  const o = benchOptions();
  const { lineup } = await import('./subjects.js');
  const started = new Date();
  const m = machine();
  console.log(`# ringpool benchmark suite (issue #6)${o.quick ? ': QUICK MODE, one tiny iteration, figures mean nothing' : ''}`);
  console.log(`# ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, Node ${m.node}, ${started.toISOString()}`);
  const clock = await checkClocks();
  console.log(`# runs: ${o.runs}; thread clock skew ${clock.skewMicros} µs${gc ? '' : '; no --expose-gc: rows are not separated by a GC'}`);

  const subjects = lineup({ bullmqConcurrency: o.bullmqConcurrency, quick: o.quick }).filter(
    (s) => o.systems.length === 0 || o.systems.some((f) => s.id.includes(f) || s.system.toLowerCase().includes(f.toLowerCase())),
  );
  const result: SuiteResult = {
    machine: m,
    startedAt: started.toISOString(),
    finishedAt: '',
    quick: o.quick,
    runs: o.runs,
    options: { ...o },
    calibration: null,
    clock,
    subjects: subjects.map((s) => ({ id: s.id, label: s.label, system: s.system, threads: s.threads, workloads: s.workloads.filter((w) => o.workloads.includes(w)) })),
    skipped: [],
    workloads: {},
  };
  const skipped = new Set<string>();
  for (const s of subjects) {
    const reason = await s.available();
    if (reason !== null) {
      skipped.add(s.id);
      result.skipped.push({ subject: s.id, label: s.label, reason });
      console.log(`skip ${s.label}: ${reason}`);
    }
  }

  const journalRows = subjects.some((s) => s.id.includes('journal') && !skipped.has(s.id));
  if (journalRows) {
    const p = fdatasyncProbe();
    result.journal = { fdatasyncP50Ms: p.p50Ms, fdatasyncP99Ms: p.p99Ms, recovery: null, big: null };
    console.log(`# fdatasync after a 16 KiB append here: p50 ${p.p50Ms.toFixed(3)} ms, p99 ${p.p99Ms.toFixed(3)} ms`);
  }

  let errors = 0;
  const rowTimeoutMs = o.quick ? 60_000 : 300_000;
  for (const w of o.workloads) {
    const rows = subjects.filter((s) => s.workloads.includes(w) && !skipped.has(s.id));
    console.log(`\n# ${TITLES[w]}: ${rows.length} rows x ${o.runs} run${o.runs === 1 ? '' : 's'}`);
    if (w === 'w2') {
      // Calibrated now rather than at start: closest in time to the runs that use it.
      const c = (result.calibration = await calibrateBurn(50));
      console.log(`# W2 burn: ${c.iterations.toLocaleString('en-US')} iterations = ${c.measuredMicros} µs on the main thread (target ${c.targetMicros} µs)`);
    }
    const results: RowResult[] = rows.map((s) => ({ subject: s.id, label: s.label, system: s.system, threads: s.threads, runs: [], median: null, errors: [] }));
    for (let run = 1; run <= o.runs; run++) {
      for (const [i, s] of rows.entries()) {
        const row = results[i]!;
        const w1Median = result.workloads.w1?.find((x) => x.subject === s.id)?.median?.msgsPerSec;
        const t0 = performance.now();
        try {
          const f = await within(runOne(w, s, o, result.calibration?.iterations ?? 0, w1Median), rowTimeoutMs, `${w} ${s.label}`);
          row.runs.push(f);
          console.log(`${w} run ${run}/${o.runs}  ${s.label}: ${summary(w, f)}  (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
        } catch (err) {
          errors++;
          const msg = (err as Error).message ?? String(err);
          row.errors.push(msg);
          console.log(`${w} run ${run}/${o.runs}  ${s.label}: ERROR ${msg}`);
        }
        gc?.();
        await new Promise((r) => setTimeout(r, o.quick ? 10 : 100));
      }
    }
    for (const row of results) row.median = medians(row.runs);
    result.workloads[w] = results;
  }
  if (journalRows && result.journal) {
    const n = o.quick ? 10_000 : 1_000_000;
    try {
      result.journal.recovery = await recoveryBench(n);
      console.log(`# recovery: ${n.toLocaleString('en-US')} journaled messages, start() ${result.journal.recovery.startMs.toFixed(0)} ms`);
      result.journal.big = await bigJournalBench(o.quick ? 16 << 20 : 2 ** 30);
      console.log(`# recovery: a ${(result.journal.big.bytes / 2 ** 30).toFixed(2)} GiB journal, mostly acked, start() ${result.journal.big.startMs.toFixed(0)} ms`);
    } catch (err) {
      errors++;
      console.log(`# recovery: ERROR ${(err as Error).message}`);
    }
  }
  result.finishedAt = new Date().toISOString();

  const dt = durabilityTable(result, result.journal ?? null);
  const ts = [...tables(result), ...summaryTables(result), ...(dt === null ? [] : [dt])];
  console.log('');
  for (const t of ts) console.log(`${consoleTable(t)}\n`);
  const g = goals(result);
  console.log(goalsText(g, o.quick));

  const dir = resolve(o.outDir);
  mkdirSync(dir, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const json = `${JSON.stringify({ ...result, goals: g }, null, 2)}\n`;
  // Markdown for the README: the summary tables first, then every workload's table.
  const md = `${[...summaryTables(result), ...(dt === null ? [] : [dt]), ...tables(result)].map(markdownTable).join('\n\n')}\n`;
  const svg = benchChart(result);
  for (const name of [stamp, 'latest']) {
    writeFileSync(join(dir, `${name}.json`), json);
    writeFileSync(join(dir, `${name}.md`), md);
    writeFileSync(join(dir, `${name}.svg`), svg);
  }
  console.log(`\nwrote ${join(dir, `${stamp}.json`)} (.md, .svg) and latest.*`);
  if (o.docs) {
    mkdirSync(new URL('.', docsChart), { recursive: true });
    writeFileSync(docsChart, svg);
    console.log(`wrote ${fileURLToPath(docsChart)}`);
  }
  console.log(`done in ${((Date.now() - started.getTime()) / 1000).toFixed(0)} s${errors > 0 ? `, ${errors} row run(s) failed` : ''}`);
  return errors > 0 ? 1 : 0;
}

// Exit explicitly: a peer that leaves a handle open (a Redis socket, a thread) must not keep the suite alive.
process.exit(await main());
