/**
 * ringpool itself, through its public API (`createRuntime` from the runtime
 * entry): one mailbox, a fixed number of threads (autoscaling off, so the
 * thread count is the one the row names), the knobs the issue asks about
 * (codec, metrics, keys) as options.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { createRuntime, ErrorCodes, type CodecOption, type SendOptions } from '../../runtime/index.js';
import { createMetrics } from '../../metrics/index.js';
import { fixture } from '../paths.js';
import { LatencySink, type HandlerKind, type Session, type SessionSpec } from '../session.js';

export interface RingpoolConfig {
  threads: number;
  codec: Extract<CodecOption, string>;
  /** Export prom-client metrics and scrape them once a second while it runs, as Prometheus would. */
  metrics: boolean;
  /** Send with `{ key }` over this many keys (0: unkeyed). */
  keys: number;
}

/** Must match bench/fixtures/ringpool-stamp.js. */
const LATENCY_CHANNEL = 'ringpool-bench-latency';

const HANDLERS: Record<HandlerKind, URL> = {
  noop: fixture('noop.js'),
  burn: fixture('ringpool-burn.js'),
  stamp: fixture('ringpool-stamp.js'),
};

export async function openRingpool(cfg: RingpoolConfig, spec: SessionSpec): Promise<Session> {
  const rt = createRuntime({
    mailboxes: {
      bench: {
        handler: HANDLERS[spec.handler],
        minThreads: cfg.threads,
        maxThreads: cfg.threads,
        autoscale: false,
        codec: cfg.codec,
        // W3 asks for a ring of 16 MiB or less; the rest run on the default 8 MiB.
        capacityBytes: spec.burst ? 16 << 20 : 8 << 20,
      },
    },
  });
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
    },
  };
}
