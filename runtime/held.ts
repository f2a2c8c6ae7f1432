/**
 * A message the dispatcher holds outside the ring: waiting for a retry
 * backoff or a delayMs, put back after a crash, or dead-lettered. Main thread.
 */
import type { ErrorInfo } from './shared/errors.js';
import type { PayloadWriter, Ring } from './shared/ring.js';
import { FLAG_AGAIN, FLAG_ASCII, FLAG_HEADERS, FLAG_KEYED, FLAG_SUSPECT, FLAGS_KEPT, META_MAX_BYTES, ST_HELD, ST_TAKEN, recordUnits } from './shared/layout.js';

/** `held` with its headers (a delayed send's): the same message. */
export function withHeaders(held: HeldMessage, headers: Uint8Array | null): HeldMessage {
  held.headers = headers;
  return held;
}

export class HeldMessage implements PayloadWriter {
  /** When it may go (back) into the ring; a heap key. */
  dueAt = 0;
  lastError: ErrorInfo | undefined;
  /** Run alone when it comes back (it was running beside others when their thread crashed). */
  suspect = false;
  /** Keyed ordering: the key table entry (-1 = not keyed) and this message's place in it. */
  keySlot = -1;
  keySeq = 0;
  /** FLAG_ASK / FLAG_CALL: kept across retries. */
  kept = 0;
  /** Its headers as they lie in the record (shared/headers.ts), or null: kept across retries, into dead letters and back. */
  headers: Uint8Array | null = null;
  private meta: Buffer | null = null;
  private metaOf: ErrorInfo | undefined;

  constructor(
    readonly id: number,
    public attempt: number,
    readonly sentAt: number,
    readonly key: string | null,
    readonly payload: Uint8Array,
    readonly ascii: boolean,
    public firstError: ErrorInfo | undefined,
  ) {}

  /** Meta carried in the record across retries: the first error. */
  metaBytes(): number {
    const e = this.firstError;
    if (e === undefined) {
      this.meta = null;
      return 0;
    }
    if (this.metaOf !== e || this.meta === null) {
      const small: ErrorInfo = { name: String(e.name).slice(0, 200), message: String(e.message).slice(0, 1000) };
      if (e.code !== undefined) small.code = String(e.code).slice(0, 100);
      if (e.stack !== undefined) small.stack = String(e.stack).slice(0, 2000);
      let meta = Buffer.from(JSON.stringify(small), 'utf8');
      // JSON escaping can grow a string 6x (control characters): cap the bytes, not the characters.
      if (meta.byteLength > META_MAX_BYTES) {
        delete small.stack;
        meta = Buffer.from(JSON.stringify(small), 'utf8');
      }
      while (meta.byteLength > META_MAX_BYTES) {
        small.message = small.message.slice(0, Math.floor(small.message.length / 2)) + '…';
        small.name = small.name.slice(0, 100);
        meta = Buffer.from(JSON.stringify(small), 'utf8');
      }
      this.meta = meta;
      this.metaOf = e;
    }
    return this.meta.byteLength;
  }

  write(buf: Buffer, offset: number): void {
    buf.set(this.payload, offset);
    // The ring writes the headers right after the payload: the meta goes after them.
    if (this.meta !== null && this.firstError !== undefined) buf.set(this.meta, offset + this.payload.byteLength + (this.headers?.byteLength ?? 0));
  }

  private units_ = -1;
  /** Ring units it takes (header, key and payload; meta left out): what it counts against capacity while held. */
  get units(): number {
    if (this.units_ < 0) this.units_ = recordUnits((this.key === null ? 0 : Buffer.byteLength(this.key, 'utf8')) + (this.headers?.byteLength ?? 0), this.payload.byteLength);
    return this.units_;
  }

  /** Publish into `ring` (keeping its place in its key's order); false when it is full. */
  publishTo(ring: Ring, readyAt: number, keyTable: Int32Array): boolean {
    const keyBytes = this.key === null ? 0 : Buffer.byteLength(this.key, 'utf8');
    const flags = (this.suspect ? FLAG_SUSPECT : 0) | this.kept | FLAG_AGAIN;
    if (this.keySlot < 0) return ring.write(this, this.payload.byteLength, this.key, keyBytes, this.attempt, this.id, this.sentAt, readyAt, this.ascii, this.metaBytes(), flags, null, 0, null, this.headers);
    return ring.write(this, this.payload.byteLength, this.key, keyBytes, this.attempt, this.id, this.sentAt, readyAt, this.ascii, this.metaBytes(), flags, keyTable, this.keySlot, this.keySeq, this.headers);
  }

  /**
   * Copy the record at `unit` out of the ring. The caller has made the record
   * HELD (a CAS from CLAIMED or READY), so nobody reclaims it meanwhile; this
   * marks it TAKEN afterwards so it can be (reclaimed, and not reported as acked).
   */
  static takeFrom(ring: Ring, unit: number): HeldMessage {
    const start = ring.payloadStart(unit);
    const payloadBytes = ring.payloadBytes(unit);
    const metaBytes = ring.metaBytes(unit);
    const flags = ring.flags(unit);
    const headersBytes = (flags & FLAG_HEADERS) === 0 ? 0 : ring.headersBytes(unit);
    const metaAt = start + payloadBytes + headersBytes;
    let firstError: ErrorInfo | undefined;
    if (metaBytes > 0) {
      try {
        firstError = JSON.parse(ring.buf.toString('utf8', metaAt, metaAt + metaBytes)) as ErrorInfo;
      } catch {
        firstError = undefined;
      }
    }
    const held = new HeldMessage(
      ring.id(unit),
      ring.attempt(unit),
      ring.sentAt(unit),
      ring.key(unit) ?? null,
      ring.u8.slice(start, start + payloadBytes),
      (flags & FLAG_ASCII) !== 0,
      firstError,
    );
    held.suspect = (flags & FLAG_SUSPECT) !== 0;
    held.kept = flags & FLAGS_KEPT;
    if (headersBytes > 0) held.headers = ring.u8.slice(start + payloadBytes, start + payloadBytes + headersBytes);
    if ((flags & FLAG_KEYED) !== 0) {
      held.keySlot = ring.keySlot(unit);
      held.keySeq = ring.keySeq(unit);
    }
    Atomics.compareExchange(ring.state, unit, ST_HELD, ST_TAKEN);
    return held;
  }
}
