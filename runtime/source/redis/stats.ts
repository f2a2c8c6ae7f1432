/**
 * `stats(mailbox).stream` of a Redis mailbox (main thread): the figures of
 * its source, read when asked (lag, pending and the dead letters' count are
 * polled once a second, lease.ts).
 */
import type { RedisSource } from './source.js';

/** `stats(mailbox).stream` of a Redis mailbox. */
export interface StreamStats {
  stream: string;
  group: string;
  consumer: string;
  /** Both connections answer. */
  connected: boolean;
  /** Entries of the stream not yet delivered to the group (XINFO GROUPS lag; -1 when Redis cannot tell). */
  lag: number;
  /** Entries delivered to the group and not yet acknowledged, all consumers (XINFO GROUPS pending). */
  pending: number;
  /** Entries this process holds (read and waiting for ring room, in its ring, running, or waiting to retry). */
  held: number;
  claimed: number;
  acked: number;
  /** Outages: times the connection to Redis dropped (one each, however many reconnection attempts it took). */
  reconnects: number;
  /** Payload bytes of sends waiting for Redis (queued while it is away or loading, or written and not yet answered); at most sendBufferBytes. */
  sendWaitingBytes: number;
  /** Entries this process trimmed from the stream once every group had acknowledged them (keepAckedMs). */
  trimmedAcked: number;
  /** Entries found trimmed from the stream before they ran (acknowledged and dropped). */
  trimmed: number;
  /** Times the stream or group was found gone (NOGROUP) and recreated. */
  resets: number;
  /** `<stream>:dead` XLEN, polled. */
  deadLetters: number;
}

export function streamStats(src: RedisSource): StreamStats {
  return {
    stream: src.o.stream,
    group: src.o.group,
    consumer: src.o.consumer,
    connected: src.cmd.up && src.readConn.up,
    lag: src.lag,
    pending: src.pending,
    held: src.held.size,
    claimed: src.claims.claimed,
    acked: src.acks.acked,
    reconnects: src.outages,
    sendWaitingBytes: src.adds.bytes,
    trimmed: src.trimmedCount,
    trimmedAcked: src.trim.trimmed,
    resets: src.resets,
    deadLetters: src.dead.size,
  };
}
