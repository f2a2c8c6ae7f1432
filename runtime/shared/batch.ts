/**
 * Batch sends (rt.sendBatch, ctx.sendBatch): many records with one
 * reservation and one publish pass. Thread-neutral.
 *
 * Every payload is encoded first (the codec's output held: the JSON text, the
 * bytes), so a batch with one bad payload, or one that does not fit, writes
 * nothing.
 * The records then lie back to back in one contiguous reservation (padded to
 * the ring's start like a single record when they would cross its end), so
 * a batch holds at most half the ring: larger ones could never fit.
 *
 * Publishing sets the first record READY last: consumers and the journal stop
 * at it, so the batch becomes visible in one store. A worker thread that dies
 * inside the window (holes.ts) leaves a reservation that is repaired as one
 * hole; once RESV_BATCH_LAID is set the headers say which keyed records took
 * a seq, and those seqs are voided.
 */
import {
  FLAG_ASCII,
  FLAG_HEADERS,
  FLAG_KEYED,
  KEY_WORDS,
  K_SENT,
  PUBLISHED,
  RECORD_HEADER_BYTES,
  R_FLAGS,
  R_KEY_SEQ,
  R_KEY_SLOT,
  ST_READY,
  UNIT_SHIFT,
  keySlotOf,
  recordUnits,
} from './layout.js';
import { ErrorCodes, RingpoolError, describeValue, messageOf, optionThrew } from './errors.js';
import { unserializable } from './payload-codec.js';
import { writeUtf8 } from './codec.js';
import type { PayloadCodec } from './payload-codec.js';
import { faultHook } from './faults.js';
import type { Ring } from './ring.js';

/** A batch's key: one for every message, or one per message. */
export type BatchKey = string | ((payload: unknown, index: number) => string);

/**
 * How many messages `payloads` holds: it must be an array (anything else,
 * `{ length: 2 ** 31 }` included, is refused before a thing is allocated for
 * it), of at most as many messages as half the ring could ever hold.
 * RINGPOOL_INVALID_OPTION otherwise.
 */
export function batchLength(payloads: unknown, ring: Ring, mailbox: string): number {
  let n: unknown;
  try {
    n = Array.isArray(payloads) ? payloads.length : undefined;
  } catch (err) {
    throw optionThrew('sendBatch payloads', err); // a revoked Proxy, a length trap that throws
  }
  if (n === undefined) {
    throw new RingpoolError(ErrorCodes.INVALID_OPTION, `sendBatch payloads must be an array, got ${describeValue(payloads)}`, { option: 'payloads' });
  }
  // A Proxy of an array may say any length: each record takes at least one header's units.
  const most = Math.floor((ring.capacityUnits >>> 1) / recordUnits(0, 0));
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > most) {
    throw new RingpoolError(
      ErrorCodes.INVALID_OPTION,
      `a batch of ${describeValue(n)} messages to mailbox '${mailbox}': a batch holds at most ${most} (half of capacityBytes ${ring.capacityBytes}, in records of an empty payload)`,
      { mailbox, option: 'payloads', limit: most },
    );
  }
  return n;
}

export class BatchEncoder {
  /** What the codec made of each payload (codec.hold()); cleared after each batch. */
  private readonly held: unknown[] = [];
  private codec: PayloadCodec | null = null;
  private lens = new Int32Array(64);
  private keyLens = new Int32Array(64);
  private unitsOf = new Int32Array(64);
  private asciis = new Uint8Array(64);
  private keys: Array<string | null> = [];
  private slots = new Int32Array(64);
  n = 0;
  /** Units the records take, headers included. */
  units = 0;
  keyed = false;
  /** The batch's headers (every record carries the same), encoded; null for none. */
  headers: Uint8Array | null = null;

  /**
   * Encode `payloads` (and their keys). Throws what a send throws for the
   * first bad one (its index in `details.index`), counting the whole batch
   * as rejected.
   */
  encode(codec: PayloadCodec, payloads: readonly unknown[], n: number, key: BatchKey | null, maxMessageBytes: number, mailbox: string, ring: Ring, headers: Uint8Array | null = null): void {
    if (this.lens.length < n) this.grow(n);
    this.n = 0;
    this.units = 0;
    this.keyed = key !== null;
    this.codec = codec;
    this.headers = headers;
    const hb = headers === null ? 0 : headers.byteLength;
    for (let i = 0; i < n; i++) {
      let p: unknown;
      try {
        p = payloads[i];
      } catch (err) {
        ring.countRejected('unserializable', n);
        const e = unserializable(codec.name, err, `message ${i} of the batch cannot be read: ${messageOf(err)}`);
        (e.details as Record<string, unknown>).index = i;
        throw e;
      }
      let k: string | null = null;
      let kb = 0;
      if (key !== null) {
        let got: unknown;
        try {
          got = typeof key === 'string' ? key : key(p, i);
        } catch (err) {
          throw optionThrew(`sendBatch options.key(payload, ${i})`, err);
        }
        if (typeof got !== 'string' || !got.isWellFormed()) {
          throw new RingpoolError(ErrorCodes.INVALID_OPTION, `sendBatch options.key(payload, ${i}) must return a well-formed string, got ${describeValue(got)}`, { option: 'key', index: i });
        }
        k = got;
        kb = Buffer.byteLength(k, 'utf8');
        this.slots[i] = keySlotOf(k);
      }
      let bytes: number;
      try {
        bytes = codec.prepare(p);
      } catch (err) {
        ring.countRejected('unserializable', n);
        if (err instanceof RingpoolError) (err.details as Record<string, unknown>).index = i;
        throw err;
      }
      if (bytes + kb > maxMessageBytes) {
        ring.countRejected('too_large', n);
        throw new RingpoolError(
          ErrorCodes.MESSAGE_TOO_LARGE,
          `message ${i} of the batch is ${bytes + kb} bytes (payload ${bytes}, key ${kb}), over maxMessageBytes ${maxMessageBytes} of mailbox '${mailbox}'; nothing was sent`,
          { mailbox, size: bytes + kb, limit: maxMessageBytes, index: i },
        );
      }
      this.held[i] = codec.hold();
      this.lens[i] = bytes;
      this.keyLens[i] = kb;
      this.asciis[i] = codec.ascii ? 1 : 0;
      this.keys[i] = k;
      const u = recordUnits(kb + hb, bytes);
      this.unitsOf[i] = u;
      this.units += u;
    }
    this.n = n;
    const most = ring.capacityUnits >>> 1;
    if (this.units > most) {
      throw new RingpoolError(
        ErrorCodes.INVALID_OPTION,
        `a batch of ${n} messages takes ${this.units << UNIT_SHIFT} bytes of ring, over half of capacityBytes ` +
          `(${ring.capacityBytes}) of mailbox '${mailbox}': it could never fit. Send it in smaller batches, or raise capacityBytes`,
        { mailbox, option: 'capacityBytes', size: this.units << UNIT_SHIFT, limit: (most << UNIT_SHIFT) },
      );
    }
  }

  /** Message i's encoded bytes, copied (a delayed send holds them). */
  bytesOf(i: number): Uint8Array {
    return this.codec!.heldBytes(this.held[i]);
  }

  /** Let go of what the codec made (the batch is written, or refused). */
  clear(): void {
    this.held.fill(undefined);
    this.keys.fill(null);
    this.headers = null;
  }
  asciiOf(i: number): boolean {
    return this.asciis[i] === 1;
  }
  keyOf(i: number): string | null {
    return this.keys[i]!;
  }
  slotOf(i: number): number {
    return this.keyed ? this.slots[i]! : -1;
  }

  /**
   * Reserve, write and publish the encoded records, with ids `ids[0..n)`.
   * False when the ring has no room now (nothing written).
   */
  write(ring: Ring, ids: ArrayLike<number>, sentAt: number, flags: number, keyTable: Int32Array | null): boolean {
    const n = this.n;
    const first = ring.reserve(this.units, n);
    if (first < 0) return false;
    const i32 = ring.i32;
    const base = ring.dataOff >> 2;
    const headers = this.headers;
    const hb = headers === null ? 0 : headers.byteLength;
    if (hb !== 0) flags |= FLAG_HEADERS;
    // Every header first (no seq yet), so a dead thread's batch can be read record by record (holes.ts).
    let u = first;
    for (let i = 0; i < n; i++) {
      const units = this.unitsOf[i]!;
      ring.writeHeader(u, units, this.lens[i]!, this.keyLens[i]!, 1, ids[i]!, sentAt, sentAt, (this.asciis[i] === 1 ? FLAG_ASCII : 0) | flags, 0, hb);
      u += units;
    }
    ring.markLaid();
    const buf = ring.buf;
    const codec = this.codec!;
    const held = this.held;
    u = first;
    for (let i = 0; i < n; i++) {
      const w = base + (u << 2);
      const kb = this.keyLens[i]!;
      const body = ring.dataOff + (u << UNIT_SHIFT) + RECORD_HEADER_BYTES;
      if (keyTable !== null && this.keyed) {
        // In its key's order now that the batch has room; the header says so at once (a dead thread's seq is voided).
        const slot = this.slots[i]!;
        i32[w + R_KEY_SEQ] = Atomics.add(keyTable, slot * KEY_WORDS + K_SENT, 1);
        i32[w + R_KEY_SLOT] = slot;
        i32[w + R_FLAGS] = i32[w + R_FLAGS]! | FLAG_KEYED;
      }
      if (kb !== 0) writeUtf8(buf, this.keys[i]!, body, kb);
      codec.writeHeld(held[i], buf, body + kb, this.lens[i]!, this.asciis[i] === 1);
      if (hb !== 0) buf.set(headers!, body + kb + this.lens[i]!);
      u += this.unitsOf[i]!;
    }
    if (faultHook !== null) faultHook('ring-reserved', ring.markTag);
    publishBatch(ring, first, this.unitsOf, n);
    return true;
  }

  private grow(n: number): void {
    const size = Math.max(n, this.lens.length * 2);
    this.lens = new Int32Array(size);
    this.keyLens = new Int32Array(size);
    this.unitsOf = new Int32Array(size);
    this.asciis = new Uint8Array(size);
    this.slots = new Int32Array(size);
  }
}

/** The publish pass: every record READY, the first one last; one wake. */
function publishBatch(ring: Ring, first: number, unitsOf: Int32Array, n: number): void {
  const state = ring.state;
  Atomics.add(ring.i32, PUBLISHED, n);
  let u = first + unitsOf[0]!;
  for (let i = 1; i < n; i++) {
    Atomics.store(state, u, ST_READY);
    u += unitsOf[i]!;
  }
  Atomics.store(state, first, ST_READY);
  if (ring.journaled) ring.wakeJournal();
  else if (n > 1) ring.wakeAllIfSleeping();
  else ring.wakeIfSleeping();
}
