/**
 * A Redis mailbox's faults (main thread): reported once per outage (a
 * stream of identical errors helps nobody), and outages counted as the
 * connections go down from both up, however many reconnection attempts each
 * takes (`stats().stream.reconnects`).
 */
import { ErrorCodes, RingpoolError } from '../../shared/errors.js';
import { message, type Connection } from './connection.js';

export class Outages {
  /** Outages: times the connections went down from both up. */
  count = 0;
  /** An outage is reported once, when it starts. */
  private down = false;
  /** Both connections up since the last outage began. */
  private linked = false;

  constructor(
    private readonly conns: () => Connection[],
    /** The error a fault becomes: where, what it was doing. */
    private readonly describe: (err: unknown, doing: string) => RingpoolError,
    private readonly emitError: (err: Error) => void,
    private readonly closed: () => boolean,
  ) {}

  /** Both connections answered at start. */
  started(): void {
    this.linked = true;
  }

  /** A command went through: the next fault is a new outage. */
  healthy(): void {
    if (this.down && this.conns().every((c) => c.up)) this.down = false;
  }

  /** A connection went down or came back up. */
  changed(up: boolean, err: Error | null): void {
    if (up) {
      if (this.conns().every((c) => c.up)) this.linked = true;
      this.healthy();
      return;
    }
    if (this.linked) {
      this.linked = false;
      this.count++;
    }
    this.fault(err, 'the connection dropped; reconnecting with backoff, local work goes on');
  }

  /** Report a fault, once per outage. */
  fault(err: unknown, doing: string): void {
    if (this.closed() || this.down) return;
    this.down = true;
    this.emitError(this.describe(err, doing));
  }
}

/** RINGPOOL_SOURCE_IO for a fault of a Redis mailbox. */
export function sourceIo(mailbox: string, url: string, stream: string, err: unknown, doing: string): RingpoolError {
  return new RingpoolError(ErrorCodes.SOURCE_IO, `Redis source of mailbox '${mailbox}' (${url}, stream '${stream}'): ${doing}: ${message(err)}`, { mailbox, stream }, { cause: err });
}

/** Entries trimmed from the stream before they ran (acknowledged and dropped): what the mailbox reports. */
export function trimmedError(mailbox: string, stream: string, ids: readonly string[]): RingpoolError {
  return new RingpoolError(ErrorCodes.SOURCE_TRIMMED, `${ids.length} entr${ids.length === 1 ? 'y' : 'ies'} of stream '${stream}' had been trimmed before they ran (first ${ids[0]}): acknowledged and dropped`, {
    mailbox,
    stream,
    ids: [...ids],
  });
}
