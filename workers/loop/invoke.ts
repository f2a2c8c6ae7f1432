/**
 * Running one record: its context, the payload decoded, the handler or the
 * actor called. Both modes of the loop (loop.ts, concurrent.ts) go through
 * here. Worker thread.
 */
import type { PayloadCodec } from '../../runtime/shared/codec.js';
import { FLAG_ASCII, FLAG_CALL, FLAG_HEADERS, FLAG_PARTITION } from '../../runtime/shared/layout.js';
import { decodeHeaders } from '../../runtime/shared/headers.js';
import type { FenceView } from '../../runtime/shared/partition.js';
import type { Ring } from '../../runtime/shared/ring.js';
import { MessageContext, fencedError, type ContextHost, type Handler } from '../context.js';
import { UnrecoverableError } from '../unrecoverable.js';
import type { ActorStates } from './actors.js';
import type { ProcessTracer } from './trace.js';

export class Invoker {
  constructor(
    private readonly ring: Ring,
    private readonly codec: PayloadCodec,
    /** What every context sends through (outbound.ts). */
    private readonly host: ContextHost,
    /** A plain handler, or null when the module is an actor (then `actors` runs it). */
    private readonly handler: Handler | null,
    private readonly actors: ActorStates | null,
    /** On a shared pool thread: a word set to `value` while a handler's synchronous part runs (a crash then blames this loop alone). */
    private readonly mark: { i32: Int32Array; index: number; value: number } | null = null,
    /** The source's fence table, when it reads partitions (FLAG_PARTITION records). */
    private readonly fence: FenceView | null = null,
    /** The process spans and the `ringpool:process` channel, or null (`tracing: false`). */
    private readonly tracing: ProcessTracer | null = null,
  ) {}

  /**
   * The batch `units[0..n)` is this loop's (claimed, its bytes unchanged until
   * acked): a codec that copies payloads out copies the batch's span once
   * (byte-pool.ts). endSpan() before any of them is acked or handed back.
   */
  span(units: Int32Array, n: number): void {
    const ring = this.ring;
    const last = units[n - 1]!;
    this.codec.span(ring.u8, ring.payloadStart(units[0]!), ring.payloadStart(last) + ring.payloadBytes(last));
  }

  endSpan(): void {
    this.codec.endSpan();
  }

  /** The ctx of the record at `unit`, whose handler starts at `started` (performance.now()). */
  context(unit: number, started: number): MessageContext {
    const ring = this.ring;
    const ctx = new MessageContext(this.host, ring.id(unit), ring.attempt(unit), ring.key(unit), started);
    const flags = ring.flags(unit);
    // Decoded now, while the record is this thread's: the handler may read ctx.headers after its message was acked.
    if ((flags & FLAG_HEADERS) !== 0) ctx.headers = decodeHeaders(ring.buf, ring.payloadStart(unit) + ring.payloadBytes(unit), ring.headersBytes(unit));
    const f = this.fence;
    if (f !== null && (flags & FLAG_PARTITION) !== 0 && ctx.key !== undefined) {
      ctx.fenceOf = f;
      ctx.partition = f.partition(ctx.key);
      ctx.fence = f.epoch(ctx.partition);
    }
    return ctx;
  }

  /**
   * Decode the record and call the handler or the actor with `ctx`. Throws
   * what decoding or a sync handler throws, and RINGPOOL_FENCED, without
   * calling it, for a record of a partition this process no longer owns.
   */
  invoke(unit: number, flags: number, ctx: MessageContext, keySlot: number): unknown {
    if (ctx.fenceOf !== null && ctx.fenced) throw fencedError(ctx);
    const t = this.tracing;
    if (t !== null && t.active()) return t.run(this.host.mailbox, ctx, () => this.marked(unit, flags, ctx, keySlot));
    return this.marked(unit, flags, ctx, keySlot);
  }

  private marked(unit: number, flags: number, ctx: MessageContext, keySlot: number): unknown {
    const m = this.mark;
    if (m === null) return this.call(unit, flags, ctx, keySlot);
    m.i32[m.index] = m.value;
    try {
      return this.call(unit, flags, ctx, keySlot);
    } finally {
      m.i32[m.index] = -1;
    }
  }

  private call(unit: number, flags: number, ctx: MessageContext, keySlot: number): unknown {
    const ring = this.ring;
    const start = ring.payloadStart(unit);
    const payload = this.codec.decode(ring.buf, ring.u8, start, start + ring.payloadBytes(unit), (flags & FLAG_ASCII) !== 0);
    if (this.actors !== null) return this.actors.invoke(payload, flags, ctx, keySlot);
    if ((flags & FLAG_CALL) !== 0) {
      throw new UnrecoverableError(`mailbox '${this.host.mailbox}' has a plain handler: actor method calls need an actor(...) module`);
    }
    return this.handler!(payload, ctx);
  }
}
