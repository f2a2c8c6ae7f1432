/**
 * The `ctx` a handler receives. One small object per message: handlers may
 * keep it across awaits. The AbortSignal is made only when `ctx.signal` is read.
 */
import type { BatchOptions, SendOptions } from '../runtime/shared/producer.js';

export type { BatchOptions, SendOptions };

export interface HandlerContext {
  /** Message id, stable across retries. */
  readonly id: number;
  /** 1 for the first delivery, then 2, 3, ... */
  readonly attempt: number;
  readonly mailbox: string;
  readonly key: string | undefined;
  /** Aborted when the lease (leaseMs from handler start) ends. */
  readonly signal: AbortSignal;
  /** Send to any mailbox of the runtime, straight into its ring. Throws RingpoolError (RINGPOOL_QUEUE_FULL, ...). */
  send(mailbox: string, payload: unknown, opts?: SendOptions): number;
  /** Send every payload or none (one reservation): the ids in order. Throws RINGPOOL_QUEUE_FULL with nothing written when they do not fit now. */
  sendBatch(mailbox: string, payloads: readonly unknown[], opts?: BatchOptions): number[];
}

export type Handler<P = any, R = unknown> = (payload: P, ctx: HandlerContext) => R | Promise<R>;

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

export class MessageContext implements HandlerContext {
  private abort: AbortSignal | undefined;
  /** Sends of this handler to durable mailboxes (made on the first one): on disk before its message is acked. */
  marks: DurableMarks | null = null;
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
      this.abort = AbortSignal.timeout(left);
    }
    return this.abort;
  }

  send(mailbox: string, payload: unknown, opts?: SendOptions): number {
    return this.host.send(mailbox, payload, opts, this);
  }

  sendBatch(mailbox: string, payloads: readonly unknown[], opts?: BatchOptions): number[] {
    return this.host.sendBatch(mailbox, payloads, opts, this);
  }
}
