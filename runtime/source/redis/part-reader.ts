/**
 * Reading the partitions this process owns (main thread), on a connection
 * of its own, for a partitioned Redis mailbox (issue #29).
 *
 * Every read is fenced, in one round trip (one pipeline): WATCH the
 * partitions' epoch keys and this process's guard key; a script compares
 * the epochs with this process's and, if one moved, writes the guard key
 * (and names the partitions); then XREADGROUP inside MULTI/EXEC, which
 * Redis runs only if no watched key was written since the WATCH (a new
 * owner's INCR, or the guard). So a process that lost a partition never
 * takes its new entries into its own pending list, where the new owner
 * would not look. (XREADGROUP inside a script would do the same, but copies
 * every payload into Lua and back: 3 µs a message of Redis's time,
 * measured; WATCH, MGET, then MULTI costs a second round trip.) When a read finds
 * nothing, it waits with a plain XREAD BLOCK on the partitions from the last
 * entry delivered to the group (this process is the only reader of them),
 * at most WAIT_MS so that a partition acquired meanwhile is read soon.
 *
 * Claiming at acquisition (claimAll) is fenced the same way: XAUTOCLAIM of
 * everything pending in the group, from the start of its pending list, so
 * in entry-id order.
 */
import { backoffMs, Entries, groupRow, message, type Connection } from './connection.js';
import { pendingCounts } from './claims.js';
import type { PartitionKeys } from './keys.js';
import type { Partitions } from './partitions.js';
import type { RedisSource } from './source.js';

/** Longest wait for new entries before the partitions read are looked at again. */
const WAIT_MS = 250;

/** KEYS: the guard key, then each partition's epoch key; ARGV: each one's epoch here. Writes the guard when one moved; returns their indexes (from 0). */
const CHECK_LUA = `local moved = {}
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[i - 1] then moved[#moved + 1] = i - 2 end
end
if #moved > 0 then redis.call('SET', KEYS[1], '1', 'PX', '1000') end
return moved`;

/** KEYS: stream, epoch key; ARGV: epoch, group, consumer, cursor, count, min-idle ms. -1 (fenced), or XAUTOCLAIM's reply. */
const CLAIM_LUA = `if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
return redis.call('XAUTOCLAIM', KEYS[1], ARGV[2], ARGV[3], ARGV[6], ARGV[4], 'COUNT', ARGV[5])`;

export class PartReader {
  private loop: Promise<void> | null = null;
  private readonly entries = new Entries();
  /** The last entry id the group delivered of each partition (the XREAD wait starts after it). */
  private readonly last: string[];
  private kicked: (() => void) | null = null;
  /** Written by the read's check when an epoch moved: it aborts the read's transaction (same hash slot as the rest). */
  private readonly guard: string;

  constructor(
    private readonly src: RedisSource,
    private readonly parts: Partitions,
    private readonly keys: PartitionKeys,
    private readonly conn: Connection,
  ) {
    this.last = new Array<string>(parts.count).fill('0-0');
    this.guard = `${keys.tag}:guard:${src.o.consumer}`;
  }

  start(): void {
    this.loop = this.run();
  }

  /** The partitions read changed: a loop waiting for some wakes. */
  kick(): void {
    const k = this.kicked;
    this.kicked = null;
    k?.();
  }

  async stop(): Promise<void> {
    this.kick();
    await this.loop;
    this.loop = null;
  }

  /**
   * Entries of partition `p` pending for another consumer (a read that
   * reached Redis from a process that had lost the partition, with its
   * reply lost: rare, and only ever after the owner's claim at
   * acquisition): claimed once idle for a lease. None: one XPENDING.
   */
  async strays(p: number, epoch: number, leaseMs: number): Promise<void> {
    const src = this.src;
    const summary = (await src.cmd.client.sendCommand(['XPENDING', this.keys.stream(p), src.o.group])) as unknown[];
    const consumers = (summary?.[3] as unknown[][] | null) ?? [];
    if (!consumers.some((row) => String(row[0]) !== src.o.consumer)) return;
    await this.claimAll(p, epoch, leaseMs, false);
  }

  /** Claim every entry pending in the group of partition `p` (idle `minIdleMs`) into the ring, in id order; false when `epoch` is no longer ours. */
  async claimAll(p: number, epoch: number, minIdleMs = 0, learnLast = true): Promise<boolean> {
    const src = this.src;
    const { group, consumer, readCount } = src.o;
    const stream = this.keys.stream(p);
    const c = src.cmd.client;
    const counts = (ids: readonly string[]): Promise<number[]> => pendingCounts(src.o, src.cmd, src.held.size, ids, stream);
    let cursor = '0-0';
    const e = new Entries();
    do {
      const room = Math.max(1, Math.min(readCount, src.held.claimRoom));
      const r = await c.sendCommand(['EVAL', CLAIM_LUA, '2', stream, this.keys.epoch(p), String(epoch), group, consumer, cursor, String(room), String(minIdleMs)], src.cmd.bytes);
      if (r === -1) return false;
      const deleted: string[] = [];
      cursor = e.fromClaim(r, deleted);
      if (deleted.length > 0) src.trimmed(deleted, p, epoch);
      if (e.n > 0) {
        src.claims.claimed += e.n;
        await src.take(e, counts, p, epoch);
      }
      if (!this.parts.holds(p, epoch)) return false;
      if (e.n > 0 && src.held.claimRoom <= 0) await src.held.whenReleased();
    } while (cursor !== '0-0' && src.running);
    if (!learnLast) return true;
    const row = groupRow(await c.sendCommand(['XINFO', 'GROUPS', stream]), group);
    if (row !== null) this.last[p] = String(row['last-delivered-id']);
    return true;
  }

  private async run(): Promise<void> {
    const src = this.src;
    const { group, consumer, readCount, blockMs } = src.o;
    const conn = this.conn;
    let failures = 0;
    /** The partitions (and epochs) of a read in flight: claimed again if it fails. */
    let reading: number[] | null = null;
    let readEpochs: number[] | null = null;
    while (src.running) {
      try {
        const parts = this.parts.reading();
        if (parts.length === 0) {
          await this.idle(WAIT_MS);
          continue;
        }
        const room = src.held.room;
        if (room <= 0) {
          await src.held.whenReleased();
          continue;
        }
        const count = Math.max(1, Math.min(readCount, Math.floor(room / parts.length)));
        const epochKeys = parts.map((p) => this.keys.epoch(p));
        const epochs = parts.map((p) => this.parts.epochs[p]!);
        const streams = parts.map((p) => this.keys.stream(p));
        const c = conn.client;
        const read = ['XREADGROUP', 'GROUP', group, consumer, 'COUNT', String(count), 'STREAMS', ...streams, ...streams.map(() => '>')];
        reading = parts;
        readEpochs = epochs;
        const [, moved, , , exec] = (await Promise.all([
          c.sendCommand(['WATCH', this.guard, ...epochKeys]),
          c.sendCommand(['EVAL', CHECK_LUA, String(epochKeys.length + 1), this.guard, ...epochKeys, ...epochs.map(String)]),
          c.sendCommand(['MULTI']),
          c.sendCommand(read, conn.bytes),
          c.sendCommand(['EXEC'], conn.bytes),
        ])) as [unknown, number[], unknown, unknown, unknown[] | null];
        failures = 0;
        src.healthy();
        for (const i of moved) this.parts.lose(parts[i]!, 'another process took it (its epoch moved on)', epochs[i]);
        if (exec === null) {
          reading = null;
          continue; // an epoch moved: nothing was read; looked at again
        }
        if (exec[0] instanceof Error) throw exec[0]; // NOGROUP (a partition's stream deleted), ...: claimed again below
        reading = null;
        const ours = parts;
        let got = 0;
        for (let i = 0; i < ours.length; i++) {
          const p = ours[i]!;
          const e = this.entries.fromList(listOf(exec[0], streams[i]!, i));
          if (e.n === 0) continue;
          got += e.n;
          this.last[p] = e.ids[e.n - 1]!;
          await src.take(e, null, p, epochs[i]!);
        }
        if (got > 0 || !src.running) continue;
        const wait = ['XREAD', 'COUNT', '1', 'BLOCK', String(Math.min(blockMs, WAIT_MS)), 'STREAMS'];
        for (const p of parts) wait.push(this.keys.stream(p));
        for (const p of parts) wait.push(this.last[p]!);
        await conn.client.sendCommand(wait, conn.bytes);
      } catch (err) {
        if (!src.running) break;
        src.fault(err, `reading partitions: ${message(err)}`);
        // A read that failed may have run in Redis (its reply lost with the connection, or an error beside it):
        // its entries are in this consumer's pending list, where only a claim looks. Claim them again, in id order.
        if (reading !== null) reading.forEach((p, i) => this.parts.reclaim(p, readEpochs![i]!));
        reading = null;
        await this.idle(backoffMs(failures++));
      }
    }
  }

  /** Wait `ms`, or until kicked (the partitions read changed, or stopping). */
  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.kicked = done;
    });
  }
}

/** One stream's entries in an XREADGROUP reply over several streams: RESP3 a map (or object) by name, RESP2 an array of [name, entries]. */
function listOf(reply: unknown, stream: string, i: number): unknown {
  if (reply === null || reply === undefined) return [];
  if (reply instanceof Map) {
    for (const [k, v] of reply) if (String(k) === stream) return v;
    return [];
  }
  if (Array.isArray(reply)) {
    for (const row of reply as unknown[][]) if (String(row?.[0]) === stream) return row[1];
    return (reply as unknown[][])[i]?.[1] ?? [];
  }
  return (reply as Record<string, unknown>)[stream] ?? [];
}

