/**
 * What the journal's records hold (thread-neutral): the record types, the
 * ring records inside a RING record, and the one encoding of a message's
 * whole state (STATE records, outcome posts' extras, and what recovery hands
 * the main thread).
 *
 * ```
 *  RING      the ring's bytes as they lie, [JOURNALED, p) of one lap: records
 *            back to back (layout.ts); those flagged AGAIN (put back by the
 *            dispatcher) or VOID (a repaired hole) are not new messages
 *  OUTCOMES  one post of the main thread's outcome feed: u32 count, then
 *            entries: u8 kind, f64 id, then by kind
 *              RETRY          i32 next attempt, f64 due (ms since the epoch)
 *              ACCEPTED       a delayed send: a state
 *              DEAD_LETTERED  a state (the letter, its payload and errors)
 *              ACKED, REDRIVEN, PURGED  nothing more
 *  STATE     u32 count, then states: a message copied forward by compaction
 *  state     f64 id, i32 attempt, f64 due, f64 sentAt, f64 deadAt, u8 flags
 *            (bit 0 ascii, bit 1 dead, bit 2 keyed, bit 3 headers), u8 reason, u8 kept (ASK/CALL), u8 0,
 *            u32 key bytes, u32 payload bytes, u32 errors bytes (JSON of
 *            [firstError, lastError]), then key, payload, errors; with bit 3,
 *            then u32 headers bytes and the headers (shared/headers.ts: a
 *            journal written before headers existed reads the same)
 * ```
 */
import { Outcome } from '../../outcome.js';
import type { ErrorInfo } from '../../shared/errors.js';
import {
  FLAG_AGAIN,
  FLAG_ASCII,
  FLAG_HEADERS,
  FLAG_VOID,
  FLAGS_KEPT,
  RECORD_HEADER_BYTES,
  R_ATTEMPT,
  R_F64_ID,
  R_F64_SENT_AT,
  R_FLAGS,
  R_HEADERS_BYTES,
  R_KEY_BYTES,
  R_PAYLOAD_BYTES,
  R_UNITS,
  UNIT_SHIFT,
} from '../../shared/layout.js';

export const RT_RING = 1;
export const RT_OUTCOMES = 2;
export const RT_STATE = 3;

/** A message as the journal knows it: what recovery gives back. */
export interface JournaledMessage {
  id: number;
  attempt: number;
  /** When it may run (ms since the epoch): a delayed send or a retry's backoff; 0 = now. */
  dueAt: number;
  sentAt: number;
  key: string | null;
  payload: Uint8Array;
  ascii: boolean;
  /** FLAG_ASK / FLAG_CALL. */
  kept: number;
  /** A dead letter: its reason index (DEAD_LETTER_REASONS) and when; else reason -1. */
  reason: number;
  deadAt: number;
  firstError: ErrorInfo | undefined;
  lastError: ErrorInfo | undefined;
  /** Its headers as encoded (shared/headers.ts), or null. */
  headers: Uint8Array | null;
}

const STATE_HEAD = 8 + 4 + 8 + 8 + 8 + 4 + 12;

/** Bytes the state of `m` takes (errs: its errors' JSON, or null). */
export function stateBytes(m: JournaledMessage, key: Buffer | null, errs: Buffer | null): number {
  return STATE_HEAD + (key?.byteLength ?? 0) + m.payload.byteLength + (errs?.byteLength ?? 0) + (m.headers === null ? 0 : 4 + m.headers.byteLength);
}

export function errorsJson(m: JournaledMessage): Buffer | null {
  if (m.firstError === undefined && m.lastError === undefined) return null;
  return Buffer.from(JSON.stringify([m.firstError ?? null, m.lastError ?? null]), 'utf8');
}

/** Write the state of `m` at `at`; returns where it ends. */
export function writeState(buf: Buffer, at: number, m: JournaledMessage, key: Buffer | null, errs: Buffer | null): number {
  buf.writeDoubleLE(m.id, at);
  buf.writeInt32LE(m.attempt, at + 8);
  buf.writeDoubleLE(m.dueAt, at + 12);
  buf.writeDoubleLE(m.sentAt, at + 20);
  buf.writeDoubleLE(m.deadAt, at + 28);
  buf[at + 36] = (m.ascii ? 1 : 0) | (m.reason >= 0 ? 2 : 0) | (key !== null ? 4 : 0) | (m.headers !== null ? 8 : 0);
  buf[at + 37] = m.reason >= 0 ? m.reason : 0;
  buf[at + 38] = m.kept & FLAGS_KEPT;
  buf[at + 39] = 0;
  const kb = key?.byteLength ?? 0;
  const eb = errs?.byteLength ?? 0;
  buf.writeUInt32LE(kb, at + 40);
  buf.writeUInt32LE(m.payload.byteLength, at + 44);
  buf.writeUInt32LE(eb, at + 48);
  let p = at + STATE_HEAD;
  if (key !== null) p += key.copy(buf, p);
  buf.set(m.payload, p);
  p += m.payload.byteLength;
  if (errs !== null) p += errs.copy(buf, p);
  if (m.headers !== null) {
    buf.writeUInt32LE(m.headers.byteLength, p);
    buf.set(m.headers, p + 4);
    p += 4 + m.headers.byteLength;
  }
  return p;
}

/** Read a state at `at` of `buf` (the payload is a view: copy it to keep it past `buf`). */
export function readState(buf: Buffer, at: number): { m: JournaledMessage; end: number } {
  const flags = buf[at + 36]!;
  const kb = buf.readUInt32LE(at + 40);
  const pb = buf.readUInt32LE(at + 44);
  const eb = buf.readUInt32LE(at + 48);
  let p = at + STATE_HEAD;
  const key = (flags & 4) === 0 ? null : buf.toString('utf8', p, p + kb);
  p += kb;
  const payload = buf.subarray(p, p + pb);
  p += pb;
  let firstError: ErrorInfo | undefined;
  let lastError: ErrorInfo | undefined;
  if (eb > 0) {
    const [f, l] = JSON.parse(buf.toString('utf8', p, p + eb)) as [ErrorInfo | null, ErrorInfo | null];
    firstError = f ?? undefined;
    lastError = l ?? undefined;
  }
  p += eb;
  let headers: Uint8Array | null = null;
  if ((flags & 8) !== 0) {
    const hb = buf.readUInt32LE(p);
    headers = buf.subarray(p + 4, p + 4 + hb);
    p += 4 + hb;
  }
  const dead = (flags & 2) !== 0;
  return {
    m: {
      id: buf.readDoubleLE(at),
      attempt: buf.readInt32LE(at + 8),
      dueAt: buf.readDoubleLE(at + 12),
      sentAt: buf.readDoubleLE(at + 20),
      deadAt: buf.readDoubleLE(at + 28),
      ascii: (flags & 1) !== 0,
      reason: dead ? buf[at + 37]! : -1,
      kept: buf[at + 38]!,
      key,
      payload,
      firstError,
      lastError,
      headers,
    },
    end: p,
  };
}

/** Encode states back to back after a u32 count (STATE records, recovery's hand-over). */
export function encodeStates(ms: readonly JournaledMessage[]): Buffer {
  const keys = ms.map((m) => (m.key === null ? null : Buffer.from(m.key, 'utf8')));
  const errs = ms.map(errorsJson);
  let bytes = 4;
  for (let i = 0; i < ms.length; i++) bytes += stateBytes(ms[i]!, keys[i]!, errs[i]!);
  // Its own ArrayBuffer (not the pool's): it is transferred to the main thread.
  const buf = Buffer.allocUnsafeSlow(bytes);
  buf.writeUInt32LE(ms.length, 0);
  let p = 4;
  for (let i = 0; i < ms.length; i++) p = writeState(buf, p, ms[i]!, keys[i]!, errs[i]!);
  return buf;
}

export function decodeStates(buf: Buffer): JournaledMessage[] {
  const n = buf.readUInt32LE(0);
  const out: JournaledMessage[] = [];
  let p = 4;
  for (let i = 0; i < n; i++) {
    const r = readState(buf, p);
    out.push(r.m);
    p = r.end;
  }
  return out;
}

/**
 * The new messages in a RING record's data (`data`: ring records back to
 * back). `each` gets the record's offset in `data`; AGAIN and VOID records
 * are passed over.
 */
export function eachRingMessage(data: Buffer, each: (at: number) => void): void {
  let at = 0;
  while (at + RECORD_HEADER_BYTES <= data.length) {
    const units = data.readInt32LE(at + RB_UNITS);
    if (units <= 0) break;
    const flags = data.readInt32LE(at + RB_FLAGS);
    if ((flags & (FLAG_AGAIN | FLAG_VOID)) === 0) each(at);
    at += units << UNIT_SHIFT;
  }
}

/** Byte offsets of a ring record's header fields (layout.ts: R_* are word indices). */
export const RB_UNITS = R_UNITS * 4;
export const RB_PAYLOAD_BYTES = R_PAYLOAD_BYTES * 4;
export const RB_KEY_BYTES = R_KEY_BYTES * 4;
export const RB_ATTEMPT = R_ATTEMPT * 4;
export const RB_ID = R_F64_ID * 8;
export const RB_SENT_AT = R_F64_SENT_AT * 8;
export const RB_FLAGS = R_FLAGS * 4;
export const RB_HEADERS_BYTES = R_HEADERS_BYTES * 4;

/** The ring record at `at` of `data` as a journaled message: the payload copied, or (copy false) a view. */
export function ringMessage(data: Buffer, at: number, copy = true): JournaledMessage {
  const payloadBytes = data.readInt32LE(at + RB_PAYLOAD_BYTES);
  const keyBytes = data.readInt32LE(at + RB_KEY_BYTES);
  const body = at + RECORD_HEADER_BYTES;
  const flags = data.readInt32LE(at + RB_FLAGS);
  const from = body + keyBytes;
  const hb = (flags & FLAG_HEADERS) === 0 ? 0 : data.readInt32LE(at + RB_HEADERS_BYTES);
  const h = from + payloadBytes;
  return {
    id: data.readDoubleLE(at + RB_ID),
    attempt: data.readInt32LE(at + RB_ATTEMPT),
    dueAt: 0,
    sentAt: data.readDoubleLE(at + RB_SENT_AT),
    key: keyBytes === 0 ? null : data.toString('utf8', body, from),
    payload: copy ? Uint8Array.prototype.slice.call(data, from, from + payloadBytes) : data.subarray(from, from + payloadBytes),
    ascii: (flags & FLAG_ASCII) !== 0,
    kept: flags & FLAGS_KEPT,
    reason: -1,
    deadAt: 0,
    firstError: undefined,
    lastError: undefined,
    headers: hb === 0 ? null : copy ? Uint8Array.prototype.slice.call(data, h, h + hb) : data.subarray(h, h + hb),
  };
}

/** What an OUTCOMES or STATE record says, entry by entry (a STATE record's entries are all whole states). */
export interface EntryVisitor {
  /** ACKED, PURGED, REDRIVEN: an id. */
  plain(kind: number, id: number): void;
  retry(id: number, attempt: number, dueAt: number): void;
  /** A whole state (ACCEPTED delayed send, DEAD_LETTERED letter, STATE); its payload is a view into `data`. */
  state(m: JournaledMessage): void;
}

/** Walk the entries of an OUTCOMES (type RT_OUTCOMES) or STATE record. */
export function eachEntry(type: number, data: Buffer, v: EntryVisitor): void {
  const n = data.readUInt32LE(0);
  let p = 4;
  for (let i = 0; i < n; i++) {
    if (type === RT_OUTCOMES) {
      const kind = data[p]!;
      const id = data.readDoubleLE(p + 1);
      p += 9;
      if (kind === Outcome.RETRY) {
        v.retry(id, data.readInt32LE(p), data.readDoubleLE(p + 4));
        p += 12;
        continue;
      }
      if (kind === Outcome.ACKED || kind === Outcome.PURGED || kind === Outcome.REDRIVEN) {
        v.plain(kind, id);
        continue;
      }
      if (kind !== Outcome.ACCEPTED && kind !== Outcome.DEAD_LETTERED) throw new Error(`unknown outcome kind ${kind} in a journal record`);
    }
    const r = readState(data, p);
    p = r.end;
    v.state(r.m);
  }
}

/** RETRY entries (id, next attempt, due time) as they go in an OUTCOMES record, at `p`; returns where they end. */
export function writeRetry(buf: Buffer, p: number, id: number, attempt: number, dueAt: number): number {
  buf[p] = Outcome.RETRY;
  buf.writeDoubleLE(id, p + 1);
  buf.writeInt32LE(attempt, p + 9);
  buf.writeDoubleLE(dueAt, p + 13);
  return p + RETRY_BYTES;
}

/** Bytes of a RETRY entry; a plain entry (ACKED, PURGED, REDRIVEN) is its first PLAIN_BYTES. */
export const RETRY_BYTES = 21;
export const PLAIN_BYTES = 9;
