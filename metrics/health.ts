/**
 * Health as orchestrators read it: liveness (`/livez`: restart me) apart
 * from readiness (`/readyz`: send me no work now), and the older `/healthz`
 * that mixed them. A Redis outage must turn readiness red and leave liveness
 * green, or every pod of a fleet is restarted at once for a fault none of
 * them has.
 */
import type { Runtime } from '../runtime/runtime.js';

/** One mailbox in a health answer. */
export interface MailboxHealth {
  state: 'starting' | 'running' | 'draining' | 'stopped';
  depth: number;
  threads: number;
  inFlight: number;
  /** A Redis Streams mailbox's connection. */
  redis?: 'connected' | 'unreachable';
  /** Readiness only: why this mailbox takes no work now. */
  notReady?: 'starting' | 'recovering' | 'draining' | 'stopped' | 'redis unreachable';
}

/** What `/livez`, `/readyz` and `/healthz` answer (JSON), with 200 for 'ok' and 503 otherwise. */
export interface HealthReport {
  status: 'ok' | 'unavailable';
  mailboxes: Record<string, MailboxHealth>;
}

type Probe = 'live' | 'ready' | 'legacy';

function stateOf(rt: Runtime): MailboxHealth['state'] {
  switch (rt.state) {
    case 'created':
    case 'starting':
      return 'starting';
    case 'running':
      return 'running';
    case 'closing':
      return 'draining';
    default:
      return 'stopped';
  }
}

/**
 * - `live`: fails only when a runtime is broken: it stopped (a failed start()
 *   or a close) while still exported. Starting, draining and a Redis outage
 *   are alive: a restart would not help them.
 * - `ready`: also fails before start() finished (a durable mailbox replays its
 *   journal then: `recovering`), while draining, and while a Redis mailbox
 *   cannot reach Redis.
 * - `legacy` (`/healthz`, kept as it was): fails when not yet started, stopped,
 *   or when a running Redis mailbox cannot reach Redis.
 */
export function health(runtimes: readonly Runtime[], probe: Probe): HealthReport {
  const mailboxes: Record<string, MailboxHealth> = {};
  let ok = true;
  for (const rt of runtimes) {
    const state = stateOf(rt);
    if (state === 'stopped') ok = false;
    for (const m of rt.mailboxes) {
      const s = rt.stats(m);
      const h: MailboxHealth = { state, depth: s.depth, threads: s.threads, inFlight: s.inFlight };
      const redis = s.source === undefined ? undefined : s.source.connected ? 'connected' : 'unreachable';
      if (redis !== undefined) h.redis = redis;
      if (probe === 'legacy') {
        if (state === 'starting' || (redis === 'unreachable' && state === 'running')) ok = false;
      } else if (probe === 'ready') {
        const why = notReady(state, redis, s.store !== undefined);
        if (why !== undefined) {
          h.notReady = why;
          ok = false;
        }
      }
      mailboxes[m] = h;
    }
  }
  return { status: ok ? 'ok' : 'unavailable', mailboxes };
}

function notReady(state: MailboxHealth['state'], redis: MailboxHealth['redis'], durable: boolean): MailboxHealth['notReady'] {
  if (state === 'starting') return durable ? 'recovering' : 'starting';
  if (state === 'draining' || state === 'stopped') return state;
  if (redis === 'unreachable') return 'redis unreachable';
  return undefined;
}
