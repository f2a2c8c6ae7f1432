/**
 * Every error ringpool throws, with a stable `code`. Thread-neutral.
 * The class is lost when an error crosses a thread; `code` and `name` are not,
 * so callers test `err.code`, never `instanceof` alone.
 */

export const ErrorCodes = {
  /** The ring has no room for the message (send, or sendAsync with overflow 'reject'). */
  QUEUE_FULL: 'RINGPOOL_QUEUE_FULL',
  /** The encoded message is larger than the mailbox's maxMessageBytes. */
  MESSAGE_TOO_LARGE: 'RINGPOOL_MESSAGE_TOO_LARGE',
  /** The codec could not encode the payload (a BigInt under json, a function under v8, ...). */
  UNSERIALIZABLE: 'RINGPOOL_UNSERIALIZABLE',
  /** The runtime (or the mailbox) no longer accepts messages. */
  CLOSED: 'RINGPOOL_CLOSED',
  /** No mailbox by that name. */
  UNKNOWN_MAILBOX: 'RINGPOOL_UNKNOWN_MAILBOX',
  /** A handler module could not be loaded, or has no usable default export. */
  HANDLER_LOAD: 'RINGPOOL_HANDLER_LOAD',
  /** An option has a bad value; the message names its path and the value. */
  INVALID_OPTION: 'RINGPOOL_INVALID_OPTION',
  /** A wait (sendAsync, close) ran past its deadline. */
  TIMEOUT: 'RINGPOOL_TIMEOUT',
  /** The runtime was used in a state that does not allow the call (start() twice, ...). */
  INVALID_STATE: 'RINGPOOL_INVALID_STATE',
  /** (an 'error' event) A reserved record stayed unpublished for seconds: its producing thread died inside ctx.send(). */
  RING_STALLED: 'RINGPOOL_RING_STALLED',
  /** ask(): the message was dead-lettered (retries exhausted, unrecoverable, poison); `cause` is the last error. */
  DEAD_LETTERED: 'RINGPOOL_DEAD_LETTERED',
  /** (a dead letter's error) An actor mailbox got a message without a key. */
  KEY_REQUIRED: 'RINGPOOL_KEY_REQUIRED',
  /** A durable mailbox's journal directory is in use by another live runtime (its LOCK names the pid). */
  JOURNAL_LOCKED: 'RINGPOOL_JOURNAL_LOCKED',
  /** A journal segment is damaged in the middle (a bad record with good records after it): start() refuses. */
  JOURNAL_CORRUPT: 'RINGPOOL_JOURNAL_CORRUPT',
  /** A journal write or fsync failed (EIO, ENOSPC): the mailbox stops accepting. */
  JOURNAL_IO: 'RINGPOOL_JOURNAL_IO',
  /** A source's engine (Redis) failed a command: the message it carried is not in the stream. */
  SOURCE_IO: 'RINGPOOL_SOURCE_IO',
  /** (an 'error' event) A Redis mailbox found its stream or consumer group gone (NOGROUP: Redis restarted without persistence, or they were deleted) and recreated the group. */
  SOURCE_RESET: 'RINGPOOL_SOURCE_RESET',
  /** (an 'error' event) Stream entries were trimmed before they ran: acknowledged and dropped (`details.ids`). */
  SOURCE_TRIMMED: 'RINGPOOL_SOURCE_TRIMMED',
  /** A Redis mailbox's consumer name is in use by another live process: start() refuses (or, as an 'error' event, it was taken meanwhile). */
  SOURCE_CONSUMER_TAKEN: 'RINGPOOL_SOURCE_CONSUMER_TAKEN',
  /** A partitioned Redis mailbox's `partitions` differs from the one stored with its stream (`{<stream>}:partitions`): start() or the producer refuses. */
  PARTITIONS_MISMATCH: 'RINGPOOL_PARTITIONS_MISMATCH',
  /** A record of a partition this process no longer owns (its lease ran out, another process took it): not run here (its new owner runs it); also `ctx.signal`'s reason. */
  FENCED: 'RINGPOOL_FENCED',
  /** A handler asked to retry later (ctx.retryAfter, RetryAfterError): its message went back uncharged and the mailbox paused. */
  RETRY_AFTER: 'RINGPOOL_RETRY_AFTER',
  /** (an 'error' event) The newest journal segment ended in a partial record (a write cut short by a crash): cut off, start goes on. */
  JOURNAL_TORN: 'RINGPOOL_JOURNAL_TORN',
  /** An optional peer dependency a feature needs is not installed (details.package names it). */
  PEER_MISSING: 'RINGPOOL_PEER_MISSING',
} as const;

/** One of ErrorCodes' values. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** Every error ringpool throws or rejects with: a stable `code` (ErrorCodes) and `details` naming the option, limit or mailbox. */
export class RingpoolError extends Error {
  override name = 'RingpoolError';
  readonly code: ErrorCode;
  /** Structured facts about the failure (limit, size, option path, ...). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.details = details;
  }
}

/** How a value reads in an error message: `0` (number), `'x'` (string). Never throws (a revoked Proxy, a throwing toString). */
export function describeValue(value: unknown): string {
  try {
    if (typeof value === 'string') return `'${value.length > 60 ? value.slice(0, 57) + '...' : value}' (string)`;
    if (typeof value === 'bigint') return `${value}n (bigint)`;
    if (value === null) return 'null';
    if (typeof value === 'function') return 'a function';
    if (typeof value === 'object') return Array.isArray(value) ? 'an array' : 'an object';
    return `\`${safeString(value)}\` (${typeof value})`;
  } catch {
    return 'an unreadable value (a revoked Proxy?)';
  }
}

/** String(value), or its Object.prototype.toString tag when that throws (a null-prototype object, a throwing toString); never throws. */
export function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    try {
      return Object.prototype.toString.call(value);
    } catch {
      return '(an unprintable value)';
    }
  }
}

/** What a thrown value says: an Error's message, or the value itself as text. Never throws (something thrown need not be an Error). */
export function messageOf(thrown: unknown): string {
  try {
    if (thrown instanceof Error) return String(thrown.message);
  } catch {
    // a Proxy whose traps throw, a throwing message getter
  }
  return safeString(thrown);
}

/**
 * User code ran while ringpool read an option and threw (a getter, a Proxy
 * trap, a callback such as a batch's key function or a dead-letter filter):
 * RINGPOOL_INVALID_OPTION naming the option, the thrown value as `cause`.
 */
export function optionThrew(path: string, thrown: unknown): RingpoolError {
  if (thrown instanceof RingpoolError) return thrown;
  return new RingpoolError(ErrorCodes.INVALID_OPTION, `${path} could not be read: it threw ${messageOf(thrown)}`, { option: path }, { cause: thrown });
}

/** An optional peer dependency `pkg` that `what` needs could not be loaded (`cause`: why). */
export function peerMissing(pkg: string, what: string, cause: unknown): RingpoolError {
  const missing = (cause as { code?: string })?.code === 'ERR_MODULE_NOT_FOUND';
  return new RingpoolError(
    ErrorCodes.PEER_MISSING,
    `${what} needs the package '${pkg}'${missing ? `, which is not installed: npm install ${pkg}` : `, which failed to load: ${(cause as Error)?.message ?? String(cause)}`}`,
    { package: pkg },
    { cause },
  );
}

export function invalidOption(path: string, expected: string, value: unknown): RingpoolError {
  return new RingpoolError(
    ErrorCodes.INVALID_OPTION,
    `options.${path} must be ${expected}, got ${describeValue(value)}`,
    { option: path, value: typeof value === 'object' || typeof value === 'function' ? undefined : value },
  );
}

/** A plain, cloneable description of a thrown value, as kept in dead letters. */
export interface ErrorInfo {
  name: string;
  message: string;
  stack?: string;
  code?: string;
}

/**
 * A durable mailbox whose journal stopped: RINGPOOL_CLOSED when it closed,
 * RINGPOOL_JOURNAL_IO when a write or fdatasync failed. `what` says what was refused.
 */
export function journalStopped(closed: boolean, mailbox: string, what: string): RingpoolError {
  return closed
    ? new RingpoolError(ErrorCodes.CLOSED, `mailbox '${mailbox}': its journal closed; ${what}`, { mailbox })
    : new RingpoolError(ErrorCodes.JOURNAL_IO, `mailbox '${mailbox}': its journal failed to write (see the 'error' event); ${what}`, { mailbox });
}

export function toErrorInfo(thrown: unknown): ErrorInfo {
  try {
    if (thrown instanceof Error) {
      const info: ErrorInfo = { name: String(thrown.name), message: String(thrown.message) };
      if (typeof thrown.stack === 'string') info.stack = thrown.stack;
      const code = (thrown as { code?: unknown }).code;
      if (typeof code === 'string') info.code = code;
      return info;
    }
  } catch {
    // An Error-like Proxy or getter that throws: described as text below.
  }
  let text: string;
  try {
    text = typeof thrown === 'string' ? thrown : JSON.stringify(thrown) ?? safeString(thrown);
  } catch {
    text = safeString(thrown);
  }
  return { name: 'NonErrorThrown', message: `handler threw a non-Error value: ${text}` };
}

/** An Error rebuilt from an ErrorInfo (the `cause` of a rejected ask). */
export function fromErrorInfo(info: ErrorInfo): Error {
  const err = new Error(info.message);
  err.name = info.name;
  if (info.stack !== undefined) err.stack = info.stack;
  if (info.code !== undefined) (err as Error & { code?: string }).code = info.code;
  return err;
}
