/**
 * The XADD pipeline of a Redis Streams mailbox and of `redisProducer()`
 * (main thread): one entry a message, its payload in field `d` (the codec's
 * bytes). The sends of one event-loop turn go to Redis as one pipeline
 * (node-redis `execAsPipeline`: 1.6x ioredis on XADD here, see
 * bench/redis-clients.ts); each entry id goes to its sendAsync, each failure
 * to its sender (RINGPOOL_SOURCE_IO).
 */
import type { PayloadCodec } from '../../shared/codec.js';
import { ErrorCodes, RingpoolError, describeValue } from '../../shared/errors.js';
import type { SendOptions } from '../../shared/producer.js';
import type { Client } from './connection.js';

/** The entry field that holds the encoded payload. */
export const PAYLOAD_FIELD = 'd';

interface Pending {
  bytes: Buffer;
  resolve: ((id: string) => void) | null;
  reject: ((err: unknown) => void) | null;
}

export class Adds {
  private pending: Pending[] = [];
  /** The writer: takes what is queued, a pipeline at a time, until nothing is. */
  private draining: Promise<void> | null = null;
  /** send() calls whose entry Redis did not take. */
  failed = 0;
  /** Entries Redis took. */
  added = 0;

  constructor(
    private readonly stream: string,
    /** The connected client (resolves once connected; rejects if it never was). */
    private readonly client: () => Promise<Client>,
    /** A failed send() that nobody awaits. */
    private readonly onError: ((err: RingpoolError) => void) | undefined,
  ) {}

  /** Queue the codec's prepared bytes (copied: the codec reuses its buffer). */
  push(codec: PayloadCodec, resolve: Pending['resolve'], reject: Pending['reject']): void {
    const b = codec.preparedBytes();
    this.pending.push({ bytes: Buffer.from(b.buffer, b.byteOffset, b.byteLength), resolve, reject });
    this.draining ??= this.drain();
  }

  /** Resolves once everything queued so far has been answered. */
  async flushed(): Promise<void> {
    while (this.draining !== null) await this.draining;
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

  private async write(batch: Pending[]): Promise<void> {
    try {
      const m = (await this.client()).multi();
      for (const p of batch) m.xAdd(this.stream, '*', { [PAYLOAD_FIELD]: p.bytes });
      const ids = (await m.execAsPipeline()) as unknown[];
      batch.forEach((p, i) => {
        const id = ids[i];
        if (typeof id === 'string') {
          this.added++;
          p.resolve?.(id);
        } else this.fail(p, id);
      });
    } catch (err) {
      for (const p of batch) this.fail(p, err);
    }
  }

  private fail(p: Pending, cause: unknown): void {
    const err = new RingpoolError(ErrorCodes.SOURCE_IO, `XADD to stream '${this.stream}' failed: ${(cause as Error)?.message ?? String(cause)}`, { stream: this.stream }, { cause });
    if (p.reject !== null) p.reject(err);
    else {
      this.failed++;
      this.onError?.(err);
    }
  }
}

/** Encode one payload for a stream entry: RINGPOOL_MESSAGE_TOO_LARGE / RINGPOOL_UNSERIALIZABLE as send() gives them. */
export function prepare(codec: PayloadCodec, payload: unknown, maxMessageBytes: number, what: string): void {
  const n = codec.prepare(payload);
  if (n > maxMessageBytes) {
    throw new RingpoolError(ErrorCodes.MESSAGE_TOO_LARGE, `message of ${n} bytes is over maxMessageBytes ${maxMessageBytes} of ${what}`, { size: n, limit: maxMessageBytes });
  }
}

/** The send options a Redis mailbox refuses, and why. */
export function checkStreamSend(mailbox: string, stream: string, opts: SendOptions | undefined): void {
  if (opts === undefined || opts === null) return;
  if (opts.key !== undefined && opts.key !== null) {
    throw new RingpoolError(
      ErrorCodes.INVALID_OPTION,
      `mailbox '${mailbox}' reads Redis stream '${stream}': a keyed send is refused, because per-key order across processes needs partitioned streams (not yet supported); send without { key }`,
      { mailbox, option: 'key' },
    );
  }
  if (opts.delayMs !== undefined) {
    throw new RingpoolError(
      ErrorCodes.INVALID_OPTION,
      `mailbox '${mailbox}' reads Redis stream '${stream}': delayMs is refused (a delayed message would wait in this process's memory, not in Redis), got ${describeValue(opts.delayMs)}`,
      { mailbox, option: 'delayMs' },
    );
  }
}
