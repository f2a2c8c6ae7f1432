/**
 * The send path, shared by `rt.send()` on the main thread and `ctx.send()` in
 * handlers: check the options, encode, check the size, reserve-write-publish.
 * Thread-neutral. Allocates nothing per message beyond what the codec makes
 * (the JSON string); a key costs its byte length.
 */
import { encodeHeaders } from './headers.js';
import type { PayloadCodec } from './codec.js';
import { BatchEncoder, batchLength, type BatchKey } from './batch.js';
import { ErrorCodes, RingpoolError, describeValue, journalStopped, optionThrew } from './errors.js';
import { ACTOR_WORD, GUARD_FREE, JOURNAL_CLOSED, JOURNAL_FAILED, KEY_WORDS, K_SENT, keySlotOf } from './layout.js';
import { faultHook } from './faults.js';
import { acquireGuard } from './guard.js';
import { now } from './clock.js';
import type { Ring } from './ring.js';
import type { LocalHistogram } from './histogram.js';

/** rt.sendBatch / ctx.sendBatch options: one key for every message, or a function giving each its own. */
export interface BatchOptions {
  key?: BatchKey;
  delayMs?: number;
  /** Headers every message of the batch carries (as SendOptions.headers). */
  headers?: Record<string, string>;
}

/** Options of `send`, `sendAsync` and `ctx.send`. */
export interface SendOptions {
  /** Messages with one key are handled in order, one at a time (keyed ordering lands with actors). */
  key?: string;
  /** Deliver no sooner than this many ms from now. */
  delayMs?: number;
  /**
   * String keys and values carried beside the payload (at most 4096 bytes as
   * JSON): `ctx.headers` in the handler, kept across retries, dead letters
   * and redrives, on every kind of mailbox (the ring, a journal, a store,
   * a Redis entry's field `h`). Tracing puts `traceparent` and `baggage` here.
   */
  headers?: Record<string, string>;
}

/** Where a delayed message goes: the dispatcher's timer heap (main) or a post to it (worker). */
export type DelayedSink = (
  producer: Producer,
  payload: Uint8Array,
  ascii: boolean,
  key: string | null,
  delayMs: number,
  id: number,
  sentAt: number,
  keySlot: number,
  keySeq: number,
  headers: Uint8Array | null,
) => void;

export class Producer {
  /**
   * When set (worker threads), the reserve..publish window runs under this
   * guard word: the dispatcher never terminates a thread inside it, so a
   * reservation is never left unpublished by a lease kill.
   */
  guard: { i32: Int32Array; index: number } | null = null;
  /** Set by the dispatcher when the mailbox stops taking messages. */
  closed = false;
  /**
   * Accepted sends counted here instead of in the ring's ENQUEUED word: the
   * main thread's producer reads its own count (no atomic per send); worker
   * threads leave it false and add to the shared word.
   */
  countLocally = false;
  enqueuedHere = 0;
  /** Time spent inside send() (main thread, when metrics are on). */
  timing: LocalHistogram | null = null;

  constructor(
    readonly mailbox: string,
    readonly ring: Ring,
    readonly codec: PayloadCodec,
    readonly maxMessageBytes: number,
    private readonly delayed: DelayedSink,
    /** The target mailbox's key table (keyed ordering). */
    readonly keyTable: Int32Array,
  ) {}

  /** Send or throw: RINGPOOL_QUEUE_FULL when the ring has no room. */
  send(payload: unknown, opts: SendOptions | undefined, flags = 0): number {
    const id = this.trySend(payload, opts, flags);
    if (id < 0) {
      this.ring.countRejected('queue_full');
      throw this.fullError();
    }
    return id;
  }

  fullError(): RingpoolError {
    const ring = this.ring;
    return new RingpoolError(
      ErrorCodes.QUEUE_FULL,
      `mailbox '${this.mailbox}' is full (capacityBytes ${ring.capacityBytes}, ${ring.depth()} ready)`,
      { mailbox: this.mailbox, capacityBytes: ring.capacityBytes },
    );
  }

  /**
   * Send; returns the message id, or -1 when the ring is full now (nothing
   * counted). Throws for anything else. `flags`: FLAG_ASK / FLAG_CALL (ask and
   * actor calls; never delayed).
   */
  trySend(payload: unknown, opts: SendOptions | undefined, flags = 0): number {
    const ring = this.ring;
    // Enqueued-at is taken on entry: end-to-end latency includes encoding.
    const t = now();
    this.checkOpen();
    let key: string | null = null;
    let keyBytes = 0;
    let delayMs = 0;
    let headers: Buffer | null = null;
    if (opts !== undefined && opts !== null) {
      const { key: k, delayMs: d, headers: h } = readOptions(opts, 'send');
      if (k !== undefined && k !== null) {
        key = keyOf(k);
        keyBytes = Buffer.byteLength(key, 'utf8');
      }
      delayMs = delayOf(d);
      if (h !== undefined) headers = this.headersOf(h);
    }
    this.lastDelayMs = delayMs;
    if (key === null) this.checkKeyless();
    const codec = this.codec;
    let bytes: number;
    try {
      bytes = codec.prepare(payload);
    } catch (err) {
      ring.countRejected('unserializable');
      throw err;
    }
    if (faultHook !== null) faultHook('encoded', 0);
    if (bytes + keyBytes > this.maxMessageBytes) {
      ring.countRejected('too_large');
      throw new RingpoolError(
        ErrorCodes.MESSAGE_TOO_LARGE,
        `message of ${bytes + keyBytes} bytes (payload ${bytes}, key ${keyBytes}) is over maxMessageBytes ` +
          `${this.maxMessageBytes} of mailbox '${this.mailbox}'`,
        { mailbox: this.mailbox, size: bytes + keyBytes, limit: this.maxMessageBytes },
      );
    }
    const id = ring.nextId();
    const keySlot = key === null ? -1 : keySlotOf(key);
    const guard = this.guard;
    if (delayMs > 0) {
      this.handDelayed(codec.preparedBytes(), codec.ascii, key, keySlot, delayMs, id, t, headers);
      return id;
    }
    if (guard !== null && !acquireGuard(guard.i32, guard.index)) throw this.retiring();
    // Counted before it is published, so a reader that sees it processed also sees it enqueued.
    this.countEnqueued(1);
    let ok = false;
    try {
      ok = keySlot < 0
        ? ring.write(codec, bytes, key, keyBytes, 1, id, t, t, codec.ascii, 0, flags, null, 0, null, headers)
        : ring.write(codec, bytes, key, keyBytes, 1, id, t, t, codec.ascii, 0, flags, this.keyTable, keySlot, null, headers);
    } finally {
      if (guard !== null) Atomics.store(guard.i32, guard.index, GUARD_FREE);
      if (!ok) this.countEnqueued(-1);
    }
    if (!ok) return -1;
    if (this.timing !== null) this.timing.observe((now() - t) / 1000);
    return id;
  }

  /** Hand a delayed message to the dispatcher (counted, and keyed: in its key's order at send time). */
  private handDelayed(bytes: Uint8Array, ascii: boolean, key: string | null, keySlot: number, delayMs: number, id: number, t: number, headers: Uint8Array | null = null): void {
    const ring = this.ring;
    const guard = this.guard;
    // Taking a key's seq and handing the message over happen under the guard
    // too: a thread killed between them would leave its key waiting forever.
    if (guard !== null && !acquireGuard(guard.i32, guard.index)) throw this.retiring();
    try {
      this.countEnqueued(1);
      const keySeq = keySlot < 0 ? 0 : Atomics.add(this.keyTable, keySlot * KEY_WORDS + K_SENT, 1);
      // Counted and in its key's order, not yet handed over: written down for the dispatcher, should this thread die here (holes.ts).
      ring.markDelayed(keySlot, keySeq);
      if (faultHook !== null) faultHook('delayed-counted', ring.markTag);
      this.delayed(this, bytes, ascii, key, delayMs, id, t, keySlot, keySeq, headers);
      ring.unmark();
    } finally {
      if (guard !== null) Atomics.store(guard.i32, guard.index, GUARD_FREE);
    }
  }

  /** A send's headers, encoded (shared/headers.ts). */
  private headersOf(h: unknown): Buffer | null {
    const b = encodeHeaders(h);
    return b;
  }

  /** An actor mailbox takes no message without a key: RINGPOOL_KEY_REQUIRED. */
  private checkKeyless(): void {
    // Plain: set once, after the start() probe; a send that reads it a moment late still reaches the actor, whose loop fails it with KEY_REQUIRED.
    if (this.ring.i32[ACTOR_WORD] === 1) {
      throw new RingpoolError(ErrorCodes.KEY_REQUIRED, `mailbox '${this.mailbox}' runs an actor: send with { key }`, { mailbox: this.mailbox, option: 'key' });
    }
  }

  /** Throws RINGPOOL_CLOSED (counted) when the mailbox takes no more messages. */
  private checkOpen(): void {
    const ring = this.ring;
    if (this.closed) {
      ring.countRejected('closed');
      throw new RingpoolError(ErrorCodes.CLOSED, `mailbox '${this.mailbox}' is closed to new messages`, { mailbox: this.mailbox });
    }
    // Plain: a fast refusal only. A send that reads it a moment late is one of those already racing the failure: its record is
    // never journaled, so no consumer claims it and its sendAsync is not resolved as durable (journal/index.ts).
    if (ring.journaled && ring.i32[JOURNAL_FAILED] !== 0) {
      ring.countRejected('closed');
      throw journalStopped(ring.i32[JOURNAL_FAILED] === JOURNAL_CLOSED, this.mailbox, 'it takes no more messages');
    }
  }

  private retiring(): RingpoolError {
    this.ring.countRejected('closed');
    return new RingpoolError(ErrorCodes.CLOSED, `this thread is being retired; ctx.send() is refused`, { mailbox: this.mailbox });
  }

  /** The delayMs of the last send or batch (0: written to the ring now): read once, whatever getter gave it. */
  lastDelayMs = 0;

  /** Send a batch or throw (RINGPOOL_QUEUE_FULL when it does not fit now: nothing is written). Ids in order. */
  sendBatch(payloads: readonly unknown[], opts: BatchOptions | undefined): number[] {
    const ids = this.trySendBatch(payloads, opts);
    if (ids === null) {
      this.ring.countRejected('queue_full', this.batchCount);
      throw this.fullError();
    }
    return ids;
  }

  /**
   * Send every payload, or none: the ids in order, or null when the ring has
   * no room for all of them now (nothing counted). Throws for anything else
   * (a bad payload or option, a batch that could never fit), sending nothing.
   */
  trySendBatch(payloads: readonly unknown[], opts: BatchOptions | undefined): number[] | null {
    const ring = this.ring;
    const t = now();
    this.checkOpen();
    const n = batchLength(payloads, ring, this.mailbox);
    let key: BatchKey | null = null;
    let delayMs = 0;
    let headers: Buffer | null = null;
    if (opts !== undefined && opts !== null) {
      const { key: k, delayMs: d, headers: h } = readOptions(opts, 'sendBatch');
      // One set for the whole batch: every record carries the same bytes.
      if (h !== undefined) headers = this.headersOf(h);
      if (k !== undefined && k !== null) {
        if (typeof k === 'function') key = k as BatchKey;
        else if (typeof k === 'string') key = keyOf(k);
        else throw badSendOption('key', 'a string, or a function (payload, index) => string', k);
      }
      delayMs = delayOf(d);
    }
    this.lastDelayMs = delayMs;
    if (key === null) this.checkKeyless();
    if (n === 0) return [];
    const enc = this.batch ?? (this.batch = new BatchEncoder());
    try {
      enc.encode(this.codec, payloads, n, key, this.maxMessageBytes, this.mailbox, ring, headers);
      return this.sendEncoded(enc, n, delayMs, t);
    } finally {
      enc.clear();
    }
  }

  private sendEncoded(enc: BatchEncoder, n: number, delayMs: number, t: number): number[] | null {
    const ring = this.ring;
    const ids: number[] = new Array(n);
    for (let i = 0; i < n; i++) ids[i] = ring.nextId();
    if (delayMs > 0) {
      for (let i = 0; i < n; i++) this.handDelayed(enc.bytesOf(i), enc.asciiOf(i), enc.keyOf(i), enc.slotOf(i), delayMs, ids[i]!, t, enc.headers);
      return ids;
    }
    const guard = this.guard;
    if (guard !== null && !acquireGuard(guard.i32, guard.index)) throw this.retiring();
    this.countEnqueued(n);
    let ok = false;
    try {
      ok = enc.write(ring, ids, t, 0, enc.keyed ? this.keyTable : null);
    } finally {
      if (guard !== null) Atomics.store(guard.i32, guard.index, GUARD_FREE);
      if (!ok) this.countEnqueued(-n);
    }
    if (!ok) {
      this.batchUnits = enc.units;
      this.batchCount = n;
      return null;
    }
    if (this.timing !== null) this.timing.observe((now() - t) / 1000 / n);
    return ids;
  }

  private batch: BatchEncoder | null = null;
  /** Units the last batch that found no room needed (a waiting sendBatchAsync tries again once that much is free). */
  batchUnits = 0;
  /** Messages in the last batch that found no room (counted as rejected when it is refused). */
  batchCount = 0;

  /**
   * A message a source read (bytes already encoded by the mailbox's codec),
   * into the ring at `attempt`: its id, or -1 when the ring is full now
   * (nothing counted). `key`: a keyed message (in its key's order, taken
   * now); `flags`: FLAG_PARTITION for a record of a partition; `headers`:
   * its headers as encoded (shared/headers.ts), or null. The caller checked
   * the size.
   */
  offerBytes(bytes: Uint8Array, attempt: number, sentAt: number, key: string | null = null, flags = 0, headers: Uint8Array | null = null): number {
    const ring = this.ring;
    if (this.closed) {
      throw new RingpoolError(ErrorCodes.CLOSED, `mailbox '${this.mailbox}' is closed to new messages`, { mailbox: this.mailbox });
    }
    const w = this.bytesWriter;
    w.bytes = bytes;
    const id = ring.nextId();
    this.countEnqueued(1);
    const ok = key === null
      ? ring.write(w, bytes.byteLength, null, 0, attempt, id, sentAt, now(), false, 0, flags, null, 0, null, headers)
      : ring.write(w, bytes.byteLength, key, Buffer.byteLength(key, 'utf8'), attempt, id, sentAt, now(), false, 0, flags, this.keyTable, keySlotOf(key), null, headers);
    w.bytes = EMPTY;
    if (!ok) {
      this.countEnqueued(-1);
      return -1;
    }
    return id;
  }

  private readonly bytesWriter = new BytesWriter();

  private countEnqueued(n: number): void {
    if (this.countLocally) this.enqueuedHere += n;
    else this.ring.countEnqueued(n);
  }
}

const EMPTY = new Uint8Array(0);

/** Writes given bytes as a record's payload (one a producer, reused). */
class BytesWriter {
  bytes: Uint8Array = EMPTY;
  write(buf: Buffer, offset: number): void {
    buf.set(this.bytes, offset);
  }
}

/**
 * A send's key: a string that is well-formed UTF-16. A lone surrogate would
 * reach the handler as U+FFFD (the ring holds UTF-8), so two different keys
 * would become one, in order and for an actor's state: refused.
 */
export function keyOf(k: unknown): string {
  if (typeof k !== 'string') throw badSendOption('key', 'a string', k);
  if (!k.isWellFormed()) throw badSendOption('key', 'well-formed UTF-16 (a lone surrogate would arrive as U+FFFD, merging keys)', k);
  return k;
}

/** What readOptions read last: one object for every send (no allocation a send; the caller takes the fields at once). */
const read: { key: unknown; delayMs: unknown; headers: unknown } = { key: undefined, delayMs: undefined, headers: undefined };

/** A send's options, each read once (a getter or Proxy trap that throws is RINGPOOL_INVALID_OPTION). */
export function readOptions(opts: unknown, what: string): { key: unknown; delayMs: unknown; headers: unknown } {
  if (typeof opts !== 'object') throw badSendOption('', 'an object { key, delayMs, headers }', opts);
  try {
    read.key = (opts as SendOptions).key;
    read.delayMs = (opts as SendOptions).delayMs;
    read.headers = (opts as SendOptions).headers;
  } catch (err) {
    throw optionThrew(`${what} options`, err);
  }
  return read;
}

/** A send's delayMs (0 when absent), or RINGPOOL_INVALID_OPTION. */
export function delayOf(d: unknown): number {
  if (d === undefined) return 0;
  if (typeof d !== 'number' || !(d >= 0) || d === Infinity) throw badSendOption('delayMs', 'a finite number >= 0', d);
  return d;
}

export function badSendOption(name: string, expected: string, value: unknown): RingpoolError {
  return new RingpoolError(ErrorCodes.INVALID_OPTION, `send options${name === '' ? '' : `.${name}`} must be ${expected}, got ${describeValue(value)}`, {
    option: name === '' ? 'options' : name,
  });
}
