/**
 * What the runtime sends to a mailbox (main thread): into its ring, or to
 * its source's engine (a Redis stream) when sends go there; asks; a
 * handler's chained sends to it; the start gate's pause and resume
 * (runtime/shared/limit.ts). Mailbox.sends is one of these.
 */
import { FLAG_CALL } from '../shared/layout.js';
import { ErrorCodes, RingpoolError, describeValue } from '../shared/errors.js';
import { MAX_PAUSE_MS, hold, now32, pauseUntil, resume, setLimit } from '../shared/limit.js';
import type { BatchOptions, Producer, SendOptions } from '../shared/producer.js';
import type { StreamItem } from '../shared/protocol.js';
import type { Ring } from '../shared/ring.js';
import type { Attached } from './attached.js';
import type { Intake } from './intake.js';
import { sendTraced, traceSend } from '../shared/tracing.js';

/** A batch's length for its span (what is not an array is refused by the send itself). */
function batchCount(payloads: readonly unknown[]): number {
  return Array.isArray(payloads) ? payloads.length : 0;
}

export interface SendingDeps {
  ring: Ring;
  producer: Producer;
  intake: Intake;
  attached: Attached;
  /** The mailbox runs an actor (its asks need a key). */
  actor(): boolean;
  /** Sends are traced (the runtime's `tracing` is not false): a span and the `ringpool:send` channel when either is there. */
  tracing: boolean;
}

export class Sending {
  constructor(private readonly d: SendingDeps) {}

  /** rt.send(): into the ring, or to the source's engine when sends go there. */
  send(payload: unknown, opts: SendOptions | undefined): number {
    if (this.d.tracing && sendTraced()) return traceSend(this.d.producer.mailbox, 1, opts, (o) => this.sendNow(payload, o));
    return this.sendNow(payload, opts);
  }

  private sendNow(payload: unknown, opts: SendOptions | undefined): number {
    const out = this.d.attached.sendOut;
    if (out === null) return this.d.producer.send(payload, opts);
    return out(payload, opts, this.d.producer.closed);
  }

  /** An actor method call sent with `tell` (FLAG_CALL): into the ring, or to the source's engine when sends go there. */
  sendCall(payload: unknown, key: string): number {
    const out = this.d.attached.sendOut;
    return out === null ? this.d.producer.send(payload, { key }, FLAG_CALL) : out(payload, { key }, this.d.producer.closed, FLAG_CALL);
  }

  /** rt.sendAsync(): resolves with the id once accepted (durable: written), or with the engine's name for it when sends go to the source. */
  sendAsyncOut(payload: unknown, opts: SendOptions | undefined, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<unknown> {
    if (this.d.tracing && sendTraced()) return traceSend(this.d.producer.mailbox, 1, opts, (o) => this.sendAsyncNow(payload, o, signal, timeoutMs));
    return this.sendAsyncNow(payload, opts, signal, timeoutMs);
  }

  private sendAsyncNow(payload: unknown, opts: SendOptions | undefined, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<unknown> {
    return this.d.attached.sendAsyncOut(payload, opts, this.d.producer.closed, signal, timeoutMs) ?? this.sendAsync(payload, opts, signal, timeoutMs);
  }

  /** rt.sendBatch(): every payload or none, into the ring. */
  sendBatch(payloads: readonly unknown[], opts: BatchOptions | undefined): number[] {
    if (this.d.tracing && sendTraced()) return traceSend(this.d.producer.mailbox, batchCount(payloads), opts, (o) => this.sendBatchNow(payloads, o));
    return this.sendBatchNow(payloads, opts);
  }

  private sendBatchNow(payloads: readonly unknown[], opts: BatchOptions | undefined): number[] {
    const refused = this.d.attached.refusal('sendBatch');
    if (refused !== null) throw refused;
    return this.d.attached.sendBatchOut(payloads, opts, this.d.producer.closed) ?? this.d.producer.sendBatch(payloads, opts);
  }

  /** Resolves with the id once the message is accepted; on a durable mailbox, once it is on disk as the fsync mode says. */
  sendAsync(payload: unknown, opts: SendOptions | undefined, signal: AbortSignal | undefined, timeoutMs: number | undefined, flags = 0, onSent?: (id: number) => void): Promise<number> {
    const writes = this.d.attached.writes;
    return writes === undefined ? this.d.intake.sendAsync(payload, opts, signal, timeoutMs, flags, onSent) : this.d.intake.sendAsyncDurable(writes, payload, opts, signal, timeoutMs, flags, onSent);
  }

  /** Resolves with the ids once the whole batch is accepted (on a durable mailbox: on disk, as for sendAsync). */
  sendBatchAsync(payloads: readonly unknown[], opts: BatchOptions | undefined, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<number[]> {
    if (this.d.tracing && sendTraced()) return traceSend(this.d.producer.mailbox, batchCount(payloads), opts, (o) => this.sendBatchAsyncNow(payloads, o, signal, timeoutMs));
    return this.sendBatchAsyncNow(payloads, opts, signal, timeoutMs);
  }

  private sendBatchAsyncNow(payloads: readonly unknown[], opts: BatchOptions | undefined, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<number[]> {
    const out = this.d.attached.sendBatchAsyncOut(payloads, opts, this.d.producer.closed, signal, timeoutMs);
    if (out !== undefined) return out as Promise<number[]>; // the engine's names (stream entry ids), as sendAsync gives them
    const sent = this.d.intake.sendBatchAsync(payloads, opts, signal, timeoutMs);
    const writes = this.d.attached.writes;
    return writes === undefined ? sent : this.d.intake.durableBatch(writes, sent, opts);
  }

  ask(payload: unknown, key: string | undefined, flags: number, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<unknown> {
    const refused = this.d.attached.refusal('ask');
    if (refused !== null) return Promise.reject(refused);
    // An actor's ask needs its key (intake.ask says so for the ring).
    if (key === undefined && this.d.actor()) return this.d.intake.ask(payload, key, flags, signal, timeoutMs);
    return this.d.attached.askOut(payload, key, flags, this.d.producer.closed, signal, timeoutMs) ?? this.d.intake.ask(payload, key, flags, signal, timeoutMs);
  }

  /** rt.pause(): start nothing new for `ms`, or until resume() (the start gate, runtime/shared/limit.ts). */
  pause(ms: number | undefined): void {
    if (ms !== undefined && (typeof ms !== 'number' || !(ms >= 0) || ms > MAX_PAUSE_MS)) {
      throw new RingpoolError(ErrorCodes.INVALID_OPTION, `pause(): ms must be a number from 0 to ${MAX_PAUSE_MS} (30 min; longer: pause() without ms, then resume()), got ${describeValue(ms)}`, { option: 'ms' });
    }
    const i32 = this.d.ring.i32;
    if (ms === undefined) hold(i32);
    else {
      const t = now32(Date.now());
      pauseUntil(i32, (t + Math.ceil(ms * 1000)) | 0, t);
    }
    this.d.attached.pauseOut(ms);
  }

  /** rt.setRateLimit(): the start gate's limit, changed while it runs (max 0: none); the loops read it at their next claim. */
  setRateLimit(max: number, perMs: number): void {
    setLimit(this.d.ring.i32, max, perMs);
  }

  /** rt.resume(): start again at once (a pause from rt.pause() or a handler's ctx.retryAfter()). */
  resume(): void {
    resume(this.d.ring.i32);
    this.d.attached.resumeOut();
    this.d.ring.wakeAll();
  }

  /** A handler's chained sends to this mailbox (chained.ts): to its source's engine. */
  sendEncoded(items: readonly StreamItem[]): Promise<unknown> {
    return this.d.attached.sendEncoded(items);
  }
}
