/**
 * The partitioned side of a Redis mailbox (main thread; issue #29): what a
 * RedisSource adds when `partitions` is set. It builds the leases
 * (owners.ts), the partitions' life (partitions.ts), their reader
 * (part-reader.ts) and the fence table its consumers read
 * (runtime/shared/partition.ts), and routes keyed sends to their partition.
 */
import { createFence, FenceView, partitionOf, type FenceRef } from '../../shared/partition.js';
import type { PartitionStats } from '../stream.js';
import { Connection } from './connection.js';
import { partOf, unqualify } from './held.js';
import { partitionKeys, type PartitionKeys } from './keys.js';
import { Owners } from './owners.js';
import { PartReader } from './part-reader.js';
import { Partitions } from './partitions.js';
import type { RedisSource } from './source.js';
import { groupRow } from './connection.js';

export class Partitioned {
  readonly keys: PartitionKeys;
  readonly fenceRef: FenceRef;
  readonly fence: FenceView;
  readonly owners: Owners;
  readonly parts: Partitions;
  readonly reader: PartReader;
  readonly conn: Connection;
  /** Records of lost partitions dropped here, not run (their new owner runs them). */
  skipped = 0;

  constructor(
    private readonly src: RedisSource,
    token: string,
    onChange: (up: boolean, err: Error | null) => void,
  ) {
    const o = src.o;
    this.keys = partitionKeys(o.stream, o.group, o.partitions);
    this.fenceRef = createFence(o.partitions);
    this.fence = new FenceView(this.fenceRef);
    this.conn = new Connection(o.target, o.stream, `ringpool:${o.consumer}:parts`, onChange);
    this.owners = new Owners(src.cmd, this.keys, o.partitions, token, o.ownerLeaseMs);
    this.parts = new Partitions(o.partitions, o.consumer, this.owners, this.keys, src.cmd, o.group, this.fence, o.ownerLeaseMs, o.ownerRenewMs, {
      get running() {
        return src.running;
      },
      heldOf: (p) => src.held.perPartition[p]! + src.acks.unconfirmedOf(p),
      claimAll: (p, epoch) => this.reader.claimAll(p, epoch),
      readingChanged: () => this.reader.kick(),
      strays: (p, epoch) => this.reader.strays(p, epoch, o.ownerLeaseMs),
      emitError: (err) => src.emitError(err),
      fault: (err, doing) => src.fault(err, doing),
    });
    this.reader = new PartReader(src, this.parts, this.keys, this.conn);
  }

  /** The stream a send with `key` goes to. */
  streamOf(key: string): string {
    return this.keys.stream(partitionOf(key, this.src.o.partitions));
  }

  /**
   * A record of a partition failed or was skipped by its consumer: when this
   * process no longer holds that partition at the epoch it read it under,
   * drop it here (its new owner runs it) and say so. A lease that lapsed
   * here while Redis may still show it ours is let go, so that the
   * partition is claimed again, with what it had pending, at a new epoch.
   */
  fenced(localId: number): boolean {
    const q = this.src.held.sid(localId);
    if (q === undefined || partOf(q) < 0) return false;
    const { p, epoch } = unqualify(q);
    if (this.parts.holds(p, epoch)) return false;
    if (this.parts.state[p] !== 0 && this.parts.epochs[p] === epoch) {
      this.parts.lose(p, 'its lease lapsed here before this process renewed it', epoch);
      this.owners.release(p, epoch).catch(() => undefined);
    }
    this.src.held.release(localId);
    this.src.order?.drop(q);
    this.skipped++;
    return true;
  }

  /** Each owned partition's lag (XINFO GROUPS, one pipeline), for stats and the metrics. */
  async pollLag(): Promise<void> {
    const owned = this.parts.owned();
    const c = this.src.cmd.client;
    const replies = await Promise.allSettled(owned.map((p) => c.sendCommand(['XINFO', 'GROUPS', this.keys.stream(p)])));
    const lag = this.parts.lag;
    lag.fill(-1);
    replies.forEach((r, i) => {
      if (r.status !== 'fulfilled') return;
      const g = groupRow(r.value, this.src.o.group);
      if (g !== null) lag[owned[i]!] = typeof g.lag === 'number' ? g.lag : -1;
    });
  }

  stats(fenced: number): PartitionStats {
    return this.parts.stats(fenced, this.skipped);
  }
}
