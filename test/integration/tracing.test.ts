// OpenTelemetry across the queue (issue #32), with the SDK's in-memory exporter on the main thread and an exporter
// posting from each consumer thread (fixtures/otel-setup.mjs, the runtime's tracing.setup): an HTTP request's span,
// the `send` span inside it, its context in the message's headers (traceparent, baggage), a `process` span per
// attempt on the worker thread (a retry is another, linked to the same send; the last failure carries a
// ringpool.dead_letter event), the handler's own outgoing call as a child of its attempt, and a chained ctx.send().
// Also: the TracingChannels, no spans and no trace headers without a provider or with `tracing: false`.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tracingChannel } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { context, propagation, trace, SpanKind, SpanStatusCode, type Span } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { MailboxOptions, RuntimeOptions } from 'ringpool';
import { broadcastLog, expectCode, fixture, runtime, until } from '../helpers.js';
import { flatten } from '../fixtures/otel-flatten.mjs';

interface Flat {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  links: { traceId: string; spanId: string }[];
  attributes: Record<string, unknown>;
  status: number;
  events: { name: string; attributes: Record<string, unknown> }[];
}
interface Posted {
  span?: Flat;
  run?: { i: number; attempt: number; key: string | undefined; headers: Record<string, string>; baggage: string | undefined };
  channel?: string;
  event?: string;
  mailbox?: string;
  id?: number;
  attempt?: number;
}

const exporter = new InMemorySpanExporter();
const contextManager = new AsyncLocalStorageContextManager();
const tracer = () => trace.getTracer('test');
const mainSpans = (): Flat[] => exporter.getFinishedSpans().map((s) => flatten(s) as Flat);

/** The downstream the handler calls: records each request's traceparent and makes its SERVER span from it. */
let downstream: Server;
let downstreamUrl = '';
const downstreamSeen: string[] = [];

function register(): void {
  context.setGlobalContextManager(contextManager.enable());
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
}
function unregister(): void {
  trace.disable();
  context.disable();
}

beforeAll(async () => {
  downstream = createServer((req: IncomingMessage, res) => {
    const tp = String(req.headers.traceparent ?? '');
    downstreamSeen.push(tp);
    const [, traceId, spanId] = tp.split('-');
    const parent = trace.setSpanContext(context.active(), { traceId: traceId!, spanId: spanId!, traceFlags: 1, isRemote: true });
    tracer().startSpan('downstream POST', { kind: SpanKind.SERVER }, parent).end();
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  downstream.listen(0, '127.0.0.1');
  await once(downstream, 'listening');
  downstreamUrl = `http://127.0.0.1:${(downstream.address() as AddressInfo).port}/`;
});
afterAll(() => {
  downstream.close();
});

const box = (extra: Partial<MailboxOptions> = {}): MailboxOptions =>
  ({ handler: fixture('otel-handler.js'), minThreads: 1, maxThreads: 1, autoscale: false, maxAttempts: 3, backoff: { baseMs: 1, maxMs: 5 }, ...extra }) as MailboxOptions;
const traced = (process: 'link' | 'child', mailboxes: Record<string, MailboxOptions>): RuntimeOptions => ({
  mailboxes,
  tracing: { setup: fixture('otel-setup.mjs'), process },
});

describe('tracing', () => {
  it('one tree: an HTTP request, send(), a failed attempt and its retry, the handler call and the downstream, a chained ctx.send()', async () => {
    register();
    exporter.reset();
    const posted = broadcastLog<Posted>('ringpool-test-otel');
    const rt = runtime(traced('child', { orders: box(), audit: box() }));
    await rt.start();
    // The application's HTTP server: its request span is active while the handler sends.
    const front = createServer((req, res) => {
      const span = tracer().startSpan('POST /orders', { kind: SpanKind.SERVER });
      const bag = propagation.createBaggage({ tenant: { value: 'acme' } });
      context.with(propagation.setBaggage(trace.setSpan(context.active(), span), bag), () => {
        rt.send('orders', { i: 1, url: downstreamUrl, fail: 1, forward: 'audit' });
        span.end();
        res.end('accepted');
      });
    });
    front.listen(0, '127.0.0.1');
    await once(front, 'listening');
    try {
      const res = await fetch(`http://127.0.0.1:${(front.address() as AddressInfo).port}/orders`, { method: 'POST' });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      await until(() => posted.filter((p) => p.span?.name === 'process audit').length === 1, 10_000, 'the chained message to be processed');
      await rt.onIdle();
      const worker = posted.flatMap((p) => (p.span ? [p.span] : []));
      const all = [...mainSpans(), ...worker];
      const one = (name: string, pred: (s: Flat) => boolean = () => true): Flat => {
        const got = all.filter((s) => s.name === name && pred(s));
        expect(got, name).toHaveLength(1);
        return got[0]!;
      };
      const root = one('POST /orders');
      const send = one('send orders');
      const p1 = one('process orders', (s) => s.attributes['messaging.ringpool.message.delivery_attempt'] === 1);
      const p2 = one('process orders', (s) => s.attributes['messaging.ringpool.message.delivery_attempt'] === 2);
      const calls = all.filter((s) => s.name === 'POST downstream');
      const servers = all.filter((s) => s.name === 'downstream POST');
      const chained = one('send audit');
      const audit = one('process audit');
      // One trace, one tree.
      for (const s of [send, p1, p2, ...calls, ...servers, chained, audit]) expect(s.traceId, s.name).toBe(root.traceId);
      expect(send.parentSpanId).toBe(root.spanId);
      expect(send.kind).toBe(SpanKind.PRODUCER);
      expect(send.attributes).toMatchObject({ 'messaging.system': 'ringpool', 'messaging.operation.type': 'send', 'messaging.destination.name': 'orders', 'messaging.message.id': '0' });
      for (const p of [p1, p2]) {
        expect(p.parentSpanId).toBe(send.spanId); // process: 'child'
        expect(p.links).toEqual([{ traceId: root.traceId, spanId: send.spanId }]);
        expect(p.kind).toBe(SpanKind.CONSUMER);
        expect(p.attributes).toMatchObject({ 'messaging.system': 'ringpool', 'messaging.operation.type': 'process', 'messaging.destination.name': 'orders', 'messaging.message.id': '0' });
      }
      expect(p1.status).toBe(SpanStatusCode.ERROR);
      expect(p1.attributes['error.type']).toBe('Error');
      expect(p1.events.map((e) => e.name)).toEqual(['exception']);
      expect(p2.status).not.toBe(SpanStatusCode.ERROR);
      expect(calls.map((c) => c.parentSpanId).sort()).toEqual([p1.spanId, p2.spanId].sort()); // the handler's own spans are its attempt's children
      expect(servers.map((s) => s.parentSpanId).sort()).toEqual(calls.map((c) => c.spanId).sort());
      expect(downstreamSeen.length).toBeGreaterThanOrEqual(2);
      expect(chained.parentSpanId).toBe(p2.spanId); // ctx.send inside the attempt
      expect(chained.kind).toBe(SpanKind.PRODUCER);
      expect(audit.parentSpanId).toBe(chained.spanId);
      // The headers the handler saw: the send's traceparent and the request's baggage, on every attempt.
      const runs = posted.flatMap((p) => (p.run && p.run.i === 1 ? [p.run] : []));
      expect(runs.map((r) => [r.attempt, r.headers.traceparent, r.baggage])).toEqual([
        [1, `00-${root.traceId}-${send.spanId}-01`, 'acme'],
        [2, `00-${root.traceId}-${send.spanId}-01`, 'acme'],
      ]);
      expect(runs[0]!.headers.baggage).toBe('tenant=acme');
    } finally {
      front.close();
      await rt.close();
      unregister();
    }
  }, 30_000);

  it("links by default: each attempt its own trace, linked to the send; the last failure's span carries ringpool.dead_letter", async () => {
    register();
    exporter.reset();
    const posted = broadcastLog<Posted>('ringpool-test-otel');
    const dir = mkdtempSync(join(tmpdir(), 'ringpool-tracing-'));
    const rt = runtime(traced('link', { m: box({ maxAttempts: 2 }), d: box({ durability: { dir } } as Partial<MailboxOptions>) }));
    await rt.start();
    try {
      // Bad options are refused as without tracing (not reshaped into good ones), inside a failed send span.
      for (const bad of ['opts', { headers: 'x' }, { headers: ['x'] }, { headers: { a: 1 } }]) {
        await expectCode(() => rt.send('m', { i: -1 }, bad as never), 'RINGPOOL_INVALID_OPTION');
      }
      expect(mainSpans().filter((s) => s.name === 'send m').map((s) => [s.status, s.attributes['error.type']])).toEqual(Array(4).fill([SpanStatusCode.ERROR, 'RINGPOOL_INVALID_OPTION']));
      exporter.reset();
      let sendSpan!: Span;
      tracer().startActiveSpan('batch job', (job) => {
        rt.send('m', { i: 7, fail: 99 }, { headers: { mine: 'kept' } });
        sendSpan = job;
        job.end();
      });
      rt.sendBatch('m', [{ i: 8 }, { i: 9 }]); // a batch: one send span, every message linked to it
      await rt.sendAsync('m', { i: 10 });
      await rt.sendAsync('d', { i: 11 }); // a durable mailbox: the context is journaled with the message
      // Headers near their limit: the trace context is left out rather than the send refused; a key inherited from a
      // prototype (or made by a getter) is kept, as without tracing.
      rt.send('m', { i: 30 }, { headers: { big: 'x'.repeat(4_050) } });
      rt.send('m', { i: 31 }, Object.create({ key: 'inherited' }) as { key: string });
      await until(() => rt.deadLetters('m').list().length === 1, 10_000, 'the failing message to be dead-lettered');
      await rt.onIdle();
      await until(() => posted.filter((p) => p.span?.name === 'process m').length === 7, 5_000, 'seven process spans');
      await until(() => posted.some((p) => p.span?.name === 'process d'), 5_000, 'the durable process span');
      const [sendD] = mainSpans().filter((s) => s.name === 'send d');
      const [procD] = posted.flatMap((p) => (p.span?.name === 'process d' ? [p.span] : []));
      expect(procD!.links).toEqual([{ traceId: sendD!.traceId, spanId: sendD!.spanId }]);
      const sends = mainSpans().filter((s) => s.name === 'send m').slice(0, 3);
      expect(sends.map((s) => s.attributes['messaging.batch.message_count'])).toEqual([undefined, 2, undefined]);
      expect(sends[0]!.traceId).toBe(sendSpan.spanContext().traceId);
      expect(sends[2]!.attributes['messaging.message.id']).toBe('3'); // sendAsync: once it settled
      await until(() => posted.some((p) => p.run?.i === 31), 5_000, 'the near-limit and inherited-key sends to run');
      const run = (i: number) => posted.find((p) => p.run?.i === i)!.run!;
      expect(Object.keys(run(30).headers)).toEqual(['big']);
      expect(run(31).key).toBe('inherited');
      expect(run(31).headers.traceparent).toMatch(/^00-/);
      const procs = posted.flatMap((p) => (p.span?.name === 'process m' && Number(p.span.attributes['messaging.message.id']) <= 3 ? [p.span] : []));
      const of = (id: string) => procs.filter((s) => s.attributes['messaging.message.id'] === id);
      const dead = of('0');
      expect(dead.map((s) => s.attributes['messaging.ringpool.message.delivery_attempt'])).toEqual([1, 2]);
      for (const s of dead) {
        expect(s.parentSpanId).toBeUndefined(); // a root: its own trace
        expect(s.traceId).not.toBe(sends[0]!.traceId);
        expect(s.links).toEqual([{ traceId: sends[0]!.traceId, spanId: sends[0]!.spanId }]);
      }
      expect(dead[0]!.events.map((e) => e.name)).toEqual(['exception']);
      expect(dead[1]!.events.map((e) => e.name)).toEqual(['exception', 'ringpool.dead_letter']);
      expect(dead[1]!.events[1]!.attributes).toEqual({ 'ringpool.dead_letter.reason': 'max_attempts' });
      for (const id of ['1', '2']) expect(of(id)[0]!.links).toEqual([{ traceId: sends[1]!.traceId, spanId: sends[1]!.spanId }]);
      expect(of('3')[0]!.links).toEqual([{ traceId: sends[2]!.traceId, spanId: sends[2]!.spanId }]);
      // The user's own headers are kept beside the trace's; a letter keeps both.
      expect(rt.deadLetters('m').list()[0]!.headers).toMatchObject({ mine: 'kept', traceparent: `00-${sends[0]!.traceId}-${sends[0]!.spanId}-01` });
      // The consumer thread's ringpool:process channel: start, end, then asyncStart/asyncEnd per attempt (error on a failure).
      const ch = posted.filter((p) => p.channel === 'ringpool:process' && p.mailbox === 'm' && p.id === 0).map((p) => `${p.attempt}:${p.event}`);
      expect(ch).toEqual(['1:start', '1:end', '1:error', '1:asyncStart', '1:asyncEnd', '2:start', '2:end', '2:error', '2:asyncStart', '2:asyncEnd']);
    } finally {
      await rt.close();
      unregister();
    }
  }, 30_000);

  it('no provider: no span, no trace headers; the ringpool:send channel still reports; tracing: false turns both off', async () => {
    exporter.reset();
    const posted = broadcastLog<Posted>('ringpool-test-otel');
    const seen: string[] = [];
    const sub = {
      start: (m: unknown) => seen.push(`start ${(m as { mailbox: string }).mailbox}`),
      end: (m: unknown) => seen.push(`end ${(m as { result: unknown }).result}`),
      asyncEnd: (m: unknown) => seen.push(`asyncEnd ${(m as { result: unknown }).result}`),
    };
    const ch = tracingChannel('ringpool:send');
    ch.subscribe(sub as never);
    // No provider on the main thread; the consumer threads' setup registers one there (process spans, roots).
    const rt = runtime(traced('link', { m: box() }));
    // tracing: false, though the handler module registers a provider on its own thread: no process span there.
    const off = runtime({ mailboxes: { q: box({ handler: fixture('otel-handler-setup.js') }) }, tracing: false });
    await Promise.all([rt.start(), off.start()]);
    try {
      rt.send('m', { i: 1 });
      await rt.sendAsync('m', { i: 2 });
      off.send('q', { i: 3 });
      await rt.onIdle();
      await off.onIdle();
      await until(() => posted.filter((p) => p.run).length === 3, 5_000, 'three runs');
      expect(seen).toEqual(['start m', 'end 0', 'start m', 'end [object Promise]', 'asyncEnd 1']);
      for (const r of posted.flatMap((p) => (p.run ? [p.run] : []))) expect(r.headers).toEqual({});
      expect(exporter.getFinishedSpans()).toHaveLength(0);
      const procs = posted.flatMap((p) => (p.span ? [p.span.name] : []));
      expect(procs.sort()).toEqual(['process m', 'process m']);
    } finally {
      ch.unsubscribe(sub as never);
      await rt.close();
      await off.close();
    }
  }, 30_000);

  it('bad tracing options are refused with RINGPOOL_INVALID_OPTION naming the option', async () => {
    for (const [tracing, option] of [['yes', 'tracing'], [{ process: 'parent' }, 'tracing.process'], [{ sampler: 1 }, 'tracing.sampler'], [{ setup: '' }, 'tracing.setup']] as const) {
      const err = await expectCode(() => runtime({ mailboxes: { m: box() }, tracing: tracing as never }), 'RINGPOOL_INVALID_OPTION');
      expect(err.details).toMatchObject({ option });
    }
  });
});
