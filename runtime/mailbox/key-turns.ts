/**
 * Whose turn it is, per key (main thread): the keyed messages a consumer
 * claimed before their turn, held here in seq order until the key's DONE
 * word reaches them; seqs that no message will ever carry (a send that died
 * before publishing), passed over when their turn comes; and a dead letter's
 * turn, passed on. The consumers' side is workers/loop/handoff.ts. It knows
 * no mailbox: the key table, the ring (its counts and slot words) and the
 * backlog the released messages go to.
 */
import { ENQUEUED, KEY_WORDS, K_DONE, K_WAITING, ST_CLAIMED } from '../shared/layout.js';
import type { Ring } from '../shared/ring.js';
import type { HeldMessage } from '../held.js';
import type { Backlog } from './backlog.js';

export interface KeyTurnsDeps {
  /** The key table (layout.ts): per key entry its SENT, DONE and WAITING words. */
  table: Int32Array;
  ring: Ring;
  backlog: Pick<Backlog, 'hold' | 'unhold' | 'pend' | 'flush'>;
}

export class KeyTurns {
  /** Keyed messages held until their turn, by key slot (seq order). */
  private readonly blocked = new Map<number, HeldMessage[]>();
  /** Keyed seqs taken by sends that died before publishing: each key's turn passes over them. */
  private readonly voids = new Map<number, number[]>();

  constructor(private readonly d: KeyTurnsDeps) {}

  /** Whether messages of key entry `slot` wait here for their turn. */
  holds(slot: number): boolean {
    return this.blocked.has(slot);
  }

  /** Hold a keyed message until its key's turn comes (a consumer claimed it too early). */
  block(held: HeldMessage): void {
    const slot = held.keySlot;
    let q = this.blocked.get(slot);
    if (q === undefined) this.blocked.set(slot, (q = []));
    // Keep seq order (int32, compared as a difference: safe across wrap-around).
    let i = q.length;
    while (i > 0 && ((q[i - 1]!.keySeq - held.keySeq) | 0) > 0) i--;
    q.splice(i, 0, held);
    this.d.backlog.hold(held);
    // WAITING first, then read DONE: the consumer advances DONE, then reads WAITING, so one of us sees the other.
    Atomics.add(this.d.table, slot * KEY_WORDS + K_WAITING, 1);
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
    const table = this.d.table;
    const v = this.voids.get(slot);
    if (v !== undefined) {
      for (;;) {
        const done = Atomics.load(table, slot * KEY_WORDS + K_DONE);
        const i = v.indexOf(done);
        if (i < 0) break;
        v.splice(i, 1);
        Atomics.compareExchange(table, slot * KEY_WORDS + K_DONE, done, (done + 1) | 0);
      }
      if (v.length === 0) this.voids.delete(slot);
    }
    const q = this.blocked.get(slot);
    if (q === undefined) return;
    const n = turnsDue(q, Atomics.load(table, slot * KEY_WORDS + K_DONE));
    if (n > 0) {
      const backlog = this.d.backlog;
      for (const held of q.splice(0, n)) {
        backlog.unhold(held);
        backlog.pend(held);
      }
      Atomics.sub(table, slot * KEY_WORDS + K_WAITING, n);
      backlog.flush();
    }
    if (q.length === 0) this.blocked.delete(slot);
  }

  /** A dead letter is done with, as far as its key's order goes: the next one may run. */
  passTurn(held: HeldMessage): void {
    if (held.keySlot < 0) return;
    Atomics.compareExchange(this.d.table, held.keySlot * KEY_WORDS + K_DONE, held.keySeq, (held.keySeq + 1) | 0);
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
    Atomics.sub(this.d.ring.i32, ENQUEUED, 1);
    if (keySlot < 0) return;
    let v = this.voids.get(keySlot);
    if (v === undefined) this.voids.set(keySlot, (v = []));
    v.push(seq);
    this.releaseTurns(keySlot);
  }

  /**
   * A loop that died between acking a keyed record and passing its key's turn
   * on left the KEY_ACK words set. If the ack went through (the record is no
   * longer CLAIMED by that slot), pass the turn on here; if not, the record was
   * just recovered and will run again, and the turn stays where it is.
   */
  finishKeyAck(slot: number, revokedUnit: number): void {
    const ring = this.d.ring;
    const view = ring.slot(slot);
    const keySlot = view.keyAckSlot();
    if (keySlot < 0) return;
    view.endKeyAck();
    const seq = view.keyAckSeq();
    const unit = view.keyAckUnit();
    // Not acked: still claimed (recovery will redeliver it), or taken back by the lease watchdog (retried).
    if (unit === revokedUnit || Atomics.load(ring.state, unit) === ST_CLAIMED + slot) return;
    if (Atomics.compareExchange(this.d.table, keySlot * KEY_WORDS + K_DONE, seq, (seq + 1) | 0) === seq) this.releaseTurns(keySlot);
  }

  /** The tick's safety net for a missed key-turn event. */
  tick(): void {
    for (const slot of this.blocked.keys()) this.releaseTurns(slot);
    for (const slot of [...this.voids.keys()]) this.releaseTurns(slot);
  }
}

/**
 * How many of a key's held messages (`q`, in seq order) may go now: the one
 * whose seq is `done` (the key's turn) and the run of consecutive seqs behind
 * it. Seqs are int32 and wrap.
 */
export function turnsDue(q: readonly { keySeq: number }[], done: number): number {
  let next = done;
  let n = 0;
  while (n < q.length && q[n]!.keySeq === next) {
    n++;
    next = (next + 1) | 0;
  }
  return n;
}
