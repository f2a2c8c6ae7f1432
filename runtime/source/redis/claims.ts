/**
 * Taking over from consumers that died, and not looking dead ourselves
 * (main thread), for a Redis mailbox:
 *
 * - the takeover pass (every claimIdleMs/4, at most every second): XAUTOCLAIM
 *   entries idle for claimIdleMs, following its cursor through the group's
 *   pending list, as many as this process has room for. Redis >= 7 drops
 *   entries trimmed from the stream and names them: each is reported. The
 *   claimed entries' delivery counters (XPENDING, one pipeline) are their
 *   attempts.
 * - the touch pass (every claimIdleMs/3): XCLAIM ... JUSTID of the entries
 *   this process holds (waiting for ring room, in its ring, running, or
 *   waiting to retry), so
 *   their idle time starts again and nobody takes them over while they are
 *   ours. JUSTID leaves the delivery counter alone.
 */
import { Entries, type Connection } from './connection.js';
import type { HeldEntries } from './held.js';
import type { ResolvedRedisSource } from './options.js';

const CHUNK = 1024;

export interface ClaimSink {
  /** Put claimed entries into the ring at the attempts `counts` gives (their delivery counters). */
  take(e: Entries, counts: (ids: readonly string[]) => Promise<number[]>): Promise<void>;
  /** Entries Redis had dropped from the pending list because they were trimmed from the stream. */
  trimmed(ids: readonly string[]): void;
}

export class Claims {
  private cursor = '0-0';
  private readonly entries = new Entries();
  private readonly deleted: string[] = [];
  private running: Promise<void> | null = null;
  /** Counted after the claim (which added one); one acknowledged meanwhile by a slow owner reads 0 and is skipped. */
  private readonly counts = (ids: readonly string[]): Promise<number[]> => pendingCounts(this.o, this.cmd, this.held.size, ids);
  /** Entries taken over from other consumers. */
  claimed = 0;

  constructor(
    private readonly o: ResolvedRedisSource,
    private readonly cmd: Connection,
    private readonly held: HeldEntries,
    private readonly sink: ClaimSink,
  ) {}

  get takeoverEveryMs(): number {
    return Math.max(10, Math.min(Math.floor(this.o.claimIdleMs / 4), 1_000));
  }

  get touchEveryMs(): number {
    return Math.max(10, Math.floor(this.o.claimIdleMs / 3));
  }

  /** One takeover pass (skipped while one runs). Errors go to the caller. */
  takeover(): Promise<void> {
    this.running ??= this.pass().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  private async pass(): Promise<void> {
    const { stream, group, consumer, claimIdleMs, readCount } = this.o;
    const c = this.cmd.client;
    // Up to a few pages a pass, while there is room: a pass never holds more than the process may.
    for (let page = 0; page < 8; page++) {
      const room = this.held.claimRoom;
      if (room <= 0) return;
      const reply = await c.sendCommand(['XAUTOCLAIM', stream, group, consumer, String(claimIdleMs), this.cursor, 'COUNT', String(Math.min(readCount, room))], this.cmd.bytes);
      this.deleted.length = 0;
      this.cursor = this.entries.fromClaim(reply, this.deleted);
      if (this.deleted.length > 0) this.sink.trimmed(this.deleted);
      const e = this.entries;
      if (e.n > 0) {
        this.claimed += e.n;
        await this.sink.take(e, this.counts);
      }
      if (this.cursor === '0-0') return;
    }
  }

  /** One touch pass over what this process holds. */
  async touch(): Promise<void> {
    if (this.held.size === 0) return;
    const { stream, group, consumer } = this.o;
    const minIdle = String(Math.floor(this.touchEveryMs / 2));
    const ids = this.held.sids();
    const p = this.cmd.client.multi();
    for (let i = 0; i < ids.length; i += CHUNK) p.addCommand(['XCLAIM', stream, group, consumer, minIdle, ...ids.slice(i, i + CHUNK), 'JUSTID']);
    await p.execAsPipeline();
  }
}

/**
 * Delivery counters of entries just read from, or claimed into, this
 * consumer's pending list (ids ascending): one XPENDING over their range,
 * which holds them, the entries held here and those whose XACK is on its way
 * (a margin of 1,024 covers these). 0: no longer
 * pending for us (acknowledged, or taken over meanwhile): skipped.
 */
export async function pendingCounts(o: ResolvedRedisSource, cmd: Connection, held: number, ids: readonly string[], stream = o.stream): Promise<number[]> {
  const rows = (await cmd.client.sendCommand(['XPENDING', stream, o.group, ids[0]!, ids[ids.length - 1]!, String(ids.length + held + 1_024), o.consumer])) as unknown[][];
  const count = new Map<string, number>();
  for (const r of rows) count.set(String(r[0]), Number(r[3]));
  return ids.map((id) => count.get(id) ?? 0);
}
