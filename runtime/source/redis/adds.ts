/**
 * The XADD writer of a Redis Streams mailbox and of `redisProducer()` (main
 * thread): one entry a message, its payload in field `d` (the codec's
 * bytes).
 *
 * - Sends queue here and are written only while the client is ready, one
 *   pipeline at a time: what arrives during a round trip (or an outage) goes
 *   in the next (node-redis pipelines the commands of one turn: 1.6x ioredis
 *   on XADD here, see bench/redis-clients.ts).
 * - Each reply is read on its own: one failed entry fails only its own send.
 *   A LOADING or BUSY reply means Redis did not run the command (it is
 *   loading its data after a restart, or a script runs): that send is queued
 *   again, in front, and tried after a backoff. Any other error reply fails
 *   its send (RINGPOOL_SOURCE_IO: not in the stream); a connection lost
 *   after the command was written fails it with "may be in the stream".
 * - What waits (queued, or written and not answered) is bounded by
 *   `maxBytes` of payload: past it a send is refused (RINGPOOL_QUEUE_FULL),
 *   as a full ring refuses one (one send always fits when nothing waits).
 * - A sendAsync's `timeoutMs` and `signal` end its wait: RINGPOOL_TIMEOUT
 *   (or the signal's reason), and a send never written is dropped from the
 *   queue (not in the stream).
 */
import type { PayloadCodec } from '../../shared/codec.js';
import { ErrorCodes, RingpoolError, describeValue } from '../../shared/errors.js';
import type { SendOptions } from '../../shared/producer.js';
import { backoffMs, loadRedis, message, type Client } from './connection.js';

/** The entry field that holds the encoded payload. */
export const PAYLOAD_FIELD = 'd';

/** While the client is not ready, look again this often. */
const NOT_READY_POLL_MS = 50;

const QUEUED = 0;
const WRITTEN = 1;
const DONE = 2;

interface Pending {
  bytes: Buffer;
  resolve: ((id: string) => void) | null;
  reject: ((err: unknown) => void) | null;
  state: number;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** A send with a timeout or a signal: takes its XADD back from node-redis's queue when it gives up before it was on the wire. */
  ac: AbortController | null;
  /** Taken back unwritten (node-redis answered the abort with AbortError). */
  unsent: boolean;
}

export interface AddsOptions {
  stream: string;
  /** Who sends, for messages: "mailbox 'orders'", "redisProducer for stream 'orders'". */
  what: string;
  /** The client once connected (rejects if it never will be). */
  client: () => Promise<Client>;
  /** A failed send() that nobody awaits. */
  onError: ((err: RingpoolError) => void) | undefined;
  /** Payload bytes that may wait (queued, or written and not answered). */
  maxBytes: number;
  /** Sends refused because maxBytes was reached (counted by the caller). */
  onFull?: () => void;
}

export class Adds {
  private queue: Pending[] = [];
  /** Sends in `queue` that settled there (timed out, aborted): skipped, and compacted away while Redis is down. */
  private dropped = 0;
  /** The writer: takes what is queued, a pipeline at a time, until nothing is. */
  private draining: Promise<void> | null = null;
  private retries = 0;
  /** Payload bytes waiting: queued, or written and not yet answered. */
  bytes = 0;
  /** send() calls whose entry Redis did not take. */
  failed = 0;
  /** Entries Redis took. */
  added = 0;
  /** Sends written again after a LOADING or BUSY reply. */
  retried = 0;

  constructor(private readonly o: AddsOptions) {}

  /**
   * Queue the codec's prepared bytes (a fresh copy). Throws (or, inside a
   * sendAsync's executor, rejects) RINGPOOL_QUEUE_FULL past maxBytes, and the
   * signal's reason when it is already aborted: nothing is queued then.
   */
  push(codec: PayloadCodec, resolve: Pending['resolve'], reject: Pending['reject'], timeoutMs?: number, signal?: AbortSignal): void {
    if (signal?.aborted) throw signal.reason;
    const b = codec.preparedBytes();
    if (this.bytes > 0 && this.bytes + b.byteLength > this.o.maxBytes) {
      this.o.onFull?.();
      throw new RingpoolError(
        ErrorCodes.QUEUE_FULL,
        `${this.o.what}: ${this.bytes} bytes of sends wait for Redis, and this one (${b.byteLength}) would pass sendBufferBytes ${this.o.maxBytes} (Redis is away, or slower than the sends)`,
        { stream: this.o.stream, sendBufferBytes: this.o.maxBytes, waitingBytes: this.bytes },
      );
    }
    const p: Pending = { bytes: Buffer.from(b.buffer, b.byteOffset, b.byteLength), resolve, reject, state: QUEUED, timer: undefined, signal, onAbort: undefined, ac: null, unsent: false };
    this.bytes += b.byteLength;
    if (timeoutMs !== undefined || signal !== undefined) p.ac = new AbortController();
    if (timeoutMs !== undefined) p.timer = setTimeout(() => this.giveUp(p, (written) => this.timeoutError(timeoutMs, written)), timeoutMs);
    if (signal !== undefined) {
      p.onAbort = () => this.giveUp(p, () => signal.reason);
      signal.addEventListener('abort', p.onAbort, { once: true });
    }
    this.queue.push(p);
    this.draining ??= this.drain();
  }

  /** Resolves once everything queued so far has been answered (or given up). */
  async flushed(): Promise<void> {
    while (this.draining !== null) await this.draining;
  }

  /** Fail every send not yet written (closing with Redis away): not in the stream. */
  abandon(why: string): void {
    const q = this.queue;
    this.queue = [];
    this.dropped = 0;
    for (const p of q) if (p.state === QUEUED) this.fail(p, new Error(why), false);
  }

  private async drain(): Promise<void> {
    try {
      await new Promise((r) => setImmediate(r)); // the rest of this turn's sends join the first pipeline
      let c: Client;
      try {
        c = await this.o.client();
      } catch (err) {
        this.abandon(`no connection to Redis: ${message(err)}`);
        return;
      }
      const { ErrorReply } = await loadRedis();
      while (this.queue.length > this.dropped) {
        if (!c.isReady) {
          if (this.dropped > 0) this.compact();
          await new Promise((r) => setTimeout(r, NOT_READY_POLL_MS));
          continue;
        }
        const batch = this.queue;
        this.queue = [];
        this.dropped = 0;
        const again = await this.write(c, batch, ErrorReply);
        if (again.length === 0) {
          this.retries = 0;
          continue;
        }
        this.queue = again.concat(this.queue);
        await new Promise((r) => setTimeout(r, backoffMs(this.retries++)));
      }
      this.queue.length = 0;
      this.dropped = 0;
    } finally {
      this.draining = null;
    }
  }

  /** Write one pipeline and read each reply on its own; returns the sends to write again (LOADING, BUSY). */
  private async write(c: Client, batch: Pending[], ErrorReply: new (...a: never[]) => Error): Promise<Pending[]> {
    const live: Pending[] = [];
    const replies: Promise<unknown>[] = [];
    for (const p of batch) {
      if (p.state !== QUEUED) continue;
      p.state = WRITTEN;
      live.push(p);
      const reply = c.sendCommand(['XADD', this.o.stream, '*', PAYLOAD_FIELD, p.bytes], p.ac === null ? undefined : { abortSignal: p.ac.signal });
      // Runs before the allSettled below sees it: giveUp() reads it.
      if (p.ac !== null) reply.catch((err: unknown) => (p.unsent = (err as Error)?.name === 'AbortError'));
      replies.push(reply);
    }
    const settled = await Promise.allSettled(replies);
    const again: Pending[] = [];
    for (let i = 0; i < live.length; i++) {
      const p = live[i]!;
      const r = settled[i]!;
      if (r.status === 'fulfilled' && typeof r.value === 'string') {
        this.added++;
        if (this.settle(p)) p.resolve?.(r.value);
        continue;
      }
      if (p.ac?.signal.aborted) continue; // its sender gave up: giveUp() answers it
      const cause: unknown = r.status === 'rejected' ? r.reason : new Error(`unexpected reply ${describeValue(r.value)}`);
      const replied = cause instanceof ErrorReply;
      if (replied && /^(LOADING|BUSY)\b/.test(message(cause))) {
        // Redis did not run it: not in the stream. Again, unless its sender gave up meanwhile.
        if (p.state === WRITTEN) {
          p.state = QUEUED;
          this.retried++;
          again.push(p);
        }
        continue;
      }
      this.fail(p, cause, !replied);
    }
    return again;
  }

  /**
   * Its sender gave up (timeoutMs, or the signal). Queued here: dropped, not
   * sent. Handed to node-redis: taken back if it is still in node-redis's
   * queue (AbortError, known before the next macrotask), else it is on the
   * wire and may reach the stream; either way the sender is answered now.
   */
  private giveUp(p: Pending, error: (written: boolean) => unknown): void {
    if (p.state === QUEUED) {
      if (this.settle(p)) p.reject?.(error(false));
      return;
    }
    if (p.state !== WRITTEN) return;
    p.ac!.abort();
    setImmediate(() => {
      if (this.settle(p)) p.reject?.(error(!p.unsent));
    });
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
    if (p.state === QUEUED) this.dropped++;
    p.state = DONE;
    this.bytes -= p.bytes.byteLength;
    if (p.timer !== undefined) clearTimeout(p.timer);
    if (p.onAbort !== undefined) p.signal!.removeEventListener('abort', p.onAbort);
    return true;
  }

  /** Drop what settled in the queue (the queue no longer counts it). */
  private compact(): void {
    this.queue = this.queue.filter((p) => p.state === QUEUED);
    this.dropped = 0;
  }

  private fail(p: Pending, cause: unknown, maybeWritten: boolean): void {
    const wasQueued = p.state === QUEUED;
    if (!this.settle(p)) return;
    if (wasQueued) this.dropped--; // settled by failing it here, not in the queue any more
    const tail = maybeWritten ? ': the connection was lost before Redis answered; the entry may be in the stream' : '';
    const err = new RingpoolError(ErrorCodes.SOURCE_IO, `XADD to stream '${this.o.stream}' failed: ${message(cause)}${tail}`, { stream: this.o.stream, maybeWritten }, { cause });
    if (p.reject !== null) p.reject(err);
    else {
      this.failed++;
      this.o.onError?.(err);
    }
  }
}

/** Encode one payload for a stream entry: RINGPOOL_MESSAGE_TOO_LARGE / RINGPOOL_UNSERIALIZABLE as send() gives them. */
export function prepare(codec: PayloadCodec, payload: unknown, maxMessageBytes: number, what: string): void {
  const n = codec.prepare(payload);
  if (n > maxMessageBytes) {
    throw new RingpoolError(ErrorCodes.MESSAGE_TOO_LARGE, `message of ${n} bytes is over maxMessageBytes ${maxMessageBytes} of ${what}`, { size: n, limit: maxMessageBytes });
  }
}

/** The send options a Redis mailbox refuses, and why. */
export function checkStreamSend(mailbox: string, stream: string, opts: SendOptions | undefined): void {
  if (opts === undefined || opts === null) return;
  if (opts.key !== undefined && opts.key !== null) {
    throw new RingpoolError(
      ErrorCodes.INVALID_OPTION,
      `mailbox '${mailbox}' reads Redis stream '${stream}': a keyed send is refused, because per-key order across processes needs partitioned streams (not yet supported); send without { key }`,
      { mailbox, option: 'key' },
    );
  }
  if (opts.delayMs !== undefined) {
    throw new RingpoolError(
      ErrorCodes.INVALID_OPTION,
      `mailbox '${mailbox}' reads Redis stream '${stream}': delayMs is refused (a delayed message would wait in this process's memory, not in Redis), got ${describeValue(opts.delayMs)}`,
      { mailbox, option: 'delayMs' },
    );
  }
}
