/**
 * ringpool itself, through its public API (`createRuntime` from the runtime
 * entry): one mailbox, a fixed number of threads (autoscaling off, so the
 * thread count is the one the row names), the knobs the issue asks about
 * (codec, metrics, keys) as options.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BroadcastChannel } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { trace } from '@opentelemetry/api';
import { createRuntime, ErrorCodes, type CodecOption, type SendOptions } from '../../runtime/index.js';
import { createMetrics } from '../../metrics/index.js';
import { fixture } from '../paths.js';
import { LatencySink, Window, type HandlerKind, type Session, type SessionSpec } from '../session.js';

export interface RingpoolConfig {
  threads: number;
  codec: Extract<CodecOption, string>;
  /** Export prom-client metrics and scrape them once a second while it runs, as Prometheus would. */
  metrics: boolean;
  /** Send with `{ key }` over this many keys (0: unkeyed). */
  keys: number;
  /**
   * 'memory' (plain send) or a journal with this fsync mode (in a fresh
   * directory under the OS temp dir, on disk: ext4 here); durable rows send
   * with sendAsync, up to 1,024 in flight, or with `batch`: sendBatchAsync.
   */
  durability: 'memory' | 'never' | 'interval' | 'always';
  /** Send in rt.sendBatch calls of this many messages (0: one send() each). */
  batch: number;
  /**
   * 'default': the runtime's default (OpenTelemetry's API installed here, no
   * provider registered); 'off': `tracing: false`; 'on': a provider on every
   * thread (spans batched and discarded, bench/fixtures/otel-discard.mjs).
   */
  tracing: 'default' | 'off' | 'on';
  /** Attach a store that keeps nothing (the outcome feed's own cost: every ack walked and handed over in batches). */
  store?: boolean;
}

/** A MessageStore that is told every outcome and keeps none. */
const noopStore = { open: async () => [], close: async () => undefined, outcomes: () => undefined };

/** Must match bench/fixtures/ringpool-stamp.js. */
const LATENCY_CHANNEL = 'ringpool-bench-latency';

const HANDLERS: Record<HandlerKind, URL> = {
  noop: fixture('noop.js'),
  burn: fixture('ringpool-burn.js'),
  stamp: fixture('ringpool-stamp.js'),
};

export async function openRingpool(cfg: RingpoolConfig, spec: SessionSpec): Promise<Session> {
  const dir = cfg.durability === 'memory' ? null : mkdtempSync(join(tmpdir(), 'ringpool-bench-journal-'));
  const rt = createRuntime({
    mailboxes: {
      bench: {
        handler: HANDLERS[spec.handler],
        minThreads: cfg.threads,
        maxThreads: cfg.threads,
        autoscale: false,
        codec: cfg.codec,
        ...(cfg.store ? { store: noopStore } : {}),
        // W3 asks for a ring of 16 MiB or less; the rest run on the default 8 MiB.
        capacityBytes: spec.burst ? 16 << 20 : 8 << 20,
        ...(dir === null ? {} : { durability: { dir, fsync: cfg.durability as 'never' | 'interval' | 'always', intervalMs: 5 } }),
      },
    },
    ...(cfg.tracing === 'off' ? { tracing: false as const } : cfg.tracing === 'on' ? { tracing: { setup: fixture('otel-discard.mjs') } } : {}),
  });
  if (cfg.tracing === 'on') await import(fixture('otel-discard.mjs').href);
  const registry = new Registry();
  if (cfg.metrics) createMetrics(rt, { registry });
  const scraper = cfg.metrics ? setInterval(() => void registry.metrics(), 1000) : undefined;

  const sink = new LatencySink();
  let channel: BroadcastChannel | null = null;
  if (spec.handler === 'stamp') {
    channel = new BroadcastChannel(LATENCY_CHANNEL);
    channel.onmessage = (ev) => sink.pushMany((ev as { data: Float64Array }).data);
  }
  await rt.start();

  const keyed: SendOptions[] = Array.from({ length: cfg.keys }, (_, k) => ({ key: `customer-${k}` }));
  let sent = 0;
  const opened = performance.now();
  const window = new Window<unknown>(1024, () => undefined);
  // A durable row with batch > 0: sendBatchAsync of `batch` messages, up to 1,024 messages' worth in flight.
  const batches = new Window<unknown>(Math.max(1, Math.floor(1024 / Math.max(1, cfg.batch))), () => undefined);
  let pending: unknown[] = [];
  const flushDurable = (): void | Promise<void> => {
    const b = pending;
    pending = [];
    return batches.track(rt.sendBatchAsync('bench', b));
  };
  const durableSession: Session = {
    send: (message) => {
      if (cfg.batch === 0) return window.track(rt.sendAsync('bench', message));
      pending.push(message);
      if (pending.length === cfg.batch) return flushDurable();
    },
    drain: async () => {
      if (pending.length > 0) await flushDurable();
      await window.all();
      await batches.all();
      await rt.onIdle();
    },
    latencies: (count) => sink.take(count),
    // What the journal did over the session (warm-up included).
    extra: () => {
      const j = rt.stats('bench').journal!;
      const s = (performance.now() - opened) / 1000;
      return { fsyncsPerSec: j.fsyncs / s, journalMBPerSec: j.bytes / s / 1e6 };
    },
    async close() {
      channel?.close();
      await rt.close({ timeoutMs: 10_000 });
      rmSync(dir!, { recursive: true, force: true });
    },
  };
  if (dir !== null) return durableSession;
  if (cfg.batch > 0) return batchSession(rt, cfg.batch, sink, async () => {
    channel?.close();
    await rt.close({ timeoutMs: 10_000 });
  });
  return {
    send(message) {
      const opts = cfg.keys > 0 ? keyed[sent++ % cfg.keys] : undefined;
      try {
        rt.send('bench', message, opts);
      } catch (err) {
        if ((err as { code?: string }).code !== ErrorCodes.QUEUE_FULL) throw err;
        // A full ring: wait for room (the same message, once).
        return rt.sendAsync('bench', message, opts).then(() => undefined);
      }
    },
    drain: () => rt.onIdle(),
    latencies: (count) => sink.take(count),
    async close() {
      clearInterval(scraper);
      channel?.close();
      await rt.close({ timeoutMs: 10_000 });
      if (cfg.tracing === 'on') trace.disable();
    },
  };
}

/** Messages gathered into rt.sendBatch calls of `size` (the rest at drain): the batch row against the send() loop. */
function batchSession(rt: ReturnType<typeof createRuntime>, size: number, sink: LatencySink, close: () => Promise<void>): Session {
  let pending: unknown[] = [];
  const flush = (): void | Promise<void> => {
    const batch = pending;
    pending = [];
    try {
      rt.sendBatch('bench', batch);
    } catch (err) {
      if ((err as { code?: string }).code !== ErrorCodes.QUEUE_FULL) throw err;
      return rt.sendBatchAsync('bench', batch).then(() => undefined);
    }
  };
  return {
    send(message) {
      pending.push(message);
      if (pending.length === size) return flush();
    },
    drain: async () => {
      if (pending.length > 0) await flush();
      await rt.onIdle();
    },
    latencies: (count) => sink.take(count),
    close,
  };
}
