/**
 * Messages waiting outside the ring (main thread): the timer heap of retries
 * and delayMs sends, and the pending queue of messages going back in
 * (retries due, redeliveries, keyed turns, redrives) while the ring has no
 * room. Their units count as used for every producer (HELD_UNITS_WORD), so
 * freed room goes to them first.
 */
import { now } from '../shared/clock.js';
import { HELD_UNITS_WORD, KEY_WORDS, K_SENT, keySlotOf } from '../shared/layout.js';
import type { HeldMessage } from '../held.js';
import { TimerHeap, timerDelay } from '../timer-heap.js';
import type { Mailbox } from './index.js';

export class Delays {
  private readonly heap = new TimerHeap();
  private heapTimer: NodeJS.Timeout | null = null;
  private heapTimerAt = 0;
  /** Ready to go back into the ring, waiting for room. */
  private pending: HeldMessage[] = [];
  /** Ring units of the pending messages: counted as used in HELD_UNITS_WORD (with the held keyed messages). */
  pendingUnits = 0;

  constructor(private readonly m: Mailbox) {}

  /** Waiting for a retry backoff or a delayMs. */
  get delayedCount(): number {
    return this.heap.size;
  }

  /** Waiting for room in the ring. */
  get pendingCount(): number {
    return this.pending.length;
  }

  /** When the oldest message waiting for room became ready (undefined: none waits). */
  oldestPendingAt(t: number): number | undefined {
    return this.pending.length > 0 ? this.pending[0]!.dueAt || t : undefined;
  }

  /** Publish the units held outside the ring (pending here, keyed turns in keyed.ts) to every producer. */
  syncHeldUnits(): void {
    Atomics.store(this.m.ring.i32, HELD_UNITS_WORD, this.m.keyed.heldUnits + this.pendingUnits);
  }

  /** Hold `held` until `delayMs` from now, then publish it. */
  holdDelayed(held: HeldMessage, delayMs: number): void {
    held.dueAt = now() + delayMs;
    this.schedule(held);
  }

  /** Hold `held` until its dueAt. */
  schedule(held: HeldMessage): void {
    this.heap.push(held);
    this.armHeapTimer();
  }

  /** Dead letters sent again: accepted anew, at the end of their keys' order. */
  redrive(held: HeldMessage[]): void {
    if (held.length === 0) return;
    const keys = this.m.keyed.table;
    for (const h of held) {
      if (h.key !== null) {
        h.keySlot = keySlotOf(h.key);
        h.keySeq = Atomics.add(keys, h.keySlot * KEY_WORDS + K_SENT, 1);
      }
    }
    this.m.ring.countEnqueued(held.length);
    for (const h of held) this.pend(h);
    this.flushPending();
  }

  private armHeapTimer(): void {
    const top = this.heap.peek();
    if (top === undefined || this.m.stopped) return;
    if (this.heapTimer !== null && this.heapTimerAt <= top.dueAt) return;
    if (this.heapTimer !== null) clearTimeout(this.heapTimer);
    this.heapTimerAt = top.dueAt;
    // A delay past setTimeout's limit is waited for in steps (releaseDue re-arms for what is not due yet).
    this.heapTimer = setTimeout(() => {
      this.heapTimer = null;
      this.releaseDue();
    }, timerDelay(top.dueAt, now()));
    this.heapTimer.unref();
  }

  private releaseDue(): void {
    const t = now();
    for (let top = this.heap.peek(); top !== undefined && top.dueAt <= t; top = this.heap.peek()) {
      this.pend(this.heap.pop()!);
    }
    this.flushPending();
    this.armHeapTimer();
  }

  /**
   * Put held messages back into the ring, oldest first, while there is room.
   * What is left waiting counts as used space for every producer (with the
   * held keyed messages, in HELD_UNITS_WORD): freed room goes to retries and
   * redeliveries first, never to fresh sends that would starve them.
   */
  flushPending(): void {
    if (this.pending.length === 0) return;
    const t = now();
    const ring = this.m.republish;
    const keys = this.m.keyed.table;
    let i = 0;
    let freed = 0;
    for (; i < this.pending.length; i++) {
      const h = this.pending[i]!;
      if (!h.publishTo(ring, t, keys)) break;
      freed += h.units;
    }
    if (i > 0) {
      this.pending.splice(0, i);
      this.pendingUnits -= freed;
      this.syncHeldUnits();
    }
    if (this.pending.length > 0) this.m.intake.armSpaceWatch();
  }

  /** Queue a held message to go back into the ring (flushPending); its units count as used meanwhile. */
  pend(held: HeldMessage): void {
    this.pending.push(held);
    this.pendingUnits += held.units;
    this.syncHeldUnits();
  }

  /** The tick's safety net: what waits for room, a timer that should be armed. */
  tick(): void {
    if (this.pending.length > 0) this.flushPending();
    if (this.heap.size > 0 && this.heapTimer === null) this.armHeapTimer();
  }

  /** Stop the timer (the mailbox is stopping): what it held stays as leftovers. */
  stop(): void {
    if (this.heapTimer !== null) clearTimeout(this.heapTimer);
    this.heapTimer = null;
  }
}
