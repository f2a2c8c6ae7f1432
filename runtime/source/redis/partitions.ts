/**
 * The partitions of a partitioned Redis mailbox, as one process holds them
 * (main thread; issue #29). Each partition is a stream read by the one live
 * process that holds its lease (owners.ts); this file decides and carries out
 * what this process takes, reads and gives back.
 *
 * A partition's life here:
 *   FREE      not ours.
 *   CLAIMING  just acquired at a new epoch: every entry pending in the group
 *             (the last owner's unfinished ones, whoever held them) is
 *             claimed, in entry-id order, and put into the ring first
 *             (their delivery counters are their attempts).
 *   READING   new entries are read (reader in part-reader.ts).
 *   DRAINING  given back (a rebalance): no more reads; once nothing of it is
 *             held here (in the ring, running, waiting to retry, or an
 *             acknowledgement on its way), the lease is let go. Keys of
 *             other partitions never pause.
 * A lease found gone or someone else's (this process paused past it) is
 * lost at once: the fence table stops consumers starting its records, and
 * acknowledgements under the old epoch are refused by Redis (acks.ts).
 *
 * Every `renewMs` one pass: refresh membership, look at every lease
 * (renewing ours), then take and give back as assign.ts decides.
 */
import { ErrorCodes, RingpoolError } from '../../shared/errors.js';
import type { FenceView } from '../../shared/partition.js';
import { now } from '../../shared/clock.js';
import type { PartitionStats } from '../stream.js';
import { assign } from './assign.js';
import { message, type Connection } from './connection.js';
import type { PartitionKeys } from './keys.js';
import type { Lease } from './owners.js';

/** What the partitions ask of Redis (owners.ts; a test's fake). */
export interface LeaseStore {
  members(me: string, join: boolean): Promise<string[]>;
  look(): Promise<Lease[]>;
  acquire(p: number): Promise<{ epoch: number; takeover: boolean }>;
  release(p: number, epoch: number): Promise<void>;
}

export const FREE = 0;
export const CLAIMING = 1;
export const READING = 2;
export const DRAINING = 3;

/** Every this many passes, the partitions read are looked at for entries pending for another consumer (strays()). */
const STRAY_EVERY = 10;

/** What the partitions need from their source. */
export interface PartitionHost {
  readonly running: boolean;
  /** Entries of partition `p` held here, and acknowledgements of it not yet confirmed. */
  heldOf(p: number): number;
  /** Claim the group's pending entries of `p` (in id order) into the ring; false when the epoch moved on meanwhile. */
  claimAll(p: number, epoch: number): Promise<boolean>;
  /** The set of partitions read changed. */
  readingChanged(): void;
  /** Claim what of partition `p` is pending for other consumers, idle for a lease (part-reader.ts strays()). */
  strays(p: number, epoch: number): Promise<void>;
  emitError(err: Error): void;
  fault(err: unknown, doing: string): void;
}

export class Partitions {
  readonly state: Uint8Array;
  readonly epochs: Float64Array;
  private readonly freeSince = new Map<number, number>();
  private members: string[] = [];
  private passing: Promise<void> | null = null;
  private passes = 0;
  /** Partitions this process has owned (its consumer name is in their groups). */
  readonly touched = new Set<number>();
  private readonly draining = new Set<number>();
  /** When each partition given back had nothing left held here (its actor states are passivated from then). */
  private readonly givingSince = new Map<number, number>();
  rebalances = 0;
  takeovers = 0;
  lost = 0;
  lag: number[];

  constructor(
    readonly count: number,
    private readonly me: string,
    private readonly owners: LeaseStore,
    private readonly keys: PartitionKeys,
    private readonly cmd: Pick<Connection, 'client'>,
    private readonly group: string,
    private readonly fence: FenceView,
    private readonly leaseMs: number,
    private readonly renewMs: number,
    private readonly host: PartitionHost,
    /** clock.ts's now(), or a test's. */
    private readonly clock: () => number = now,
  ) {
    this.state = new Uint8Array(count);
    this.epochs = new Float64Array(count);
    this.lag = new Array<number>(count).fill(-1);
  }

  /** Partitions read now. */
  reading(): number[] {
    const out: number[] = [];
    for (let p = 0; p < this.count; p++) if (this.state[p] === READING) out.push(p);
    return out;
  }

  owned(): number[] {
    const out: number[] = [];
    for (let p = 0; p < this.count; p++) if (this.state[p] !== FREE) out.push(p);
    return out;
  }

  /** Ours at `epoch`, and its lease not lapsed here. */
  holds(p: number, epoch: number): boolean {
    return this.state[p] !== FREE && this.epochs[p] === epoch && this.fence.leftMs(p) > 0;
  }

  /** One pass (skipped while one runs). */
  pass(): Promise<void> {
    this.passing ??= this.run().finally(() => {
      this.passing = null;
    });
    return this.passing;
  }

  private async run(): Promise<void> {
    const sentAt = this.clock();
    this.members = await this.owners.members(this.me, true);
    const leases = await this.owners.look();
    const t = this.clock();
    for (let p = 0; p < this.count; p++) {
      const l = leases[p]!;
      if (this.state[p] !== FREE) {
        if (l.mine && l.epoch === this.epochs[p]) this.fence.own(p, l.epoch, sentAt + this.leaseMs);
        else this.lose(p, l.free ? 'its lease ran out before this process renewed it' : 'another process took it');
      }
      // A lease of ours this process has let go of (it lapsed here first): give it back, or nobody could take it.
      if (l.mine && this.state[p] === FREE) await this.owners.release(p, l.epoch);
      if (l.free) {
        if (!this.freeSince.has(p)) this.freeSince.set(p, t);
      } else this.freeSince.delete(p);
    }
    for (const p of this.draining) await this.releaseIfClean(p);
    if (!this.host.running) return;
    const free: number[] = [];
    for (let p = 0; p < this.count; p++) if (leases[p]!.free && this.state[p] === FREE && this.host.heldOf(p) === 0 && this.statesGone(p, t)) free.push(p);
    const d = assign({
      partitions: this.count,
      me: this.me,
      members: this.members,
      owned: this.owned(),
      releasing: this.draining,
      free,
      freeSince: this.freeSince,
      inFlight: (p) => this.host.heldOf(p),
      now: t,
      orphanMs: 2 * this.renewMs,
    });
    for (const p of d.release) this.drain(p);
    for (const p of d.acquire) await this.acquire(p);
    if (++this.passes % STRAY_EVERY === 0) for (const p of this.reading()) await this.host.strays(p, this.epochs[p]!);
  }

  private async acquire(p: number): Promise<void> {
    const sentAt = this.clock();
    const r = await this.owners.acquire(p);
    if (r.epoch < 0) return;
    this.freeSince.delete(p);
    this.touched.add(p);
    this.epochs[p] = r.epoch;
    this.state[p] = CLAIMING;
    this.fence.own(p, r.epoch, sentAt + this.leaseMs);
    if (r.takeover) this.takeovers++;
    else this.rebalances++;
    // Claimed in the background: other partitions' passes go on meanwhile.
    void this.claim(p, r.epoch);
  }

  private async claim(p: number, epoch: number): Promise<void> {
    try {
      const k = this.keys.stream(p);
      try {
        await this.cmd.client.sendCommand(['XGROUP', 'CREATE', k, this.group, '0', 'MKSTREAM']);
      } catch (err) {
        if (!message(err).startsWith('BUSYGROUP')) throw err;
      }
      if (!(await this.host.claimAll(p, epoch))) return;
      if (this.state[p] === CLAIMING && this.epochs[p] === epoch) {
        this.state[p] = READING;
        this.host.readingChanged();
      }
    } catch (err) {
      // Claimed again from the start at the next acquisition: give it back now, the lease would keep it idle.
      this.host.fault(err, `claiming partition ${p}'s pending entries`);
      if (this.state[p] === CLAIMING && this.epochs[p] === epoch) {
        this.lose(p, null);
        await this.owners.release(p, epoch).catch(() => undefined);
      }
    }
  }

  /** Stop reading `p` and give it back once nothing of it is held here (one still being claimed waits for a later pass). */
  private drain(p: number): void {
    if (this.state[p] !== READING || this.draining.has(p)) return;
    this.state[p] = DRAINING;
    this.draining.add(p);
    this.host.readingChanged();
  }

  /**
   * Give `p` back once nothing of it is held here and its keys' actor
   * states are passivated (their hooks hand the state over; a hook still
   * running after the lease is not waited for, as at a retiring loop).
   */
  private async releaseIfClean(p: number): Promise<void> {
    if (this.state[p] !== DRAINING) {
      this.draining.delete(p);
      this.givingSince.delete(p);
      return;
    }
    if (this.host.heldOf(p) > 0) return;
    const t = this.clock();
    const since = this.givingSince.get(p);
    if (since === undefined) {
      this.givingSince.set(p, t);
      this.fence.give(p, true);
    }
    if (this.fence.states(p) > 0 && t - (since ?? t) < this.leaseMs) return;
    const epoch = this.epochs[p]!;
    this.state[p] = FREE;
    this.draining.delete(p);
    this.givingSince.delete(p);
    this.fence.lose(p);
    this.fence.resetStates(p);
    await this.owners.release(p, epoch);
    this.rebalances++;
  }

  /** No actor state of `p` lives here any more (or the count has stayed up for a lease: left by a thread that died with them). */
  private statesGone(p: number, t: number): boolean {
    if (this.fence.states(p) <= 0) return true;
    if (t - (this.freeSince.get(p) ?? t) < this.leaseMs) return false;
    this.fence.resetStates(p);
    return true;
  }

  /** Partition `p` is no longer ours (`why` null: let go here); `epoch`: only if it is still ours at that one (not taken again since). */
  lose(p: number, why: string | null, epoch?: number): void {
    if (this.state[p] === FREE || (epoch !== undefined && this.epochs[p] !== epoch)) return;
    this.state[p] = FREE;
    this.draining.delete(p);
    this.givingSince.delete(p);
    this.fence.lose(p);
    this.host.readingChanged();
    if (why === null) return;
    this.lost++;
    this.host.emitError(
      new RingpoolError(ErrorCodes.FENCED, `partition ${p} (epoch ${this.epochs[p]}) is no longer this process's: ${why}; what it holds of it is not run, and its acknowledgements are refused`, {
        partition: p,
        epoch: this.epochs[p],
      }),
    );
  }

  /** At close: let every partition go at once (no wait for a lease to run out), and leave the members. */
  async releaseAll(): Promise<void> {
    await this.passing?.catch(() => undefined);
    const out: Promise<void>[] = [];
    for (let p = 0; p < this.count; p++) {
      if (this.state[p] === FREE) continue;
      this.state[p] = FREE;
      this.fence.lose(p);
      out.push(this.owners.release(p, this.epochs[p]!));
    }
    this.draining.clear();
    await Promise.all(out);
    await this.owners.members(this.me, false);
  }

  /**
   * Read again from the start of the group's pending list (a read whose
   * reply was lost left its entries in this consumer's pending list, where
   * only a claim looks): claimed again in id order, then read on.
   */
  reclaim(p: number, epoch: number): void {
    if (this.state[p] !== READING || this.epochs[p] !== epoch) return;
    this.state[p] = CLAIMING;
    this.host.readingChanged();
    void this.claim(p, epoch);
  }

  stats(fenced: number, fencedSkipped: number): PartitionStats {
    const owned = this.owned();
    return {
      count: this.count,
      owned,
      epochs: owned.map((p) => this.epochs[p]!),
      members: this.members.length,
      rebalances: this.rebalances,
      takeovers: this.takeovers,
      fenced,
      fencedSkipped,
      lag: this.lag.slice(),
    };
  }
}

/**
 * Store P with the stream (SET NX: the first process or producer wins), then
 * read it back: RINGPOOL_PARTITIONS_MISMATCH when `who` gives another.
 */
export async function agreeOnPartitions(client: { sendCommand(a: string[]): Promise<unknown> }, meta: string, partitions: number, stream: string, who: string): Promise<void> {
  await client.sendCommand(['SET', meta, String(partitions), 'NX']);
  const stored = Number(await client.sendCommand(['GET', meta]));
  if (stored !== partitions) throw mismatch(stream, stored, partitions, who);
}

/** RINGPOOL_PARTITIONS_MISMATCH: `who` gives `partitions` for a stream stored with `stored`. */
export function mismatch(stream: string, stored: number, partitions: number, who: string): RingpoolError {
  return new RingpoolError(
    ErrorCodes.PARTITIONS_MISMATCH,
    `${who} gives partitions ${partitions} for stream '${stream}', but its processes use ${stored} (stored at '{${stream}}:partitions'): keys would go to other partitions than their consumers read; give every process and producer the same partitions`,
    { stream, partitions, stored, option: 'partitions' },
  );
}
