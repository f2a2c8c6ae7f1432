/**
 * A durable mailbox's journal, main-thread side: the MessageStore the
 * mailbox uses when `durability` is set. It starts the journal thread
 * (thread.ts) at start(), hands it the outcome feed's batches as posts (only
 * what recovery needs: acks, retries with their due time, dead letters with
 * payload and errors, redrives, purges, delayed sends), and tells sendAsync
 * when its message is on disk (JOURNALED passed it). The main thread never
 * touches the journal's files, except to read two small ones when the
 * mailbox is built, before anything can send to it: `ids` (ids after a
 * restart start past every journaled one) and `structures` (msgpack's record
 * shapes: the table must hold the journal's before anyone encodes with it).
 */
import type { StructureTable } from '../../shared/structures.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { DEAD_LETTER_REASONS, Outcome, type OutcomeBatch } from '../../outcome.js';
import { ErrorCodes, RingpoolError, journalStopped, type ErrorCode } from '../../shared/errors.js';
import { ID_BLOCK, ID_BLOCK_SIZE, JOURNALED, JOURNAL_BROKEN, JOURNAL_CLOSED, JOURNAL_FAILED, JOURNAL_SEQ, JOURNAL_WATCHERS, OUTCOMES_DONE } from '../../shared/layout.js';
import type { Ring } from '../../shared/ring.js';
import type { ResolvedDurability } from '../../mailbox-options.js';
import type { JournalStats, MessageStore, StoredMessage, StoreWrites } from '../store.js';
import type { StoreContext } from '../index.js';
import type { DeadLetterRecord } from '../../outcome.js';
import { PLAIN_BYTES, RETRY_BYTES, errorsJson, stateBytes, writeRetry, writeState, type JournaledMessage } from './records.js';
import { recoveredMessages } from './recovery.js';
import type { FromJournal, JournalThreadData } from './thread.js';
import { IDS_NAME, STRUCTURES_NAME, J_BYTES, J_COMPACTIONS, J_FSYNCS, J_LAST_FSYNC_MS, J_RECOVERED, J_SEGMENTS, J_STATS_WORDS } from './writer.js';

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

/** runtime/store/index.ts builds a durable mailbox's store with this (loaded only then). */
export function createJournal(ctx: StoreContext, durability: ResolvedDurability): Journal {
  return new Journal(ctx.mailbox, durability, ctx.ring, ctx.structures, ctx.emitError);
}

export class Journal implements MessageStore, StoreWrites {
  /** Sends resolve once written (store.ts: StoreWrites). */
  readonly writes: StoreWrites = this;
  /** The records come from the ring itself: the feed's ACCEPTED and CLAIMED entries for them are not needed. */
  readonly ringEntries = false;
  private worker: Worker | null = null;
  private port: MessagePort | null = null;
  private readonly statsSab = new SharedArrayBuffer(J_STATS_WORDS * 8);
  private readonly statsF64 = new Float64Array(this.statsSab);
  private readonly i32: Int32Array;
  /** Dead letters recovery gave back, until the mailbox takes them (takeDeadLetters). */
  private recoveredDead: JournaledMessage[] = [];
  /** Waiters in the order their cursors come (sends from the main thread), from the head index on. */
  private readonly ringWaiters: Waiter[] = [];
  private readonly postWaiters: Waiter[] = [];
  private ringHead = 0;
  private postHead = 0;
  private watching = false;
  /** Outcome posts sent to the journal thread. */
  posted = 0;
  /** The thread said it opened (posts go straight to it from then on); it exited (nothing more will move). */
  private opened = false;
  private exited = false;
  /** Posts made before the thread opened (sends before start()). */
  private readonly early: Buffer[] = [];
  private closed: Promise<void> | null = null;
  private closedResolve: (() => void) | null = null;
  /** The `structures` file was damaged: open() refuses with this. */
  private readonly refusal: RingpoolError | null = null;
  /** Bytes of the `structures` file loaded (the journal thread rewrites it only once the table grew past them). */
  private readonly structuresOnDisk: number = 0;

  constructor(
    readonly mailbox: string,
    readonly opts: ResolvedDurability,
    private readonly ring: Ring,
    /** The msgpack codec's record structures: kept in the directory, so records decode after a restart. */
    private readonly structures: StructureTable | null,
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
    // The journal's msgpack shapes, into the empty table, before any send (a send before start(), or a
    // handler's ctx.send() from another mailbox during recovery) can append shapes of its own there.
    if (structures !== null) {
      const path = join(opts.dir, STRUCTURES_NAME);
      let file: Buffer | null = null;
      try {
        file = readFileSync(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.refusal = new RingpoolError(ErrorCodes.JOURNAL_IO, `mailbox '${mailbox}': could not read ${path} (${(err as Error).message})`, { mailbox, dir: opts.dir });
      }
      if (file !== null) {
        try {
          structures.load(file);
          this.structuresOnDisk = file.byteLength;
        } catch (err) {
          this.refusal = new RingpoolError(ErrorCodes.JOURNAL_CORRUPT, `mailbox '${mailbox}': ${(err as Error).message} (${path})`, { mailbox, dir: opts.dir });
        }
      }
    }
  }

  open(): Promise<StoredMessage[]> {
    if (this.refusal !== null) return Promise.reject(this.refusal);
    const { port1, port2 } = new MessageChannel();
    const data: JournalThreadData = {
      ...this.opts,
      mailbox: this.mailbox,
      sab: this.ring.sab,
      structures: this.structures?.sab ?? null,
      structuresOnDisk: this.structuresOnDisk,
      stats: this.statsSab,
      port: port2,
      board: this.ring.boardSab,
    };
    // trackUnmanagedFds (Node's default, set here because the lock relies on it): a thread that dies has its
    // descriptors closed, the one holding LOCK open included, so its LOCK is stale to this process (lock.ts).
    const worker = new Worker(new URL('./thread.js', import.meta.url), { workerData: data, transferList: [port2], name: `ringpool journal ${this.mailbox}`, trackUnmanagedFds: true });
    this.worker = worker;
    this.port = port1;
    return new Promise<StoredMessage[]>((resolve, reject) => {
      const onMessage = (msg: FromJournal): void => {
        if (msg.t === 'opened') {
          this.opened = true;
          // Closing already (another mailbox failed to start): stay referenced until 'closed'.
          if (this.closed === null) {
            worker.unref();
            port1.unref();
          }
          for (const buf of this.early.splice(0)) port1.postMessage({ t: 'outcomes', buf }, [buf.buffer as ArrayBuffer]);
          this.ring.wakeJournal();
          if (msg.tornBytes > 0) {
            this.onError(new RingpoolError(ErrorCodes.JOURNAL_TORN, `mailbox '${this.mailbox}': the journal in ${this.opts.dir} had damage past what it had synced (${msg.tornBytes} bytes, a write cut short by a crash or a power cut); cut off at the last good record`, { mailbox: this.mailbox, dir: this.opts.dir, bytes: msg.tornBytes }));
          }
          resolve(this.split(recoveredMessages(msg)));
        } else if (msg.t === 'error') {
          const err = new RingpoolError(msg.code as ErrorCode, msg.message, msg.details);
          if (!this.opened) reject(err);
          else {
            this.onError(err);
            this.settle();
          }
        } else this.closedResolve?.();
      };
      port1.on('message', onMessage);
      worker.on('error', (err) => {
        if (!this.opened) reject(err);
        else this.onError(err);
      });
      worker.on('exit', (code) => {
        // What it posted just before it ended may not have been delivered yet (its error for a held LOCK): read it first.
        for (let m = receiveMessageOnPort(port1); m !== undefined; m = receiveMessageOnPort(port1)) onMessage(m.message as FromJournal);
        this.worker = null;
        this.exited = true;
        if (!this.opened) reject(new RingpoolError(ErrorCodes.JOURNAL_IO, `mailbox '${this.mailbox}': the journal thread exited before it opened ${this.opts.dir}`, { mailbox: this.mailbox }));
        else if (this.closedResolve === null && Atomics.compareExchange(this.i32, JOURNAL_FAILED, 0, JOURNAL_BROKEN) === 0) {
          // It died (not a clean close): nothing more reaches the disk, so nothing more is accepted.
          Atomics.add(this.i32, JOURNAL_SEQ, 1);
          Atomics.notify(this.i32, JOURNAL_SEQ);
          this.onError(new RingpoolError(ErrorCodes.JOURNAL_IO, `mailbox '${this.mailbox}': the journal thread exited (code ${code}); the mailbox stops accepting`, { mailbox: this.mailbox }));
        }
        this.closedResolve?.();
        this.settle();
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

  /**
   * The feed's batch: what recovery needs of it, in one post (its own
   * ArrayBuffer, transferred). Before the thread runs (sends before start()),
   * posts wait here and go first once it opened.
   */
  outcomes(b: OutcomeBatch): void {
    // First pass: the size, and the whole states (rare: delayed sends, dead letters).
    let count = 0;
    let bytes = 4;
    const states: Array<{ m: JournaledMessage; key: Buffer | null; errs: Buffer | null } | null> = [];
    for (let i = 0; i < b.n; i++) {
      const kind = b.kind[i]!;
      let m: JournaledMessage | null = null;
      if (kind === Outcome.ACCEPTED) {
        if (b.value[i]! === 0) continue; // a ring record: the journal thread wrote it already
        const a = b.message(i)!;
        m = { id: a.id, attempt: 1, dueAt: a.dueAt, sentAt: a.sentAt, key: a.key, payload: a.payload, ascii: a.ascii, kept: 0, reason: -1, deadAt: 0, firstError: undefined, lastError: undefined, headers: a.headers ?? null };
      } else if (kind === Outcome.DEAD_LETTERED) {
        const d = b.letter(i);
        if (d === null) continue;
        m = { ...d, dueAt: 0, reason: DEAD_LETTER_REASONS.indexOf(d.reason), headers: d.headers ?? null };
      } else if (kind === Outcome.CLAIMED) continue;
      count++;
      if (m !== null) {
        const key = m.key === null ? null : Buffer.from(m.key, 'utf8');
        const errs = errorsJson(m);
        states.push({ m, key, errs });
        bytes += PLAIN_BYTES + stateBytes(m, key, errs);
      } else bytes += kind === Outcome.RETRY ? RETRY_BYTES : PLAIN_BYTES;
    }
    if (count === 0) return;
    // Second pass: write. Not from Node's pool: a pooled ArrayBuffer cannot be transferred (Node >= 21 throws).
    const post = Buffer.allocUnsafeSlow(bytes);
    post.writeUInt32LE(count, 0);
    let p = 4;
    let k = 0;
    for (let i = 0; i < b.n; i++) {
      const kind = b.kind[i]!;
      if (kind === Outcome.CLAIMED || (kind === Outcome.ACCEPTED && b.value[i]! === 0)) continue;
      if (kind === Outcome.RETRY) {
        p = writeRetry(post, p, b.id[i]!, b.attempt[i]!, b.value[i]!);
        continue;
      }
      if (kind === Outcome.ACCEPTED || kind === Outcome.DEAD_LETTERED) {
        const st = states[k];
        if (st === undefined || st === null || st.m.id !== b.id[i]!) continue; // a DEAD_LETTERED entry without its letter (none in practice)
        k++;
        post[p] = kind;
        post.writeDoubleLE(b.id[i]!, p + 1);
        p = writeState(post, p + PLAIN_BYTES, st.m, st.key, st.errs);
        continue;
      }
      post[p] = kind;
      post.writeDoubleLE(b.id[i]!, p + 1);
      p += PLAIN_BYTES;
    }
    this.post(post);
  }

  private post(buf: Buffer): void {
    this.posted++;
    if (this.port === null || !this.opened) {
      this.early.push(buf);
      return;
    }
    this.port.postMessage({ t: 'outcomes', buf }, [buf.buffer as ArrayBuffer]);
    this.ring.wakeJournal();
  }

  /** Resolves with `id` once JOURNALED passes ring cursor `end` (the record before it is on disk, as the mode says). */
  whenWritten(end: number, id: number): Promise<number> {
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
      if ((this.ringWaiters.length === this.ringHead && this.postWaiters.length === this.postHead) || this.exited) {
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

  /** The dead letters recovery found, once: they go back into the mailbox's dead-letter store. */
  takeDeadLetters(): DeadLetterRecord[] {
    const out = this.recoveredDead.map((d) => ({ ...d, reason: DEAD_LETTER_REASONS[d.reason] ?? 'max_attempts' }));
    this.recoveredDead = [];
    return out;
  }

  stats(): JournalStats {
    const s = this.statsF64;
    return {
      kind: 'journal',
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
    if (worker === null || port === null) {
      // Never started (or already gone): whoever waits for the disk waits in vain.
      this.rejectAll(this.closedError());
      return (this.closed = Promise.resolve());
    }
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
