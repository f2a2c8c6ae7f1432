/**
 * Durable mailboxes in the suite (issue #15): this machine's fdatasync (the
 * floor under fsync 'always'), the time recovery takes for a journal of 1M
 * messages, the table that puts each fsync mode next to the in-memory
 * mailbox and BullMQ, and the issue's targets.
 *
 * Standalone (probe and recovery only): `npm run bench:journal -- [--messages N]` (journal-cli.ts).
 */
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime, Outcome } from '../runtime/index.js';
import { codecOf } from '../runtime/shared/codec.js';
import { allocateKeyTable } from '../runtime/shared/layout.js';
import { Producer } from '../runtime/shared/producer.js';
import { Ring } from '../runtime/shared/ring.js';
import { nodeFiles } from '../runtime/store/journal/files.js';
import { JournalWriter, J_BYTES, J_STATS_WORDS } from '../runtime/store/journal/writer.js';
import { fixture } from './paths.js';
import { percentile } from './machine.js';
import { med, type SuiteResult, type Table } from './report.js';
import type { GoalLine } from './goals.js';

export interface JournalFigures {
  /** fdatasync after a 16 KiB append, ms. */
  fdatasyncP50Ms: number;
  fdatasyncP99Ms: number;
  recovery: { messages: number; journalBytes: number; startMs: number; mbPerSec: number } | null;
  /** start() on a big journal consumers kept up with (all acked but one in 1,000). */
  big: { bytes: number; startMs: number; recovered: number } | null;
}

/** Write a mostly-acked journal of `bytes` and time a start() on it. */
export async function bigJournalBench(bytes: number): Promise<{ bytes: number; startMs: number; recovered: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'ringpool-big-journal-'));
  try {
    writeBigJournal(dir, bytes, 1000);
    return await timeStart(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** fdatasync of `samples` 16 KiB appends to one file in the OS temp dir (on disk here: ext4). */
export function fdatasyncProbe(samples = 300): { p50Ms: number; p99Ms: number } {
  const dir = mkdtempSync(join(tmpdir(), 'ringpool-fsync-'));
  const fd = openSync(join(dir, 'probe'), 'a');
  const block = Buffer.alloc(16 << 10, 7);
  const ms = new Float64Array(samples);
  try {
    for (let i = 0; i < samples; i++) {
      writeSync(fd, block);
      const t = performance.now();
      fdatasyncSync(fd);
      ms[i] = performance.now() - t;
    }
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
  ms.sort();
  return { p50Ms: percentile(ms, 50), p99Ms: percentile(ms, 99) };
}

/**
 * Journal `n` messages that no thread takes (minThreads 0), close, then time
 * the next start(): the journal thread reads and checks every segment,
 * rebuilds the live set and hands it over; the mailbox queues it again.
 */
export async function recoveryBench(n: number): Promise<{ messages: number; journalBytes: number; startMs: number; mbPerSec: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'ringpool-recovery-'));
  const mk = () =>
    createRuntime({
      mailboxes: {
        r: {
          handler: fixture('noop.js'),
          minThreads: 0,
          maxThreads: 1,
          autoscale: false,
          capacityBytes: Math.min(1 << 30, Math.max(1 << 20, 2 ** Math.ceil(Math.log2(n * 200)))),
          durability: { dir, fsync: 'never' },
        },
      },
    });
  try {
    const a = mk();
    await a.start();
    const payload = { id: 0, name: 'order', qty: 3, price: 12.5, tags: ['a', 'b'], note: 'x'.repeat(30) };
    let inflight: Promise<number>[] = [];
    for (let i = 0; i < n; i++) {
      payload.id = i;
      inflight.push(a.sendAsync('r', payload));
      if (inflight.length === 4096) {
        await Promise.all(inflight);
        inflight = [];
      }
    }
    await Promise.all(inflight);
    await a.close({ timeoutMs: 1000 }).catch(() => undefined);
    const b = mk();
    const t0 = performance.now();
    await b.start();
    const startMs = performance.now() - t0;
    const j = b.stats('r').journal!;
    if (j.recovered !== n) throw new Error(`recovery gave back ${j.recovered} of ${n} messages`);
    await b.destroy();
    return { messages: n, journalBytes: j.bytes, startMs, mbPerSec: j.bytes / 1e6 / (startMs / 1000) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A journal of about `bytes` in `dir`, as a mailbox whose consumers keep up
 * leaves it: messages written in batches of 1,000 and acked, all but one in
 * `keepEvery`. Written by the journaller itself (no runtime, no fsync).
 */
export function writeBigJournal(dir: string, bytes: number, keepEvery: number): number {
  const sab = Ring.allocate({ capacityBytes: 1 << 22, maxPayloadBytes: 4096, journaled: true });
  const ring = new Ring(sab);
  const producer = new Producer('r', ring, codecOf('json'), 4096, () => undefined, new Int32Array(allocateKeyTable()));
  const stats = new Float64Array(J_STATS_WORDS);
  const writer = new JournalWriter(nodeFiles, sab, { mailbox: 'r', dir, fsync: 'never', intervalMs: 5, segmentBytes: 64 << 20 }, stats);
  writer.open();
  const out = new Int32Array(1024);
  const payload = { id: 0, name: 'order', qty: 3, price: 12.5, tags: ['a', 'b'], note: 'x'.repeat(30) };
  let kept = 0;
  let n = 0;
  while (stats[J_BYTES]! < bytes) {
    for (let i = 0; i < 1000; i++) {
      payload.id = n++;
      producer.send(payload, undefined);
    }
    writer.pass([]);
    const acks: number[] = [];
    for (let c = ring.claim(0, 1024, out); c > 0; c = ring.claim(0, 1024, out)) {
      for (let i = 0; i < c; i++) {
        const id = ring.id(out[i]!);
        ring.ack(0, out[i]!);
        if (id % keepEvery === 0) kept++;
        else acks.push(id);
      }
    }
    ring.reclaim();
    const post = Buffer.allocUnsafe(4 + acks.length * 9);
    post.writeUInt32LE(acks.length, 0);
    acks.forEach((id, i) => {
      post[4 + i * 9] = Outcome.ACKED;
      post.writeDoubleLE(id, 5 + i * 9);
    });
    writer.pass([post]);
  }
  writer.close();
  return kept;
}

/** Start a runtime on a journal someone left in `dir`: how long start() takes, and what it found. */
export async function timeStart(dir: string, capacityBytes = 8 << 20): Promise<{ startMs: number; recovered: number; bytes: number }> {
  const rt = createRuntime({ mailboxes: { r: { handler: fixture('noop.js'), minThreads: 0, maxThreads: 1, autoscale: false, capacityBytes, durability: { dir, fsync: 'never' } } } });
  const t0 = performance.now();
  await rt.start();
  const startMs = performance.now() - t0;
  const j = rt.stats('r').journal!;
  await rt.destroy();
  return { startMs, recovered: j.recovered, bytes: j.bytes };
}

const int = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '-' : Math.round(x).toLocaleString('en-US'));
const num = (x: number | undefined, d = 2): string => (x === undefined || !Number.isFinite(x) ? '-' : x.toLocaleString('en-US', { maximumFractionDigits: d }));
/** A ratio: two decimals, or two significant digits below 0.1 (BullMQ against memory is 0.004, not 0). */
const ratio = (x: number | undefined): string => (x !== undefined && Number.isFinite(x) && x > 0 && x < 0.1 ? x.toPrecision(2) : num(x));

const MODES = [
  ['ringpool-1t', 'memory (send)'],
  ['ringpool-1t-journal-never', "journal 'never' (sendAsync)"],
  ['ringpool-1t-journal-interval', "journal 'interval' 5 ms (sendAsync)"],
  ['ringpool-1t-journal-always', "journal 'always' (sendAsync)"],
  ['ringpool-2t-journal-always', "journal 'always', 2 threads (sendAsync)"],
  ['bullmq', 'BullMQ (Redis, no AOF here)'],
] as const;

export function durabilityTable(r: SuiteResult, j: JournalFigures | null): Table | null {
  if (!r.subjects.some((s) => s.id.includes('journal'))) return null;
  const memory = med(r, 'w1', 'ringpool-1t', 'msgsPerSec');
  const bull = med(r, 'w1', 'bullmq', 'msgsPerSec');
  const rows = MODES.filter(([id]) => r.subjects.some((s) => s.id === id)).map(([id, label]) => {
    const w1 = med(r, 'w1', id, 'msgsPerSec');
    return [
      label,
      int(w1),
      ratio(w1 !== undefined && memory ? w1 / memory : undefined),
      num(w1 !== undefined && bull ? w1 / bull : undefined, 0),
      num(med(r, 'w4', id, 'fixed.p50Us'), 0),
      num(med(r, 'w4', id, 'fixed.p99Us'), 0),
      int(med(r, 'w1', id, 'fsyncsPerSec')),
      num(med(r, 'w1', id, 'journalMBPerSec'), 1),
    ];
  });
  const notes = [`1 thread unless named; W4 e2e at ${int(Number(r.options.w4Rate))} msg/s. fsyncs/s and MB/s over the W1 session (warm-up included).`];
  if (j !== null) {
    notes.push(`this machine's fdatasync after a 16 KiB append: p50 ${num(j.fdatasyncP50Ms, 3)} ms, p99 ${num(j.fdatasyncP99Ms, 3)} ms.`);
    if (j.recovery !== null) {
      const rc = j.recovery;
      notes.push(`recovery, every message unfinished: start() with ${int(rc.messages)} journaled messages (${num(rc.journalBytes / 1e6, 0)} MB) took ${int(rc.startMs)} ms.`);
    }
    if (j.big !== null) {
      notes.push(`recovery, a journal consumers kept up with: start() on ${num(j.big.bytes / 2 ** 30, 2)} GiB took ${int(j.big.startMs)} ms (${int(j.big.recovered)} messages back).`);
    }
  }
  return {
    title: 'Durable mailboxes (issue #15): each fsync mode against memory and BullMQ',
    columns: ['mode', 'W1 msgs/s', 'x memory', 'x BullMQ', 'W4 p50 µs', 'W4 p99 µs', 'fsyncs/s', 'journal MB/s'],
    rows,
    notes,
  };
}

function check(goal: string, got: number | undefined, want: number | undefined, lowerIsBetter = false): GoalLine {
  if (got === undefined || want === undefined || !Number.isFinite(got) || !Number.isFinite(want)) return { goal, measured: 'not measured', met: null };
  const met = lowerIsBetter ? got <= want : got >= want;
  return { goal, measured: `${num(got)} vs ${num(want)}${met ? '' : ` (missed: ${num(lowerIsBetter ? got / want : want / got)}x)`}`, met };
}

export function journalGoals(r: SuiteResult, j: JournalFigures | null): GoalLine[] {
  if (!r.subjects.some((s) => s.id.includes('journal'))) return [];
  const memory = med(r, 'w1', 'ringpool-1t', 'msgsPerSec');
  const always = med(r, 'w1', 'ringpool-1t-journal-always', 'msgsPerSec');
  const interval = med(r, 'w1', 'ringpool-1t-journal-interval', 'msgsPerSec');
  const bull = med(r, 'w1', 'bullmq', 'msgsPerSec');
  const memP50 = med(r, 'w4', 'ringpool-1t', 'fixed.p50Us');
  const out = [
    check("W1 journal 'always' >= 50 % of memory, 1 thread (ratio)", always !== undefined && memory ? always / memory : undefined, 0.5),
    check("W1 journal 'always' >= 30x BullMQ (ratio)", always !== undefined && bull ? always / bull : undefined, 30),
    check("W1 journal 'interval' >= 80 % of memory (ratio)", interval !== undefined && memory ? interval / memory : undefined, 0.8),
    check(
      "W4 journal 'always' p50 <= 2x fdatasync p50 + memory p50 (µs)",
      med(r, 'w4', 'ringpool-1t-journal-always', 'fixed.p50Us'),
      j !== null && memP50 !== undefined ? 2 * j.fdatasyncP50Ms * 1000 + memP50 : undefined,
      true,
    ),
  ];
  if (j?.big) out.push(check(`recovery of a ${num(j.big.bytes / 2 ** 30, 2)} GiB journal in seconds, not minutes (s; goal 10)`, j.big.startMs / 1000, 10, true));
  return out;
}
