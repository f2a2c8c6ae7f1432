/**
 * `stats(mailbox).stream` of a Redis mailbox (main thread): the figures of
 * its source, read when asked (lag, pending and the dead letters' count are
 * polled once a second, lease.ts).
 */
import type { StreamStats } from '../stream.js';
import type { RedisSource } from './source.js';

export type { StreamStats } from '../stream.js';

export function streamStats(src: RedisSource): StreamStats {
  return {
    kind: 'stream',
    stream: src.o.stream,
    group: src.o.group,
    consumer: src.o.consumer,
    connected: src.cmd.up && src.readConn.up,
    lag: src.group.lag,
    pending: src.group.pending,
    consumers: src.group.consumers,
    entriesAdded: src.group.added,
    held: src.held.size,
    leftPending: src.leftPending,
    claimed: src.claims.claimed,
    acked: src.acks.acked,
    reconnects: src.outages.count,
    sendWaitingBytes: src.adds.bytes,
    trimmed: src.trimmedCount,
    trimmedAcked: src.trim.trimmed,
    resets: src.resets,
    deadLetters: src.dead.size,
    delayed: src.mover.size,
    nextDueInMs: src.mover.nextDueAt < 0 ? -1 : Math.max(0, src.mover.nextDueAt - Date.now()),
    delayedMoved: src.mover.moved,
    asksOpen: src.asks.size,
    repliesReceived: src.asks.settled + src.asks.dropped,
    repliesDropped: src.asks.dropped,
    repliesSent: src.replier.sent,
    ...(src.part === null ? {} : { partitions: src.part.stats(src.acks.fenced) }),
  };
}
