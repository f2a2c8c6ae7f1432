/**
 * The `diagnostics_channel` TracingChannels ringpool publishes (issue #32),
 * for APMs that do not use OpenTelemetry, and what each publishes. Apart
 * from tracing.ts so the public types import nothing of OpenTelemetry.
 * Thread-neutral: a channel is per thread (`ringpool:process` fires on the
 * consumer thread that runs the handler).
 */
import { tracingChannel } from 'node:diagnostics_channel';

/** `ringpool:send`: around every send (`{ mailbox, options, count }`; `result`: the id, or the ids). */
export const sendChannel = tracingChannel<unknown, SendMessage>('ringpool:send');
/** `ringpool:process`: around each attempt, on the consumer thread (`{ mailbox, id, attempt, key, headers }`). */
export const processChannel = tracingChannel<unknown, ProcessMessage>('ringpool:process');

/** What `ringpool:send` publishes. */
export interface SendMessage {
  mailbox: string;
  /** The send's options, with the trace headers added when a span was made. */
  options: unknown;
  /** How many messages (1, or a batch's length). */
  count: number;
  result?: unknown;
  error?: unknown;
}

/** What `ringpool:process` publishes. */
export interface ProcessMessage {
  mailbox: string;
  id: number;
  attempt: number;
  key: string | undefined;
  headers: Readonly<Record<string, string>>;
  result?: unknown;
  error?: unknown;
}

