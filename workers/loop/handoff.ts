/**
 * Keyed records on the consumer side: a keyed record runs on the thread that
 * owns its key (claims of other threads' keys are handed over through their
 * hand-off queues), only when its key's turn has come, and its ack passes
 * the turn on. The dispatcher's side is runtime/mailbox/keyed.ts.
 */
import { FLAG_KEYED, HO_POS, KEY_WORDS, K_DONE, K_OWNER, K_WAITING, SLOT_RUNNING, ST_CLAIMED } from '../../runtime/shared/layout.js';
import { handoffPop, handoffPush, handoffReady } from '../../runtime/shared/handoff.js';
import { acquireGuard, releaseGuard } from '../../runtime/shared/guard.js';
import { faultHook } from '../../runtime/shared/faults.js';
import type { Ring } from '../../runtime/shared/ring.js';
import type { SlotView } from '../../runtime/shared/slot.js';
import type { Post } from './tally.js';

/**
 * How long a loop keeps a keyed record whose turn has not come before the
 * dispatcher holds it (see KeyRouter.held). Its predecessor is usually in
 * another loop's claim, about to be handed over; with more busy threads than
 * cores that loop may be off its core for a scheduler slice or two (8-24 ms
 * on Linux), and a record handed to the dispatcher meanwhile puts its key on
 * the slow path: each later message of the key then waits for the main
 * thread's turn too, for as long as the key stays busy.
 */
export const HOLD_MS = 50;

export class KeyRouter {
  /** Claims from the ring go here first, then to `out` or to their keys' owners. */
  private scratch = new Int32Array(1);
  /** The last take() claimed or popped something (even if all of it went to other threads). */
  took = false;
  /** Records this loop claimed for another thread whose hand-off queue was full: pushed again before anything new is claimed. */
  private stalled = new Int32Array(1);
  stalledN = 0;
  /** This take() handed something over: wake parked threads once, at its end. */
  private handedOff = false;
  /** Slots handed a record in this take (bit per slot, two words for 64 slots): their threads are woken at its end. */
  private handedTo = new Int32Array(2);
  /**
   * Records of this loop's keys whose turn had not come, kept here up to
   * HOLD_MS: their predecessor is nearly always on its way to this thread
   * (claimed by another loop that is about to hand it over, or in this
   * loop's own queue), and the dispatcher's round trip costs more than the
   * wait. Claimed by this slot all along: a crash takes them back with the
   * rest of its claims. Past HOLD_MS (a predecessor waiting for a retry), or
   * when full, they go to the dispatcher, which holds them until their turn.
   */
  private held = new Int32Array(1);
  private heldSince = new Float64Array(1);
  heldN = 0;

  private readonly c: number;

  constructor(
    private readonly ring: Ring,
    /** The mailbox's key table and hand-off queues. */
    private readonly keys: Int32Array,
    /** This loop's slot. */
    private readonly slot: SlotView,
    private readonly post: Post,
    private readonly incarnation: number,
    /** performance.now(), or a test's clock. */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.c = slot.c;
  }

  /** Size the buffers for claims of up to `maxBatch` records. */
  size(maxBatch: number): void {
    this.scratch = new Int32Array(maxBatch);
    this.stalled = new Int32Array(maxBatch);
    this.held = new Int32Array(Math.max(1024, 16 * maxBatch));
    this.heldSince = new Float64Array(this.held.length);
  }

  /**
   * Fill `out` with up to `max` records this loop runs now: first what other
   * threads handed over, then fresh claims from the ring. A claimed keyed
   * record owned by another thread goes to that thread instead. Sets `took`.
   */
  take(out: Int32Array, max: number): number {
    const { ring, keys, c } = this;
    let m = handoffReady(keys, c) ? this.popHandoff(out, 0, max) : 0;
    this.took = m > 0;
    if (this.heldN > 0) m = this.releaseHeld(out, m, max);
    if (this.stalledN > 0) m = this.retryStalled(out, m, max);
    // While an owner's queue is full, claim nothing new: the owner is the bottleneck, and this is its backpressure.
    if (m >= max || this.stalledN > 0) return this.endTake(m);
    const scratch = this.scratch;
    const n = ring.claim(c, max - m, scratch);
    if (n > 0) this.took = true;
    for (let i = 0; i < n; i++) {
      const u = scratch[i]!;
      if ((ring.flags(u) & FLAG_KEYED) !== 0) {
        const owner = Atomics.load(keys, ring.keySlot(u) * KEY_WORDS + K_OWNER);
        if (owner !== c) {
          if (!this.route(u, owner)) this.stalled[this.stalledN++] = u;
          continue;
        }
      }
      out[m++] = u;
    }
    return this.endTake(m);
  }

  private endTake(m: number): number {
    if (this.handedOff) {
      this.handedOff = false;
      this.ring.wakeAllIfSleeping();
      const to = this.handedTo;
      for (let w = 0; w < 2; w++) {
        for (let bits = to[w]!; bits !== 0; bits &= bits - 1) this.ring.wakeOwner((w << 5) + 31 - Math.clz32(bits & -bits));
        to[w] = 0;
      }
    }
    return m;
  }

  /** Push again what did not fit in an owner's queue (or run it, if the key is ours now). */
  private retryStalled(out: Int32Array, m: number, max: number): number {
    const { ring, keys, c } = this;
    const stalled = this.stalled;
    const mine = ST_CLAIMED + c;
    let k = 0;
    for (let i = 0; i < this.stalledN; i++) {
      const u = stalled[i]!;
      if (Atomics.load(ring.state, u) !== mine) continue; // taken back by the dispatcher
      const owner = Atomics.load(keys, ring.keySlot(u) * KEY_WORDS + K_OWNER);
      if (owner === c && m < max) {
        out[m++] = u;
        this.took = true;
      } else if (owner === c || !this.route(u, owner)) {
        stalled[k++] = u;
      } else {
        this.took = true;
      }
    }
    this.stalledN = k;
    return m;
  }

  /** Pop this slot's hand-off queue into `out` from `at`; entries whose record is no longer claimed by this slot are stale and dropped. */
  popHandoff(out: Int32Array, at: number, max: number): number {
    if (max <= 0) return 0;
    const { ring, keys, c } = this;
    const got = handoffPop(keys, c, out, at, max);
    const mine = ST_CLAIMED + c;
    const state = ring.state;
    let m = at;
    for (let i = at, end = at + got; i < end; i++) {
      const u = out[i]!;
      if (Atomics.load(state, u) === mine) out[m++] = u;
    }
    return m - at;
  }

  /**
   * Hand a claimed keyed record to the thread that owns its key: move the
   * claim (CAS of the state byte), push the unit on the owner's queue. Under
   * this thread's guard, with the owner's status and ownership checked inside
   * it: the dispatcher, after it marks a slot IDLE, waits until no guard is
   * SENDING before it resets that slot's queue and recovers it, so a push
   * either lands before that recovery (which takes the record back) or sees
   * the owner gone. When the owner is not running, or the key is moving, the
   * record goes to the dispatcher, which holds it until the key has a running
   * owner. Returns false when the owner's queue is full: the record stays
   * claimed by this loop, to be pushed again.
   */
  private route(u: number, owner: number): boolean {
    const { ring, keys, c, slot } = this;
    const i32 = slot.i32;
    const mine = ST_CLAIMED + c;
    if (owner >= 0 && acquireGuard(i32, slot.guardWord)) {
      let full = false;
      try {
        const theirSlot = ring.slot(owner);
        if (theirSlot.status() === SLOT_RUNNING && Atomics.load(keys, ring.keySlot(u) * KEY_WORDS + K_OWNER) === owner) {
          const theirs = ST_CLAIMED + owner;
          // Written down first: should this thread die before the entry is
          // written, the dispatcher takes the record back and voids the entry (holes.ts).
          slot.beginHandoff(u, owner, theirSlot.incarnation());
          if (Atomics.compareExchange(ring.state, u, mine, theirs) !== mine) {
            slot.endHandoff();
            return true; // the dispatcher took it from us
          }
          if (faultHook !== null) faultHook('handoff-claimed', owner);
          // The push writes its queue position into the HO_POS word before it writes the entry.
          if (handoffPush(keys, owner, u, i32, slot.handoffWord + HO_POS)) {
            slot.endHandoff();
            this.handedOff = true;
            this.handedTo[owner >>> 5]! |= 1 << (owner & 31);
            return true;
          }
          // The owner cannot have it (no entry was written), so this cannot fail; if it ever did, the record is not ours to keep.
          const back = Atomics.compareExchange(ring.state, u, theirs, mine) === theirs;
          slot.endHandoff();
          if (!back) return true;
          full = true;
        }
      } finally {
        releaseGuard(i32, slot.guardWord);
      }
      if (full) return false;
    }
    if (Atomics.load(ring.state, u) === mine) this.defer(u);
    return true;
  }

  /** True unless `unit` is keyed and its key's turn has not come. */
  isTurn(unit: number, flags: number): boolean {
    if ((flags & FLAG_KEYED) === 0) return true;
    const ring = this.ring;
    return Atomics.load(this.keys, ring.keySlot(unit) * KEY_WORDS + K_DONE) === ring.keySeq(unit);
  }

  /** Keep a keyed record of this loop whose turn has not come (see `held`); to the dispatcher when full. */
  hold(unit: number): void {
    if (this.heldN === this.held.length) return this.defer(unit);
    this.held[this.heldN] = unit;
    this.heldSince[this.heldN++] = this.now();
  }

  /** Into `out` (up to `max`) the held records whose turn has come; those held past HOLD_MS to the dispatcher. */
  private releaseHeld(out: Int32Array, m: number, max: number): number {
    const { held, heldSince } = this;
    const now = this.now();
    let k = 0;
    for (let i = 0; i < this.heldN; i++) {
      const u = held[i]!;
      if (m < max && this.isTurn(u, FLAG_KEYED)) {
        out[m++] = u;
        this.took = true;
      } else if (now - heldSince[i]! > HOLD_MS) {
        this.defer(u);
      } else {
        held[k] = u;
        heldSince[k++] = heldSince[i]!;
      }
    }
    this.heldN = k;
    return m;
  }

  /** The loop is stopping (not revoked): what it holds goes to the dispatcher. */
  deferHeld(): void {
    for (let i = 0; i < this.heldN; i++) this.defer(this.held[i]!);
    this.heldN = 0;
  }

  /** Hand a keyed record whose turn has not come to the dispatcher, which holds it until it has. */
  defer(unit: number): void {
    this.post({ type: 'defer', consumer: this.c, incarnation: this.incarnation, unit });
  }

  /**
   * Ack a record and, if keyed, pass its key's turn on. The slot's KEY_ACK
   * words say a keyed ack is under way, so a thread killed between the ack and
   * the turn does not leave its key stuck: the dispatcher finishes the job.
   */
  ack(unit: number, keySlot: number): boolean {
    const { ring, slot, keys } = this;
    if (keySlot < 0) return ring.ack(this.c, unit);
    const seq = ring.keySeq(unit);
    slot.beginKeyAck(keySlot, seq, unit);
    const ok = ring.ack(this.c, unit);
    if (ok) {
      const w = keySlot * KEY_WORDS;
      Atomics.compareExchange(keys, w + K_DONE, seq, (seq + 1) | 0);
      slot.endKeyAck();
      if (Atomics.load(keys, w + K_WAITING) > 0) this.post({ type: 'key-turn', slot: keySlot });
    } else {
      slot.endKeyAck();
    }
    return ok;
  }
}
