/**
 * The keys a sender must send through SEND_LUA because a delayed message
 * may hold them (main thread; delayed.ts). A keyed send whose key holds
 * nothing is a plain XADD (a script costs Redis ~6 µs a call against ~1 µs),
 * so a sender keeps, per key that may be held:
 * - its own delayed keyed sends not yet answered by Redis (added when queued:
 *   a later send of the key from this process always goes behind them);
 * - holds made by other processes, learnt from the held channel (a mailbox
 *   listens on it; a send racing with another process's delayed send has no
 *   order with it anyway);
 * and forgets a key only once Redis says it holds nothing, asked (HMGET)
 * after every one of its own delayed sends of it was answered.
 */
import type { Client } from './connection.js';

/** While keys may be held, ask Redis this often which still are. */
export const HOLDS_REFRESH_MS = 250;

export class KeyHolds {
  /** Key -> its delayed sends from here not yet answered by Redis. */
  private readonly keys = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private asking = false;

  constructor(
    /** The holds hash (delayed.ts). */
    private readonly hash: string,
    private readonly client: () => Promise<Client>,
  ) {}

  get size(): number {
    return this.keys.size;
  }

  /** A keyed send of `key` must go through the script. */
  may(key: string): boolean {
    return this.keys.size > 0 && this.keys.has(key);
  }

  /** A delayed send of `key` is queued here. */
  sending(key: string): void {
    this.keys.set(key, (this.keys.get(key) ?? 0) + 1);
    this.arm();
  }

  /** Redis answered (or failed) a delayed send of `key`. */
  answered(key: string): void {
    const n = this.keys.get(key);
    if (n !== undefined && n > 0) this.keys.set(key, n - 1);
  }

  /** Another process holds `key` (the held channel). */
  learn(key: string): void {
    if (!this.keys.has(key)) this.keys.set(key, 0);
    this.arm();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.refresh();
    }, HOLDS_REFRESH_MS);
    this.timer.unref();
  }

  /** Forget the keys Redis holds nothing for (and none of whose delayed sends from here is unanswered). */
  private async refresh(): Promise<void> {
    if (this.asking) return;
    this.asking = true;
    try {
      const idle = [...this.keys].filter(([, n]) => n === 0).map(([k]) => k);
      for (let i = 0; i < idle.length; i += 1_000) {
        const part = idle.slice(i, i + 1_000);
        const c = await this.client();
        const held = (await c.sendCommand(['HMGET', this.hash, ...part])) as unknown[];
        part.forEach((k, j) => {
          if ((held[j] === null || held[j] === undefined) && this.keys.get(k) === 0) this.keys.delete(k);
        });
      }
    } catch {
      // Redis away: ask again later (the keys stay, their sends go through the script)
    } finally {
      this.asking = false;
      if (this.keys.size > 0) this.arm();
    }
  }
}
