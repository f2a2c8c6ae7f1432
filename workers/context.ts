/**
 * The `ctx` a handler receives. One small object per message: handlers may
 * keep it across awaits. The AbortSignal is made only when `ctx.signal` is read.
 */
import { ErrorCodes, RingpoolError } from '../runtime/shared/errors.js';
import type { BatchOptions, SendOptions } from '../runtime/shared/producer.js';
import type { StreamItem } from '../runtime/shared/protocol.js';
import { RetryAfterError } from './retry-after.js';
import { NO_HEADERS } from '../runtime/shared/headers.js';
import type { AnyMailboxes, MailboxTypes } from '../runtime/typed.js';

export type { BatchOptions, SendOptions };

/**
 * `T`: the runtime's mailbox types (runtime/typed.ts), for a typed `send` and `sendBatch`:
 * `ctx: HandlerContext<AppMailboxes>`. Untyped by default.
 */
export interface HandlerContext<T extends MailboxTypes = AnyMailboxes> {
  /** Message id, stable across retries. */
  readonly id: number;
  /** 1 for the first delivery, then 2, 3, ... */
  readonly attempt: number;
  readonly mailbox: string;
  readonly key: string | undefined;
  /** The headers the message was sent with (`send(..., { headers })`), kept across retries; frozen, empty when none. */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * Aborted when the lease (leaseMs from handler start) ends, and on a
   * partitioned Redis mailbox also when this process's lease of the
   * message's partition runs out (reason: RINGPOOL_FENCED; then `fenced`).
   */
  readonly signal: AbortSignal;
  /**
   * Partitioned Redis mailbox: the fencing epoch of this process's lease of
   * the message's partition when the handler started, a number that only
   * goes up across owners: pass it to a downstream that refuses writes from
   * an older one. Undefined elsewhere.
   */
  readonly fence: number | undefined;
  /** Partitioned Redis mailbox: true once this process no longer owns the message's partition (another may run it now). Always false elsewhere. */
  readonly fenced: boolean;
  /**
   * Send to any mailbox of the runtime, straight into its ring; to a Redis
   * mailbox, to its stream when the handler finishes (this message is
   * acknowledged only once Redis has it). Throws RingpoolError (RINGPOOL_QUEUE_FULL, ...).
   */
  send<K extends keyof T & string>(mailbox: K, payload: T[K]['payload'], opts?: SendOptions): number;
  /**
   * The downstream said "not now" (a 429 or a 503 with Retry-After): throws
   * a RetryAfterError, so the message goes back uncharged (same attempt, no
   * backoff) and the whole mailbox starts nothing new for `ms` (0 to 30 min).
   */
  retryAfter(ms: number): never;
  /** Send every payload or none (one reservation): the ids in order. Throws RINGPOOL_QUEUE_FULL with nothing written when they do not fit now. */
  sendBatch<K extends keyof T & string>(mailbox: K, payloads: readonly T[K]['payload'][], opts?: BatchOptions): number[];
}

/** A handler module's default export: `(payload, ctx) => result`. */
export type Handler<P = any, R = unknown, T extends MailboxTypes = AnyMailboxes> = (payload: P, ctx: HandlerContext<T>) => R | Promise<R>;

/** Durable target rings a handler sent to, and the cursor each must reach before its message is acked. */
export class DurableMarks {
  readonly rings: Array<{ i32: Int32Array }> = [];
  readonly ends: number[] = [];
  readonly names: string[] = [];
  add(ring: { i32: Int32Array }, end: number, mailbox: string): void {
    const i = this.rings.indexOf(ring);
    if (i < 0) {
      this.rings.push(ring);
      this.ends.push(end);
      this.names.push(mailbox);
    } else this.ends[i] = end;
  }
}

/** What each context sends through: the loop's Outbound (workers/loop/outbound.ts). */
export interface ContextHost {
  readonly mailbox: string;
  readonly leaseMs: number;
  send(mailbox: string, payload: unknown, opts: SendOptions | undefined, from: MessageContext): number;
  sendBatch(mailbox: string, payloads: readonly unknown[], opts: BatchOptions | undefined, from: MessageContext): number[];
}

/** A partition's lease as a context reads it (runtime/shared/partition.ts's FenceView). */
export interface FenceReader {
  leftMs(p: number): number;
  epoch(p: number): number;
}

export class MessageContext implements HandlerContext {
  private abort: AbortSignal | undefined;
  /** The headers the message was sent with (frozen; one shared empty object when none). */
  headers: Readonly<Record<string, string>> = NO_HEADERS;
  /** Set by the Invoker for a record of a partition: the fence table, the partition and its epoch at start. */
  fenceOf: FenceReader | null = null;
  partition = -1;
  fence: number | undefined = undefined;
  /** Sends of this handler to durable mailboxes (made on the first one): on disk before its message is acked. */
  marks: DurableMarks | null = null;
  /** Sends of this handler to Redis mailboxes (made on the first one): posted when it finishes, in Redis before its message is acked. */
  streamSends: StreamItem[] | null = null;
  /** Set once the handler finished: a later ctx.send() to a Redis mailbox (a timer) goes out on its own, waited for by nobody. */
  finished = false;
  constructor(
    private readonly host: ContextHost,
    readonly id: number,
    readonly attempt: number,
    readonly key: string | undefined,
    private readonly startedAt: number,
  ) {}

  get mailbox(): string {
    return this.host.mailbox;
  }

  get signal(): AbortSignal {
    if (this.abort === undefined) {
      const left = Math.max(0, Math.ceil(this.host.leaseMs - (performance.now() - this.startedAt)));
      this.abort = this.fenceOf === null ? AbortSignal.timeout(left) : AbortSignal.any([AbortSignal.timeout(left), fenceSignal(this, left)]);
    }
    return this.abort;
  }

  get fenced(): boolean {
    const f = this.fenceOf;
    return f !== null && (f.leftMs(this.partition) <= 0 || f.epoch(this.partition) !== this.fence);
  }

  send(mailbox: string, payload: unknown, opts?: SendOptions): number {
    return this.host.send(mailbox, payload, opts, this);
  }

  sendBatch(mailbox: string, payloads: readonly unknown[], opts?: BatchOptions): number[] {
    return this.host.sendBatch(mailbox, payloads, opts, this);
  }

  retryAfter(ms: number): never {
    throw new RetryAfterError(ms);
  }
}

/**
 * Aborted once `ctx` is fenced: looked at when its partition's lease would
 * end, and again after each renewal moved that end; no more looks past the
 * handler's own lease (`leftMs` from now), which aborts the signal anyway.
 */
function fenceSignal(ctx: MessageContext, leftMs: number): AbortSignal {
  const ac = new AbortController();
  const end = performance.now() + leftMs;
  const look = (): void => {
    if (ctx.fenced) {
      ac.abort(fencedError(ctx));
      return;
    }
    const wait = Math.max(1, ctx.fenceOf!.leftMs(ctx.partition));
    if (performance.now() + wait < end + 1) setTimeout(look, wait).unref();
  };
  look();
  return ac.signal;
}

export function fencedError(ctx: { mailbox: string; partition: number; fence: number | undefined }): RingpoolError {
  return new RingpoolError(
    ErrorCodes.FENCED,
    `mailbox '${ctx.mailbox}': this process no longer owns partition ${ctx.partition} (its fencing epoch was ${ctx.fence}); the partition's new owner runs this message`,
    { mailbox: ctx.mailbox, partition: ctx.partition, fence: ctx.fence },
  );
}
