/**
 * Message headers (issue #32): string keys and values sent beside a payload
 * (`send(mailbox, payload, { headers })`), carried in the record after the
 * payload (layout.ts, R_HEADERS_BYTES and FLAG_HEADERS) across retries,
 * redeliveries, dead letters and redrives, and given to the handler as
 * `ctx.headers`. Stored as the JSON of the object, UTF-8. Thread-neutral.
 * A send without headers pays nothing: no bytes, no flag, no decoding.
 */
import { ErrorCodes, RingpoolError, describeValue } from './errors.js';

/** Most bytes a message's headers take, encoded. */
export const MAX_HEADERS_BYTES = 4096;

/** The headers of a message without any: one frozen empty object. */
export const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze(Object.create(null) as Record<string, string>);

/** Headers as sent, checked and encoded; null for none (undefined or an empty object). RINGPOOL_INVALID_OPTION naming `headers`. */
export function encodeHeaders(h: unknown): Buffer | null {
  if (h === undefined) return null;
  if (typeof h !== 'object' || h === null || Array.isArray(h)) throw bad('an object of string keys and string values', h);
  const out: Record<string, string> = {};
  let n = 0;
  for (const k of Object.keys(h)) {
    const v = (h as Record<string, unknown>)[k];
    if (typeof v !== 'string') throw bad(`string values (headers.${k} is not)`, v);
    out[k] = v;
    n++;
  }
  if (n === 0) return null;
  const b = Buffer.from(JSON.stringify(out), 'utf8');
  if (b.byteLength > MAX_HEADERS_BYTES) {
    throw new RingpoolError(ErrorCodes.INVALID_OPTION, `send options.headers must be at most ${MAX_HEADERS_BYTES} bytes encoded (JSON), got ${b.byteLength}`, {
      option: 'headers',
      limit: MAX_HEADERS_BYTES,
      size: b.byteLength,
    });
  }
  return b;
}

/** The headers stored at `buf[at, at + len)`: a frozen object. */
export function decodeHeaders(buf: Buffer, at: number, len: number): Readonly<Record<string, string>> {
  if (len === 0) return NO_HEADERS;
  return Object.freeze(Object.assign(Object.create(null) as Record<string, string>, JSON.parse(buf.toString('utf8', at, at + len)) as Record<string, string>));
}

/** The headers a HeldMessage keeps (its record's bytes), or none. */
export function decodeHeaderBytes(bytes: Uint8Array | null): Readonly<Record<string, string>> {
  return bytes === null ? NO_HEADERS : decodeHeaders(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0, bytes.byteLength);
}

/**
 * Why bytes read from outside (a Redis stream entry's `h`, written by any
 * client) are not headers decodeHeaders can take, or null when they are:
 * at most MAX_HEADERS_BYTES, the JSON of an object of string values.
 */
export function headerBytesProblem(bytes: Uint8Array): string | null {
  if (bytes.byteLength > MAX_HEADERS_BYTES) return `headers of ${bytes.byteLength} bytes are over ${MAX_HEADERS_BYTES}`;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    return 'headers are not JSON';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'headers are not a JSON object';
  for (const k in v) if (typeof (v as Record<string, unknown>)[k] !== 'string') return `headers.${k.slice(0, 100)} is not a string`;
  return null;
}

function bad(expected: string, value: unknown): RingpoolError {
  return new RingpoolError(ErrorCodes.INVALID_OPTION, `send options.headers must be ${expected}, got ${describeValue(value)}`, { option: 'headers' });
}
