/**
 * The suite's results: their JSON shape, and the tables printed to the
 * console and written as Markdown (for the README).
 */
import type { JournalFigures } from './journal.js';
import type { Figures } from './workloads.js';
import type { WorkloadId } from './session.js';
import { IDEAL_PER_THREAD } from './workloads.js';

export interface RowResult {
  subject: string;
  label: string;
  system: string;
  threads: number;
  /** One record per successful run. */
  runs: Figures[];
  /** Median of each field across runs; null if no run succeeded. */
  median: Figures | null;
  errors: string[];
}

export interface Skip {
  subject: string;
  label: string;
  reason: string;
}

export interface SuiteResult {
  machine: { cpu: string; cores: number; memGiB: number; node: string };
  startedAt: string;
  finishedAt: string;
  quick: boolean;
  runs: number;
  options: Record<string, unknown>;
  /** W2's burn, calibrated right before W2 ran (null if it did not). */
  calibration: { iterations: number; targetMicros: number; measuredMicros: number } | null;
  clock: { skewMicros: number };
  /** Every subject the run was asked for, with the workloads it applies to. */
  subjects: Array<{ id: string; label: string; system: string; threads: number; workloads: WorkloadId[] }>;
  skipped: Skip[];
  workloads: Partial<Record<WorkloadId, RowResult[]>>;
  /** Durable mailboxes (issue #15): fdatasync here and recovery time, when journal rows ran. */
  journal?: JournalFigures | null;
}

export interface Table {
  title: string;
  columns: string[];
  rows: string[][];
  notes: string[];
}

const int = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '-' : Math.round(x).toLocaleString('en-US'));
const us = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '-' : x < 100 ? x.toFixed(1) : int(x));
const ratio = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '-' : x >= 10 ? x.toFixed(0) : x.toFixed(2));
const pct = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '-' : `${(x * 100).toFixed(1)} %`);

/** Median of `field` for `subject` in workload `w`. */
export function med(r: SuiteResult, w: WorkloadId, subject: string, field: string): number | undefined {
  return r.workloads[w]?.find((row) => row.subject === subject)?.median?.[field];
}

/**
 * The rows of workload `w`: measured rows with `cells`, then a row that did
 * not run (error, skipped) as two cells, its label and why.
 */
function rowsOf(r: SuiteResult, w: WorkloadId, cells: (row: RowResult, m: Figures) => string[]): string[][] {
  const out: string[][] = [];
  for (const row of r.workloads[w] ?? []) {
    if (row.median === null) out.push([row.label, `error: ${row.errors[0] ?? 'no run succeeded'}`]);
    else out.push([row.label, ...cells(row, row.median)]);
  }
  for (const s of r.skipped) {
    if (r.subjects.find((x) => x.id === s.subject)?.workloads.includes(w)) out.push([s.label, `skipped: ${s.reason}`]);
  }
  return out;
}

export function tables(r: SuiteResult): Table[] {
  const t: Table[] = [];
  const runsNote = `median of ${r.runs} run${r.runs === 1 ? '' : 's'}${r.quick ? ' (quick mode: tiny counts, figures mean nothing)' : ''}`;
  if (r.workloads.w1) {
    const columns = ['system', 'msgs/s', 'ns/msg', 'x piscina.run', 'x ring'];
    const ring = med(r, 'w1', 'ring-1t', 'msgsPerSec');
    t.push({
      title: 'W1 tiny: ~100-byte JSON object, no-op handler',
      columns,
      rows: rowsOf(r, 'w1', (row, m) => {
        const base = med(r, 'w1', `piscina-run-${row.threads}t`, 'msgsPerSec');
        return [int(m.msgsPerSec), int(m.nsPerMsg), ratio(base ? m.msgsPerSec! / base : undefined), ratio(ring ? m.msgsPerSec! / ring : undefined)];
      }),
      notes: [runsNote, 'ns/msg = wall time per message (1e9 / msgs/s); x piscina.run compares with piscina.run per message on as many threads; x ring with the hand-written ring (1 consumer).'],
    });
  }
  if (r.workloads.w2 && r.calibration) {
    const columns = ['system', 'msgs/s', `% of ideal (threads x ${IDEAL_PER_THREAD.toLocaleString('en-US')}/s)`];
    t.push({
      title: `W2 cpu: handler burns ${r.calibration.targetMicros} µs (${r.calibration.iterations.toLocaleString('en-US')} iterations, ${r.calibration.measuredMicros} µs measured on the main thread)`,
      columns,
      rows: rowsOf(r, 'w2', (_row, m) => [int(m.msgsPerSec), pct(m.shareOfIdeal)]),
      notes: [runsNote],
    });
  }
  if (r.workloads.w3) {
    const columns = ['system', 'sends', 'send p50 µs', 'p99 µs', 'p99.9 µs', 'max µs', 'sends/s', 'drain ms', 'waited'];
    t.push({
      title: 'W3 burst: sends as fast as possible, producer side',
      columns,
      rows: rowsOf(r, 'w3', (_row, m) => [int(m.messages), us(m.sendP50Us), us(m.sendP99Us), us(m.sendP999Us), us(m.sendMaxUs), int(m.sendsPerSec), int(m.drainMs), int(m.waits)]),
      notes: [
        runsNote,
        'send = the submit call alone (ringpool send(), ring write, run()/exec()/postMessage()/queue.add() returning its promise); drain ms = first send to last message handled; waited = sends that met a full queue and waited for room (their wait is not in the send times).',
      ],
    });
  }
  if (r.workloads.w4) {
    for (const [prefix, title] of [
      ['fixed', `W4 latency at a fixed ${int(Number(r.options.w4Rate))} msg/s`],
      ['load', `W4 latency at ${Math.round(Number(r.options.w4Load) * 100)} % of each system's W1 throughput (its median in this run)`],
    ] as const) {
      const columns = ['system', 'offered/s', 'achieved/s', 'p50 µs', 'p99 µs', 'p99.9 µs', 'max µs', 'samples'];
      t.push({
        title,
        columns,
        rows: rowsOf(r, 'w4', (_row, m) =>
          m[`${prefix}.rate`] === undefined
            ? ['-', '-', '-', '-', '-', '-', '-']
            : [int(m[`${prefix}.rate`]), int(m[`${prefix}.achievedRate`]), us(m[`${prefix}.p50Us`]), us(m[`${prefix}.p99Us`]), us(m[`${prefix}.p999Us`]), us(m[`${prefix}.maxUs`]), int(m[`${prefix}.samples`])],
        ),
        notes: [runsNote, 'end to end = from just before the send call (encoding included) to the start of the handler on its thread, both clocks performance.timeOrigin + performance.now() in one process.'],
      });
    }
  }
  if (r.workloads.w5) {
    const columns = ['system', 'msgs/s', 'MB/s', 'x postMessage'];
    t.push({
      title: 'W5 large: 64 KiB messages (JSON; raw = bytes)',
      columns,
      rows: rowsOf(r, 'w5', (row, m) => {
        const base = med(r, 'w5', `postmessage-${row.threads}t`, 'mbPerSec');
        return [int(m.msgsPerSec), int(m.mbPerSec), ratio(base ? m.mbPerSec! / base : undefined)];
      }),
      notes: [runsNote, 'MB = 10^6 bytes of payload; x postMessage compares with raw postMessage on as many threads.'],
    });
  }
  return t;
}

/**
 * The README's two tables: one line per system with each workload's
 * headline figure, and ringpool's knobs against its default on W1.
 */
export function summaryTables(r: SuiteResult): Table[] {
  const main = r.subjects.filter((s) => s.workloads.length >= 4);
  const headline: Table = {
    title: 'Headline: one figure per workload (medians)',
    columns: ['system', 'W1 msgs/s', 'W2 % of ideal', 'W3 send p99 µs', 'W3 drain ms', 'W4 p50 µs', 'W4 p99 µs', 'W5 MB/s'],
    rows: main.map((s) => {
      const skip = r.skipped.find((x) => x.subject === s.id);
      if (skip) return [s.label, `skipped: ${skip.reason}`];
      const g = (w: WorkloadId, f: string): number | undefined => med(r, w, s.id, f);
      return [s.label, int(g('w1', 'msgsPerSec')), pct(g('w2', 'shareOfIdeal')), us(g('w3', 'sendP99Us')), int(g('w3', 'drainMs')), us(g('w4', 'fixed.p50Us')), us(g('w4', 'fixed.p99Us')), int(g('w5', 'mbPerSec'))];
    }),
    notes: [`W4 at ${int(Number(r.options.w4Rate))} msg/s; W3 send = the submit call alone, see the W3 table.`],
  };
  const knobs: Table = {
    title: "ringpool's knobs on W1 (and W5 where run): against the default (json codec, metrics off, unkeyed) on as many threads",
    columns: ['ringpool', 'W1 msgs/s', 'x default', 'W5 MB/s'],
    rows: r.subjects
      .filter((s) => s.system === 'ringpool')
      .map((s) => {
        const v = med(r, 'w1', s.id, 'msgsPerSec');
        const base = med(r, 'w1', `ringpool-${s.threads}t`, 'msgsPerSec');
        return [s.label, int(v), ratio(v !== undefined && base ? v / base : undefined), int(med(r, 'w5', s.id, 'mbPerSec'))];
      }),
    notes: ['raw: a prepared 100-byte (W5: 64 KiB) Uint8Array, no encoding at all; v8: node:v8 serialize/deserialize of the same object.'],
  };
  const streamRows = ['ringpool-redis-1p', 'ringpool-redis-2p', 'ringpool-redis-3p', 'ringpool-redis-keyed-1p', 'ringpool-redis-keyed-2p', 'ringpool-redis-keyed-3p', 'bullmq', 'bullmq-bulk'];
  const bull = med(r, 'w1', 'bullmq', 'msgsPerSec');
  const redis: Table = {
    title: 'Across processes, on one Redis: the Redis Streams mailbox against BullMQ',
    columns: ['row', 'W1 msgs/s', 'x BullMQ add', 'x unkeyed', 'W4 p50 µs', 'W4 p99 µs'],
    rows: r.subjects
      .filter((s) => streamRows.includes(s.id))
      .map((s) => {
        const v = med(r, 'w1', s.id, 'msgsPerSec');
        // A keyed row against the unkeyed row of as many processes, in the same run (issue #29).
        const plain = s.id.startsWith('ringpool-redis-keyed-') ? med(r, 'w1', s.id.replace('-keyed', ''), 'msgsPerSec') : undefined;
        return [s.label, int(v), ratio(v !== undefined && bull ? v / bull : undefined), ratio(v !== undefined && plain ? v / plain : undefined), us(med(r, 'w4', s.id, 'fixed.p50Us')), us(med(r, 'w4', s.id, 'fixed.p99Us'))];
      }),
    notes: [
      `W4 at ${int(Number(r.options.w4Rate))} msg/s, send call to handler start, across processes. The producer is this process (pipelined XADD), the consumers are child processes with one thread each;`,
      'on 2 cores the producer, Redis and the consumers share the machine, so more processes do not add throughput here: they show the cost of spreading one stream over a group.',
    ],
  };
  return r.subjects.some((s) => s.id.startsWith('ringpool-redis')) ? [headline, knobs, redis] : [headline, knobs];
}

/** A table for the console: columns padded, first column left-aligned; short rows (error, skipped) run on. */
export function consoleTable(t: Table): string {
  const full = t.rows.filter((r) => r.length === t.columns.length);
  const w = t.columns.map((c, i) => Math.max(c.length, ...full.map((r) => r[i]!.length), ...(i === 0 ? t.rows.map((r) => r[0]!.length) : [])));
  const line = (cells: string[]): string =>
    cells.length < t.columns.length
      ? `${cells[0]!.padEnd(w[0]!)}  ${cells.slice(1).join('  ')}`
      : cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ').trimEnd();
  return [`## ${t.title}`, line(t.columns), ...t.rows.map(line), ...t.notes.map((n) => `   ${n}`)].join('\n');
}

export function markdownTable(t: Table): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const head = `| ${t.columns.map(esc).join(' | ')} |`;
  const rule = `|${t.columns.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`;
  const pad = (r: string[]): string[] => [...r, ...Array<string>(Math.max(0, t.columns.length - r.length)).fill('')];
  return [`**${t.title}**`, '', head, rule, ...t.rows.map((r) => `| ${pad(r).map(esc).join(' | ')} |`), '', ...t.notes.map((n) => `_${n}_`)].join('\n');
}
