/**
 * Batch sends to a Redis mailbox (main thread; issue #30): `rt.sendBatch`
 * and `sendBatchAsync`. Every payload is encoded and checked first (bad
 * input throws with nothing queued), then the batch is queued as one group
 * (adds.ts): its XADDs go to Redis in one transaction, in order, all or none.
 * `headers` are encoded once; every entry of the batch carries those bytes.
 * A keyed batch (one key, or a function giving each payload its own) goes to
 * its keys' partitions, still in that one transaction: every partition of a
 * mailbox shares its hash slot (keys.ts).
 */
import { describeValue, ErrorCodes, RingpoolError, optionThrew } from '../../shared/errors.js';
import type { PayloadCodec } from '../../shared/codec.js';
import { encodeHeaders } from '../../shared/headers.js';
import { badSendOption, keyOf, type BatchOptions } from '../../shared/producer.js';
import type { GroupItem } from './adds.js';
import { checkStreamSend, prepare, streamSendDelay } from './send-check.js';

/** Most messages a batch takes (a transaction of this many XADDs is still quick; more is a stream of batches). */
export const MAX_BATCH_MESSAGES = 65_536;

export interface BatchTarget {
  mailbox: string;
  stream: string;
  partitions: number;
  codec: PayloadCodec;
  maxMessageBytes: number;
  /** The stream of a key's partition. */
  streamOf(key: string): string;
}

/** Encode and route every payload of a batch; throws (RINGPOOL_INVALID_OPTION, _MESSAGE_TOO_LARGE, _UNSERIALIZABLE) with nothing queued. */
export function prepareBatch(t: BatchTarget, payloads: readonly unknown[], opts: BatchOptions | undefined): GroupItem[] {
  let n: unknown;
  try {
    n = Array.isArray(payloads) ? payloads.length : undefined;
  } catch (err) {
    throw optionThrew('sendBatch payloads', err);
  }
  if (typeof n !== 'number') throw new RingpoolError(ErrorCodes.INVALID_OPTION, `sendBatch payloads must be an array, got ${describeValue(payloads)}`, { option: 'payloads' });
  if (n > MAX_BATCH_MESSAGES) {
    throw new RingpoolError(ErrorCodes.INVALID_OPTION, `a batch of ${n} messages to mailbox '${t.mailbox}': a Redis mailbox takes at most ${MAX_BATCH_MESSAGES} a batch`, {
      mailbox: t.mailbox,
      option: 'payloads',
      limit: MAX_BATCH_MESSAGES,
    });
  }
  let key: string | ((payload: unknown, index: number) => string) | null = null;
  let delay = 0;
  let headers: Buffer | null = null;
  if (opts !== undefined && opts !== null) {
    if (typeof opts !== 'object') throw badSendOption('', 'an object { key, delayMs, headers }', opts);
    const { key: k, delayMs, headers: h } = opts as BatchOptions & { delayMs?: unknown; headers?: unknown };
    headers = encodeHeaders(h);
    // The same checks as a single send (delayMs; a key without partitions).
    checkStreamSend(t.mailbox, t.stream, { delayMs } as never, t.partitions);
    delay = streamSendDelay();
    if (k !== undefined && k !== null) {
      if (typeof k === 'function') key = k as (payload: unknown, index: number) => string;
      else if (typeof k === 'string') key = k;
      else throw badSendOption('key', 'a string, or a function (payload, index) => string', k);
      checkStreamSend(t.mailbox, t.stream, { key: typeof k === 'string' ? k : 'k' }, t.partitions);
    }
  }
  const items: GroupItem[] = [];
  for (let i = 0; i < n; i++) {
    const payload = payloads[i];
    let k: string | null = null;
    if (typeof key === 'function') {
      let got: unknown;
      try {
        got = key(payload, i);
      } catch (err) {
        throw optionThrew(`sendBatch key(payload, ${i})`, err);
      }
      k = keyOf(got);
    } else if (key !== null) k = keyOf(key);
    prepare(t.codec, payload, t.maxMessageBytes, `mailbox '${t.mailbox}'`);
    const b = t.codec.preparedBytes();
    items.push({ bytes: Buffer.from(b), stream: k === null ? null : t.streamOf(k), key: k, delayMs: delay, headers });
  }
  return items;
}
