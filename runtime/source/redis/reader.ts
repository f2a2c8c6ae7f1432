/**
 * The read loop of a Redis mailbox (main thread), on its own connection
 * (XREADGROUP BLOCK would hold up every other command on a shared one):
 *
 *   1. this consumer's own pending list, from ID 0, page by page: entries a
 *      process of this name read before and did not finish (their delivery
 *      counters, from XPENDING, are their attempts);
 *   2. then new entries (`>`), COUNT up to readCount and never more than the
 *      process has room for, BLOCK blockMs.
 *
 * After a failed read (the connection dropped, the group is gone) it backs
 * off and starts again at 1: a read whose reply was lost left its entries in
 * our pending list, and they are found there (the ones still held are
 * skipped). Stopping unblocks a waiting read with CLIENT UNBLOCK, so close()
 * does not wait out blockMs.
 */
import { backoffMs, Entries, isNoGroup, type Connection } from './connection.js';
import { pendingCounts } from './claims.js';
import type { RedisSource } from './source.js';

export class Reader {
  private loop: Promise<void> | null = null;
  private readonly entries = new Entries();
  /** Delivery counters of entries read from our own pending list (a read added one). */
  private readonly counts = (ids: readonly string[]): Promise<number[]> => pendingCounts(this.src.o, this.src.cmd, this.src.held.size, ids);

  constructor(private readonly src: RedisSource) {}

  start(): void {
    this.loop = this.run();
  }

  /**
   * End the loop. A read blocked in Redis is unblocked from the other
   * connection: found by its name in CLIENT LIST (its id changes with each
   * reconnection, and restarts from 1 on a restarted Redis).
   */
  async stop(cmd: Connection, consumer: string): Promise<void> {
    if (this.loop === null) return;
    if (cmd.up) {
      try {
        const list = String(await cmd.client.sendCommand(['CLIENT', 'LIST', 'TYPE', 'normal']));
        const name = `name=ringpool:${consumer}:read `;
        for (const line of list.split('\n')) {
          const id = line.includes(name) ? /(?:^|\s)id=(\d+)/.exec(line)?.[1] : undefined;
          if (id !== undefined) await cmd.client.sendCommand(['CLIENT', 'UNBLOCK', id]);
        }
      } catch {
        // Redis went away: the read fails on its own, or stop()'s deadline drops the connection.
      }
    }
    await this.loop;
    this.loop = null;
  }

  private async run(): Promise<void> {
    const src = this.src;
    const { stream, group, consumer, readCount, blockMs } = src.o;
    const conn = src.readConn;
    let from = '0';
    let failures = 0;
    while (src.running) {
      try {
        const room = src.held.room;
        if (room <= 0) {
          await src.held.whenReleased();
          continue;
        }
        const count = String(Math.min(readCount, room));
        const args = from === '>'
          ? ['XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'BLOCK', String(blockMs), 'STREAMS', stream, '>']
          : ['XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', stream, from];
        const reply = await conn.client.sendCommand(args, conn.bytes);
        failures = 0;
        src.healthy();
        const e = this.entries.fromRead(reply);
        if (from === '>') {
          if (e.n > 0) await src.take(e, null);
          continue;
        }
        if (e.n === 0) {
          from = '>';
          continue;
        }
        from = e.ids[e.n - 1]!;
        await src.take(e, this.counts);
      } catch (err) {
        if (!src.running) break;
        if (isNoGroup(err)) await src.groupGone(err).catch((e: unknown) => src.fault(e, 'recreating the group'));
        else src.fault(err, 'reading the stream');
        from = '0';
        await new Promise((r) => setTimeout(r, backoffMs(failures++)));
      }
    }
  }
}
