/**
 * The concurrent mode of a consumer loop (concurrency > 1): async handlers
 * side by side, each acked as it finishes, the lease following the oldest
 * one still running so the watchdog still sees a hung handler.
 */
import type { Gate } from './gate.js';
import { FLAG_ASK, FLAG_KEYED, FLAG_SUSPECT, SLOT_REVOKED } from '../../runtime/shared/layout.js';
import { H_END_TO_END, H_PROCESSING, H_QUEUE_WAIT, blockOffset, observe, type HistogramWriter } from '../../runtime/shared/histogram.js';
import type { Ring } from '../../runtime/shared/ring.js';
import type { SlotView } from '../../runtime/shared/slot.js';
import type { MessageContext } from '../context.js';
import { isThenable } from './actors.js';
import type { KeyRouter } from './handoff.js';
import type { Invoker } from './invoke.js';
import type { Outbound } from './outbound.js';
import { sleep, type Pace, type Parks } from './park.js';
import type { LoopTally } from './tally.js';

const origin = performance.timeOrigin;

interface Running {
  unit: number;
  started: number;
  done: boolean;
  keySlot: number;
  flags: number;
  /** Its ctx (null until invoked, or when decoding threw): its durable sends are awaited before its ack. */
  ctx: MessageContext | null;
}

/** What the concurrent mode is given: the loop's parts, none of them the loop. */
export interface ConcurrentDeps {
  /** The mailbox's start gate (a rate limit, a pause): claims take their starts from it. */
  gate: Gate;
  ring: Ring;
  slot: SlotView;
  router: KeyRouter;
  invoker: Invoker;
  out: Outbound;
  tally: LoopTally;
  hw: HistogramWriter;
  pace: Pace;
  parker: Parks;
  /** Whether the loop still runs (a handler finishing after a stop reclaims nothing). */
  running: () => boolean;
}

export class Concurrent {
  /** Handlers running now (also in the slot's INFLIGHT word: whom a crash can be blamed on). */
  inflight = 0;
  /** A failed ack found the slot REVOKED, or a reply was refused: the loop must end now. */
  revoked = false;
  private readonly running: Running[] = [];
  private runningHead = 0;
  private onCompletion: (() => void) | null = null;
  private completed: Promise<void> | null = null;
  private finishedCount = 0;

  constructor(private readonly d: ConcurrentDeps) {}

  /**
   * One step: start handlers while fewer than `conc` run, else wait for one
   * to finish. Returns true when the loop must end now (revoked).
   */
  async step(conc: number, out: Int32Array): Promise<boolean> {
    const d = this.d;
    const router = d.router;
    if (this.revoked) return true;
    const room = conc - this.inflight;
    if (room <= 0) {
      await this.completion();
      return this.revoked;
    }
    const allow = d.gate.take(Math.min(room, out.length));
    if (allow === 0) {
      // Held back (the rate limit, a pause): messages stay in the ring. Handlers running go on meanwhile.
      if (this.inflight > 0) await Promise.race([this.completion(), d.gate.wait(true)]);
      else await d.gate.wait(false);
      return this.revoked;
    }
    const n = router.take(out, allow);
    d.gate.refund(allow - n);
    if (n === 0 && router.took) {
      await d.pace.yieldIfDue();
      return this.revoked;
    }
    if (n === 0 && router.stalledN > 0) {
      await Promise.race([this.completion(), sleep(1)]);
      return this.revoked;
    }
    if (n === 0) {
      if (this.inflight > 0) {
        // Handlers are waiting on I/O: look again when one finishes, or in 2 ms.
        await Promise.race([this.completion(), new Promise((r) => setTimeout(r, 2))]);
      } else {
        await d.parker.park();
      }
      return this.revoked;
    }
    const claimedAt = performance.now();
    const record = d.hw.refresh();
    for (let i = 0; i < n; i++) {
      const unit = out[i]!;
      if ((d.ring.flags(unit) & FLAG_SUSPECT) !== 0) {
        // Back from a crash while several handlers ran: run it alone, so if
        // it is the one that kills the thread, the blame lands on it.
        while (this.inflight > 0) await this.completion();
        if (this.revoked) return true;
        this.startOne(unit, claimedAt, record);
        while (this.inflight > 0) await this.completion();
      } else if (this.startOne(unit, claimedAt, record) && i < n - 1) {
        // An async handler that finished at once (no await inside) acks in a
        // promise reaction: give it that microtask before the next handler
        // starts, so a next one that kills the thread does not take an
        // already finished message down with it (it would run again).
        await undefined;
      }
      if (this.revoked) return true;
    }
    // Sync handlers finish inside startOne: give the event loop (comlink, timers) its turn.
    await d.pace.yieldIfDue();
    return this.revoked;
  }

  /** Start one handler; true when it returned a promise (it finishes, and acks, in a reaction). */
  private startOne(unit: number, claimedAt: number, record: boolean): boolean {
    const d = this.d;
    const { ring, slot } = d;
    const flags = ring.flags(unit);
    if (!d.router.isTurn(unit, flags)) {
      d.router.hold(unit);
      d.gate.unstarted();
      return false;
    }
    const started = performance.now();
    const entry: Running = { unit, started, done: false, keySlot: (flags & FLAG_KEYED) !== 0 ? ring.keySlot(unit) : -1, flags, ctx: null };
    this.running.push(entry);
    if (this.running.length - this.runningHead === 1) this.setLease(entry);
    const sentAt = record ? ring.sentAt(unit) : 0;
    const hw = d.hw;
    if (record) observe(hw.f64, blockOffset(slot.c, H_QUEUE_WAIT), hw.bounds, hw.n, Math.max(0, (claimedAt - (ring.readyAt(unit) - origin)) / 1000));
    this.inflight++;
    slot.setInflight(this.inflight);
    let result: unknown;
    try {
      const ctx = (entry.ctx = d.invoker.context(unit, started));
      result = d.invoker.invoke(unit, flags, ctx, entry.keySlot);
    } catch (err) {
      this.finishOne(entry, sentAt, record, true, err, undefined);
      return false;
    }
    if (isThenable(result)) {
      // Promise.resolve: a thenable that calls back twice, or throws, still finishes exactly once.
      Promise.resolve(result).then(
        (value) => this.finishOne(entry, sentAt, record, false, undefined, value),
        (err: unknown) => this.finishOne(entry, sentAt, record, true, err, undefined),
      );
      return true;
    }
    this.finishOne(entry, sentAt, record, false, undefined, result);
    return false;
  }

  private finishOne(entry: Running, sentAt: number, record: boolean, threw: boolean, err: unknown, value: unknown): void {
    const d = this.d;
    const { ring } = d;
    let dropped = false;
    if (!threw && (entry.flags & FLAG_ASK) !== 0) {
      try {
        // False: this thread is being terminated; the record runs again elsewhere and that run replies.
        dropped = !d.out.reply(ring.id(entry.unit), value);
        if (dropped) this.revoked = true;
      } catch (e) {
        threw = true;
        err = e;
      }
    }
    // Chained work: this handler's ctx.send() to a Redis mailbox is in Redis before its message counts as acked (waited for without blocking the others).
    const chained = entry.ctx === null ? 0 : d.out.streams.flush(entry.ctx);
    if (chained !== 0 && !dropped && !threw) {
      d.out.streams.wait(chained, d.out.leaseMs - (performance.now() - entry.started)).then((e) => this.settle(entry, sentAt, record, false, e !== undefined, e));
      return;
    }
    this.settle(entry, sentAt, record, dropped, threw, err);
  }

  /** The rest of a handler's end: its durable sends on disk, then its ack or nack, its figures, the lease. */
  private settle(entry: Running, sentAt: number, record: boolean, dropped: boolean, threw: boolean, err: unknown): void {
    const d = this.d;
    const { ring, slot } = d;
    const t = performance.now();
    // Chained work: this handler's ctx.send() to a durable mailbox is on disk before its message counts as acked.
    const marks = entry.ctx?.marks ?? null;
    if (!dropped && !threw && marks !== null) {
      const e = d.out.awaitDurable(marks);
      if (e !== undefined) {
        threw = true;
        err = e;
      }
    }
    if (dropped) {
      // leave the record to the dispatcher
    } else if (!threw) {
      if (d.router.ack(entry.unit, entry.keySlot)) d.tally.countAck();
      else if (slot.status() === SLOT_REVOKED) this.revoked = true;
    } else {
      d.tally.nack(entry.unit, err);
    }
    if (record) {
      const hw = d.hw;
      observe(hw.f64, blockOffset(slot.c, H_PROCESSING), hw.bounds, hw.n, (t - entry.started) / 1000);
      if (!threw) observe(hw.f64, blockOffset(slot.c, H_END_TO_END), hw.bounds, hw.n, Math.max(0, (origin + t - sentAt) / 1000));
    }
    d.tally.observeHandler(t - entry.started);
    d.gate.done(t - entry.started, !threw && !dropped);
    this.inflight--;
    slot.setInflight(this.inflight);
    entry.done = true;
    // Free ring space as records finish, not only when the thread runs dry.
    if ((++this.finishedCount & 15) === 0 && !this.revoked) ring.reclaim();
    // The lease follows the oldest handler still running.
    const q = this.running;
    while (this.runningHead < q.length && q[this.runningHead]!.done) this.runningHead++;
    if (this.runningHead === q.length) {
      q.length = 0;
      this.runningHead = 0;
      slot.clearCurrent();
      if (!this.revoked && d.running()) ring.reclaim();
    } else {
      this.setLease(q[this.runningHead]!);
      if (this.runningHead > 64) {
        q.splice(0, this.runningHead);
        this.runningHead = 0;
      }
    }
    const w = this.onCompletion;
    if (w !== null) {
      this.onCompletion = null;
      this.completed = null;
      w();
    }
  }

  private setLease(entry: Running): void {
    this.d.slot.running(entry.unit, origin + entry.started);
  }

  /** Resolves when the next running handler finishes (one promise shared by every waiter). */
  completion(): Promise<void> {
    if (this.completed === null) this.completed = new Promise<void>((resolve) => (this.onCompletion = resolve));
    return this.completed;
  }
}
