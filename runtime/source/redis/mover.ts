/**
 * The mover of a Redis mailbox's delayed messages (main thread; issue #30):
 * runs MOVE_LUA (delayed.ts) when the earliest due time it knows comes, and
 * at least every second. It knows due times from the last pass's answer and
 * from the wake channel (a send that made a new earliest, from any process).
 * Passes never overlap; a pass that moved a full batch runs again at once.
 * Every consumer process of the stream runs one: the script is atomic, so
 * two movers never move a message twice.
 */
import { createHash } from 'node:crypto';
import type { Client } from './connection.js';
import { MOVE_LUA, type DelayedKeys } from './delayed.js';

const MOVE_SHA = createHash('sha1').update(MOVE_LUA).digest('hex');
/** Messages a pass moves at most (more: another pass at once). */
export const MOVE_BATCH = 1_000;
/** The longest a mover sleeps: a send whose wake was missed (a reconnection) waits this much longer at most. */
export const MOVE_EVERY_MS = 1_000;

/** Test hook: called with the pass's script sent and not yet answered (a test kills the process there). */
let hook: (() => void) | null = null;
export function setMoverHook(h: (() => void) | null): void {
  hook = h;
}

export class Mover {
  /** Messages waiting in the delayed set (the last pass's count). */
  size = 0;
  /** When the earliest of them is due (local ms, clock()), or -1: none. */
  nextDueAt = -1;
  /** Messages this process moved into the stream. */
  moved = 0;
  private timer: NodeJS.Timeout | undefined;
  /** When the timer fires (local ms), or Infinity. */
  private armedAt = Infinity;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private sub: Client = null;

  constructor(
    private readonly keys: DelayedKeys,
    private readonly client: () => Client,
    private readonly fault: (err: unknown, doing: string) => void,
    private readonly clock: () => number = Date.now,
    /** A key another process's delayed message started to hold (the held channel). */
    private readonly onHeld: (key: string) => void = () => undefined,
  ) {}

  /** Listen on the wake channel (its own connection), then a first pass. */
  async start(name: string): Promise<void> {
    const sub = this.client().duplicate({ name });
    sub.on('error', () => undefined); // reconnects on its own; a missed wake costs at most MOVE_EVERY_MS
    this.sub = sub;
    await sub.connect();
    await sub.subscribe(this.keys.wake, (ms: string) => this.arm(Number(ms)));
    await sub.subscribe(this.keys.held, (key: string) => this.onHeld(key));
    this.arm(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.armedAt = Infinity;
    const sub = this.sub;
    this.sub = null;
    if (sub !== null) await sub.quit().catch(() => sub.destroy());
    await this.running;
  }

  /** Pass in `ms` (or sooner, if armed sooner). */
  arm(ms: number): void {
    if (this.stopped || !(ms >= 0)) return;
    const at = this.clock() + ms;
    if (at >= this.armedAt) return;
    clearTimeout(this.timer);
    this.armedAt = at;
    this.timer = setTimeout(() => {
      this.armedAt = Infinity;
      this.run();
    }, ms);
    this.timer.unref();
  }

  private run(): void {
    if (this.running !== null) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((err: unknown) => {
        this.fault(err, 'moving due delayed messages');
        this.arm(MOVE_EVERY_MS);
      })
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.run();
        }
      });
  }

  /** Move what is due, a batch at a time; then sleep until the next due time (a second at most). */
  private async pass(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const c = this.client();
      const args = ['2', this.keys.set, this.keys.holds, String(MOVE_BATCH)];
      const sent = c.sendCommand(['EVALSHA', MOVE_SHA, ...args]).catch((err: unknown) => {
        if (!String((err as Error)?.message).startsWith('NOSCRIPT')) throw err;
        return c.sendCommand(['EVAL', MOVE_LUA, ...args]);
      });
      hook?.();
      const [moved, wait, size] = (await sent) as number[];
      this.moved += moved!;
      this.size = size!;
      this.nextDueAt = wait! < 0 ? -1 : this.clock() + wait!;
      if (moved! < MOVE_BATCH) {
        this.arm(wait! < 0 ? MOVE_EVERY_MS : Math.min(wait!, MOVE_EVERY_MS));
        return;
      }
    }
  }
}
