/**
 * A send to a Redis stream, checked (main thread): its payload encoded and
 * sized, its options read once (a key needs `partitions`; delayMs waits in
 * the delayed set, delayed.ts; headers are encoded for field `h`).
 */
import type { PayloadCodec } from '../../shared/codec.js';
import { ErrorCodes, RingpoolError } from '../../shared/errors.js';
import { encodeHeaders } from '../../shared/headers.js';
import { delayOf, keyOf, readOptions, type SendOptions } from '../../shared/producer.js';

/** Encode one payload for a stream entry: RINGPOOL_MESSAGE_TOO_LARGE / RINGPOOL_UNSERIALIZABLE as send() gives them. */
export function prepare(codec: PayloadCodec, payload: unknown, maxMessageBytes: number, what: string): void {
  const n = codec.prepare(payload);
  if (n > maxMessageBytes) {
    throw new RingpoolError(ErrorCodes.MESSAGE_TOO_LARGE, `message of ${n} bytes is over maxMessageBytes ${maxMessageBytes} of ${what}`, { size: n, limit: maxMessageBytes });
  }
}

/** The delayMs (ms, whole) of the last send checkStreamSend() read: one read per send, no allocation. */
let lastDelayMs = 0;
export function streamSendDelay(): number {
  return lastDelayMs;
}

/** The headers (encoded; null: none) of the last send checkStreamSend() read. */
let lastHeaders: Buffer | null = null;
export function streamSendHeaders(): Buffer | null {
  return lastHeaders;
}

/**
 * A send's options on a Redis mailbox: its key (null: unkeyed; its delayMs
 * then from streamSendDelay(), its headers from streamSendHeaders()), or the
 * option refused and why (bad headers: RINGPOOL_INVALID_OPTION from
 * encodeHeaders). A key needs `partitions` (per-key order across processes
 * is one owner per partition).
 */
export function checkStreamSend(mailbox: string, stream: string, opts: SendOptions | undefined, partitions: number): string | null {
  lastDelayMs = 0;
  lastHeaders = null;
  if (opts === undefined || opts === null) return null;
  const { key, delayMs, headers } = readOptions(opts, 'send');
  const d = delayOf(delayMs);
  const h = encodeHeaders(headers);
  if (key === undefined || key === null) {
    lastDelayMs = Math.ceil(d);
    lastHeaders = h;
    return null;
  }
  if (partitions === 0) {
    throw new RingpoolError(
      ErrorCodes.INVALID_OPTION,
      `mailbox '${mailbox}' reads Redis stream '${stream}' without partitions: a keyed send is refused (per-key order across processes needs source.redis.partitions); send without { key }, or set partitions`,
      { mailbox, option: 'partitions' },
    );
  }
  const k = keyOf(key);
  lastDelayMs = Math.ceil(d);
  lastHeaders = h;
  return k;
}
