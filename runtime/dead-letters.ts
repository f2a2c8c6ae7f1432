/**
 * The dead-letter store of one mailbox: messages that ran out of attempts,
 * crashed their thread too often, or threw UnrecoverableError. Kept in memory
 * (the in-memory delivery promise), bounded by `deadLetterLimit`. Main thread.
 */
import { ErrorCodes, RingpoolError, describeValue, optionThrew, type ErrorInfo } from './shared/errors.js';
import type { HeldMessage } from './held.js';
import { decodeHeaderBytes } from './shared/headers.js';

/** Why a message was dead-lettered: attempts spent, its thread crashed on its last attempt, it ran past leaseMs on its last attempt, or the handler said it can never succeed. */
export type DeadLetterReason = 'max_attempts' | 'poison' | 'timeout' | 'unrecoverable';
/** The reasons, in the order the outcome feed and the journal number them (a DEAD_LETTERED entry's value is the index). */
export const DEAD_LETTER_REASONS: readonly DeadLetterReason[] = ['max_attempts', 'poison', 'timeout', 'unrecoverable'];

/** A message that ran out of attempts (or could not run): kept with its errors until redriven or purged. */
export interface DeadLetter {
  id: number;
  mailbox: string;
  /** Decoded with the mailbox's codec. */
  payload: unknown;
  key: string | undefined;
  /** Deliveries made. */
  attempts: number;
  firstError: ErrorInfo | undefined;
  lastError: ErrorInfo | undefined;
  /** First send, ms since the epoch. */
  enqueuedAt: number;
  deadAt: number;
  reason: DeadLetterReason;
  /** The headers it was sent with (empty when none). */
  headers: Readonly<Record<string, string>>;
}

/** `rt.deadLetters(mailbox)`. */
export interface DeadLetters {
  /** Dead letters, oldest first. */
  list(): DeadLetter[];
  /** Put them back on their mailbox with fresh attempts (each counts as enqueued again). Returns how many. */
  redrive(filter?: (letter: DeadLetter) => boolean): number;
  /** Drop them. Returns how many. */
  purge(filter?: (letter: DeadLetter) => boolean): number;
  readonly size: number;
}

/**
 * Where a mailbox's dead letters go (main thread): its in-memory store, or
 * what a source puts in front of it (a Redis mailbox keeps the letters of
 * the stream's entries in `<stream>:dead`, runtime/source/source.ts).
 */
export interface DeadLetterSink {
  /** Keep the letter of a message dead-lettered now; returns it (the 'dead-letter' event's). */
  add(held: HeldMessage, reason: DeadLetterReason, deadAt: number): DeadLetter;
  /** Letters kept now (`stats().deadLetterSize`). */
  readonly size: number;
  /** Letters dropped at a limit (`stats().deadLettersDropped`). */
  readonly dropped: number;
  /** What `rt.deadLetters(mailbox)` returns: list, redrive, purge (synchronous in memory; promises for a stream). */
  readonly view: DeadLetters | AsyncDeadLetters;
}

/** Dead letters kept elsewhere (a Redis mailbox's `<stream>:dead`): the same calls, as promises. */
export interface AsyncDeadLetters {
  list(): Promise<DeadLetter[]>;
  redrive(filter?: (letter: DeadLetter) => boolean): Promise<number>;
  purge(filter?: (letter: DeadLetter) => boolean): Promise<number>;
  readonly size: number;
}

/** A page of dead letters: those of one reason (all when undefined), with the count per reason over all. */
export interface DeadLetterPage<L> {
  total: number;
  byReason: Record<DeadLetterReason, number>;
  letters: L[];
}

/**
 * Page `items` (oldest first): `toLetter` runs only on the page's items, so a
 * store can keep its letters undecoded until they are asked for.
 */
export function pageOf<T, L>(items: Iterable<T>, reasonOf: (t: T) => DeadLetterReason, toLetter: (t: T) => L, offset: number, limit: number, reason?: DeadLetterReason): DeadLetterPage<L> {
  const byReason = Object.fromEntries(DEAD_LETTER_REASONS.map((r) => [r, 0])) as Record<DeadLetterReason, number>;
  const letters: L[] = [];
  let total = 0;
  for (const t of items) {
    const r = reasonOf(t);
    byReason[r]++;
    if (reason !== undefined && r !== reason) continue;
    if (total >= offset && letters.length < limit) letters.push(toLetter(t));
    total++;
  }
  return { total, byReason, letters };
}

interface Entry {
  held: HeldMessage;
  reason: DeadLetterReason;
  deadAt: number;
}

export class DeadLetterStore implements DeadLetters, DeadLetterSink {
  readonly view: DeadLetters = this;
  private entries: Entry[] = [];
  /** Dropped because the store was at deadLetterLimit. */
  dropped = 0;

  constructor(
    private readonly mailbox: string,
    private readonly limit: number,
    private readonly decode: (held: HeldMessage) => unknown,
    private readonly putBack: (held: HeldMessage[]) => void,
    /** Dead letters that leave the store for good (purged, or dropped at the limit): the outcome feed's `purged`. */
    private readonly gone: ((held: HeldMessage[]) => void) | null = null,
  ) {}

  get size(): number {
    return this.entries.length;
  }

  add(held: HeldMessage, reason: DeadLetterReason, deadAt: number): DeadLetter {
    const e: Entry = { held, reason, deadAt };
    if (this.limit > 0) {
      this.entries.push(e);
      if (this.entries.length > this.limit) {
        const old = this.entries.shift()!;
        this.dropped++;
        this.gone?.([old.held]);
      }
    } else {
      this.dropped++;
      this.gone?.([held]);
    }
    return this.toLetter(e);
  }

  private toLetter(e: Entry): DeadLetter {
    let payload: unknown;
    try {
      payload = this.decode(e.held);
    } catch (err) {
      payload = e.held.payload; // undecodable: give the bytes
    }
    return {
      id: e.held.id,
      mailbox: this.mailbox,
      payload,
      key: e.held.key ?? undefined,
      attempts: e.held.attempt,
      firstError: e.held.firstError,
      lastError: e.held.lastError,
      enqueuedAt: e.held.sentAt,
      deadAt: e.deadAt,
      reason: e.reason,
      headers: decodeHeaderBytes(e.held.headers),
    };
  }

  list(): DeadLetter[] {
    return this.entries.map((e) => this.toLetter(e));
  }

  /**
   * One page of the letters of `reason` (all when undefined), oldest first,
   * decoding only that page; with the count per reason over all of them.
   */
  page(offset: number, limit: number, reason?: DeadLetterReason): DeadLetterPage<DeadLetter> {
    return pageOf(this.entries, (e) => e.reason, (e) => this.toLetter(e), offset, limit, reason);
  }

  /**
   * The letters `filter` picks (all without one), taken out of the store.
   * All or nothing: a filter that is not a function, or that throws, leaves
   * the store as it was (RINGPOOL_INVALID_OPTION, the thrown value as `cause`).
   */
  private take(what: string, filter?: (letter: DeadLetter) => boolean): Entry[] {
    if (filter === undefined) return this.entries.splice(0);
    if (typeof filter !== 'function') {
      throw new RingpoolError(ErrorCodes.INVALID_OPTION, `deadLetters().${what}(filter): filter must be a function (letter) => boolean, got ${describeValue(filter)}`, { option: 'filter' });
    }
    const keep: Entry[] = [];
    const out: Entry[] = [];
    try {
      for (const e of this.entries) (filter(this.toLetter(e)) ? out : keep).push(e);
    } catch (err) {
      throw optionThrew(`deadLetters().${what}(filter): the filter`, err);
    }
    this.entries = keep;
    return out;
  }

  redrive(filter?: (letter: DeadLetter) => boolean): number {
    const out = this.take('redrive', filter);
    for (const e of out) {
      e.held.attempt = 1;
      e.held.firstError = undefined;
      e.held.lastError = undefined;
    }
    this.putBack(out.map((e) => e.held));
    return out.length;
  }

  purge(filter?: (letter: DeadLetter) => boolean): number {
    const out = this.take('purge', filter);
    if (out.length > 0) this.gone?.(out.map((e) => e.held));
    return out.length;
  }
}
