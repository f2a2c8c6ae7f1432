/**
 * The calls a Redis mailbox cannot keep yet (main thread), each refused with
 * why: a later issue lifts them. An actor handler needs per-key order, which
 * a partitioned mailbox keeps (issue #29).
 */
import { ErrorCodes, RingpoolError } from '../../shared/errors.js';
import type { MailboxCall } from '../source.js';

export function redisRefusal(mailbox: string, stream: string, partitioned: boolean, call: MailboxCall): RingpoolError | null {
  switch (call) {
    case 'ask':
      return null; // a reply stream per asking process (asks.ts)
    case 'sendBatch':
    case 'sendBatchAsync':
      return null; // one transaction (batch.ts)
    case 'actor':
      if (partitioned) return null;
      return new RingpoolError(
        ErrorCodes.INVALID_OPTION,
        `mailbox '${mailbox}' reads Redis stream '${stream}', and its handler is an actor: refused, because an actor needs per-key order, which across processes needs partitions: set source.redis.partitions`,
        { mailbox, option: `mailboxes.${mailbox}.source` },
      );
  }
}

/** A call a Redis mailbox does not take, and why. */
function refused(mailbox: string, what: string, why: string): RingpoolError {
  return new RingpoolError(ErrorCodes.INVALID_OPTION, `mailbox '${mailbox}' reads a Redis stream: ${what} is refused (${why})`, { mailbox, option: 'source.redis' });
}
