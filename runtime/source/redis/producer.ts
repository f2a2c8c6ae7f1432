/**
 * A producer for a Redis Streams mailbox, for a process that runs no
 * handlers (main thread): `redisProducer({ url, stream, codec })`. Each
 * message is one stream entry whose field `d` holds the payload as the
 * mailbox's codec encodes it (so the codec must be the consuming mailbox's),
 * and field `h` its headers, when sent with some (`ctx.headers` there).
 * Sends made in one turn of the event loop go to Redis as one pipeline, and
 * wait here (bounded) while Redis is away (adds.ts).
 */
import { codecOf, type Codec, type CodecOption, type PayloadCodec } from '../../shared/codec.js';
import { ErrorCodes, RingpoolError, invalidOption, optionThrew } from '../../shared/errors.js';
import { MAX_MESSAGE_BYTES_LIMIT } from '../../mailbox-options.js';
import { checkWaitOptions } from '../../call-options.js';
import { SEND_BUFFER_BYTES } from './options.js';
import { makeClient, type Client } from './connection.js';
import { resolveTarget, type RedisTarget } from './target.js';
import type { RedisConnectOptions } from '../stream.js';
import { Adds } from './adds.js';
import { delayedKeys } from './delayed.js';
import { prepare } from './send-check.js';
import { checkTaggable, partitionKeys, type PartitionKeys } from './keys.js';
import { agreeOnPartitions } from './partitions.js';
import { MAX_PARTITIONS, partitionOf } from '../../shared/partition.js';
import { badSendOption, delayOf, keyOf } from '../../shared/producer.js';
import { encodeHeaders } from '../../shared/headers.js';

export { PAYLOAD_FIELD } from './adds.js';

/** Where it connects: exactly one of `url`, `cluster` or `client`, as a Redis mailbox's (`clientOptions` beside a URL or the nodes). */
export interface RedisProducerOptions extends RedisConnectOptions {
  /** The stream key. */
  stream: string;
  /** How payloads are encoded: the consuming mailbox's codec. @default 'json' */
  codec?: CodecOption;
  /** Largest encoded payload. @default 262144 (the mailbox default) */
  maxMessageBytes?: number;
  /** A failed send() (nobody awaits it): told here. @default undefined (the error is dropped after counting it in `failed`) */
  onError?: (err: RingpoolError) => void;
  /**
   * Payload bytes of sends that may wait for Redis (queued while it is away
   * or loading, or written and not yet answered): past it, send() throws and
   * sendAsync() rejects with RINGPOOL_QUEUE_FULL.
   * @default 67108864 (64 MiB)
   */
  sendBufferBytes?: number;
  /**
   * The consuming mailbox's `partitions` (source.redis.partitions): a keyed
   * send goes to stream `{<stream>}:p:<partitionOf(key, partitions)>`
   * (FNV-1a of the key's UTF-8 bytes, mod partitions), as the mailbox routes
   * its own. Checked against the one stored with the stream (or stored, when
   * none is yet): a different one fails the sends with
   * RINGPOOL_PARTITIONS_MISMATCH. Without it a keyed send is refused.
   * @default undefined
   */
  partitions?: number;
}

/** A send's key (partitioned mailboxes). */
export interface ProducerKeyOptions {
  /** The message's key: its partition's owner runs a key's messages one at a time, in order. Needs `partitions`. */
  key?: string;
  /** Wait this long (ms) in the stream's delayed set (Redis), then join the stream. */
  delayMs?: number;
  /**
   * String keys and values carried beside the payload (field `h`, at most
   * 4096 bytes as JSON): the handler's `ctx.headers`, kept across retries,
   * dead letters and redrives. Bad ones throw RINGPOOL_INVALID_OPTION.
   */
  headers?: Record<string, string>;
}

/** sendAsync's wait: as rt.sendAsync's. */
export interface ProducerSendOptions extends ProducerKeyOptions {
  /** Give up after this long: RINGPOOL_TIMEOUT (the entry is not in the stream unless it had been written, see `details.written`). */
  timeoutMs?: number;
  /** Abort the wait: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

export class RedisProducer {
  private client: Client = null;
  private readonly target: RedisTarget;
  private readonly made: Promise<Client>;
  private readonly codec: PayloadCodec;
  private readonly maxMessageBytes: number;
  private readonly connected: Promise<unknown>;
  /** Connected, and partitions agreed with the stream's. */
  private readonly ready: Promise<unknown>;
  private readonly keys: PartitionKeys | null;
  private readonly adds: Adds;
  private closed = false;
  private seq = 0;

  constructor(private readonly opts: RedisProducerOptions) {
    this.codec = codecOf(opts.codec ?? 'json');
    this.maxMessageBytes = opts.maxMessageBytes ?? 256 << 10;
    // Reconnects on its own; a command that fails rejects its own promise.
    this.target = resolveTarget('redisProducer', opts as unknown as Record<string, unknown>, opts.stream, opts.partitions !== undefined);
    this.made = makeClient(this.target, opts.stream, undefined, {}).then((c: Client) => {
      c.on('error', () => undefined);
      this.client = c;
      return c;
    });
    const P = opts.partitions;
    this.keys = P === undefined ? null : partitionKeys(opts.stream, 'ringpool', P);
    this.connected = this.made.then((c: Client) => c.connect());
    // With partitions: agree on P with the stream's consumers before the first send goes out.
    this.ready = P === undefined ? this.connected : this.connected.then(() => agreeOnPartitions(this.client, this.keys!.meta, P, opts.stream, 'redisProducer'));
    this.connected.catch(() => undefined);
    this.ready.catch(() => undefined);
    this.adds = new Adds({
      stream: opts.stream,
      what: `redisProducer for stream '${opts.stream}'`,
      client: () => this.ready.then(() => this.client),
      onError: opts.onError,
      maxBytes: opts.sendBufferBytes ?? SEND_BUFFER_BYTES,
      delayed: delayedKeys(opts.stream),
    });
  }

  /** send() calls whose entry Redis did not take. */
  get failed(): number {
    return this.adds.failed;
  }

  /** Queue one message; returns its number in this producer (the entry id comes with sendAsync). Bad input throws. */
  send(payload: unknown, opts?: ProducerKeyOptions): number {
    this.enqueue(payload, opts, null, null);
    return this.seq++;
  }

  /** Resolves once connected (and, with partitions, once they agree with the stream's: else RINGPOOL_PARTITIONS_MISMATCH). */
  whenReady(): Promise<void> {
    return this.ready.then(() => undefined);
  }

  /** Resolves with the stream entry id once Redis has the entry. `timeoutMs` and `signal` end the wait. */
  sendAsync(payload: unknown, opts?: ProducerSendOptions): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const { timeoutMs, signal } = opts ?? {};
      checkWaitOptions('redisProducer.sendAsync', timeoutMs, signal);
      if (signal?.aborted) throw signal.reason; // nothing sent
      this.enqueue(payload, opts, resolve, reject, timeoutMs, signal);
      this.seq++;
    });
  }

  /** Payload bytes waiting for Redis (queued, or written and not yet answered). */
  get waitingBytes(): number {
    return this.adds.bytes;
  }

  /** Send what is queued, then disconnect. */
  async close(): Promise<void> {
    this.closed = true;
    await this.adds.flushed();
    this.adds.holds.stop();
    await this.connected.catch(() => undefined);
    if (this.client?.isOpen) await this.client.quit();
  }

  private enqueue(payload: unknown, opts: ProducerKeyOptions | undefined, resolve: ((id: string) => void) | null, reject: ((err: unknown) => void) | null, timeoutMs?: number, signal?: AbortSignal): void {
    if (this.closed) throw new RingpoolError(ErrorCodes.CLOSED, `redisProducer for stream '${this.opts.stream}' is closed`, { stream: this.opts.stream });
    const key = keyOfSend(this.opts, opts);
    const delayMs = sendDelay;
    const headers = sendHeaders; // taken before the payload is encoded (its toJSON may send too)
    prepare(this.codec, payload, this.maxMessageBytes, `redisProducer for stream '${this.opts.stream}'`);
    const stream = key === null ? null : this.keys!.stream(partitionOf(key, this.opts.partitions!));
    this.adds.push(this.codec, resolve, reject, timeoutMs, signal, stream, key, false, delayMs, headers);
  }
}

const PRODUCER_KEYS = ['url', 'cluster', 'client', 'clientOptions', 'stream', 'codec', 'maxMessageBytes', 'onError', 'sendBufferBytes', 'partitions'];

/** The delayMs (whole ms) of the last send keyOfSend() read. */
let sendDelay = 0;
/** The headers (encoded; null: none) of the last send keyOfSend() read. */
let sendHeaders: Buffer | null = null;

/** A send's key: null (unkeyed), or refused (no partitions, not a well-formed string); its delay in `sendDelay`, its headers in `sendHeaders`. */
function keyOfSend(o: RedisProducerOptions, opts: ProducerKeyOptions | undefined): string | null {
  sendDelay = 0;
  sendHeaders = null;
  if (opts === undefined || opts === null) return null;
  if (typeof opts !== 'object') throw badSendOption('', 'an object { key, delayMs, headers, timeoutMs, signal }', opts);
  const k = opts.key;
  sendDelay = Math.ceil(delayOf(opts.delayMs));
  sendHeaders = encodeHeaders(opts.headers);
  if (k === undefined || k === null) return null;
  if (o.partitions === undefined) {
    throw new RingpoolError(ErrorCodes.INVALID_OPTION, `redisProducer for stream '${o.stream}' has no partitions: a keyed send is refused (give the consuming mailbox's partitions)`, { stream: o.stream, option: 'partitions' });
  }
  return keyOf(k);
}


/**
 * `import { redisProducer } from 'ringpool/redis'`: options checked (each
 * read once; an unknown key, or a getter or Proxy trap that throws, is
 * RINGPOOL_INVALID_OPTION), connection opened in the background.
 */
export function redisProducer(opts: RedisProducerOptions): RedisProducer {
  let checked: RedisProducerOptions;
  try {
    checked = producerOptions(opts);
  } catch (err) {
    throw optionThrew('redisProducer options', err);
  }
  return new RedisProducer(checked);
}

function producerOptions(opts: unknown): RedisProducerOptions {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw invalidOption('redisProducer', 'an object { url, stream, codec }', opts);
  const o = opts as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!PRODUCER_KEYS.includes(k)) throw invalidOption(`redisProducer.${k}`, `one of ${PRODUCER_KEYS.join(', ')} (unknown option)`, o[k]);
  const { url, cluster, client, clientOptions, stream, codec: c, maxMessageBytes: max, onError, sendBufferBytes: buf, partitions: P } = o;
  if (typeof stream !== 'string' || stream === '' || !stream.isWellFormed()) throw invalidOption('redisProducer.stream', 'a stream key (a non-empty, well-formed string)', stream);
  if (c !== undefined && c !== 'json' && c !== 'msgpack' && c !== 'v8' && c !== 'raw' && (typeof c !== 'object' || c === null || typeof (c as Codec).encode !== 'function' || typeof (c as Codec).decode !== 'function' || typeof (c as Codec).name !== 'string')) {
    throw invalidOption('redisProducer.codec', "'json', 'msgpack', 'v8', 'raw' or a Codec { name, encode, decode }", c);
  }
  if (max !== undefined && (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > MAX_MESSAGE_BYTES_LIMIT)) {
    throw invalidOption('redisProducer.maxMessageBytes', `an integer from 1 to ${MAX_MESSAGE_BYTES_LIMIT}`, max);
  }
  if (onError !== undefined && typeof onError !== 'function') throw invalidOption('redisProducer.onError', 'a function', onError);
  if (buf !== undefined && (typeof buf !== 'number' || !Number.isSafeInteger(buf) || buf < 1)) throw invalidOption('redisProducer.sendBufferBytes', 'an integer >= 1', buf);
  if (P !== undefined && (typeof P !== 'number' || !Number.isInteger(P) || P < 1 || P > MAX_PARTITIONS)) throw invalidOption('redisProducer.partitions', `an integer from 1 to ${MAX_PARTITIONS}`, P);
  if (P !== undefined) checkTaggable('redisProducer', stream);
  resolveTarget('redisProducer', { url, cluster, client, clientOptions }, stream, P !== undefined);
  return { url: url as string | undefined, cluster: cluster as RedisProducerOptions['cluster'], client, clientOptions: clientOptions as RedisProducerOptions['clientOptions'], stream, codec: c as CodecOption | undefined, maxMessageBytes: max, onError: onError as RedisProducerOptions['onError'], sendBufferBytes: buf as number | undefined, partitions: P as number | undefined };
}
