/**
 * Keyed ordering on the dispatcher's side (main thread): the key table, the
 * keyed messages held until their key's turn (or until their key has a
 * running owner), seqs that no message will carry, and which thread owns
 * which key. The consumers' side is workers/loop/handoff.ts.
 */
import { ENQUEUED, KEY_WORDS, K_DONE, K_OWNER, K_WAITING, S_KEY_ACK, S_KEY_ACK_SEQ, S_KEY_ACK_UNIT, ST_CLAIMED, allocateKeyTable } from '../shared/layout.js';
import { assignKeyOwners } from '../key-owners.js';
import type { HeldMessage } from '../held.js';
import type { Mailbox } from './index.js';

export class Keyed {
  /** The key table: per key entry its turn words and owner, then the hand-off queues (layout.ts). */
  readonly sab = allocateKeyTable();
  readonly table: Int32Array;
  /** Keyed messages held until their turn, by key slot (seq order). */
  private readonly blocked = new Map<number, HeldMessage[]>();
  blockedCount = 0;
  /** Ring units of the keyed messages held outside the ring (published in HELD_UNITS_WORD, with the pending units). */
  heldUnits = 0;
  /** Keyed messages whose key's owner is retiring: held until its loop is over and the key has a new owner. */
  private readonly ownerWait = new Map<number, HeldMessage[]>();
  /** Some key table entries wait for a clean point to move to a less loaded thread. */
  private rebalance = false;
  /** Keyed seqs taken by sends that died before publishing: each key's turn passes over them. */
  private readonly voids = new Map<number, number[]>();

  constructor(private readonly m: Mailbox) {
    this.table = new Int32Array(this.sab);
  }

  /** Give keys without a running owner to running loops and even the load out; then release what waited for an owner. */
  assignKeys(): void {
    const live: number[] = [];
    const retiring = new Set<number>();
    for (const c of this.m.consumers.all()) {
      if (c.state === 'running' || c.state === 'starting') live.push(c.slot);
      else if (c.state !== 'dead') retiring.add(c.slot);
    }
    this.rebalance = assignKeyOwners(this.table, {
      live,
      retiring,
      actor: this.m.actorInfo.actor,
      holds: (entry) => this.blocked.has(entry) || this.ownerWait.has(entry),
    });
    if (this.ownerWait.size === 0 || live.length === 0) return;
    for (const [entry, list] of [...this.ownerWait]) {
      const o = Atomics.load(this.table, entry * KEY_WORDS + K_OWNER);
      if (!live.includes(o)) continue;
      this.ownerWait.delete(entry);
      for (const held of list) this.unhold(held);
      for (const held of list) this.block(held);
    }
  }

  /** A keyed record a consumer handed back: wait for its turn, or for its key to have a running owner. */
  holdKeyed(held: HeldMessage): void {
    const entry = held.keySlot;
    const consumers = this.m.consumers;
    let o = Atomics.load(this.table, entry * KEY_WORDS + K_OWNER);
    let owner = o >= 0 ? consumers.get(o) : undefined;
    if (owner === undefined || owner.state === 'dead') {
      this.assignKeys();
      o = Atomics.load(this.table, entry * KEY_WORDS + K_OWNER);
      owner = o >= 0 ? consumers.get(o) : undefined;
    }
    if (owner !== undefined && (owner.state === 'running' || owner.state === 'starting')) {
      this.block(held);
      return;
    }
    let q = this.ownerWait.get(entry);
    if (q === undefined) this.ownerWait.set(entry, (q = []));
    q.push(held);
    this.hold(held);
  }

  /** Count a keyed message held outside the ring (stats' delayed, and against capacity for producers). */
  private hold(held: HeldMessage): void {
    this.blockedCount++;
    this.heldUnits += held.units;
    this.m.delays.syncHeldUnits();
  }

  private unhold(held: HeldMessage): void {
    this.blockedCount--;
    this.heldUnits -= held.units;
    this.m.delays.syncHeldUnits();
  }

  /** Hold a keyed message until its key's turn comes (a consumer claimed it too early). */
  private block(held: HeldMessage): void {
    const slot = held.keySlot;
    let q = this.blocked.get(slot);
    if (q === undefined) this.blocked.set(slot, (q = []));
    // Keep seq order (int32, compared as a difference: safe across wrap-around).
    let i = q.length;
    while (i > 0 && ((q[i - 1]!.keySeq - held.keySeq) | 0) > 0) i--;
    q.splice(i, 0, held);
    this.hold(held);
    // WAITING first, then read DONE: the consumer advances DONE, then reads WAITING, so one of us sees the other.
    Atomics.add(this.table, slot * KEY_WORDS + K_WAITING, 1);
    this.releaseTurns(slot);
  }

  /**
   * Put back the held messages of `slot` whose turn has come: the one whose
   * seq is the turn, and the run of consecutive seqs behind it, in order. They
   * land next to each other in the ring, so a consumer that claims them
   * together runs them one after another; putting back one at a time would
   * leave each behind the key's newer messages and keep the key on this slow
   * path for good.
   */
  releaseTurns(slot: number): void {
    const v = this.voids.get(slot);
    if (v !== undefined) {
      for (;;) {
        const done = Atomics.load(this.table, slot * KEY_WORDS + K_DONE);
        const i = v.indexOf(done);
        if (i < 0) break;
        v.splice(i, 1);
        Atomics.compareExchange(this.table, slot * KEY_WORDS + K_DONE, done, (done + 1) | 0);
      }
      if (v.length === 0) this.voids.delete(slot);
    }
    const q = this.blocked.get(slot);
    if (q === undefined) return;
    let next = Atomics.load(this.table, slot * KEY_WORDS + K_DONE);
    let n = 0;
    while (n < q.length && q[n]!.keySeq === next) {
      n++;
      next = (next + 1) | 0;
    }
    if (n > 0) {
      const delays = this.m.delays;
      for (const held of q.splice(0, n)) {
        this.unhold(held);
        delays.pend(held);
      }
      Atomics.sub(this.table, slot * KEY_WORDS + K_WAITING, n);
      delays.flushPending();
    }
    if (q.length === 0) this.blocked.delete(slot);
  }

  /** A dead letter is done with, as far as its key's order goes: the next one may run. */
  passTurn(held: HeldMessage): void {
    if (held.keySlot < 0) return;
    Atomics.compareExchange(this.table, held.keySlot * KEY_WORDS + K_DONE, held.keySeq, (held.keySeq + 1) | 0);
    const slot = held.keySlot;
    held.keySlot = -1; // a redrive takes a new place at the end of its key's order
    this.releaseTurns(slot);
  }

  /**
   * A send a dead thread counted as enqueued (and keyed: gave a seq) and never
   * made (its reservation a hole, or its delayed hand-over never posted): it was
   * never accepted, ctx.send() did not return. Out of the count and of its key's order.
   */
  unaccept(keySlot: number, seq: number): void {
    Atomics.sub(this.m.ring.i32, ENQUEUED, 1);
    if (keySlot >= 0) this.voidSeq(keySlot, seq);
  }

  /** Pass key `slot`'s turn over `seq` when it comes (a seq no message will ever carry). */
  private voidSeq(slot: number, seq: number): void {
    let v = this.voids.get(slot);
    if (v === undefined) this.voids.set(slot, (v = []));
    v.push(seq);
    this.releaseTurns(slot);
  }

  /**
   * A loop that died between acking a keyed record and passing its key's turn
   * on left the KEY_ACK words set. If the ack went through (the record is no
   * longer CLAIMED by that slot), pass the turn on here; if not, the record was
   * just recovered and will run again, and the turn stays where it is.
   */
  finishKeyAck(slot: number, revokedUnit: number): void {
    const ring = this.m.ring;
    const i32 = ring.i32;
    const w = Atomics.load(i32, ring.slotWord(slot, S_KEY_ACK));
    if (w === 0) return;
    Atomics.store(i32, ring.slotWord(slot, S_KEY_ACK), 0);
    const keySlot = w - 1;
    const seq = Atomics.load(i32, ring.slotWord(slot, S_KEY_ACK_SEQ));
    const unit = Atomics.load(i32, ring.slotWord(slot, S_KEY_ACK_UNIT));
    // Not acked: still claimed (recovery will redeliver it), or taken back by the lease watchdog (retried).
    if (unit === revokedUnit || Atomics.load(ring.state, unit) === ST_CLAIMED + slot) return;
    if (Atomics.compareExchange(this.table, keySlot * KEY_WORDS + K_DONE, seq, (seq + 1) | 0) === seq) this.releaseTurns(keySlot);
  }

  /** The tick's safety net for a missed key-turn event. */
  tick(): void {
    for (const slot of this.blocked.keys()) this.releaseTurns(slot);
    for (const slot of [...this.voids.keys()]) this.releaseTurns(slot);
  }

  /** Keys waiting for a clean point to move: try again (every tick). */
  rebalanceIfDue(): void {
    if (this.rebalance) this.assignKeys();
  }
}
