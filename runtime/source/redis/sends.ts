/**
 * Sends to a Redis mailbox from this process (main thread): `rt.send`,
 * `sendAsync`, `sendBatch`, `sendBatchAsync` and an actor's `tell`, each an
 * XADD through adds.ts (a batch: one transaction, batch.ts). A keyed send
 * goes to its key's partition (partitioned mailboxes), else it is refused.
 * Headers (options.headers, and a handler's chained sends') go in field `h`;
 * an ask carries none.
 * The numbers returned are this process's own count of sends to the mailbox.
 */
import type { PayloadCodec } from '../../shared/codec.js';
import { ErrorCodes, RingpoolError } from '../../shared/errors.js';
import { FLAG_CALL } from '../../shared/layout.js';
import type { BatchOptions, SendOptions } from '../../shared/producer.js';
import type { Adds, GroupItem } from './adds.js';
import type { StreamItem } from '../../shared/protocol.js';
import { checkStreamSend, prepare, streamSendDelay, streamSendHeaders } from './send-check.js';
import { prepareBatch } from './batch.js';
import type { ResolvedRedisSource } from './options.js';

export class StreamSends {
  private seq = 0;

  constructor(
    private readonly mailbox: string,
    private readonly o: ResolvedRedisSource,
    private readonly host: { codec: PayloadCodec; maxMessageBytes: number },
    private readonly adds: Adds,
    /** The stream of a key's partition (partitioned mailboxes only). */
    private readonly streamOf: (key: string) => string,
  ) {}

  /** rt.send() (and `tell`, flags FLAG_CALL): XADD, pipelined. */
  send(payload: unknown, opts: SendOptions | undefined, closed: boolean, flags = 0): number {
    const key = this.check(payload, opts, closed);
    this.adds.push(this.host.codec, null, null, undefined, undefined, key === null ? null : this.streamOf(key), key, (flags & FLAG_CALL) !== 0, streamSendDelay(), streamSendHeaders());
    return this.seq++;
  }

  /** rt.sendAsync(): resolves with the stream entry id once Redis has the entry; `timeoutMs` and `signal` end the wait (adds.ts). */
  sendAsync(payload: unknown, opts: SendOptions | undefined, closed: boolean, signal?: AbortSignal, timeoutMs?: number): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      if (signal?.aborted) throw signal.reason; // nothing sent
      const key = this.check(payload, opts, closed);
      this.adds.push(this.host.codec, resolve as (id: string & string[]) => void, reject, timeoutMs, signal, key === null ? null : this.streamOf(key), key, false, streamSendDelay(), streamSendHeaders());
      this.seq++;
    });
  }

  /**
   * An ask's payload checked and encoded now (bad input throws: the ask
   * rejects, nothing sent); returns what sends it once its reply stream
   * exists (asks.ts), resolving once Redis has the entry.
   */
  prepareAsk(payload: unknown, key: string | undefined, call: boolean, closed: boolean, replyTo: string): (corr: string) => Promise<unknown> {
    const k = this.check(payload, key === undefined ? undefined : { key }, closed);
    const b = this.host.codec.preparedBytes();
    const bytes = Buffer.from(b); // a copy: the codec's buffer is reused
    const stream = k === null ? null : this.streamOf(k);
    return (corr) =>
      new Promise((resolve, reject) => {
        this.adds.pushBytes(bytes, resolve as (id: string & string[]) => void, reject, undefined, undefined, stream, k, call, 0, replyTo, corr);
        this.seq++;
      });
  }

  /** rt.sendBatch(): every payload or none, in order, in one transaction. */
  sendBatch(payloads: readonly unknown[], opts: BatchOptions | undefined, closed: boolean): number[] {
    const items = prepareBatch(this.target(closed), payloads, opts);
    if (items.length > 0) this.adds.pushGroup(items, null, null);
    return items.map(() => this.seq++);
  }

  /** rt.sendBatchAsync(): resolves with the entry ids, in order, once Redis has them all. */
  sendBatchAsync(payloads: readonly unknown[], opts: BatchOptions | undefined, closed: boolean, signal?: AbortSignal, timeoutMs?: number): Promise<string[]> {
    return new Promise<string[]>((resolve, reject) => {
      if (signal?.aborted) throw signal.reason; // nothing sent
      const items = prepareBatch(this.target(closed), payloads, opts);
      if (items.length === 0) return resolve([]);
      this.adds.pushGroup(items, resolve as (ids: string & string[]) => void, reject, timeoutMs, signal);
      this.seq += items.length;
    });
  }

  /**
   * A handler's chained sends (encoded on its thread): one transaction, in
   * order; resolves once Redis has them all (chained.ts acks their sender then).
   */
  sendEncoded(items: readonly StreamItem[], closed: boolean): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (closed) throw this.closedError();
      const group: GroupItem[] = items.map((it) => ({
        bytes: Buffer.from(it.payload.buffer, it.payload.byteOffset, it.payload.byteLength),
        stream: it.key === null ? null : this.streamOf(it.key),
        key: it.key,
        delayMs: it.delayMs,
        headers: it.headers === null ? null : Buffer.from(it.headers.buffer, it.headers.byteOffset, it.headers.byteLength),
      }));
      this.adds.pushGroup(group, resolve, reject);
      this.seq += items.length;
    });
  }

  private target(closed: boolean): Parameters<typeof prepareBatch>[0] {
    if (closed) throw this.closedError();
    const o = this.o;
    return { mailbox: this.mailbox, stream: o.stream, partitions: o.partitions, codec: this.host.codec, maxMessageBytes: this.host.maxMessageBytes, streamOf: this.streamOf };
  }

  /** The send's key (null: unkeyed; its delay: streamSendDelay()), its payload prepared; bad input throws. */
  private check(payload: unknown, opts: SendOptions | undefined, closed: boolean): string | null {
    if (closed) throw this.closedError();
    const key = checkStreamSend(this.mailbox, this.o.stream, opts, this.o.partitions);
    prepare(this.host.codec, payload, this.host.maxMessageBytes, `mailbox '${this.mailbox}'`);
    return key;
  }

  private closedError(): RingpoolError {
    return new RingpoolError(ErrorCodes.CLOSED, `mailbox '${this.mailbox}' is closed to new messages`, { mailbox: this.mailbox });
  }
}
