/**
 * The `process <mailbox>` span around each attempt (issue #32), on the
 * consumer thread, and the `ringpool:process` TracingChannel. The span is
 * active while the handler runs, so spans it makes (and ctx.send()'s `send`
 * spans) are its children; it links to the producer's context carried in
 * the headers (and is its child with `tracing: { process: 'child' }`).
 * A retry is another attempt: another span, linked to the same send. A
 * failure that ends the message (its last attempt, or unrecoverable) adds a
 * `ringpool.dead_letter` event. Worker thread.
 */
import type * as Otel from '@opentelemetry/api';
import { ErrorCodes, RingpoolError } from '../../runtime/shared/errors.js';
import {
  TRACER_NAME, ensureContextManager, errorType, extractBaggage, extractSpanContext, isPromise, loadOtel, processChannel, tracer,
  type ProcessMessage,
} from '../../runtime/shared/tracing.js';
import type { TracingSpec } from '../../runtime/shared/protocol.js';
import type { MessageContext } from '../context.js';
import { retryAfterOf } from '../retry-after.js';
import { isUnrecoverable } from '../unrecoverable.js';

/**
 * Before a loop's first message: the setup module (registers this thread's
 * provider). The API is loaded once a provider shows (shared/tracing.ts
 * tracer()), and the context manager waits for the first traced
 * attempt: an AsyncLocalStorage costs every promise of the thread, so a
 * thread with no provider never has one of ours.
 */
export async function loadTracing(spec: TracingSpec | null): Promise<ProcessTracer | null> {
  if (spec === null) return null;
  if (spec.setup !== null) {
    try {
      await import(spec.setup);
    } catch (err) {
      throw new RingpoolError(ErrorCodes.HANDLER_LOAD, `tracing.setup module ${spec.setup} failed to load: ${(err as Error)?.message ?? err}`, { url: spec.setup, option: 'tracing.setup' }, { cause: err });
    }
  }
  return new ProcessTracer(spec);
}

export class ProcessTracer {
  /** ensureContextManager ran (at the first attempt with a provider). */
  private managed = false;
  constructor(private readonly spec: TracingSpec) {}

  /** Anything to do around an attempt (a provider on this thread, or a subscriber). Cheap: read per message. */
  active(): boolean {
    return tracer() !== null || processChannel.hasSubscribers;
  }

  /** Run attempt `ctx` (`run` calls the handler) inside its span and the channel; a promise result ends them when it settles. */
  run(mailbox: string, ctx: MessageContext, run: () => unknown): unknown {
    const t = tracer();
    const a = t === null ? null : loadOtel()!;
    let span: Otel.Span | null = null;
    let active: Otel.Context | null = null;
    if (t !== null && a !== null) {
      // The tracer is the application's: what it throws is never the attempt's (it runs without a span).
      try {
        if (!this.managed) {
          this.managed = true;
          ensureContextManager(a);
        }
        const sc = extractSpanContext(a, ctx.headers);
        let parent = a.ROOT_CONTEXT;
        if (sc !== undefined && this.spec.process === 'child') parent = a.trace.setSpanContext(parent, sc);
        parent = extractBaggage(a, parent, ctx.headers);
        const attributes: Otel.Attributes = {
          'messaging.system': TRACER_NAME,
          'messaging.operation.name': 'process',
          'messaging.operation.type': 'process',
          'messaging.destination.name': mailbox,
          'messaging.message.id': String(ctx.id),
          'messaging.ringpool.message.delivery_attempt': ctx.attempt,
        };
        if (ctx.key !== undefined) attributes['messaging.ringpool.message.key'] = ctx.key;
        span = t.startSpan(`process ${mailbox}`, { kind: a.SpanKind.CONSUMER, attributes, links: sc === undefined ? undefined : [{ context: sc }] }, parent);
        active = a.trace.setSpan(parent, span);
      } catch {
        span = null;
        active = null;
      }
    }
    const msg: ProcessMessage | null = processChannel.hasSubscribers ? { mailbox, id: ctx.id, attempt: ctx.attempt, key: ctx.key, headers: ctx.headers } : null;
    const call = msg === null ? run : (): unknown => processChannel.traceSync(run, msg);
    let r: unknown;
    try {
      r = active === null ? call() : a!.context.with(active, call);
    } catch (err) {
      if (span !== null) this.failed(a!, span, ctx.attempt, err);
      throw err;
    }
    if (!isPromise(r)) {
      if (span !== null) end(span);
      return r;
    }
    return r.then(
      (v) => {
        if (msg !== null) {
          msg.result = v;
          processChannel.asyncStart.publish(msg);
          processChannel.asyncEnd.publish(msg);
        }
        if (span !== null) end(span);
        return v;
      },
      (err: unknown) => {
        if (msg !== null) {
          msg.error = err;
          processChannel.error.publish(msg);
          processChannel.asyncStart.publish(msg);
          processChannel.asyncEnd.publish(msg);
        }
        if (span !== null) this.failed(a!, span, ctx.attempt, err);
        throw err;
      },
    );
  }

  /** End a failed attempt's span: the error, or a RetryAfterError's pause (no error: the message goes back uncharged). */
  private failed(a: typeof Otel, span: Otel.Span, attempt: number, err: unknown): void {
    try {
      this.record(a, span, attempt, err);
    } catch {
      // the application's tracer: never the attempt's failure
    }
  }

  private record(a: typeof Otel, span: Otel.Span, attempt: number, err: unknown): void {
    const pause = retryAfterOf(err);
    if (pause >= 0) {
      span.setAttribute('messaging.ringpool.retry_after_ms', pause);
      span.end();
      return;
    }
    span.setAttribute('error.type', errorType(err));
    span.recordException(err as Error);
    span.setStatus({ code: a.SpanStatusCode.ERROR, message: (err as Error)?.message });
    const unrecoverable = isUnrecoverable(err);
    if (unrecoverable || attempt >= this.spec.maxAttempts) {
      span.addEvent('ringpool.dead_letter', { 'ringpool.dead_letter.reason': unrecoverable ? 'unrecoverable' : 'max_attempts' });
    }
    span.end();
  }
}

function end(span: Otel.Span): void {
  try {
    span.end();
  } catch {
    // the application's tracer: never the attempt's failure
  }
}
