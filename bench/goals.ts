/**
 * The targets (#6), checked against one run's medians: each line
 * says what was asked, what was measured, and by how much it was met or
 * missed. Nothing here fails the run: a benchmark reports, it does not judge.
 */
import { journalGoals } from './journal.js';
import { med, type SuiteResult } from './report.js';

export interface GoalLine {
  goal: string;
  measured: string;
  met: boolean | null; // null: not measured in this run
}

const f = (x: number, d = 1): string => x.toLocaleString('en-US', { maximumFractionDigits: Math.abs(x) >= 100 ? 0 : d });

/** `got` against `want` where higher is better (or lower, with `lowerIsBetter`). */
function check(goal: string, got: number | undefined, want: number | undefined, unit: string, lowerIsBetter = false): GoalLine {
  if (got === undefined || want === undefined || !Number.isFinite(got) || !Number.isFinite(want)) return { goal, measured: 'not measured', met: null };
  const met = lowerIsBetter ? got <= want : got >= want;
  const by = lowerIsBetter ? got / want : want / got;
  const measured = `${f(got, 2)}${unit} vs ${f(want, 2)}${unit}` + (met ? '' : ` (missed: ${f(by, 2)}x ${lowerIsBetter ? 'over' : 'short'})`);
  return { goal, measured, met };
}

export function goals(r: SuiteResult): GoalLine[] {
  const out: GoalLine[] = [];
  for (const t of [1, 2]) {
    const rp = med(r, 'w1', `ringpool-${t}t`, 'msgsPerSec');
    const th = t === 1 ? 'thread' : 'threads';
    if (t === 1) out.push(check('W1 ringpool 1 thread >= hand-written ring (msgs/s)', rp, med(r, 'w1', 'ring-1t', 'msgsPerSec'), ''));
    const batched = med(r, 'w1', `piscina-batch-${t}t`, 'msgsPerSec');
    out.push(check(`W1 ringpool ${t} ${th} >= 3x piscina batched`, rp, batched === undefined ? undefined : 3 * batched, ''));
    const run = med(r, 'w1', `piscina-run-${t}t`, 'msgsPerSec');
    out.push(check(`W1 ringpool ${t} ${th} >= 70x piscina.run`, rp, run === undefined ? undefined : 70 * run, ''));
  }
  for (const t of [1, 2]) {
    const share = med(r, 'w2', `ringpool-${t}t`, 'shareOfIdeal');
    out.push(check(`W2 ringpool ${t} thread${t === 1 ? '' : 's'} >= 95 % of ideal`, share === undefined ? undefined : share * 100, 95, ' %'));
    const peers = (r.workloads.w2 ?? []).filter((row) => row.system !== 'ringpool' && row.threads === t && row.median !== null);
    const best = peers.reduce<{ label: string; v: number } | null>((b, row) => {
      const v = row.median!.msgsPerSec!;
      return b === null || v > b.v ? { label: row.label, v } : b;
    }, null);
    const g = check(`W2 ringpool ${t} thread${t === 1 ? '' : 's'} beats every peer on as many threads`, med(r, 'w2', `ringpool-${t}t`, 'msgsPerSec'), best?.v, ' msg/s');
    if (best !== null) g.measured += ` (best peer: ${best.label})`;
    out.push(g);
  }
  for (const t of [1, 2]) {
    out.push(check(`W3 ringpool ${t}t send p99 <= 2 µs`, med(r, 'w3', `ringpool-${t}t`, 'sendP99Us'), 2, ' µs', true));
    out.push(check(`W3 ringpool ${t}t burst drained in < 500 ms`, med(r, 'w3', `ringpool-${t}t`, 'drainMs'), 500, ' ms', true));
  }
  for (const t of [1, 2]) {
    out.push(check(`W4 ringpool ${t}t e2e p50 <= 30 µs at the fixed rate`, med(r, 'w4', `ringpool-${t}t`, 'fixed.p50Us'), 30, ' µs', true));
    out.push(check(`W4 ringpool ${t}t e2e p99 <= 100 µs at the fixed rate`, med(r, 'w4', `ringpool-${t}t`, 'fixed.p99Us'), 100, ' µs', true));
  }
  for (const t of [1, 2]) {
    out.push(check(`W5 ringpool ${t}t MB/s >= raw postMessage ${t}t`, med(r, 'w5', `ringpool-${t}t`, 'mbPerSec'), med(r, 'w5', `postmessage-${t}t`, 'mbPerSec'), ' MB/s'));
  }
  // Issue #16: the Redis Streams mailbox, on the same Redis as BullMQ.
  const bull = med(r, 'w1', 'bullmq', 'msgsPerSec');
  out.push(check('W1 Redis Streams mailbox, 1 process >= 10x BullMQ add', med(r, 'w1', 'ringpool-redis-1p', 'msgsPerSec'), bull === undefined ? undefined : 10 * bull, ''));
  out.push(check('W4 Redis Streams mailbox, 1 process: e2e p50 <= 1 ms at the fixed rate', med(r, 'w4', 'ringpool-redis-1p', 'fixed.p50Us'), 1000, ' µs', true));
  for (const p of [1, 2, 3]) {
    const plain = med(r, 'w1', `ringpool-redis-${p}p`, 'msgsPerSec');
    out.push(check(`W1 Redis mailbox keyed (partitions), ${p} process${p === 1 ? '' : 'es'} >= 0.7x unkeyed`, med(r, 'w1', `ringpool-redis-keyed-${p}p`, 'msgsPerSec'), plain === undefined ? undefined : 0.7 * plain, ''));
  }
  // Issue #17: msgpack, batch sends, the wake-up gap.
  const json1 = med(r, 'w1', 'ringpool-1t', 'msgsPerSec');
  const times = (x: number | undefined, k: number): number | undefined => (x === undefined ? undefined : k * x);
  out.push(check('W1 1 thread: msgpack >= 1.4x json', med(r, 'w1', 'ringpool-1t-msgpack', 'msgsPerSec'), times(json1, 1.4), ''));
  out.push(check('W1 1 thread: json >= 1.1x the hand-written ring', json1, times(med(r, 'w1', 'ring-1t', 'msgsPerSec'), 1.1), ''));
  out.push(check('W1 1 thread: no tracer provider (the default) >= 0.95x tracing: false', json1, times(med(r, 'w1', 'ringpool-1t-untraced', 'msgsPerSec'), 0.95), ''));
  out.push(check('W1 1 thread: sendBatch of 100 >= 1.3x a send() loop', med(r, 'w1', 'ringpool-1t-batch100', 'msgsPerSec'), times(json1, 1.3), ''));
  out.push(check('W5 1 thread: msgpack >= 2x json (MB/s)', med(r, 'w5', 'ringpool-1t-msgpack', 'mbPerSec'), times(med(r, 'w5', 'ringpool-1t', 'mbPerSec'), 2), ' MB/s'));
  out.push(check('W4 1 thread: e2e p50 <= 1.2x the ring at the fixed rate', med(r, 'w4', 'ringpool-1t', 'fixed.p50Us'), times(med(r, 'w4', 'ring-1t', 'fixed.p50Us'), 1.2), ' µs', true));
  out.push(...journalGoals(r, r.journal ?? null));
  // Issue #34: the consumer's cost per message, the tail at low load, durable near memory speed, knobs that cost nothing.
  const ring1 = med(r, 'w1', 'ring-1t', 'msgsPerSec');
  out.push(check('W1 1 thread: codec raw >= 3x the hand-written ring', med(r, 'w1', 'ringpool-1t-raw', 'msgsPerSec'), times(ring1, 3), ''));
  out.push(check('W1 1 thread: json >= 1.0x the hand-written ring', json1, ring1, ''));
  out.push(check('W1 1 thread: msgpack >= 1.5x the hand-written ring', med(r, 'w1', 'ringpool-1t-msgpack', 'msgsPerSec'), times(ring1, 1.5), ''));
  out.push(check('W1 1 thread: msgpack + sendBatch of 100 >= 2x the hand-written ring', med(r, 'w1', 'ringpool-1t-msgpack-batch100', 'msgsPerSec'), times(ring1, 2), ''));
  out.push(check('W4 1 thread: e2e p99 <= 1.5x the ring at the fixed rate', med(r, 'w4', 'ringpool-1t', 'fixed.p99Us'), times(med(r, 'w4', 'ring-1t', 'fixed.p99Us'), 1.5), ' µs', true));
  out.push(check('W1 1 thread: metrics on >= 0.95x plain', med(r, 'w1', 'ringpool-1t-metrics', 'msgsPerSec'), times(json1, 0.95), ''));
  out.push(check('W1 1 thread: a store attached >= 0.95x plain', med(r, 'w1', 'ringpool-1t-store', 'msgsPerSec'), times(json1, 0.95), ''));
  for (const [d, want] of [['always', 0.6], ['interval', 0.8]] as const) {
    for (const [how, id] of [['sendAsync', `ringpool-1t-journal-${d}`], ['sendBatchAsync of 100', `ringpool-1t-journal-${d}-batch100`]] as const) {
      out.push(check(`W1 journal '${d}', ${how} >= ${want}x memory`, med(r, 'w1', id, 'msgsPerSec'), times(json1, want), ''));
    }
  }
  return out;
}

export function goalsText(lines: GoalLine[], quick: boolean): string {
  const mark = (m: boolean | null): string => (m === null ? '  -  ' : m ? ' met ' : 'MISSED');
  const title = `## Targets from issue #6 (this run${quick ? '; quick mode: the figures mean nothing' : ''})`;
  return [title, ...lines.map((l) => `${mark(l.met)}  ${l.goal}: ${l.measured}`)].join('\n');
}
