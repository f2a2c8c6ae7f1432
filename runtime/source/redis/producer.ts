/**
 * A producer for a Redis Streams mailbox, for a process that runs no
 * handlers (main thread): `redisProducer({ url, stream, codec })`. Each
 * message is one stream entry whose field `d` holds the payload as the
 * mailbox's codec encodes it (so the codec must be the consuming mailbox's).
 * Sends made in one turn of the event loop go to Redis as one pipeline, and
 * wait here (bounded) while Redis is away (adds.ts).
 */
import { createClient } from 'redis';
import { codecOf, type Codec, type CodecOption, type PayloadCodec } from '../../shared/codec.js';
import { ErrorCodes, RingpoolError, invalidOption, optionThrew } from '../../shared/errors.js';
import { MAX_MESSAGE_BYTES_LIMIT } from '../../options.js';
import { checkWaitOptions } from '../../call-options.js';
import { SEND_BUFFER_BYTES, isRedisUrl } from './options.js';
import { Adds, prepare } from './adds.js';

export { PAYLOAD_FIELD } from './adds.js';

export interface RedisProducerOptions {
  /** `redis://host:port`. */
  url: string;
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
}

/** sendAsync's wait: as rt.sendAsync's. */
export interface ProducerSendOptions {
  /** Give up after this long: RINGPOOL_TIMEOUT (the entry is not in the stream unless it had been written, see `details.written`). */
  timeoutMs?: number;
  /** Abort the wait: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

export class RedisProducer {
  private readonly client;
  private readonly codec: PayloadCodec;
  private readonly maxMessageBytes: number;
  private readonly connected: Promise<unknown>;
  private readonly adds: Adds;
  private closed = false;
  private seq = 0;

  constructor(private readonly opts: RedisProducerOptions) {
    this.codec = codecOf(opts.codec ?? 'json');
    this.maxMessageBytes = opts.maxMessageBytes ?? 256 << 10;
    this.client = createClient({ url: opts.url });
    this.client.on('error', () => undefined); // reconnects on its own; a command that fails rejects its own promise
    this.connected = this.client.connect();
    this.connected.catch(() => undefined);
    this.adds = new Adds({
      stream: opts.stream,
      what: `redisProducer for stream '${opts.stream}'`,
      client: () => this.connected.then(() => this.client),
      onError: opts.onError,
      maxBytes: opts.sendBufferBytes ?? SEND_BUFFER_BYTES,
    });
  }

  /** send() calls whose entry Redis did not take. */
  get failed(): number {
    return this.adds.failed;
  }

  /** Queue one message; returns its number in this producer (the entry id comes with sendAsync). Bad input throws. */
  send(payload: unknown): number {
    this.enqueue(payload, null, null);
    return this.seq++;
  }

  /** Resolves with the stream entry id once Redis has the entry. `timeoutMs` and `signal` end the wait. */
  sendAsync(payload: unknown, opts?: ProducerSendOptions): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const { timeoutMs, signal } = opts ?? {};
      checkWaitOptions('redisProducer.sendAsync', timeoutMs, signal);
      if (signal?.aborted) throw signal.reason; // nothing sent
      this.enqueue(payload, resolve, reject, timeoutMs, signal);
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
    await this.connected.catch(() => undefined);
    if (this.client.isOpen) await this.client.quit();
  }

  private enqueue(payload: unknown, resolve: ((id: string) => void) | null, reject: ((err: unknown) => void) | null, timeoutMs?: number, signal?: AbortSignal): void {
    if (this.closed) throw new RingpoolError(ErrorCodes.CLOSED, `redisProducer for stream '${this.opts.stream}' is closed`, { stream: this.opts.stream });
    prepare(this.codec, payload, this.maxMessageBytes, `redisProducer for stream '${this.opts.stream}'`);
    this.adds.push(this.codec, resolve, reject, timeoutMs, signal);
  }
}

const PRODUCER_KEYS = ['url', 'stream', 'codec', 'maxMessageBytes', 'onError', 'sendBufferBytes'];

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
  const { url, stream, codec: c, maxMessageBytes: max, onError, sendBufferBytes: buf } = o;
  if (typeof url !== 'string' || !isRedisUrl(url)) throw invalidOption('redisProducer.url', 'a redis:// or rediss:// URL', url);
  if (typeof stream !== 'string' || stream === '' || !stream.isWellFormed()) throw invalidOption('redisProducer.stream', 'a stream key (a non-empty, well-formed string)', stream);
  if (c !== undefined && c !== 'json' && c !== 'msgpack' && c !== 'v8' && c !== 'raw' && (typeof c !== 'object' || c === null || typeof (c as Codec).encode !== 'function' || typeof (c as Codec).decode !== 'function' || typeof (c as Codec).name !== 'string')) {
    throw invalidOption('redisProducer.codec', "'json', 'msgpack', 'v8', 'raw' or a Codec { name, encode, decode }", c);
  }
  if (max !== undefined && (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > MAX_MESSAGE_BYTES_LIMIT)) {
    throw invalidOption('redisProducer.maxMessageBytes', `an integer from 1 to ${MAX_MESSAGE_BYTES_LIMIT}`, max);
  }
  if (onError !== undefined && typeof onError !== 'function') throw invalidOption('redisProducer.onError', 'a function', onError);
  if (buf !== undefined && (typeof buf !== 'number' || !Number.isSafeInteger(buf) || buf < 1)) throw invalidOption('redisProducer.sendBufferBytes', 'an integer >= 1', buf);
  return { url, stream, codec: c as CodecOption | undefined, maxMessageBytes: max, onError: onError as RedisProducerOptions['onError'], sendBufferBytes: buf as number | undefined };
}
