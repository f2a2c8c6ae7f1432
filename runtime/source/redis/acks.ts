/**
 * What a Redis mailbox tells Redis about finished entries (main thread),
 * batched: the XACKs of a turn as one command; each dead letter as one
 * script that XADDs it to `<stream>:dead` and only then XACKs its entry
 * (atomic, like a MULTI, and unlike a MULTI it stops at a failed XADD, so an
 * entry is never acknowledged without its letter); and a failed attempt's
 * count as XCLAIM ... JUSTID RETRYCOUNT (the entry stays pending, its
 * delivery counter says how many attempts ended, and its idle time starts
 * again). A batch that fails is tried again after a backoff: XACK is
 * idempotent; a dead letter may then be written twice, never lost. Until
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
  /** XACKs Redis confirmed. */
  acked = 0;
  deadLettered = 0;
  stopped = false;

  constructor(
    private readonly o: ResolvedRedisSource,
    private readonly cmd: Connection,
    /** A batch failed (reported once per outage by the caller). */
    private readonly onFail: (err: unknown) => void,
  ) {}

  get queued(): number {
    return this.acks.length + this.dead.length;
  }

  ack(sid: string): void {
    this.acks.push(sid);
    this.sent.add(sid);
    this.schedule();
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
    this.dead.push(f);
    this.sent.add(f.streamId);
    this.schedule();
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
      if (failed.acks) this.acks = acks.concat(this.acks);
      if (failed.dead) this.dead = dead.concat(this.dead);
      this.onFail(failed.err);
      if (this.stopped) return;
      await new Promise((r) => setTimeout(r, backoffMs(this.failures++)));
    }
  }

  /** One pipeline of XACKs and retry counts, one MULTI of dead letters: null, or what failed. */
  private async write(acks: string[], retries: string[], counts: number[], dead: DeadFields[]): Promise<{ err: unknown; acks: boolean; dead: boolean } | null> {
    const c = this.cmd.client;
    const { stream, group, consumer } = this.o;
    const writes: Promise<unknown>[] = [];
    if (acks.length > 0) {
      const p = c.multi();
      for (let i = 0; i < acks.length; i += CHUNK) p.addCommand(['XACK', stream, group, ...acks.slice(i, i + CHUNK)]);
      writes.push(p.execAsPipeline());
    } else writes.push(Promise.resolve([]));
    if (dead.length > 0) {
      const m = c.multi();
      for (const f of dead) m.addCommand(['EVAL', DEAD_LETTER_LUA, '2', stream, this.o.deadStream, group, f.streamId, String(this.o.maxDeadLetters), ...deadEntryFields(this.o, f)]);
      writes.push(m.execAsPipeline());
    } else writes.push(Promise.resolve([]));
    if (retries.length > 0) {
      const r = c.multi();
      for (let i = 0; i < retries.length; i++) r.addCommand(['XCLAIM', stream, group, consumer, '0', retries[i]!, 'JUSTID', 'RETRYCOUNT', String(counts[i])]);
      r.execAsPipeline().catch(() => undefined); // a hint for a later takeover: not tried again
    }
    const [ackReply, deadReply] = (await Promise.allSettled(writes)) as [PromiseSettledResult<unknown>, PromiseSettledResult<unknown>];
    // NOGROUP: the stream or group is gone (a Redis restarted without persistence): so are the entries to acknowledge.
    const failed = (r: PromiseSettledResult<unknown>): boolean => r.status === 'rejected' && !isNoGroup(r.reason);
    if (ackReply.status === 'fulfilled') {
      for (const n of ackReply.value as unknown[]) if (typeof n === 'number') this.acked += n;
    }
    if (!failed(ackReply)) for (const sid of acks) this.sent.delete(sid);
    if (!failed(deadReply)) {
      this.deadLettered += dead.length;
      for (const f of dead) this.sent.delete(f.streamId);
    }
    if (!failed(ackReply) && !failed(deadReply)) return null;
    const err = failed(ackReply) ? (ackReply as PromiseRejectedResult).reason : (deadReply as PromiseRejectedResult).reason;
    return { err, acks: failed(ackReply), dead: failed(deadReply) };
  }
}
