/**
 * What a mailbox holds outside its ring (main thread): the timer heap of
 * retries and delayMs sends, the pending queue of messages going back in
 * (retries due, redeliveries, keyed turns, redrives) while the ring has no
 * room, and the keyed messages held for their key's turn (key-turns.ts keeps
 * them; they are counted here). It is the one writer of HELD_UNITS_WORD:
 * every producer counts those units as used, so freed room goes to them
 * first. It knows no mailbox: a ring, the key table, a clock and a callback.
 */
import { HELD_UNITS_WORD, KEY_WORDS, K_SENT, keySlotOf } from '../shared/layout.js';
import type { Ring } from '../shared/ring.js';
import type { HeldMessage } from '../held.js';
import { TimerHeap, timerDelay } from '../timer-heap.js';

export interface BacklogDeps {
  /** The mailbox's ring: HELD_UNITS_WORD, and enqueued counts for redrives. */
  ring: Ring;
  /** The same ring for putting held messages back: it does not count the held units (they are the ones going in). */
  republish: Ring;
  /** The key table: a redriven keyed message takes a new seq; a republished one is checked against its key's turn. */
  keys: Int32Array;
  /** ms since the epoch (clock.ts's now(), or a test's). */
  clock: () => number;
  /** Pending messages found no room: flush() again at the next sign of freed space. */
  onNeedsRoom: () => void;
}

export class Backlog {
  private readonly heap = new TimerHeap();
  private heapTimer: NodeJS.Timeout | null = null;
  private heapTimerAt = 0;
  private stopped = false;
  /** Ready to go back into the ring, waiting for room. */
  private pending: HeldMessage[] = [];
  /** Ring units of the pending messages. */
  private pendingUnits = 0;
  /** Keyed messages held for their key's turn (or for an owner), and their units. */
  blockedCount = 0;
  private blockedUnits = 0;

  constructor(private readonly d: BacklogDeps) {}

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

  /** A keyed message is held for its turn: its units count as used. */
  hold(held: HeldMessage): void {
    this.blockedCount++;
    this.blockedUnits += held.units;
    this.syncHeldUnits();
  }

  /** A keyed message held for its turn is let go (it is pended, or handed on). */
  unhold(held: HeldMessage): void {
    this.blockedCount--;
    this.blockedUnits -= held.units;
    this.syncHeldUnits();
  }

  /** Publish the units held outside the ring to every producer (this file is the word's one writer). */
  private syncHeldUnits(): void {
    Atomics.store(this.d.ring.i32, HELD_UNITS_WORD, this.blockedUnits + this.pendingUnits);
  }

  /** Hold `held` until `delayMs` from now, then publish it. */
  holdDelayed(held: HeldMessage, delayMs: number): void {
    held.dueAt = this.d.clock() + delayMs;
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
    const keys = this.d.keys;
    for (const h of held) {
      if (h.key !== null) {
        h.keySlot = keySlotOf(h.key);
        h.keySeq = Atomics.add(keys, h.keySlot * KEY_WORDS + K_SENT, 1);
      }
    }
    this.d.ring.countEnqueued(held.length);
    for (const h of held) this.pend(h);
    this.flush();
  }

  private armHeapTimer(): void {
    const top = this.heap.peek();
    if (top === undefined || this.stopped) return;
    if (this.heapTimer !== null && this.heapTimerAt <= top.dueAt) return;
    if (this.heapTimer !== null) clearTimeout(this.heapTimer);
    this.heapTimerAt = top.dueAt;
    // A delay past setTimeout's limit is waited for in steps (releaseDue re-arms for what is not due yet).
    this.heapTimer = setTimeout(() => {
      this.heapTimer = null;
      this.releaseDue();
    }, timerDelay(top.dueAt, this.d.clock()));
    this.heapTimer.unref();
  }

  /** Held messages waiting for ring room (ready), and those due later (delayed or retrying): looked at, not taken (inspect.ts). */
  waitingMessages(): Iterable<HeldMessage> {
    return this.pending;
  }
  delayedMessages(): Iterable<HeldMessage> {
    return this.heap.values();
  }

  /** A delayed or retrying message made due now (the console's promote): false when none has that id. */
  promote(id: number): boolean {
    const found = this.heap.remove((m) => m.id === id);
    if (found.length === 0) return false;
    for (const m of found) {
      m.dueAt = this.d.clock();
      this.heap.push(m);
    }
    this.releaseDue();
    return true;
  }

  /** What is due by now goes to the pending queue, then into the ring as room allows (the timer's work; a test calls it). */
  releaseDue(): void {
    const t = this.d.clock();
    for (let top = this.heap.peek(); top !== undefined && top.dueAt <= t; top = this.heap.peek()) {
      this.pend(this.heap.pop()!);
    }
    this.flush();
    this.armHeapTimer();
  }

  /**
   * Put held messages back into the ring, oldest first, while there is room.
   * What is left waiting counts as used space for every producer (with the
   * held keyed messages, in HELD_UNITS_WORD): freed room goes to retries and
   * redeliveries first, never to fresh sends that would starve them.
   */
  flush(): void {
    if (this.pending.length === 0) return;
    const t = this.d.clock();
    const ring = this.d.republish;
    const keys = this.d.keys;
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
    if (this.pending.length > 0) this.d.onNeedsRoom();
  }

  /** Queue a held message to go back into the ring (flush); its units count as used meanwhile. */
  pend(held: HeldMessage): void {
    this.pending.push(held);
    this.pendingUnits += held.units;
    this.syncHeldUnits();
  }

  /** The tick's safety net: what waits for room, a timer that should be armed. */
  tick(): void {
    if (this.pending.length > 0) this.flush();
    if (this.heap.size > 0 && this.heapTimer === null) this.armHeapTimer();
  }

  /** Stop the timer (the mailbox is stopping): what it held stays as leftovers. */
  stop(): void {
    this.stopped = true;
    if (this.heapTimer !== null) clearTimeout(this.heapTimer);
    this.heapTimer = null;
  }
}
