/**
 * A producer for a Redis Streams mailbox, for a process that runs no
 * handlers (main thread): `redisProducer({ url, stream, codec })`. Each
 * message is one stream entry whose field `d` holds the payload as the
 * mailbox's codec encodes it (so the codec must be the consuming mailbox's).
 * Sends made in one turn of the event loop go to Redis as one pipeline
 * (node-redis `execAsPipeline`: 1.6x ioredis on XADD here, see
 * bench/redis-clients.ts).
 */
import { createClient } from 'redis';
import { builtinCodec, CustomCodec, type CodecOption, type PayloadCodec } from '../../shared/codec.js';
import { ErrorCodes, RingpoolError, invalidOption } from '../../shared/errors.js';

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
}

/** The entry field that holds the encoded payload. */
export const PAYLOAD_FIELD = 'd';

interface Pending {
  bytes: Buffer;
  resolve: ((id: string) => void) | null;
  reject: ((err: unknown) => void) | null;
}

export class RedisProducer {
  private readonly client;
  private readonly codec: PayloadCodec;
  private readonly maxMessageBytes: number;
  private readonly connected: Promise<unknown>;
  private pending: Pending[] = [];
  /** The writer: takes what is queued, a pipeline at a time, until nothing is. */
  private draining: Promise<void> | null = null;
  private closed = false;
  private seq = 0;
  /** send() calls whose entry Redis did not take. */
  failed = 0;

  constructor(private readonly opts: RedisProducerOptions) {
    this.codec = typeof opts.codec === 'object' ? new CustomCodec(opts.codec) : builtinCodec(opts.codec ?? 'json');
    this.maxMessageBytes = opts.maxMessageBytes ?? 256 << 10;
    this.client = createClient({ url: opts.url });
    this.client.on('error', () => undefined); // reconnects on its own; a command that fails rejects its own promise
    this.connected = this.client.connect();
    this.connected.catch(() => undefined);
  }

  /** Queue one message; returns its number in this producer (the entry id comes with sendAsync). Bad input throws. */
  send(payload: unknown): number {
    this.enqueue(payload, null, null);
    return this.seq++;
  }

  /** Resolves with the stream entry id once Redis has the entry. */
  sendAsync(payload: unknown): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      this.enqueue(payload, resolve, reject);
      this.seq++;
    });
  }

  /** Send what is queued, then disconnect. */
  async close(): Promise<void> {
    this.closed = true;
    await this.draining;
    await this.connected.catch(() => undefined);
    if (this.client.isOpen) await this.client.quit();
  }

  private enqueue(payload: unknown, resolve: Pending['resolve'], reject: Pending['reject']): void {
    if (this.closed) throw new RingpoolError(ErrorCodes.CLOSED, `redisProducer for stream '${this.opts.stream}' is closed`, { stream: this.opts.stream });
    const n = this.codec.prepare(payload);
    if (n > this.maxMessageBytes) {
      throw new RingpoolError(ErrorCodes.MESSAGE_TOO_LARGE, `message of ${n} bytes is over maxMessageBytes ${this.maxMessageBytes} of redisProducer for stream '${this.opts.stream}'`, {
        size: n,
        limit: this.maxMessageBytes,
      });
    }
    const b = this.codec.preparedBytes();
    this.pending.push({ bytes: Buffer.from(b.buffer, b.byteOffset, b.byteLength), resolve, reject });
    this.draining ??= this.drain();
  }

  private async drain(): Promise<void> {
    try {
      await new Promise((r) => setImmediate(r)); // the rest of this turn's sends join the first pipeline
      while (this.pending.length > 0) {
        const batch = this.pending;
        this.pending = [];
        await this.write(batch);
      }
    } finally {
      this.draining = null;
    }
  }

  /** One pipeline: each entry's id to its sendAsync, each failure to its sender. */
  private async write(batch: Pending[]): Promise<void> {
    try {
      await this.connected;
      const m = this.client.multi();
      for (const p of batch) m.xAdd(this.opts.stream, '*', { [PAYLOAD_FIELD]: p.bytes });
      const ids = (await m.execAsPipeline()) as unknown[];
      batch.forEach((p, i) => {
        const id = ids[i];
        if (typeof id === 'string') p.resolve?.(id);
        else this.fail(p, id);
      });
    } catch (err) {
      for (const p of batch) this.fail(p, err);
    }
  }

  private fail(p: Pending, cause: unknown): void {
    const err = new RingpoolError(ErrorCodes.SOURCE_IO, `XADD to stream '${this.opts.stream}' failed: ${(cause as Error)?.message ?? String(cause)}`, { stream: this.opts.stream }, { cause });
    if (p.reject !== null) p.reject(err);
    else {
      this.failed++;
      this.opts.onError?.(err);
    }
  }
}

/** `import { redisProducer } from 'ringpool/redis'`: options checked, connection opened in the background. */
export function redisProducer(opts: RedisProducerOptions): RedisProducer {
  if (opts === null || typeof opts !== 'object') throw invalidOption('redisProducer', 'an object { url, stream, codec }', opts);
  if (typeof opts.url !== 'string' || !/^rediss?:\/\//.test(opts.url)) throw invalidOption('redisProducer.url', "a redis:// or rediss:// URL", opts.url);
  if (typeof opts.stream !== 'string' || opts.stream === '') throw invalidOption('redisProducer.stream', 'a stream key (a non-empty string)', opts.stream);
  const c = opts.codec;
  if (c !== undefined && c !== 'json' && c !== 'v8' && c !== 'raw' && (typeof c !== 'object' || c === null || typeof c.encode !== 'function' || typeof c.decode !== 'function')) {
    throw invalidOption('redisProducer.codec', "'json', 'v8', 'raw' or a Codec { name, encode, decode }", c);
  }
  const max = opts.maxMessageBytes;
  if (max !== undefined && (!Number.isInteger(max) || max < 1)) throw invalidOption('redisProducer.maxMessageBytes', 'an integer >= 1', max);
  if (opts.onError !== undefined && typeof opts.onError !== 'function') throw invalidOption('redisProducer.onError', 'a function', opts.onError);
  return new RedisProducer(opts);
}
