/**
 * A durable mailbox's journal, main-thread side: the MessageStore the
 * mailbox uses when `durability` is set. It starts the journal thread
 * (thread.ts) at start(), hands it the outcome feed's batches as posts (only
 * what recovery needs: acks, retries with their due time, dead letters with
 * payload and errors, redrives, purges, delayed sends), and tells sendAsync
 * when its message is on disk (JOURNALED passed it). The main thread never
 * touches the journal's files, except to read the small `ids` file when the
 * mailbox is built (ids after a restart start past every journaled one).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { Outcome, type OutcomeBatch } from '../../outcome.js';
import { ErrorCodes, RingpoolError, type ErrorCode } from '../../shared/errors.js';
import { ID_BLOCK, ID_BLOCK_SIZE, JOURNALED, JOURNAL_CLOSED, JOURNAL_FAILED, JOURNAL_SEQ, JOURNAL_WATCHERS, OUTCOMES_DONE } from '../../shared/layout.js';
import type { Ring } from '../../shared/ring.js';
import type { HeldMessage } from '../../held.js';
import type { ResolvedDurability } from '../../options.js';
import type { MessageStore, StoredMessage } from '../store.js';
import { errorsJson, stateBytes, writeState, type JournaledMessage } from './records.js';
import { recoveredMessages } from './recovery.js';
import type { FromJournal, JournalThreadData } from './thread.js';
import { IDS_NAME, J_BYTES, J_COMPACTIONS, J_FSYNCS, J_LAST_FSYNC_MS, J_RECOVERED, J_SEGMENTS, J_STATS_WORDS } from './writer.js';

export interface JournalStats {
  segments: number;
  bytes: number;
  fsyncs: number;
  lastFsyncMs: number;
  /** Messages (and dead letters) given back by recovery at start(). */
  recovered: number;
  /** Segments deleted or copied forward. */
  compactions: number;
}

interface Waiter {
  /** A ring cursor (JOURNALED must reach it) or an outcome post count (OUTCOMES_DONE must reach it). */
  at: number;
  /** The message id the promise resolves with. */
  id: number;
  resolve: (id: number) => void;
  reject: (err: unknown) => void;
}

/** Resolve the waiters from `head` on while `passed`; returns the new head (the array is compacted now and then, not shifted each time). */
function release(q: Waiter[], head: number, passed: (w: Waiter) => boolean): number {
  while (head < q.length && passed(q[head]!)) {
    const w = q[head++]!;
    w.resolve(w.id);
  }
  if (head === q.length) {
    q.length = 0;
    return 0;
  }
  if (head > 1024 && head * 2 > q.length) {
    q.splice(0, head);
    return 0;
  }
  return head;
}

export class Journal implements MessageStore {
  private worker: Worker | null = null;
  private port: MessagePort | null = null;
  private readonly statsSab = new SharedArrayBuffer(J_STATS_WORDS * 8);
  private readonly statsF64 = new Float64Array(this.statsSab);
  private readonly i32: Int32Array;
  /** Dead letters recovery gave back (the mailbox puts them in its store). */
  recoveredDead: JournaledMessage[] = [];
  /** Dead letters told by the mailbox, until their DEAD_LETTERED entry is posted. */
  private readonly dead = new Map<number, { held: HeldMessage; reason: number; deadAt: number }>();
  /** Waiters in the order their cursors come (sends from the main thread), from the head index on. */
  private readonly ringWaiters: Waiter[] = [];
  private readonly postWaiters: Waiter[] = [];
  private ringHead = 0;
  private postHead = 0;
  private watching = false;
  /** Outcome posts sent to the journal thread. */
  posted = 0;
  private closed: Promise<void> | null = null;
  private closedResolve: (() => void) | null = null;

  constructor(
    readonly mailbox: string,
    readonly opts: ResolvedDurability,
    private readonly ring: Ring,
    private readonly onError: (err: Error) => void,
  ) {
    this.i32 = ring.i32;
    // Sends before start() take ids too: start them past every id the journal holds.
    let mark = 0;
    try {
      mark = readFileSync(join(opts.dir, IDS_NAME)).readDoubleLE(0);
    } catch {
      // no journal yet
    }
    const block = Math.ceil(mark / ID_BLOCK_SIZE);
    if ((Atomics.load(this.i32, ID_BLOCK) >>> 0) < block) Atomics.store(this.i32, ID_BLOCK, block);
  }

  open(): Promise<StoredMessage[]> {
    const { port1, port2 } = new MessageChannel();
    const data: JournalThreadData = { ...this.opts, mailbox: this.mailbox, sab: this.ring.sab, stats: this.statsSab, port: port2 };
    const worker = new Worker(new URL('./thread.js', import.meta.url), { workerData: data, transferList: [port2], name: `ringpool journal ${this.mailbox}` });
    this.worker = worker;
    this.port = port1;
    return new Promise<StoredMessage[]>((resolve, reject) => {
      let opened = false;
      port1.on('message', (msg: FromJournal) => {
        if (msg.t === 'opened') {
          opened = true;
          worker.unref();
          port1.unref();
          if (msg.tornBytes > 0) {
            this.onError(new RingpoolError(ErrorCodes.JOURNAL_TORN, `mailbox '${this.mailbox}': the newest journal segment in ${this.opts.dir} ended in a partial record (${msg.tornBytes} bytes, a write cut short by a crash); cut off at the last good record`, { mailbox: this.mailbox, dir: this.opts.dir, bytes: msg.tornBytes }));
          }
          resolve(this.split(recoveredMessages(msg)));
        } else if (msg.t === 'error') {
          const err = new RingpoolError(msg.code as ErrorCode, msg.message, msg.details);
          if (!opened) reject(err);
          else {
            this.onError(err);
            this.settle();
          }
        } else this.closedResolve?.();
      });
      worker.on('error', (err) => {
        if (!opened) reject(err);
        else this.onError(err);
      });
      worker.on('exit', () => {
        this.worker = null;
        if (!opened) reject(new RingpoolError(ErrorCodes.JOURNAL_IO, `mailbox '${this.mailbox}': the journal thread exited before it opened ${this.opts.dir}`, { mailbox: this.mailbox }));
        this.closedResolve?.();
        this.rejectAll(this.closedError());
      });
    });
  }

  /** Live messages to deliver again; dead letters kept aside for the dead-letter store. */
  private split(all: JournaledMessage[]): StoredMessage[] {
    const live: StoredMessage[] = [];
    for (const m of all) {
      if (m.reason >= 0) this.recoveredDead.push(m);
      else live.push(m); // a JournaledMessage is a StoredMessage (and more)
    }
    return live;
  }

  /** A message goes to the dead-letter store: its letter is posted with the feed's DEAD_LETTERED entry. */
  noteDead(held: HeldMessage, reason: number, deadAt: number): void {
    this.dead.set(held.id, { held, reason, deadAt });
  }

  /** The feed's batch: what recovery needs of it, in one post. */
  outcomes(b: OutcomeBatch): void {
    const port = this.port;
    if (port === null) return;
    const parts: Buffer[] = [];
    let count = 0;
    let fixed = Buffer.allocUnsafe(4096);
    let f = 0;
    const flushFixed = (): void => {
      if (f > 0) parts.push(fixed.subarray(0, f));
      fixed = Buffer.allocUnsafe(4096);
      f = 0;
    };
    for (let i = 0; i < b.n; i++) {
      const kind = b.kind[i]!;
      let state: JournaledMessage | null = null;
      if (kind === Outcome.ACCEPTED) {
        if (b.value[i]! === 0) continue; // a ring record: the journal thread wrote it already
        const a = b.message(i)!;
        state = { id: a.id, attempt: 1, dueAt: a.dueAt, sentAt: a.sentAt, key: a.key, payload: a.payload, ascii: a.ascii, kept: 0, reason: -1, deadAt: 0, firstError: undefined, lastError: undefined };
      } else if (kind === Outcome.DEAD_LETTERED) {
        const d = this.dead.get(b.id[i]!);
        if (d === undefined) continue;
        this.dead.delete(b.id[i]!);
        const h = d.held;
        state = { id: h.id, attempt: h.attempt, dueAt: 0, sentAt: h.sentAt, key: h.key, payload: h.payload, ascii: h.ascii, kept: h.kept, reason: d.reason, deadAt: d.deadAt, firstError: h.firstError, lastError: h.lastError };
      } else if (kind === Outcome.CLAIMED) continue;
      if (f + 21 > fixed.length) flushFixed();
      fixed[f] = kind;
      fixed.writeDoubleLE(b.id[i]!, f + 1);
      f += 9;
      count++;
      if (kind === Outcome.RETRY) {
        fixed.writeInt32LE(b.attempt[i]!, f);
        fixed.writeDoubleLE(b.value[i]!, f + 4);
        f += 12;
      } else if (state !== null) {
        flushFixed();
        const key = state.key === null ? null : Buffer.from(state.key, 'utf8');
        const errs = errorsJson(state);
        const buf = Buffer.allocUnsafe(stateBytes(state, key, errs));
        writeState(buf, 0, state, key, errs);
        parts.push(buf);
      }
    }
    if (count === 0) return;
    flushFixed();
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32LE(count, 0);
    const post = Buffer.concat([head, ...parts]);
    port.postMessage({ t: 'outcomes', buf: post }, [post.buffer as ArrayBuffer]);
    this.posted++;
    this.ring.wakeJournal();
  }

  /** Resolves with `id` once JOURNALED passes ring cursor `end` (the record before it is on disk, as the mode says). */
  whenJournaled(end: number, id: number): Promise<number> {
    return this.wait(this.ringWaiters, end, id);
  }

  /** Resolves with `id` once the journal wrote outcome post number `n` (a delayed send's ACCEPTED). */
  whenPosted(n: number, id: number): Promise<number> {
    return this.wait(this.postWaiters, n, id);
  }

  private wait(q: Waiter[], at: number, id: number): Promise<number> {
    const failed = Atomics.load(this.i32, JOURNAL_FAILED);
    if (failed !== 0) return Promise.reject(failed === JOURNAL_CLOSED ? this.closedError() : this.ioError());
    return new Promise<number>((resolve, reject) => {
      q.push({ at, id, resolve, reject });
      if (!this.watching) this.watch();
    });
  }

  /** While anyone waits: Atomics.waitAsync on JOURNAL_SEQ, which the journal thread bumps after each batch. */
  private watch(): void {
    if (this.watching) return;
    this.watching = true;
    const i32 = this.i32;
    Atomics.add(i32, JOURNAL_WATCHERS, 1);
    // A pending Atomics.waitAsync does not keep the process alive: the journal thread does, while anyone waits.
    this.worker?.ref();
    const step = (): void => {
      const seq = Atomics.load(i32, JOURNAL_SEQ);
      this.settle();
      if ((this.ringWaiters.length === this.ringHead && this.postWaiters.length === this.postHead) || this.worker === null) {
        this.watching = false;
        Atomics.sub(i32, JOURNAL_WATCHERS, 1);
        if (this.closed === null) this.worker?.unref();
        return;
      }
      const r = Atomics.waitAsync(i32, JOURNAL_SEQ, seq, 1000);
      if (r.async) void r.value.then(step);
      else setImmediate(step);
    };
    step();
  }

  /** Resolve what the journal passed; reject everything once it failed. */
  private settle(): void {
    const i32 = this.i32;
    const failed = Atomics.load(i32, JOURNAL_FAILED);
    if (failed !== 0) {
      // What it passed is settled first: a clean close journaled it.
      this.ringHead = release(this.ringWaiters, this.ringHead, (w) => ((Atomics.load(i32, JOURNALED) - w.at) | 0) >= 0);
      this.postHead = release(this.postWaiters, this.postHead, (w) => Atomics.load(i32, OUTCOMES_DONE) >= w.at);
      this.rejectAll(failed === JOURNAL_CLOSED ? this.closedError() : this.ioError());
      return;
    }
    const j = Atomics.load(i32, JOURNALED);
    this.ringHead = release(this.ringWaiters, this.ringHead, (w) => ((j - w.at) | 0) >= 0);
    const done = Atomics.load(i32, OUTCOMES_DONE);
    this.postHead = release(this.postWaiters, this.postHead, (w) => done >= w.at);
  }

  private rejectAll(err: Error): void {
    for (const w of this.ringWaiters.splice(0).slice(this.ringHead)) w.reject(err);
    for (const w of this.postWaiters.splice(0).slice(this.postHead)) w.reject(err);
    this.ringHead = this.postHead = 0;
  }

  private ioError(): RingpoolError {
    return new RingpoolError(ErrorCodes.JOURNAL_IO, `mailbox '${this.mailbox}': its journal failed to write; the message is not durable (see the 'error' event)`, { mailbox: this.mailbox });
  }

  private closedError(): RingpoolError {
    return new RingpoolError(ErrorCodes.CLOSED, `mailbox '${this.mailbox}' closed before the message was journaled`, { mailbox: this.mailbox });
  }

  stats(): JournalStats {
    const s = this.statsF64;
    return {
      segments: s[J_SEGMENTS]!,
      bytes: s[J_BYTES]!,
      fsyncs: s[J_FSYNCS]!,
      lastFsyncMs: s[J_LAST_FSYNC_MS]!,
      recovered: s[J_RECOVERED]!,
      compactions: s[J_COMPACTIONS]!,
    };
  }

  /** After the feed's last batch: the thread writes what is left, syncs, lets go of the files and exits. */
  close(): Promise<void> {
    if (this.closed !== null) return this.closed;
    const worker = this.worker;
    const port = this.port;
    if (worker === null || port === null) return (this.closed = Promise.resolve());
    worker.ref();
    port.ref();
    this.closed = new Promise<void>((resolve) => {
      this.closedResolve = () => {
        this.closedResolve = null;
        this.settle();
        this.rejectAll(this.closedError());
        port.close();
        resolve();
      };
      port.postMessage({ t: 'close' });
      this.ring.wakeJournal();
    });
    return this.closed;
  }
}
