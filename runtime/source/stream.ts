/**
 * A Redis Streams mailbox (`source: { redis }`) as the rest of the runtime
 * and its users see it: the option, `stats().source` and the dead letters.
 * Types only; the source itself is runtime/source/redis/, loaded only when
 * a mailbox uses it (runtime/source/index.ts).
 */
import type { AsyncDeadLetters, DeadLetter } from '../dead-letters.js';

/** `source: { redis: ... }`: a mailbox whose messages live in a Redis stream, read by a consumer group. */
export interface RedisSourceOptions extends RedisConnectOptions {
  /** The stream key. */
  stream: string;
  /** The consumer group, created (from the stream's first entry, with MKSTREAM) if missing. @default 'ringpool' */
  group?: string;
  /** This process's consumer name, unique per live process. @default `${hostname}-${pid}` */
  consumer?: string;
  /** Pending entries idle this long are taken over from consumers that died. @default the mailbox's leaseMs */
  claimIdleMs?: number;
  /** XREADGROUP COUNT: entries a read takes at most. @default 256 */
  readCount?: number;
  /** XREADGROUP BLOCK: how long a read waits for new entries. @default 1000 */
  blockMs?: number;
  /**
   * Acknowledged history kept in the stream, by age: an entry that every
   * group of the stream has acknowledged (and none still has pending or
   * unread) is trimmed (XTRIM MINID, once a second) once it is older than
   * this. `false`: never trim (the stream grows until something else trims it).
   * @default 0 (trimmed as soon as every group is done with it)
   */
  keepAckedMs?: number | false;
  /**
   * Payload bytes of sends that may wait in this process for Redis (queued
   * while it is away or loading, or written and not yet answered): past it,
   * send() throws and sendAsync() rejects with RINGPOOL_QUEUE_FULL.
   * @default 67108864 (64 MiB)
   */
  sendBufferBytes?: number;
  /** Most dead letters `<stream>:dead` keeps: each new one past it trims the oldest (XTRIM MAXLEN, exact, in the script that writes it). @default undefined (unbounded) */
  maxDeadLetters?: number;
  /**
   * Keyed sends across processes (issue #29): P streams `{<stream>}:p:<i>`,
   * i = partitionOf(key, P) (FNV-1a of the key's UTF-8 bytes, mod P), each
   * consumed by one live process at a time (a lease with a fencing epoch),
   * so a key's messages run one at a time, in order, across the group; an
   * actor handler may run on the mailbox. Unkeyed sends still go to
   * `<stream>`. An integer from 1 to 1024; every process of the stream, and
   * every `redisProducer`, must give the same (it is stored in Redis, at
   * `{<stream>}:partitions`, and a different one is refused).
   * @default undefined (one stream; keyed sends and actors refused)
   */
  partitions?: number;
  /** A partition's owner keeps it this long without renewing it; then another live process takes it over. @default 5000 */
  ownerLeaseMs?: number;
  /** How often an owner renews its partitions' leases, and looks for partitions to take or give back. At most ownerLeaseMs / 2. @default 1000 */
  ownerRenewMs?: number;
  /**
   * The fleet policy's settings (`stats().source.fleet`,
   * `ringpool_stream_desired_consumers`): clear the group's backlog within
   * `targetLagSeconds`; recommend fewer consumers only once no higher
   * recommendation was made for `scaleDownWindowMs`.
   * @default { targetLagSeconds: 10, scaleDownWindowMs: 300000 }
   */
  fleet?: { targetLagSeconds?: number; scaleDownWindowMs?: number };
}

/**
 * Where a Redis mailbox, or a redisProducer, connects: exactly one of `url`,
 * `cluster` or `client`.
 */
export interface RedisConnectOptions {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS). */
  url?: string;
  /**
   * A Redis Cluster: any of its nodes (CLUSTER SLOTS finds the master of the
   * mailbox's hash slot; every key of a mailbox shares one). A stream
   * without partitions needs a hash tag in its name there (`'{orders}'`).
   */
  cluster?: { nodes: string[] };
  /**
   * An existing node-redis client (createClient()): ringpool makes its own
   * connections as duplicates of it (same options: TLS, auth, ...), and
   * never uses or closes yours.
   */
  client?: unknown;
  /**
   * node-redis client options beside `url` or `cluster`: `socket` (`tls`,
   * `ca`, `cert`, `key`, `connectTimeout`, ...), `username`, `password`,
   * `database`, `RESP`, ... Not `url` or `name`; ringpool sets its own
   * reconnection strategy.
   */
  clientOptions?: Record<string, unknown>;
}

/** `stats().source.partitions` of a partitioned Redis mailbox. */
export interface PartitionStats {
  /** P. */
  count: number;
  /** The partitions this process owns now (reading, or finishing before it gives one back), ascending. */
  owned: number[];
  /** Its fencing epoch of each owned partition, in the order of `owned`. */
  epochs: number[];
  /** Live processes of the group, as this one last saw them. */
  members: number;
  /** Partitions this process took while their owner was alive and gave them back (it joined) plus those it gave back. */
  rebalances: number;
  /** Partitions this process took from an owner whose lease had run out (it died or paused). */
  takeovers: number;
  /** Acknowledgements, retries and dead letters refused because this process no longer owned the partition (ringpool_stream_fenced_total). */
  fenced: number;
  /** Records of a partition no longer owned that this process did not run (its new owner runs them). */
  fencedSkipped: number;
  /** Entries not yet delivered to the group, per partition (-1: unknown), polled once a second. */
  lag: number[];
}

/** `stats(mailbox).source.fleet`: the fleet policy's answer and what it used. */
export interface FleetStats {
  /** Consumer processes the group should have. */
  desired: number;
  /** Why, in words. */
  reason: string;
  /** Entries added to the stream per second (EWMA), or null while unknown. */
  arrivalRate: number | null;
  /** What one consumer process drains per second: measured while it had work waiting, else estimated from handler time; null while unknown. */
  drainRate: number | null;
}

/** `stats(mailbox).source` of a Redis mailbox (also `stats(mailbox).stream`). */
export interface StreamStats {
  kind: 'stream';
  stream: string;
  group: string;
  consumer: string;
  /** Both connections answer. */
  connected: boolean;
  /** Entries of the stream not yet delivered to the group (XINFO GROUPS lag; -1 when Redis cannot tell). */
  lag: number;
  /** Entries delivered to the group and not yet acknowledged, all consumers (XINFO GROUPS pending). */
  pending: number;
  /** Consumers the group has (XINFO GROUPS; -1 when not yet known). */
  consumers: number;
  /** Entries ever added to the stream, as the group sees them (XINFO GROUPS entries-read + lag; -1 when Redis cannot tell): its rate is the arrival rate. */
  entriesAdded: number;
  /**
   * How many consumer processes the group needs (runtime/fleet-policy.ts):
   * the backlog (lag + pending) and the arrival rate against this process's
   * drain rate; also `ringpool_stream_desired_consumers`. Absent until the
   * group was polled once.
   */
  fleet?: FleetStats;
  /**
   * Entries a read returned after the mailbox began to close, left pending in
   * the stream under this consumer (not run here: another consumer claims
   * them after claimIdleMs, or this name's next start reads them); counted in
   * close()'s `left.ready`.
   */
  leftPending: number;
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
  /** Messages waiting in the stream's delayed set (`delayMs`; all senders), as of the mover's last pass (at most a second old). */
  delayed: number;
  /** Until the earliest of them is due (ms), or -1: none. */
  nextDueInMs: number;
  /** Due delayed messages this process moved into the stream. */
  delayedMoved: number;
  /** This process's asks to the mailbox waiting for their reply (ask() across processes). */
  asksOpen: number;
  /** Replies this process read for its asks: settled an ask, or dropped (its ask had timed out or was answered already). */
  repliesReceived: number;
  repliesDropped: number;
  /** Replies this process sent for the asks it ran (results and final errors), confirmed by Redis. */
  repliesSent: number;
  /** A partitioned mailbox's partitions (absent without `partitions`). */
  partitions?: PartitionStats;
}

/** A dead letter of a Redis mailbox: the in-memory fields, plus where it lives. */
export interface StreamDeadLetter extends DeadLetter {
  /** The entry id in `<stream>:dead`. */
  deadEntryId: string;
  /** The entry id it had in the stream. */
  streamId: string;
  /** The consumer that dead-lettered it. */
  consumer: string;
  /**
   * Set when its `<stream>:dead` entry is malformed (written or edited by
   * something else): what is wrong, and every field as text. Such a letter is
   * listed (reason `poison` unless its own is valid, the problems in
   * `lastError`), purged like any other, and redriven only when it has a
   * payload (field `d`).
   */
  damaged?: { problems: string[]; fields: Record<string, string> };
}

/** `rt.deadLetters(mailbox)` for a Redis mailbox. */
export interface StreamDeadLetters extends AsyncDeadLetters {
  /** Dead letters, oldest first (XRANGE of `<stream>:dead`). */
  list(): Promise<StreamDeadLetter[]>;
  /** XADD them back to the stream (attempts start again) and delete them from `<stream>:dead`, in one MULTI. Returns how many (a damaged letter without a payload is left). */
  redrive(filter?: (letter: StreamDeadLetter) => boolean): Promise<number>;
  /** Delete them. Returns how many. */
  purge(filter?: (letter: StreamDeadLetter) => boolean): Promise<number>;
  /** XLEN of `<stream>:dead` when last polled (once a second). */
  readonly size: number;
}
