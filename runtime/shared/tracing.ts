/**
 * Tracing (issue #32): OpenTelemetry spans and diagnostics_channel
 * TracingChannels around sends and attempts. Thread-neutral: the main thread
 * and each consumer thread have their own OpenTelemetry globals, so each
 * looks for `@opentelemetry/api` and its provider itself.
 *
 * - `@opentelemetry/api` is an optional peer, loaded with require() (its
 *   globals are shared by its CommonJS and ESM builds; sync: a runtime may
 *   send before start()) only once a provider is registered on the thread:
 *   until then the API's global registry says there is none, and loading it
 *   (about 20 ms) is not paid. Absent: `tracer()` is null, always.
 * - A provider counts only once registered (the API's proxy has a delegate):
 *   with none, no span object is made, not even a non-recording one.
 * - The producer's context travels in the message's headers as W3C
 *   `traceparent`/`tracestate` and `baggage` (our own codec: it does not
 *   depend on which propagator the application registered).
 * - `ringpool:send` and `ringpool:process` TracingChannels are published
 *   only while something subscribes (APMs that do not use OpenTelemetry).
 *   diagnostics_channel is per thread: `ringpool:process` fires on the
 *   consumer thread that runs the handler.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createRequire } from 'node:module';
import type * as Otel from '@opentelemetry/api';
import { processChannel, sendChannel, type SendMessage } from './trace-channels.js';
import { MAX_HEADERS_BYTES } from './headers.js';

export { processChannel, sendChannel, type ProcessMessage, type SendMessage } from './trace-channels.js';

/** The instrumentation scope of every span ringpool makes. */
export const TRACER_NAME = 'ringpool';

let api: typeof Otel | null | undefined;

/** Look for `@opentelemetry/api` once per thread. Null when absent. */
export function loadOtel(): typeof Otel | null {
  if (api === undefined) {
    try {
      api = createRequire(import.meta.url)('@opentelemetry/api') as typeof Otel;
    } catch {
      api = null;
    }
  }
  return api;
}

interface Proxy {
  getDelegate?(): unknown;
  getDelegateTracer?(name: string, version?: string): Otel.Tracer | undefined;
}
let seenDelegate: unknown = undefined;
let seenTracer: Otel.Tracer | null = null;
/**
 * Where every copy of the API (its CommonJS and ESM builds, other installs
 * of major version 1) registers its globals: `trace` is there once a
 * provider was registered, and gone after trace.disable().
 */
const GLOBALS = Symbol.for('opentelemetry.js.api.1');
const registry = globalThis as unknown as Record<symbol, { trace?: unknown } | undefined>;

/** The registered provider's tracer, or null (no package, no provider: nothing to make spans with). Per send and per attempt: a few property reads when none. */
export function tracer(): Otel.Tracer | null {
  if (registry[GLOBALS]?.trace === undefined) return null;
  const a = api === undefined ? loadOtel() : api;
  if (a === null) return null;
  const p = a.trace.getTracerProvider() as Proxy;
  if (typeof p.getDelegate !== 'function' || typeof p.getDelegateTracer !== 'function') return a.trace.getTracer(TRACER_NAME);
  const d = p.getDelegate();
  if (d !== seenDelegate) {
    seenDelegate = d;
    seenTracer = p.getDelegateTracer(TRACER_NAME) ?? null;
  }
  return seenTracer;
}

/** Anything to do around a send: a provider, or a `ringpool:send` subscriber. */
export function sendTraced(): boolean {
  return tracer() !== null || sendChannel.hasSubscribers;
}

/** The attributes every ringpool span has (messaging semantic conventions). */
function base(op: 'send' | 'process', mailbox: string): Otel.Attributes {
  return { 'messaging.system': 'ringpool', 'messaging.operation.name': op, 'messaging.operation.type': op, 'messaging.destination.name': mailbox };
}

/**
 * Run a send (`run` with the options to use) inside a `send <mailbox>`
 * PRODUCER span whose context goes into the headers (every kind of mailbox
 * keeps them), and inside `ringpool:send`. `run` may return a
 * promise (sendAsync): the span ends when it settles. Call only when
 * sendTraced().
 */
export function traceSend<O extends { key?: unknown; headers?: Record<string, string> }, R>(
  mailbox: string,
  count: number,
  opts: O | undefined,
  run: (o: O | undefined) => R,
): R {
  const t = tracer();
  const a = api!;
  let span: Otel.Span | null = null;
  let o = opts;
  if (t !== null) {
    // The tracer is the application's: what it throws is never the send's (the send goes on without a span).
    try {
      const parent = a.context.active();
      const attributes = base('send', mailbox);
      if (count !== 1) attributes['messaging.batch.message_count'] = count;
      span = t.startSpan(`send ${mailbox}`, { kind: a.SpanKind.PRODUCER, attributes }, parent);
      o = withTrace(a, a.trace.setSpan(parent, span), opts);
    } catch {
      span = null;
      o = opts;
    }
  }
  const msg: SendMessage | null = sendChannel.hasSubscribers ? { mailbox, options: o, count } : null;
  let r: R;
  try {
    r = msg === null ? run(o) : sendChannel.traceSync(run, msg, undefined, o);
  } catch (err) {
    if (span !== null) fail(a, span, err);
    throw err;
  }
  if (isPromise(r)) {
    if (span === null && msg === null) return r;
    const s = span;
    return r.then(
      (v) => {
        if (msg !== null) publishAsync(sendChannel, msg, v, undefined);
        if (s !== null) done(s, v);
        return v;
      },
      (err: unknown) => {
        if (msg !== null) publishAsync(sendChannel, msg, undefined, err);
        if (s !== null) fail(a, s, err);
        throw err;
      },
    ) as R;
  }
  if (span !== null) done(span, r);
  return r;
}

/**
 * The send's options with the trace context in their headers: `key`,
 * `delayMs` and `headers` read once (inherited and getter-made ones too) into
 * a plain object. Options the send would refuse are passed on as they are (it
 * throws, inside the span), never reshaped into good ones; and the context
 * is left out, baggage first, when it would take the headers past their
 * limit: tracing never fails a send that would go without it.
 */
function withTrace<O extends { key?: unknown; headers?: Record<string, string> }>(a: typeof Otel, ctx: Otel.Context, opts: O | undefined): O | undefined {
  if (opts !== undefined && opts !== null && typeof opts !== 'object') return opts;
  let key: unknown;
  let delayMs: unknown;
  let h: unknown;
  try {
    key = opts?.key;
    delayMs = (opts as { delayMs?: unknown } | undefined)?.delayMs;
    h = opts?.headers;
  } catch {
    return opts; // a getter that throws: the send reads it again and says so
  }
  if (h !== undefined && (typeof h !== 'object' || h === null || Array.isArray(h))) return opts;
  const own = h === undefined ? {} : { ...(h as Record<string, string>) };
  const headers = { ...own };
  inject(a, ctx, headers);
  for (const drop of ['baggage', 'tracestate', 'traceparent'] as const) {
    if (Buffer.byteLength(JSON.stringify(headers), 'utf8') <= MAX_HEADERS_BYTES) break;
    if (own[drop] === undefined) delete headers[drop];
  }
  const o: Record<string, unknown> = { headers };
  if (key !== undefined) o.key = key;
  if (delayMs !== undefined) o.delayMs = delayMs;
  return o as O;
}

function done(span: Otel.Span, ids: unknown): void {
  try {
    if (typeof ids === 'number' || typeof ids === 'string') span.setAttribute('messaging.message.id', String(ids));
    span.end();
  } catch {
    // the application's tracer: never the send's failure
  }
}

function fail(a: typeof Otel, span: Otel.Span, err: unknown): void {
  try {
    span.setAttribute('error.type', errorType(err));
    span.recordException(err as Error);
    span.setStatus({ code: a.SpanStatusCode.ERROR, message: (err as Error)?.message });
    span.end();
  } catch {
    // the application's tracer: never the send's failure
  }
}

/** `error.type`: a RingpoolError's code, else the error's class name. */
export function errorType(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  const name = (err as { name?: unknown } | null)?.name;
  return typeof name === 'string' && name !== '' ? name : '_OTHER';
}

/** A sendAsync's end, on the channel's asyncStart/asyncEnd (tracePromise's shape, for a promise we already have). */
function publishAsync(ch: typeof sendChannel, msg: SendMessage, result: unknown, error: unknown): void {
  if (error !== undefined) {
    msg.error = error;
    ch.error.publish(msg);
  } else msg.result = result;
  ch.asyncStart.publish(msg);
  ch.asyncEnd.publish(msg);
}

export function isPromise<R>(r: R): r is R & Promise<Awaited<R>> {
  return typeof (r as { then?: unknown } | null)?.then === 'function';
}

// ---- W3C trace context and baggage in headers ----

/** Version 00 exactly; a later version (not ff) is read as 00 from its first four fields, as W3C says. */
const TRACEPARENT = /^(?:00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})|(?!00|ff)[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?)$/;

/** Write `ctx`'s span context (traceparent, tracestate) and baggage into `headers`. */
export function inject(a: typeof Otel, ctx: Otel.Context, headers: Record<string, string>): void {
  const sc = a.trace.getSpanContext(ctx);
  if (sc !== undefined && a.isSpanContextValid(sc)) {
    headers.traceparent = `00-${sc.traceId}-${sc.spanId}-0${(sc.traceFlags & 1).toString(16)}`;
    const ts = sc.traceState?.serialize();
    if (ts) headers.tracestate = ts;
  }
  const bag = a.propagation.getBaggage(ctx);
  if (bag !== undefined) {
    const entries = bag.getAllEntries();
    if (entries.length > 0) {
      headers.baggage = entries.map(([k, e]) => `${encodeURIComponent(k)}=${encodeURIComponent(e.value)}${e.metadata === undefined ? '' : `;${e.metadata.toString()}`}`).join(',');
    }
  }
}

/** The producer's span context in `headers` (remote), or undefined. */
export function extractSpanContext(a: typeof Otel, headers: Readonly<Record<string, string>>): Otel.SpanContext | undefined {
  const tp = headers.traceparent;
  if (tp === undefined) return undefined;
  const m = TRACEPARENT.exec(tp.trim());
  if (m === null) return undefined;
  const sc: Otel.SpanContext = { traceId: (m[1] ?? m[4])!, spanId: (m[2] ?? m[5])!, traceFlags: parseInt((m[3] ?? m[6])!, 16) & 1, isRemote: true };
  if (!a.isSpanContextValid(sc)) return undefined;
  if (headers.tracestate !== undefined) sc.traceState = a.createTraceState(headers.tracestate);
  return sc;
}

/** `ctx` with the baggage in `headers`, if any. */
export function extractBaggage(a: typeof Otel, ctx: Otel.Context, headers: Readonly<Record<string, string>>): Otel.Context {
  const raw = headers.baggage;
  if (raw === undefined) return ctx;
  const entries: Record<string, Otel.BaggageEntry> = {};
  for (const part of raw.split(',')) {
    const [kv, ...props] = part.split(';');
    const eq = kv!.indexOf('=');
    if (eq <= 0) continue;
    try {
      const e: Otel.BaggageEntry = { value: decodeURIComponent(kv!.slice(eq + 1).trim()) };
      if (props.length > 0) e.metadata = a.baggageEntryMetadataFromString(props.join(';'));
      entries[decodeURIComponent(kv!.slice(0, eq).trim())] = e;
    } catch {
      // a malformed entry is skipped, as W3C says
    }
  }
  return a.propagation.setBaggage(ctx, a.propagation.createBaggage(entries));
}

// ---- The context manager, where none is registered ----

/**
 * Make sure context.with() carries a context into the handler's awaits on
 * this thread: a consumer thread has no context manager unless its setup
 * module registered one (NodeTracerProvider.register() does). Ours is
 * AsyncLocalStorage, as @opentelemetry/context-async-hooks is.
 */
export function ensureContextManager(a: typeof Otel): void {
  const k = a.createContextKey('ringpool.probe');
  if (a.context.with(a.ROOT_CONTEXT.setValue(k, true), () => a.context.active().getValue(k) === true)) return;
  a.context.setGlobalContextManager(new AlsContextManager(a.ROOT_CONTEXT));
}

class AlsContextManager implements Otel.ContextManager {
  private readonly als = new AsyncLocalStorage<Otel.Context>();
  constructor(private readonly root: Otel.Context) {}
  active(): Otel.Context {
    return this.als.getStore() ?? this.root;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Otel.Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.als.run(ctx, () => fn.apply(thisArg, args));
  }
  bind<T>(ctx: Otel.Context, target: T): T {
    if (typeof target !== 'function') return target;
    const f = target as unknown as (...args: unknown[]) => unknown;
    return ((...args: unknown[]) => this.with(ctx, f, undefined, ...args)) as unknown as T;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.als.disable();
    return this;
  }
}
