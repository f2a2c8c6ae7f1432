/**
 * One consumer name, one live process (main thread): a Redis mailbox holds
 * the lease key `<stream>:ringpool:consumer:<group>:<consumer>` (SET NX PX),
 * refreshed by the once-a-second poll, which also reads the group's lag and
 * pending count (XINFO GROUPS) and the dead letters' count (XLEN) for
 * stats() and the metrics. A name left by a process that died frees itself
 * within LEASE_MS.
 */
import { ErrorCodes, RingpoolError } from '../../shared/errors.js';
import type { Connection } from './connection.js';
import type { ResolvedRedisSource } from './options.js';

/** How long a consumer name stays taken after its process stops refreshing it. */
export const LEASE_MS = 5_000;

/** Take the name, waiting once for a dead owner's lease to run out; RINGPOOL_SOURCE_CONSUMER_TAKEN when a live one keeps it. */
export async function takeLease(cmd: Connection, o: ResolvedRedisSource, mailbox: string, token: string): Promise<void> {
  const c = cmd.client;
  for (let tries = 0; ; tries++) {
    if ((await c.set(o.leaseKey, token, { NX: true, PX: LEASE_MS })) === 'OK') return;
    const ttl = Number(await c.pTTL(o.leaseKey));
    if (tries > 0) {
      throw new RingpoolError(
        ErrorCodes.SOURCE_CONSUMER_TAKEN,
        `consumer '${o.consumer}' of group '${o.group}' on stream '${o.stream}' is in use by another live process (it refreshes the lease key '${o.leaseKey}'): give each process its own source.redis.consumer`,
        { mailbox, option: 'source.redis.consumer', consumer: o.consumer },
      );
    }
    await new Promise((r) => setTimeout(r, Math.max(50, Math.min(ttl, LEASE_MS)) + 100));
  }
}

/**
 * Let go of the consumer name (close()): a consumer with nothing pending in
 * `streams` is dropped from their group (names of past processes do not
 * pile up; one with entries stays, for a takeover), and its lease deleted.
 */
export async function leaveGroup(cmd: Connection, o: ResolvedRedisSource, streams: readonly string[], token: string): Promise<void> {
  const c = cmd.client;
  await Promise.all(
    streams.map(async (k) => {
      const mine = (await c.sendCommand(['XPENDING', k, o.group, '-', '+', '1', o.consumer])) as unknown[];
      if (mine.length === 0) await c.sendCommand(['XGROUP', 'DELCONSUMER', k, o.group, o.consumer]);
    }),
  );
  if ((await c.get(o.leaseKey)) === token) await c.del(o.leaseKey);
}

export interface Poll {
  /** Someone else held the name when this process refreshed it. */
  lostLease: boolean;
  pending: number | null;
  lag: number | null;
  dead: number | null;
  /** The group's consumers (XINFO GROUPS). */
  consumers: number | null;
  /** Entries the stream ever had, as the group sees them (entries-read + lag, Redis 7), or null when Redis cannot tell. */
  added: number | null;
}

/** Refresh the lease (SET ... GET: the value it replaced says whether it was still ours) and read the figures, in one pipeline. */
export async function poll(cmd: Connection, o: ResolvedRedisSource, token: string): Promise<Poll> {
  // Three commands, one round trip (node-redis pipelines what is sent in one turn), each answered on its own:
  // XINFO fails on a stream that is gone, and the lease must still be read.
  const c = cmd.client;
  const [prev, groups, deadLen] = (
    await Promise.allSettled([
      c.sendCommand(['SET', o.leaseKey, token, 'PX', String(LEASE_MS), 'GET']),
      c.sendCommand(['XINFO', 'GROUPS', o.stream]),
      c.sendCommand(['XLEN', o.deadStream]),
    ])
  ).map((r) => (r.status === 'fulfilled' ? (r.value as unknown) : undefined));
  const out: Poll = { lostLease: typeof prev === 'string' && prev !== token, pending: null, lag: null, dead: typeof deadLen === 'number' ? deadLen : null, consumers: null, added: null };
  if (Array.isArray(groups)) {
    const g = (groups as Array<Record<string, unknown>>).find((x) => x?.name === o.group);
    if (g !== undefined) {
      out.pending = Number(g.pending ?? 0);
      out.lag = typeof g.lag === 'number' ? g.lag : -1;
      out.consumers = Number(g.consumers ?? 0);
      const read = g['entries-read'];
      out.added = typeof read === 'number' && typeof g.lag === 'number' ? read + g.lag : null;
    }
  }
  return out;
}

/** The group's figures from the last poll (-1: unknown): for stats, the metrics and the fleet recommendation. */
export class GroupFigures {
  lag = -1;
  pending = 0;
  /** The group's consumers. */
  consumers = -1;
  /** Entries the stream ever had, as the group sees them (entries-read + lag), or -1 when Redis cannot tell. */
  added = -1;

  apply(h: Poll): void {
    if (h.pending !== null) this.pending = h.pending;
    if (h.lag !== null) this.lag = h.lag;
    if (h.consumers !== null) this.consumers = h.consumers;
    this.added = h.added ?? -1;
  }
}

/** Another process refreshed this consumer name's lease while this one did not: both read as one consumer. */
export function consumerTaken(mailbox: string, consumer: string): RingpoolError {
  return new RingpoolError(ErrorCodes.SOURCE_CONSUMER_TAKEN, `another process took consumer name '${consumer}' while this one did not refresh it: both now read as one consumer`, { mailbox, consumer });
}
