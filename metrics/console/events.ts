/**
 * The console's live feed, `GET /api/events` (Server-Sent Events): one
 * snapshot of every mailbox a second (counts, rates over that second,
 * end-to-end p50/p99 from the histograms' change over it), and scale
 * decisions and dead letters as they happen. One timer and one snapshot per
 * server, however many pages listen; nothing runs while none does.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Runtime } from '../../runtime/runtime.js';
import type { DeadLetterEvent } from '../../runtime/api.js';
import type { ScaleEvent } from '../../runtime/mailbox/index.js';
import type { HistogramSnapshot } from '../../runtime/shared/histogram.js';
import { jsonSafe } from './http.js';

/** Snapshots are this far apart. */
export const SNAPSHOT_MS = 1_000;
/** An SSE client that has this much unsent is dropped (a stalled page must not grow our memory). */
const MAX_BUFFERED = 4 << 20;

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
  stream?: { connected: boolean; lag: number; pending: number; delayedSet: number; nextDueInMs: number; asksOpen: number; repliesReceived: number; repliesSent: number; repliesDropped: number };
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

export class EventHub {
  private readonly clients = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | null = null;
  private readonly last = new Map<string, Last>();
  private readonly unsubscribe = new Map<Runtime, () => void>();
  /** The last snapshot sent: a page that connects gets it rather than a fresh one (which would cut the interval short). */
  private lastFrame: { frame: string } | null = null;

  constructor(private readonly runtimes: () => Runtime[]) {}

  /** Listen to a runtime's scale and dead-letter events (once per runtime). */
  watch(rt: Runtime): void {
    if (this.unsubscribe.has(rt)) return;
    // `threads`: the desired count after the decision (the event's `to`).
    const onScale = (e: ScaleEvent): void => this.broadcast({ type: 'scale', t: Date.now(), ...e, threads: e.to });
    const onDead = (e: DeadLetterEvent): void =>
      this.broadcast({ type: 'dead-letter', t: Date.now(), mailbox: e.mailbox, id: e.letter.id, reason: e.letter.reason, attempts: e.letter.attempts });
    rt.on('scale', onScale);
    rt.on('dead-letter', onDead);
    const off = (): void => {
      rt.off('scale', onScale);
      rt.off('dead-letter', onDead);
      rt.off('close', off);
      this.unsubscribe.delete(rt);
    };
    rt.once('close', off);
    this.unsubscribe.set(rt, off);
  }

  /** A new page: the stream's headers, a snapshot at once, then the feed. */
  open(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      connection: 'keep-alive',
    });
    res.write('retry: 2000\n\n');
    this.clients.add(res);
    const gone = (): void => {
      this.clients.delete(res);
      if (this.clients.size === 0) this.stop();
    };
    req.on('close', gone);
    res.on('error', gone);
    if (this.timer === null) {
      // The first page: a snapshot now (its rates cover nothing yet: null), then one a second.
      this.broadcast(this.snapshot());
      this.timer = setInterval(() => {
        if (this.clients.size > 0) this.broadcast(this.snapshot());
      }, SNAPSHOT_MS);
      this.timer.unref();
    } else if (this.lastFrame !== null) {
      this.write(res, this.lastFrame.frame);
    }
  }

  close(): void {
    this.stop();
    for (const off of [...this.unsubscribe.values()]) off();
    for (const c of this.clients) c.end();
    this.clients.clear();
  }

  private stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    // The next page's first rates must not average over the time nobody listened.
    this.last.clear();
    this.lastFrame = null;
  }

  private broadcast(ev: { type: string; [field: string]: unknown }): void {
    if (this.clients.size === 0) return;
    const frame = `data: ${JSON.stringify(ev, jsonSafe)}\n\n`;
    if (ev.type === 'snapshot') this.lastFrame = { frame };
    for (const c of this.clients) this.write(c, frame);
  }

  private write(res: ServerResponse, frame: string): void {
    if (res.writableLength > MAX_BUFFERED) {
      res.destroy();
      this.clients.delete(res);
      return;
    }
    res.write(frame);
  }

  /** Every mailbox now, with its rates and e2e quantiles since the last snapshot. */
  snapshot(): { type: 'snapshot'; t: number; mailboxes: MailboxSnapshot[] } {
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
                },
              }),
        });
        seen.add(name);
        this.last.set(name, { at: t, processed: s.processed, failed: s.failed, e2e: e2e === null ? null : { ...e2e, cumulative: e2e.cumulative.slice() } });
      }
    }
    for (const k of this.last.keys()) if (!seen.has(k)) this.last.delete(k);
    return { type: 'snapshot', t, mailboxes: out };
  }
}
