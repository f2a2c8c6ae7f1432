/**
 * What a Redis mailbox tells Redis about finished entries (main thread),
 * batched: the XACKs of a turn as one command; each dead letter as one
 * script that XADDs it to `<stream>:dead` and only then XACKs its entry
 * (atomic, like a MULTI, and unlike a MULTI it stops at a failed XADD, so an
 * entry is never acknowledged without its letter); and a failed attempt's
 * count as XCLAIM ... JUSTID RETRYCOUNT (the entry stays pending, its
 * delivery counter says how many attempts ended, and its idle time starts
 * again). Each reply is read on its own: what failed (a LOADING reply while
 * Redis loads its data, a lost connection) is tried again after a backoff,
 * and only that: XACK is idempotent; a dead letter whose reply was lost with
 * the connection may be written twice, never lost. Until
 * Redis confirms them, their entries count as ours (`unconfirmed`), so a
 * read of our pending list meanwhile does not run them again.
 */
import { backoffMs, isNoGroup, type Connection } from './connection.js';
import { deadEntryFields, type DeadFields } from './dead.js';

/**
 * KEYS: stream, dead stream; ARGV: group, entry id, maxDeadLetters (0: no cap), then the dead entry's fields.
 * XACK fails quietly (NOGROUP: the group is gone, the letter is kept).
 */
const DEAD_LETTER_LUA = `local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
if ARGV[3] ~= '0' then redis.call('XTRIM', KEYS[2], 'MAXLEN', ARGV[3]) end
redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[2])
return id`;
import type { ResolvedRedisSource } from './options.js';
import { partOf, unqualify } from './held.js';
import type { PartitionKeys } from './keys.js';
import { FENCED_ACKS_LUA, FENCED_LUA } from './owners.js';
import type { KeyOrder } from './key-order.js';

const CHUNK = 1024;

export class Acks {
  private acks: string[] = [];
  private retries: string[] = [];
  private retryCounts: number[] = [];
  private dead: DeadFields[] = [];
  private flushing: Promise<void> | null = null;
  private failures = 0;
  /** Entries acknowledged or dead-lettered here whose command Redis has not answered yet. */
  private readonly sent = new Set<string>();
  /** Of those, per partition. */
  private readonly sentPer: Int32Array;
  /** XACKs Redis confirmed. */
  acked = 0;
  /** Acknowledgements, retry counts and dead letters of partitions refused because another process took the partition (its epoch moved on). */
  fenced = 0;
  deadLettered = 0;
  stopped = false;

  constructor(
    private readonly o: ResolvedRedisSource,
    private readonly cmd: Connection,
    /** A batch failed (reported once per outage by the caller). */
    private readonly onFail: (err: unknown) => void,
    /** A partitioned mailbox's keys (null: one stream). */
    private readonly keys: PartitionKeys | null = null,
    /** Writes of partition `p` refused: this process no longer owns it. */
    private readonly onFenced: (p: number, n: number) => void = () => undefined,
    /** A partitioned mailbox's keyed entries: each key's writes in its order (key-order.ts). */
    private readonly order: KeyOrder | null = null,
  ) {
    this.sentPer = new Int32Array(o.partitions);
  }

  get queued(): number {
    return this.acks.length + this.dead.length;
  }

  /** `q`: a qualified id (held.ts). */
  ack(q: string): void {
    this.addSent(q);
    if (this.order !== null && this.order.finish(q, false, () => this.queue(q, null))) return;
    this.queue(q, null);
  }

  private queue(q: string, f: DeadFields | null): void {
    if (f === null) this.acks.push(q);
    else this.dead.push(f);
    this.schedule();
  }

  /** Entries of partition `p` finished here and not yet confirmed by Redis (a partition is given back only without any). */
  unconfirmedOf(p: number): number {
    return this.sentPer[p] ?? 0;
  }

  private addSent(q: string): void {
    if (this.sent.has(q)) return;
    this.sent.add(q);
    if (this.sentPer.length === 0) return; // no partitions: plain ids, nothing to parse
    const p = partOf(q);
    if (p >= 0) this.sentPer[p]!++;
  }

  private deleteSent(q: string): void {
    this.order?.confirmed(q);
    if (!this.sent.delete(q) || this.sentPer.length === 0) return;
    const p = partOf(q);
    if (p >= 0) this.sentPer[p]!--;
  }

  /** Finished here, not yet confirmed by Redis. */
  unconfirmed(sid: string): boolean {
    return this.sent.has(sid);
  }

  /** The entry failed `ended` attempts and will run again here. */
  retry(sid: string, ended: number): void {
    this.retries.push(sid);
    this.retryCounts.push(ended);
    this.schedule();
  }

  deadLetter(f: DeadFields): void {
    this.addSent(f.q);
    if (this.order !== null && this.order.finish(f.q, true, () => this.queue(f.q, f))) return;
    this.queue(f.q, f);
  }

  /** Resolves once everything queued has been written (or, when Redis stays down, after `timeoutMs`). */
  async flushed(timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    while ((this.flushing !== null || this.queued > 0) && Date.now() < end) {
      this.schedule();
      await Promise.race([this.flushing, new Promise((r) => setTimeout(r, Math.max(1, end - Date.now())))]);
    }
  }

  private schedule(): void {
    if (this.flushing !== null) return;
    this.flushing = this.flush().finally(() => {
      this.flushing = null;
      if (this.queued + this.retries.length > 0 && !this.stopped) this.schedule();
    });
  }

  private async flush(): Promise<void> {
    await new Promise((r) => setImmediate(r)); // this turn's outcomes join the batch
    while (this.queued + this.retries.length > 0) {
      const acks = this.acks;
      const retries = this.retries;
      const counts = this.retryCounts;
      const dead = this.dead;
      this.acks = [];
      this.retries = [];
      this.retryCounts = [];
      this.dead = [];
      const failed = await this.write(acks, retries, counts, dead);
      if (failed === null) {
        this.failures = 0;
        continue;
      }
      // Put back what failed, in front, and wait before the next try (the retry counts are a hint: dropped).
      this.acks = failed.acks.concat(this.acks);
      this.dead = failed.dead.concat(this.dead);
      this.onFail(failed.err);
      if (this.stopped) return;
      await new Promise((r) => setTimeout(r, backoffMs(this.failures++)));
    }
  }

  /**
   * One pipeline: XACKs (1,024 ids a command), retry counts, dead-letter
   * scripts, each reply read on its own (a LOADING reply for one fails only
   * that one: a letter written is never written again because another
   * failed). Null, or what failed.
   */
  private async write(acks: string[], retries: string[], counts: number[], dead: DeadFields[]): Promise<{ err: unknown; acks: string[]; dead: DeadFields[] } | null> {
    const c = this.cmd.client;
    const { stream, group, consumer } = this.o;
    // The mailbox's own stream: XACK; a partition's: the fenced script, one per partition and epoch.
    const own: string[] = [];
    const parts = new Map<string, string[]>();
    for (const q of acks) {
      const at = q.indexOf('@');
      if (at < 0) own.push(q);
      else {
        const k = q.slice(at + 1);
        const list = parts.get(k);
        if (list === undefined) parts.set(k, [q]);
        else list.push(q);
      }
    }
    // The ids of each command, in the order of their replies.
    const groups: string[][] = [];
    const ackChunks: Promise<unknown>[] = [];
    for (let i = 0; i < own.length; i += CHUNK) {
      const ids = own.slice(i, i + CHUNK);
      groups.push(ids);
      ackChunks.push(c.sendCommand(['XACK', stream, group, ...ids]));
    }
    // Every partition's XACKs in one fenced script (a chunk of up to 1,024 ids a group).
    const partGroups: string[][] = [];
    for (const list of parts.values()) for (let i = 0; i < list.length; i += CHUNK) partGroups.push(list.slice(i, i + CHUNK));
    if (partGroups.length > 0) {
      const all = this.fencedAcks(partGroups);
      partGroups.forEach((qs, g) => {
        groups.push(qs);
        ackChunks.push(all.then((r) => r[g]));
      });
    }
    const letters: Promise<unknown>[] = [];
    for (const f of dead) {
      if (f.partition < 0) letters.push(c.sendCommand(['EVAL', DEAD_LETTER_LUA, '2', stream, this.o.deadStream, group, f.streamId, String(this.o.maxDeadLetters), ...deadEntryFields(this.o, f)]));
      else letters.push(this.fencedOp(f.partition, f.epoch, 'dead', [f.streamId, String(this.o.maxDeadLetters), ...deadEntryFields(this.o, f)], 1));
    }
    // A hint for a later takeover: not tried again.
    for (let i = 0; i < retries.length; i++) {
      const { sid, p, epoch } = unqualify(retries[i]!);
      if (p < 0) c.sendCommand(['XCLAIM', stream, group, consumer, '0', sid, 'JUSTID', 'RETRYCOUNT', String(counts[i])]).catch(() => undefined);
      else this.fencedOp(p, epoch, 'retry', [consumer, sid, String(counts[i])], 1).catch(() => undefined);
    }
    const [ackReplies, deadReplies] = await Promise.all([Promise.allSettled(ackChunks), Promise.allSettled(letters)]);
    const r = sortReplies(groups, ackReplies, dead, deadReplies);
    this.acked += r.acked;
    this.deadLettered += r.deadDone.length;
    for (const q of r.ackDone) this.deleteSent(q);
    for (const f of r.deadDone) this.deleteSent(f.q);
    return r.err === null ? null : { err: r.err, acks: r.ackAgain, dead: r.deadAgain };
  }

  /**
   * The XACKs of several partitions' groups of ids (each of one partition
   * and epoch) in one script: per group, the count acknowledged, or 0 when
   * its epoch is no longer this process's (refused: counted in `fenced`).
   */
  private async fencedAcks(groups: string[][]): Promise<number[]> {
    const k = this.keys!;
    const keys: string[] = [];
    const argv: string[] = [this.o.group];
    for (const qs of groups) {
      const { p, epoch } = unqualify(qs[0]!);
      keys.push(k.stream(p), k.epoch(p));
      argv.push(String(epoch), String(qs.length));
      for (const q of qs) argv.push(q.slice(0, q.indexOf('@')));
    }
    const r = (await this.cmd.client.sendCommand(['EVAL', FENCED_ACKS_LUA, String(keys.length), ...keys, ...argv])) as number[];
    return r.map((n, g) => {
      if (n !== -1) return n;
      const qs = groups[g]!;
      this.fenced += qs.length;
      this.onFenced(partOf(qs[0]!), qs.length);
      return 0;
    });
  }

  /**
   * One write to partition `p` through the fenced script: refused (-1) when
   * its epoch is no longer `epoch`; then counted (`n` writes), and answered
   * as 0 so that nothing is tried again.
   */
  private async fencedOp(p: number, epoch: number, op: 'retry' | 'dead', args: (string | Buffer)[], n: number): Promise<unknown> {
    const k = this.keys!;
    const r = await this.cmd.client.sendCommand(['EVAL', FENCED_LUA, '3', k.stream(p), k.epoch(p), k.dead, String(epoch), this.o.group, op, ...args]);
    if (r !== -1) return r;
    this.fenced += n;
    this.onFenced(p, n);
    return 0;
  }
}

/**
 * What one write's replies say, each read on its own: the XACK commands
 * (`groups`: the ids of each) and dead letters that went through, and those to
 * write again. NOGROUP counts as through (the stream or group is gone, a
 * Redis restarted without persistence: so are the entries to acknowledge).
 */
export function sortReplies<L>(
  groups: readonly (readonly string[])[],
  ackReplies: readonly PromiseSettledResult<unknown>[],
  dead: readonly L[],
  deadReplies: readonly PromiseSettledResult<unknown>[],
): { err: unknown; acked: number; ackDone: string[]; ackAgain: string[]; deadDone: L[]; deadAgain: L[] } {
  const failed = (r: PromiseSettledResult<unknown>): r is PromiseRejectedResult => r.status === 'rejected' && !isNoGroup(r.reason);
  let err: unknown = null;
  let acked = 0;
  const ackDone: string[] = [];
  const ackAgain: string[] = [];
  ackReplies.forEach((r, k) => {
    const ids = groups[k]!;
    if (r.status === 'fulfilled' && typeof r.value === 'number') acked += r.value;
    if (failed(r)) {
      err ??= r.reason;
      ackAgain.push(...ids);
    } else ackDone.push(...ids);
  });
  const deadDone: L[] = [];
  const deadAgain: L[] = [];
  deadReplies.forEach((r, k) => {
    if (failed(r)) {
      err ??= r.reason;
      deadAgain.push(dead[k]!);
    } else deadDone.push(dead[k]!);
  });
  return { err, acked, ackDone, ackAgain, deadDone, deadAgain };
}
