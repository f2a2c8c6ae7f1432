/**
 * The operator's controls of a running mailbox, checked (Runtime's resize,
 * setRateLimit, autoscale and inspect call them): bad input is a
 * RingpoolError naming the option, and changes nothing.
 */
import type { Mailbox } from './mailbox/index.js';
import type { InspectPage, MessageState } from './mailbox/inspect.js';
import { resolveRateLimit, type RateLimitOptions } from './rate-limit.js';
import { ErrorCodes, RingpoolError, describeValue, invalidOption } from './shared/errors.js';

export function resize(b: Mailbox, threads: number): void {
  if (!Number.isInteger(threads) || threads < 0 || threads > b.opts.maxThreads) {
    throw new RingpoolError(ErrorCodes.INVALID_OPTION, `resize(): threads must be an integer from 0 to maxThreads (${b.opts.maxThreads}), got ${describeValue(threads)}`, {
      option: 'threads',
    });
  }
  b.resize(threads);
}

export function setRateLimit(b: Mailbox, mailbox: string, limit: RateLimitOptions | null): void {
  if (b.opts.rateLimit?.scope === 'group') {
    throw new RingpoolError(ErrorCodes.INVALID_STATE, `setRateLimit(): mailbox '${mailbox}' shares its rate limit with its Redis group (scope 'group'): change every process's option`, { mailbox });
  }
  const r = resolveRateLimit('rateLimit', limit, false);
  b.sends.setRateLimit(r?.max ?? 0, r?.perMs ?? 0);
  b.opts.rateLimit = r;
}

export function autoscale(b: Mailbox, on: boolean): void {
  if (typeof on !== 'boolean') {
    throw new RingpoolError(ErrorCodes.INVALID_OPTION, `autoscale(): on must be true or false, got ${describeValue(on)}`, { option: 'on' });
  }
  b.setAutoscale(on);
}

export function inspect(b: Mailbox, mailbox: string, opts: { state: MessageState; limit?: number }): InspectPage {
  const { state, limit = 50 } = opts ?? ({} as { state: undefined });
  if (state !== 'ready' && state !== 'in-flight' && state !== 'delayed') throw invalidOption('state', "'ready', 'in-flight' or 'delayed'", state);
  if (!Number.isInteger(limit) || limit < 0) throw invalidOption('limit', 'an integer >= 0', limit);
  return b.inspector.page(mailbox, state, limit);
}
