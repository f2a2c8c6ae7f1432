/**
 * The XADD writer of a Redis Streams mailbox and of `redisProducer()` (main
 * thread): one entry a message, its payload in field `d` (the codec's
 * bytes), its headers, if any, in field `h` (fields.ts).
 *
 * - Sends queue here and are written only while the client is ready, one
 *   batch at a time: what arrives during a round trip (or an outage) goes
 *   in the next.
 * - A batch is one transaction (MULTI, XADDs, EXEC): all of it is in the
 *   stream, or none. Redis answers LOADING or BUSY while it loads its data
 *   after a restart (or a script runs) and then runs none of it: the batch
 *   is queued again, in front, and tried after a backoff. (A plain pipeline
 *   ran some XADDs and refused others, and node-redis's execAsPipeline
 *   rejects the whole pipeline at the first error: stored sends reported
 *   failed.) An error inside EXEC fails only its own send; any other error
 *   reply fails the batch's sends (RINGPOOL_SOURCE_IO: not in the stream); a
 *   connection lost after the write fails them with "may be in the stream".
 * - What waits (queued, or written and not answered) is bounded by
 *   `maxBytes` of payload and headers: past it a send is refused (RINGPOOL_QUEUE_FULL),
 *   as a full ring refuses one (one send always fits when nothing waits).
 * - A sendAsync's `timeoutMs` and `signal` end its wait: RINGPOOL_TIMEOUT
 *   (or the signal's reason); a send still queued here is dropped (not in
 *   the stream), one already handed to the client may be in it
 *   (`details.written`).
 */
import type { PayloadCodec } from '../../shared/codec.js';
import { ErrorCodes, RingpoolError, describeValue } from '../../shared/errors.js';
import { backoffMs, loadRedis, message, type Client } from './connection.js';

import { KeyHolds } from './holds.js';
import { SEND_LUA, type DelayedKeys } from './delayed.js';
import { sendScriptCommand, xaddCommand } from './entry.js';

export { PAYLOAD_FIELD, KEY_FIELD, CALL_FIELD } from './fields.js';

const EMPTY = Buffer.alloc(0);

/** Sends a transaction takes at most (the rest go in the next). */
const MAX_BATCH = 8_192;

type ErrorClass = new (...a: never[]) => Error;

/** Redis's clock is compared with this process's this often (delayed sends are due on Redis's clock). */
const CLOCK_EVERY_MS = 10_000;

/** While the client is not ready, look again this often. */
const NOT_READY_POLL_MS = 50;

const QUEUED = 0;
const WRITTEN = 1;
const DONE = 2;

/** One entry of a batch send (pushGroup). */
export interface GroupItem {
  bytes: Buffer;
  stream: string | null;
  key: string | null;
  /** Whole ms to wait in the delayed set (delayed.ts); 0: now. */
  delayMs: number;
  /** Its headers as encoded (shared/headers.ts), or null: a batch's items share one. */
  headers: Buffer | null;
}

interface Pending {
  bytes: Buffer;
  /** Its headers as encoded, or null (a group's are its items'). */
  headers: Buffer | null;
  /** A batch send: its entries, written in one transaction, in order (then `bytes` is unused). */
  group: GroupItem[] | null;
  /** Payload and header bytes it holds (all of a group's). */
  size: number;
  /** The stream it goes to: null for AddsOptions.stream (a partition's otherwise). */
  stream: string | null;
  key: string | null;
  /** An actor method call (`tell`). */
  call: boolean;
  /**
   * When it is due (Date.now() ms) when delayed, else 0: the delay Redis is
   * given counts from the send, not from the write. A group: when it was
   * queued, if any of its items is delayed (each counts its delay from then).
   */
  dueAt: number;
  /** An ask's reply stream and correlation id (asks.ts), or null. */
  reply: string | null;
  corr: string | null;
  /** With the entry id, or a group's ids in order. */
  resolve: ((id: string & string[]) => void) | null;
  reject: ((err: unknown) => void) | null;
  state: number;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export interface AddsOptions {
  stream: string;
  /** Who sends, for messages: "mailbox 'orders'", "redisProducer for stream 'orders'". */
  what: string;
  /** The client once connected (rejects if it never will be). */
  client: () => Promise<Client>;
  /** A failed send() that nobody awaits. */
  onError: ((err: RingpoolError) => void) | undefined;
  /** Payload and header bytes that may wait (queued, or written and not answered). */
  maxBytes: number;
  /** Sends refused because maxBytes was reached (counted by the caller). */
  onFull?: () => void;
  /** The stream's delayed set: where delayed sends wait, and keyed sends while their key is held (delayed.ts). */
  delayed: DelayedKeys;
}

export class Adds {
  /** Sends not yet written, from `head` on (with some that settled there, timed out or aborted: skipped). */
  private queue: Pending[] = [];
  private head = 0;
  /** Sends in the queue still QUEUED. */
  private queued = 0;
  /** The writer: takes what is queued, a batch at a time, until nothing is. */
  private draining: Promise<void> | null = null;
  private retries = 0;
  /** Payload and header bytes waiting: queued, or written and not yet answered. */
  bytes = 0;
  /** send() calls whose entry Redis did not take. */
  failed = 0;
  /** Entries Redis took. */
  added = 0;
  /** Sends written again after a LOADING or BUSY reply. */
  retried = 0;
  /** Keys a delayed message may hold: their keyed sends go through the script (holds.ts). */
  readonly holds: KeyHolds;
  /** Redis's clock minus this process's (ms), measured with TIME when written at least CLOCK_EVERY_MS ago. */
  private offset = 0;
  private offsetAt = -Infinity;

  constructor(private readonly o: AddsOptions) {
    this.holds = new KeyHolds(o.delayed.holds, o.client);
  }

  /**
   * Queue the codec's prepared bytes (a fresh copy) and `headers` (encoded,
   * the caller's). Throws (or, inside a
   * sendAsync's executor, rejects) RINGPOOL_QUEUE_FULL past maxBytes, and the
   * signal's reason when it is already aborted: nothing is queued then.
   */
  push(codec: PayloadCodec, resolve: Pending['resolve'], reject: Pending['reject'], timeoutMs?: number, signal?: AbortSignal, stream: string | null = null, key: string | null = null, call = false, delayMs = 0, headers: Buffer | null = null): void {
    if (signal?.aborted) throw signal.reason;
    const b = codec.preparedBytes();
    this.pushBytes(Buffer.from(b.buffer, b.byteOffset, b.byteLength), resolve, reject, timeoutMs, signal, stream, key, call, delayMs, null, null, headers);
  }

  /** Queue bytes the caller owns; `reply` and `corr`: an ask's (asks.ts; an ask carries no headers). Throws as push() does. */
  pushBytes(bytes: Buffer, resolve: Pending['resolve'], reject: Pending['reject'], timeoutMs: number | undefined, signal: AbortSignal | undefined, stream: string | null, key: string | null, call: boolean, delayMs: number, reply: string | null, corr: string | null, headers: Buffer | null = null): void {
    const size = bytes.byteLength + (headers === null ? 0 : headers.byteLength);
    this.checkRoom(size);
    if (key !== null && delayMs > 0) this.holds.sending(key);
    const p: Pending = { bytes, headers, group: null, size, stream, key, call, dueAt: delayMs > 0 ? Date.now() + delayMs : 0, reply, corr, resolve, reject, state: QUEUED, timer: undefined, signal, onAbort: undefined };
    this.enqueue(p, timeoutMs, signal);
  }

  /**
   * Queue a batch send: its entries go to Redis in one transaction (MULTI,
   * their XADDs in order, EXEC), all or none; it resolves with their ids in
   * order. The items' bytes are the caller's own copies.
   */
  pushGroup(items: GroupItem[], resolve: Pending['resolve'], reject: Pending['reject'], timeoutMs?: number, signal?: AbortSignal): void {
    if (signal?.aborted) throw signal.reason;
    let size = 0;
    for (const it of items) size += it.bytes.byteLength + (it.headers === null ? 0 : it.headers.byteLength);
    this.checkRoom(size);
    for (const it of items) if (it.key !== null && it.delayMs > 0) this.holds.sending(it.key);
    const p: Pending = { bytes: EMPTY, headers: null, group: items, size, stream: null, key: null, call: false, dueAt: items.some((it) => it.delayMs > 0) ? Date.now() : 0, reply: null, corr: null, resolve, reject, state: QUEUED, timer: undefined, signal, onAbort: undefined };
    this.enqueue(p, timeoutMs, signal);
  }

  /** RINGPOOL_QUEUE_FULL when `size` more bytes would pass maxBytes (one send always fits when nothing waits). */
  private checkRoom(size: number): void {
    if (this.bytes > 0 && this.bytes + size > this.o.maxBytes) {
      this.o.onFull?.();
      throw new RingpoolError(
        ErrorCodes.QUEUE_FULL,
        `${this.o.what}: ${this.bytes} bytes of sends wait for Redis, and this one (${size}) would pass sendBufferBytes ${this.o.maxBytes} (Redis is away, or slower than the sends)`,
        { stream: this.o.stream, sendBufferBytes: this.o.maxBytes, waitingBytes: this.bytes },
      );
    }
  }

  private enqueue(p: Pending, timeoutMs: number | undefined, signal: AbortSignal | undefined): void {
    this.bytes += p.size;
    if (timeoutMs !== undefined) p.timer = setTimeout(() => this.giveUp(p, (written) => this.timeoutError(timeoutMs, written)), timeoutMs);
    if (signal !== undefined) {
      p.onAbort = () => this.giveUp(p, () => signal.reason);
      signal.addEventListener('abort', p.onAbort, { once: true });
    }
    this.queue.push(p);
    this.queued++;
    this.draining ??= this.drain();
  }

  /** Resolves once everything queued so far has been answered (or given up). */
  async flushed(): Promise<void> {
    while (this.draining !== null) await this.draining;
  }

  /** Fail every send not yet written (closing with Redis away): not in the stream. A RingpoolError is given to the senders as it is. */
  abandon(why: string | RingpoolError): void {
    const q = this.queue.slice(this.head);
    this.queue = [];
    this.head = 0;
    for (const p of q) if (p.state === QUEUED) this.fail(p, typeof why === 'string' ? new Error(why) : why, false);
    this.queued = 0;
  }

  private async drain(): Promise<void> {
    try {
      await new Promise((r) => setImmediate(r)); // the rest of this turn's sends join the first batch
      let c: Client;
      try {
        c = await this.o.client();
      } catch (err) {
        if (err instanceof RingpoolError && err.code === ErrorCodes.PARTITIONS_MISMATCH) this.abandon(err);
        else this.abandon(`no connection to Redis: ${message(err)}`);
        return;
      }
      const { ErrorReply, MultiErrorReply } = await loadRedis();
      while (this.queued > 0) {
        if (!c.isReady) {
          // Redis away: drop what settled while it waits (timed out, aborted), now and then.
          if (this.queue.length - this.head > 2 * this.queued + 1_024) {
            this.queue = this.queue.slice(this.head).filter((p) => p.state === QUEUED);
            this.head = 0;
          }
          await new Promise((r) => setTimeout(r, NOT_READY_POLL_MS));
          continue;
        }
        if (Date.now() - this.offsetAt > CLOCK_EVERY_MS) await this.clock(c);
        const batch: Pending[] = [];
        while (this.head < this.queue.length && batch.length < MAX_BATCH) {
          const p = this.queue[this.head++]!;
          if (p.state === QUEUED) batch.push(p);
        }
        if (this.head === this.queue.length) {
          this.queue = [];
          this.head = 0;
        }
        const again = await this.write(c, batch, ErrorReply, MultiErrorReply);
        if (again.length === 0) {
          this.retries = 0;
          continue;
        }
        this.queue = again.concat(this.queue.slice(this.head));
        this.head = 0;
        await new Promise((r) => setTimeout(r, backoffMs(this.retries++)));
      }
      this.queue = [];
      this.head = 0;
    } finally {
      this.draining = null;
    }
  }

  /** Redis's clock against this process's: the middle of a TIME round trip (off by at most half of it). */
  private async clock(c: Client): Promise<void> {
    try {
      const a = Date.now();
      const t = (await c.sendCommand(['TIME'])) as string[];
      const b = Date.now();
      this.offset = Number(t[0]) * 1000 + Number(t[1]) / 1000 - (a + b) / 2;
      this.offsetAt = b;
    } catch {
      // The write below meets the same fault and says so; the last offset stands.
    }
  }

  /**
   * Write one batch as a transaction (MULTI, the XADDs, EXEC: all run, or
   * none) and read each reply on its own; returns the sends to write again.
   * A LOADING or BUSY reply while queueing means the transaction was
   * discarded: none of it ran, all of it goes again. Another error reply
   * while queueing discards it too: each send fails, not in the stream.
   * Errors inside EXEC (MultiErrorReply) fail only their own send.
   */
  private async write(c: Client, batch: Pending[], ErrorReply: ErrorClass, MultiErrorReply: ErrorClass): Promise<Pending[]> {
    const live: Pending[] = [];
    const m = c.multi();
    // A keyed or delayed send is a script (delayed.ts): loaded in the same transaction, so that EVALSHA finds it whatever Redis forgot.
    let at = 0;
    for (const p of batch) {
      if (p.state === QUEUED && (p.dueAt > 0 || (p.key !== null && this.holds.may(p.key)) || (p.group !== null && p.group.some((it) => it.key !== null && this.holds.may(it.key))))) {
        m.addCommand(['SCRIPT', 'LOAD', SEND_LUA]);
        at = 1;
        break;
      }
    }
    for (const p of batch) {
      if (p.state !== QUEUED) continue;
      p.state = WRITTEN;
      this.queued--;
      live.push(p);
      if (p.group === null) m.addCommand(this.entry(p.stream, p.bytes, p.key, p.call, p.dueAt, p.reply, p.corr, p.headers));
      else for (const it of p.group) m.addCommand(this.entry(it.stream, it.bytes, it.key, false, it.delayMs > 0 ? p.dueAt + it.delayMs : 0, null, null, it.headers));
    }
    if (live.length === 0) return [];
    let replies: unknown[];
    try {
      replies = (await m.exec()) as unknown[];
    } catch (err) {
      if (err instanceof MultiErrorReply) replies = (err as Error & { replies: unknown[] }).replies;
      else if (err instanceof ErrorReply && /^(LOADING|BUSY)\b/.test(message(err))) {
        // Redis did not run it: not in the stream. Again, except those whose senders gave up meanwhile.
        const again = live.filter((p) => p.state === WRITTEN);
        for (const p of again) p.state = QUEUED;
        this.queued += again.length;
        this.retried += again.length;
        return again;
      } else {
        // An error reply: the transaction was discarded (nothing in the stream). Anything else: the connection went after the write.
        for (const p of live) this.fail(p, err, !(err instanceof ErrorReply));
        return [];
      }
    }
    for (const p of live) {
      if (p.group === null) {
        const r = replies[at++];
        if (typeof r === 'string') {
          this.added++;
          if (this.settle(p)) p.resolve?.(r as string & string[]);
        } else this.fail(p, r instanceof Error ? r : new Error(`unexpected reply ${describeValue(r)}`), false);
        continue;
      }
      const rs = replies.slice(at, (at += p.group.length));
      const bad = rs.find((r) => typeof r !== 'string');
      this.added += rs.filter((r) => typeof r === 'string').length;
      if (bad === undefined) {
        if (this.settle(p)) p.resolve?.(rs as string & string[]);
      } else {
        // An error inside EXEC (a key that is not a stream): the others of the batch ran. Said so, not hidden.
        const cause = bad instanceof Error ? bad : new Error(`unexpected reply ${describeValue(bad)}`);
        this.fail(p, new Error(`${message(cause)} (${rs.length - rs.filter((r) => typeof r !== 'string').length} of the batch's ${rs.length} entries were added)`), false);
      }
    }
    return [];
  }


  /**
   * One entry's command: an XADD of the payload (and headers); a keyed or
   * delayed one through SEND_LUA (an XADD unless it waits in the delayed set).
   */
  private entry(stream: string | null, bytes: Buffer, key: string | null, call: boolean, dueAt: number, reply: string | null, corr: string | null, headers: Buffer | null): (string | Buffer)[] {
    const k = stream ?? this.o.stream;
    // Not delayed, and its key (if any) held by nothing this process knows of: a plain XADD.
    if (dueAt === 0 && (key === null || !this.holds.may(key))) return xaddCommand(k, bytes, key, call, reply, corr, headers);
    // Due on Redis's clock: a delay counts from the send (not from when a long transaction runs), whatever the clocks say.
    const due = dueAt === 0 ? '0' : String(Math.ceil(dueAt + this.offset));
    return sendScriptCommand(this.o.delayed, k, due, bytes, key, call, reply, corr, headers);
  }

  /**
   * Its sender gave up (timeoutMs, or the signal). Queued here: dropped, not
   * sent. Handed to node-redis: answered now, but it may reach the stream
   * (its transaction cannot be taken back).
   */
  private giveUp(p: Pending, error: (written: boolean) => unknown): void {
    const written = p.state === WRITTEN;
    if (this.settle(p)) p.reject?.(error(written));
  }

  private timeoutError(timeoutMs: number, written: boolean): RingpoolError {
    return new RingpoolError(
      ErrorCodes.TIMEOUT,
      written
        ? `sendAsync to ${this.o.what}: no answer from Redis within ${timeoutMs} ms; the entry may be in the stream`
        : `sendAsync to ${this.o.what}: Redis did not take it within ${timeoutMs} ms (not sent)`,
      { stream: this.o.stream, timeoutMs, written },
    );
  }

  /** Take it out of the count and its timer and listener off; false when it was settled already. */
  private settle(p: Pending): boolean {
    if (p.state === DONE) return false;
    if (p.state === QUEUED) this.queued--;
    p.state = DONE;
    this.bytes -= p.size;
    // Its delayed keyed sends are answered: the key may be forgotten once Redis holds nothing for it.
    if (this.holds.size > 0) {
      if (p.key !== null && p.dueAt > 0) this.holds.answered(p.key);
      else if (p.group !== null && p.dueAt > 0) for (const it of p.group) if (it.key !== null && it.delayMs > 0) this.holds.answered(it.key);
    }
    if (p.timer !== undefined) clearTimeout(p.timer);
    if (p.onAbort !== undefined) p.signal!.removeEventListener('abort', p.onAbort);
    return true;
  }

  private fail(p: Pending, cause: unknown, maybeWritten: boolean): void {
    if (!this.settle(p)) return;
    if (cause instanceof RingpoolError && cause.code === ErrorCodes.PARTITIONS_MISMATCH) {
      if (p.reject !== null) p.reject(cause);
      else {
        this.failed++;
        this.o.onError?.(cause);
      }
      return;
    }
    const tail = maybeWritten ? ': the connection was lost before Redis answered; the entry may be in the stream' : '';
    const err = new RingpoolError(ErrorCodes.SOURCE_IO, `XADD to stream '${this.o.stream}' failed: ${message(cause)}${tail}`, { stream: this.o.stream, maybeWritten }, { cause });
    if (p.reject !== null) p.reject(err);
    else {
      this.failed++;
      this.o.onError?.(err);
    }
  }
}
