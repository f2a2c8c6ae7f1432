/**
 * Parking on a thread shared by mailboxes (issue #28). The thread's loops
 * (its lanes, one per mailbox it serves) run side by side on its event loop;
 * a loop that finds its ring empty waits on a promise, not on a futex, so
 * the others go on. Only when every loop of the thread waits does the thread
 * itself park, on its own wake word of the pool board (pool-board.ts), which
 * a producer to any of its lanes notifies. A busy loop asks, after each
 * batch, whether another loop of the thread has work (othersWaiting), and
 * then gives the event loop a turn: a quiet mailbox beside a saturating one
 * waits one batch, not the busy loop's whole time slice.
 */
import { handoffReady } from '../../runtime/shared/handoff.js';
import { faultHook } from '../../runtime/shared/faults.js';
import type { PoolBoard } from '../../runtime/shared/pool-board.js';
import { yieldToLoop, YIELD_EVERY_MS, type ParkerParts, type Parks } from '../loop/park.js';

/** With some loops waiting beside others that run, the waiting ones are looked at this often (a busy loop also looks after each batch). */
const TICK_MS = 1;
/** Waiting loops holding keyed records for their turn get a look this often (the hold lasts HOLD_MS, 50 ms). */
const BUSY_LOOK_MS = 10;
/** Every waiting loop's ring and status are looked at this often (a safety net: every publish sets the bit). */
const FULL_LOOK_MS = 100;
/** How long the thread polls its lanes before it parks. */
const SPIN_MS = 0.05;
/**
 * The thread blocks this long at most before its event loop gets a turn (control calls, timers, new lanes).
 * A loop parks only with none of its handlers in flight (loop.ts, concurrent.ts), so nothing of a
 * waiting loop needs the event loop sooner.
 */
const PARK_MS = 10;

/** One loop of the thread, as its parker sees it. */
interface Lane {
  parts: ParkerParts;
  /** Its bit on the board (the mailbox's lane). */
  bit: number;
  /** Set while it waits: resolving it lets the loop go on. */
  resume: (() => void) | null;
}

export class ThreadParker {
  private readonly waiting = new Set<Lane>();
  /** The waiting loops by their board bit (a mailbox has one loop on a thread at most), and the mask of those bits. */
  private readonly byBit: (Lane | undefined)[] = [];
  private readonly waitMask: Int32Array;
  /** When the waiting loops were last looked at for held keyed records, and for work a bit does not show. */
  private lastBusyLook = 0;
  private lastFullLook = 0;
  /** Loops of the thread not waiting in park(). */
  private active = 0;
  private driving = false;
  private lastYield = performance.now();
  /** While some loops wait and others run: a look at the waiting ones every TICK_MS (the running ones may be awaiting I/O, not running batches). */
  private ticker: NodeJS.Timeout | null = null;

  constructor(
    private readonly board: PoolBoard,
    /** This thread's index in the pool. */
    private readonly t: number,
    /** performance.now(), or a test's clock: when the waiting loops' looks are due. */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.waitMask = new Int32Array(board.lanes >>> 5);
  }

  /** A loop starts on this thread: its parker. `bit` is its mailbox's lane on the board. */
  add(parts: ParkerParts, bit: number): Parks & { remove(): void } {
    const lane: Lane = { parts, bit, resume: null };
    this.active++;
    return {
      park: () => this.park(lane),
      remove: () => {
        if (this.waiting.has(lane)) this.unwait(lane);
        else this.active--;
        if (this.active === 0 && this.waiting.size > 0) void this.drive();
        this.schedule();
      },
    };
  }

  /** A busy loop, after its batch: another loop of the thread can run (the caller then yields). */
  othersWaiting(): boolean {
    if (this.active > 1) return true;
    return this.waiting.size > 0 && this.wakeReady() > 0;
  }

  private async park(lane: Lane): Promise<void> {
    const p = lane.parts;
    if (!p.running()) return;
    p.pace.parkedInWindow = true;
    p.ring.reclaim();
    // Clear the bit, then look once more: a publish after the clear sets it again (a stop too).
    this.board.clearReady(lane.bit);
    if (hasWork(p) || !p.running()) return;
    if (performance.now() - p.pace.lastYield > YIELD_EVERY_MS) {
      await yieldToLoop();
      p.pace.lastYield = performance.now();
      if (!p.running() || hasWork(p)) return;
    }
    await new Promise<void>((resolve) => {
      lane.resume = resolve;
      this.waiting.add(lane);
      this.byBit[lane.bit] = lane;
      this.waitMask[lane.bit >>> 5]! |= 1 << (lane.bit & 31);
      this.active--;
      if (this.active === 0) void this.drive();
      this.schedule();
    });
    p.pace.lastYield = performance.now();
  }

  private unwait(lane: Lane): void {
    this.waiting.delete(lane);
    this.byBit[lane.bit] = undefined;
    this.waitMask[lane.bit >>> 5]! &= ~(1 << (lane.bit & 31));
    const r = lane.resume;
    lane.resume = null;
    r?.();
  }

  private wake(lane: Lane): void {
    this.unwait(lane);
    this.active++;
    this.schedule();
  }

  /** Run the ticker exactly while some loops wait and others run. */
  private schedule(): void {
    const want = this.waiting.size > 0 && this.active > 0;
    if (want && this.ticker === null) {
      this.ticker = setInterval(() => {
        this.wakeReady();
      }, TICK_MS);
    } else if (!want && this.ticker !== null) {
      clearInterval(this.ticker);
      this.ticker = null;
    }
  }

  /**
   * Resume the waiting loops whose bit is set: the board's words under this
   * thread's mask of waiting bits, one load per 32 mailboxes. Then, when a
   * hand-off came for this thread, those with a record in their queue; every
   * 10 ms those that want a look (keyed records held for their turn); every
   * 100 ms those whose ring has work or that were stopped, a safety net (every
   * publish sets the bit). The looks go by the clock, so a busy neighbour that
   * keeps the thread from ever timing out does not starve them.
   */
  private wakeReady(looks = true): number {
    const board = this.board;
    const mask = this.waitMask;
    const byBit = this.byBit;
    let n = 0;
    for (let w = 0; w < mask.length; w++) {
      const m = mask[w]!;
      if (m === 0) continue;
      for (let bits = board.wordOf(w) & m; bits !== 0; bits &= bits - 1) {
        const lane = byBit[(w << 5) + 31 - Math.clz32(bits & -bits)];
        if (lane !== undefined) {
          this.wake(lane);
          n++;
        }
      }
    }
    if (this.waiting.size === 0 || !looks) return n;
    const handoff = board.takeHandoff(this.t);
    const now = this.now();
    const busyLook = now - this.lastBusyLook >= BUSY_LOOK_MS;
    const fullLook = now - this.lastFullLook >= FULL_LOOK_MS;
    if (!handoff && !busyLook && !fullLook) return n;
    if (busyLook) this.lastBusyLook = now;
    if (fullLook) this.lastFullLook = now;
    for (const lane of [...this.waiting]) {
      const p = lane.parts;
      if ((handoff && handoffReady(p.keys, p.c)) || (busyLook && p.busy()) || (fullLook && (hasWork(p) || !p.running()))) {
        this.wake(lane);
        n++;
      }
    }
    return n;
  }

  /** Every loop waits: park the thread until a producer marks one of its lanes. */
  private async drive(): Promise<void> {
    if (this.driving) return;
    this.driving = true;
    const board = this.board;
    const t = this.t;
    try {
      while (this.active === 0 && this.waiting.size > 0) {
        // Under a stream of sends the next record is microseconds away: look a little before parking.
        const spinUntil = performance.now() + SPIN_MS;
        let found = false;
        // The bits alone while spinning (no clock read, nothing allocated); the clock's looks every 16th turn.
        for (let k = 1; !found; k++) {
          found = this.wakeReady((k & 15) === 0) > 0;
          if ((k & 15) === 0 && performance.now() > spinUntil) break;
        }
        if (found) break;
        if (performance.now() - this.lastYield > YIELD_EVERY_MS) {
          await this.yield();
          continue;
        }
        const seen = board.announce(t);
        if (this.wakeReady() > 0) {
          board.leave(t);
          break;
        }
        // Nothing of the thread waits on its event loop: block in the futex (a wake-up costs the futex alone).
        board.wait(t, seen, PARK_MS);
        board.leave(t);
        if (faultHook !== null) faultHook('woken', 0);
        // Woken for none of its lanes: the main thread wants its event loop (a new lane, a stop, a probe), or a timeout.
        if (this.wakeReady() === 0) await this.yield();
      }
    } finally {
      this.driving = false;
    }
  }

  private async yield(): Promise<void> {
    await yieldToLoop();
    this.lastYield = performance.now();
  }
}

function hasWork(p: ParkerParts): boolean {
  return p.ring.hasReady() || handoffReady(p.keys, p.c);
}
