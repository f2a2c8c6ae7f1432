/**
 * The console's per-second picture of every mailbox: counts, rates over the
 * last second, end-to-end p50/p99 from the histograms' change over it (the
 * live feed's snapshots and the history the page opens with, events.ts).
 */
import type { Runtime } from '../../runtime/runtime.js';
import type { HistogramSnapshot } from '../../runtime/shared/histogram.js';

/** Snapshots are this far apart. */
export const SNAPSHOT_MS = 1_000;

export type MailboxKind = 'memory' | 'durable' | 'redis';

export interface MailboxSnapshot {
  name: string;
  kind: MailboxKind;
  depth: number;
  inFlight: number;
  delayed: number;
  processed: number;
  failed: number;
  /** Over the last interval; null on a mailbox's first snapshot (no interval yet). */
  processedPerSec: number | null;
  failedPerSec: number | null;
  threads: number;
  concurrency: number;
  /** From the end-to-end histogram's samples of the last second; null without metrics or samples. */
  e2eP50Ms: number | null;
  e2eP99Ms: number | null;
  oldestAgeSeconds: number;
  estimatedLagSeconds: number;
  deadLetterSize: number;
  autoscale: boolean;
  scaleReason: string;
  /** It starts nothing new now (rt.pause, ctx.retryAfter): ms left, -1 until resumed; 0 when not paused. */
  pausedForMs: number;
  /** Its circuit breaker's state, or null without one; its rate limit, or null. */
  breaker: 'closed' | 'open' | 'half-open' | null;
  rateLimit: { max: number; perMs: number } | null;
  /** A Redis mailbox's stream: lag, pending, the delayed set (size, ms to the next due, -1 none), ask traffic. */
  stream?: {
    connected: boolean; lag: number; pending: number; delayedSet: number; nextDueInMs: number; asksOpen: number; repliesReceived: number; repliesSent: number; repliesDropped: number;
    /** The group's consumers, and how many it needs (the fleet policy; null until known). */
    consumers: number; desiredConsumers: number | null; desiredReason: string | null;
  };
}

interface Last {
  at: number;
  processed: number;
  failed: number;
  e2e: HistogramSnapshot | null;
}

export function kindOf(stats: { journal?: unknown; stream?: unknown }): MailboxKind {
  return stats.stream !== undefined ? 'redis' : stats.journal !== undefined ? 'durable' : 'memory';
}

/**
 * The `q` quantile (0..1) of the samples that went into `cur` since `prev`,
 * in ms: linear within the bucket it falls in. Null when there were none.
 */
export function quantileMs(bounds: readonly number[], prev: HistogramSnapshot | null, cur: HistogramSnapshot, q: number): number | null {
  const n = bounds.length;
  const at = (i: number): number => cur.cumulative[i]! - (prev?.cumulative[i] ?? 0);
  const total = at(n);
  if (!(total > 0)) return null;
  const rank = q * total;
  for (let i = 0; i <= n; i++) {
    const c = at(i);
    if (c >= rank) {
      if (i === n) return bounds[n - 1]! * 1000; // past the last bound: the bound is all we know
      const lo = i === 0 ? 0 : bounds[i - 1]!;
      const below = i === 0 ? 0 : at(i - 1);
      const inBucket = c - below;
      const frac = inBucket > 0 ? (rank - below) / inBucket : 1;
      return (lo + (bounds[i]! - lo) * frac) * 1000;
    }
  }
  return null;
}

/** Snapshots of every mailbox, each with its rates since the one before. */
export class Snapshots {
  private readonly last = new Map<string, Last>();

  constructor(private readonly runtimes: () => Runtime[]) {}

  /** Forget the previous snapshot (the next rates must not average over a gap). */
  reset(): void {
    this.last.clear();
  }

  /** Every mailbox now, with its rates and e2e quantiles since the last snapshot. */
  take(): { t: number; mailboxes: MailboxSnapshot[] } {
    const t = Date.now();
    const out: MailboxSnapshot[] = [];
    const seen = new Set<string>();
    for (const rt of this.runtimes()) {
      if (rt.state === 'closed') continue;
      for (const name of rt.mailboxes) {
        const box = rt.mailbox(name);
        if (box === undefined) continue;
        const s = box.stats();
        const hs = box.histograms();
        const e2e = hs?.endToEnd ?? null;
        const prev = this.last.get(name);
        const dt = prev === undefined ? 0 : (t - prev.at) / 1000;
        const rate = (cur: number, was: number | undefined): number | null => (dt > 0 && was !== undefined ? Math.max(0, (cur - was) / dt) : null);
        // Quantiles of the last interval; on a mailbox's first snapshot, of everything so far.
        const from = prev?.e2e ?? null;
        out.push({
          name,
          kind: kindOf(s),
          depth: s.depth,
          inFlight: s.inFlight,
          delayed: s.delayed,
          processed: s.processed,
          failed: s.failed,
          processedPerSec: rate(s.processed, prev?.processed),
          failedPerSec: rate(s.failed, prev?.failed),
          threads: s.threads,
          concurrency: s.concurrency,
          e2eP50Ms: hs === null || e2e === null ? null : quantileMs(hs.bounds, from, e2e, 0.5),
          e2eP99Ms: hs === null || e2e === null ? null : quantileMs(hs.bounds, from, e2e, 0.99),
          oldestAgeSeconds: s.oldestAgeSeconds,
          estimatedLagSeconds: s.estimatedLagSeconds,
          deadLetterSize: s.deadLetterSize,
          autoscale: s.autoscale,
          scaleReason: s.scaleReason,
          pausedForMs: s.paused ? s.pausedForMs : 0,
          breaker: s.breaker?.state ?? null,
          rateLimit: s.rateLimit,
          ...(s.stream === undefined
            ? {}
            : {
                stream: {
                  connected: s.stream.connected, lag: s.stream.lag, pending: s.stream.pending, delayedSet: s.stream.delayed, nextDueInMs: s.stream.nextDueInMs,
                  asksOpen: s.stream.asksOpen, repliesReceived: s.stream.repliesReceived, repliesSent: s.stream.repliesSent, repliesDropped: s.stream.repliesDropped,
                  consumers: s.stream.consumers, desiredConsumers: s.stream.fleet?.desired ?? null, desiredReason: s.stream.fleet?.reason ?? null,
                },
              }),
        });
        seen.add(name);
        this.last.set(name, { at: t, processed: s.processed, failed: s.failed, e2e: e2e === null ? null : { ...e2e, cumulative: e2e.cumulative.slice() } });
      }
    }
    for (const k of this.last.keys()) if (!seen.has(k)) this.last.delete(k);
    return { t, mailboxes: out };
  }
}
