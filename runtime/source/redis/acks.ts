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
    const ackChunks: Promise<unknown>[] = [];
    for (let i = 0; i < acks.length; i += CHUNK) ackChunks.push(c.sendCommand(['XACK', stream, group, ...acks.slice(i, i + CHUNK)]));
    const letters: Promise<unknown>[] = [];
    for (const f of dead) letters.push(c.sendCommand(['EVAL', DEAD_LETTER_LUA, '2', stream, this.o.deadStream, group, f.streamId, String(this.o.maxDeadLetters), ...deadEntryFields(this.o, f)]));
    // A hint for a later takeover: not tried again.
    for (let i = 0; i < retries.length; i++) c.sendCommand(['XCLAIM', stream, group, consumer, '0', retries[i]!, 'JUSTID', 'RETRYCOUNT', String(counts[i])]).catch(() => undefined);
    const [ackReplies, deadReplies] = await Promise.all([Promise.allSettled(ackChunks), Promise.allSettled(letters)]);
    const r = sortReplies(acks, ackReplies, CHUNK, dead, deadReplies);
    this.acked += r.acked;
    this.deadLettered += r.deadDone.length;
    for (const sid of r.ackDone) this.sent.delete(sid);
    for (const f of r.deadDone) this.sent.delete(f.streamId);
    return r.err === null ? null : { err: r.err, acks: r.ackAgain, dead: r.deadAgain };
  }
}

/**
 * What one write's replies say, each read on its own: the XACK chunks
 * (`chunk` ids a command) and dead letters that went through, and those to
 * write again. NOGROUP counts as through (the stream or group is gone, a
 * Redis restarted without persistence: so are the entries to acknowledge).
 */
export function sortReplies<L>(
  acks: readonly string[],
  ackReplies: readonly PromiseSettledResult<unknown>[],
  chunk: number,
  dead: readonly L[],
  deadReplies: readonly PromiseSettledResult<unknown>[],
): { err: unknown; acked: number; ackDone: string[]; ackAgain: string[]; deadDone: L[]; deadAgain: L[] } {
  const failed = (r: PromiseSettledResult<unknown>): r is PromiseRejectedResult => r.status === 'rejected' && !isNoGroup(r.reason);
  let err: unknown = null;
  let acked = 0;
  const ackDone: string[] = [];
  const ackAgain: string[] = [];
  ackReplies.forEach((r, k) => {
    const ids = acks.slice(k * chunk, (k + 1) * chunk);
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
