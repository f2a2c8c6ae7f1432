/**
 * Runtime options (`createRuntime`): the runtime's own settings and their
 * defaults; each mailbox's options are resolved by mailbox-options.ts.
 */
import { MAX_TIMER_MS } from './shared/clock.js';
import { invalidOption } from './shared/errors.js';
import { resolvePool, type PoolOptions, type ResolvedPool } from './pool/options.js';
import { resolveTracing, type TracingOptions } from './tracing-options.js';
import { handlerUrl, int, isPlainObject, resolveMailbox, type MailboxOptions, type ResolvedMailbox } from './mailbox-options.js';

export type { TracingOptions } from './tracing-options.js';
export type { AutoscaleOptions, BackoffOptions, DurabilityOptions, MailboxOptions } from './mailbox-options.js';
export { mailboxDefaults } from './mailbox-options.js';

/** `createRuntime(options)`: the mailboxes and the runtime's own settings. */
export interface RuntimeOptions {
  mailboxes: Record<string, MailboxOptions>;
  /** start() fails with RINGPOOL_HANDLER_LOAD if handlers are not loaded by then. @default 10000 */
  startTimeoutMs?: number;
  /** Dispatcher housekeeping period: lease watchdog, counters, scaling. @default 100 */
  tickMs?: number;
  /** The threads mailboxes share (those without `threads: 'dedicated'`). */
  pool?: PoolOptions;
  /**
   * OpenTelemetry (with `@opentelemetry/api` installed and a tracer provider
   * registered): a `send <mailbox>` span around each send, its context in the
   * message's headers, and a `process <mailbox>` span around each attempt on
   * the consumer thread. `false`: no spans and no `ringpool:*` channels.
   */
  tracing?: TracingOptions | false;
}

/** The defaults of the runtime's own options. */
export const runtimeDefaults = Object.freeze({
  startTimeoutMs: 10_000,
  tickMs: 100,
  pool: Object.freeze({}),
  tracing: Object.freeze({ process: 'link' as const }),
});

export interface ResolvedRuntime {
  mailboxes: ResolvedMailbox[];
  startTimeoutMs: number;
  tickMs: number;
  pool: ResolvedPool;
  /** null: `tracing: false`. */
  tracing: { setup: string | null; process: 'link' | 'child' } | null;
}

export function resolveRuntime(o: unknown): ResolvedRuntime {
  if (!isPlainObject(o)) throw invalidOption('', 'an object { mailboxes }', o);
  const mb = o.mailboxes;
  if (!isPlainObject(mb) || Object.keys(mb).length === 0) {
    throw invalidOption('mailboxes', 'an object with at least one mailbox', mb);
  }
  for (const k of Object.keys(o)) {
    if (k !== 'mailboxes' && !(k in runtimeDefaults)) throw invalidOption(k, `one of mailboxes, ${Object.keys(runtimeDefaults).join(', ')} (unknown option)`, o[k]);
  }
  const mailboxes = Object.entries(mb).map(([name, m]) => {
    if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(name)) throw invalidOption(`mailboxes['${name}']`, 'a name of 1-64 letters, digits, _ . : -', name);
    return resolveMailbox(name, m);
  });
  const startTimeoutMs = o.startTimeoutMs === undefined ? runtimeDefaults.startTimeoutMs : int('startTimeoutMs', o.startTimeoutMs, 1, MAX_TIMER_MS);
  const tickMs = o.tickMs === undefined ? runtimeDefaults.tickMs : int('tickMs', o.tickMs, 1, 60_000);
  const tracing = resolveTracing(o.tracing, handlerUrl);
  for (const m of mailboxes) m.tracing = tracing === null ? null : { ...tracing, maxAttempts: m.maxAttempts };
  return Object.assign(Object.create(null) as ResolvedRuntime, { mailboxes, startTimeoutMs, tickMs, pool: resolvePool('pool', o.pool), tracing });
}
