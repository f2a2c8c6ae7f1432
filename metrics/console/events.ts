/**
 * The console's live feed and its memory. `GET /api/events` (Server-Sent
 * Events): a snapshot of every mailbox a second (snapshot.ts), and events
 * as they happen: scale decisions, breaker changes, dead letters, crashes,
 * handler timeouts and the console's own actions. `GET /api/history`: the
 * last ten minutes of snapshots and the last 500 events, kept on the server,
 * so a page opens with history rather than empty charts. One timer per
 * console; a snapshot is a stats() call per mailbox.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Runtime } from '../../runtime/runtime.js';
import type { BreakerEvent, DeadLetterEvent } from '../../runtime/api.js';
import type { HandlerTimeoutEvent, ScaleEvent, WorkerCrashEvent } from '../../runtime/mailbox/index.js';
import { jsonSafe } from './http.js';
import { SNAPSHOT_MS, Snapshots, type MailboxSnapshot } from './snapshot.js';

export { SNAPSHOT_MS, kindOf, quantileMs, type MailboxKind, type MailboxSnapshot } from './snapshot.js';

/** An SSE client that has this much unsent is dropped (a stalled page must not grow our memory). */
const MAX_BUFFERED = 4 << 20;
/** History kept: snapshots of the last ten minutes, and the last events. */
export const HISTORY_MS = 600_000;
export const MAX_EVENTS = 500;

/** One line of the event log. */
export interface ConsoleEvent {
  type: 'scale' | 'breaker' | 'dead-letter' | 'crash' | 'timeout' | 'action';
  t: number;
  mailbox: string;
  /** What happened, in words. */
  text: string;
  [field: string]: unknown;
}

/** A snapshot of every mailbox at `t`. */
export interface SnapshotFrame {
  type: 'snapshot';
  t: number;
  mailboxes: MailboxSnapshot[];
}

export class EventHub {
  private readonly clients = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | null = null;
  private readonly snapshots: Snapshots;
  private readonly unsubscribe = new Map<Runtime, () => void>();
  private readonly frames: SnapshotFrame[] = [];
  private readonly events: ConsoleEvent[] = [];
  /** The last snapshot sent: a page that connects gets it rather than a fresh one (which would cut the interval short). */
  private lastFrame: string | null = null;
  private closed = false;

  constructor(runtimes: () => Runtime[]) {
    this.snapshots = new Snapshots(runtimes);
  }

  /** Listen to a runtime's events (once per runtime), and start keeping history. */
  watch(rt: Runtime): void {
    if (this.closed || this.unsubscribe.has(rt)) return;
    const on = {
      // `threads`: the desired count after the decision (the event's `to`).
      scale: (e: ScaleEvent): void => this.record({ type: 'scale', t: Date.now(), ...e, threads: e.to, text: `threads ${e.from} -> ${e.to}, concurrency ${e.concurrency}: ${e.reason}` }),
      breaker: (e: BreakerEvent): void =>
        this.record({ type: 'breaker', t: Date.now(), mailbox: e.mailbox, state: e.state, text: `breaker ${e.state} (failed ${Math.round(e.failureRatio * 100)} % of ${e.calls} calls)` }),
      'dead-letter': (e: DeadLetterEvent): void =>
        this.record({ type: 'dead-letter', t: Date.now(), mailbox: e.mailbox, id: e.letter.id, reason: e.letter.reason, attempts: e.letter.attempts, text: `message ${e.letter.id} dead-lettered (${e.letter.reason}, ${e.letter.attempts} attempts)` }),
      'worker-crash': (e: WorkerCrashEvent): void =>
        this.record({ type: 'crash', t: Date.now(), mailbox: e.mailbox, threadId: e.threadId, text: `thread ${e.threadId} died: ${String(e.error?.message ?? '').slice(0, 200)} (${e.redelivered} put back)` }),
      'handler-timeout': (e: HandlerTimeoutEvent): void =>
        this.record({ type: 'timeout', t: Date.now(), mailbox: e.mailbox, id: e.id, text: `message ${e.id} ran past leaseMs (${e.leaseMs} ms) on thread ${e.threadId}, attempt ${e.attempt}` }),
    };
    for (const [ev, f] of Object.entries(on)) rt.on(ev as 'scale', f as (e: ScaleEvent) => void);
    const off = (): void => {
      for (const [ev, f] of Object.entries(on)) rt.off(ev as 'scale', f as (e: ScaleEvent) => void);
      rt.off('close', off);
      this.unsubscribe.delete(rt);
    };
    rt.once('close', off);
    this.unsubscribe.set(rt, off);
    if (this.timer === null) {
      this.tick();
      this.timer = setInterval(() => this.tick(), SNAPSHOT_MS);
      this.timer.unref();
    }
  }

  /** An operator's action through the console, into the log. */
  action(mailbox: string, text: string): void {
    this.record({ type: 'action', t: Date.now(), mailbox, text });
  }

  /** `GET /api/history`: the snapshots of the last ten minutes and the last events, oldest first. */
  history(): { intervalMs: number; snapshots: Array<{ t: number; mailboxes: MailboxSnapshot[] }>; events: ConsoleEvent[] } {
    return { intervalMs: SNAPSHOT_MS, snapshots: this.frames.map((f) => ({ t: f.t, mailboxes: f.mailboxes })), events: this.events.slice() };
  }

  /** A new page: the stream's headers, the last snapshot at once, then the feed. */
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
    };
    req.on('close', gone);
    res.on('error', gone);
    if (this.lastFrame === null) this.tick();
    else this.write(res, this.lastFrame);
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const off of [...this.unsubscribe.values()]) off();
    for (const c of this.clients) c.end();
    this.clients.clear();
  }

  private tick(): void {
    const frame: SnapshotFrame = { type: 'snapshot', ...this.snapshots.take() };
    this.frames.push(frame);
    const old = frame.t - HISTORY_MS;
    let drop = 0;
    while (drop < this.frames.length && this.frames[drop]!.t < old) drop++;
    if (drop > 0) this.frames.splice(0, drop);
    this.lastFrame = `data: ${JSON.stringify(frame, jsonSafe)}\n\n`;
    for (const c of this.clients) this.write(c, this.lastFrame);
  }

  private record(ev: ConsoleEvent): void {
    this.events.push(ev);
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
    if (this.clients.size === 0) return;
    const frame = `data: ${JSON.stringify(ev, jsonSafe)}\n\n`;
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
}
