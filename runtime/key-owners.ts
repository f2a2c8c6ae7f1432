/**
 * Key affinity on the dispatcher's side: which consumer slot owns each key
 * table entry (K_OWNER). Main thread; the only writer of K_OWNER.
 *
 * - An entry without a live owner (none yet, or its thread is gone) is given
 *   to the live slot that owns the fewest, at once.
 * - Otherwise entries move only to even the load out (a thread was added),
 *   and only at a clean point: for an actor mailbox, nothing of the entry
 *   queued or in flight (SENT == DONE) and no actor state of it alive
 *   (STATES == 0); for a plain handler, at any time (the seq turn keeps the
 *   order across the move, and there is no state to lose).
 * - Entries that ever had traffic are evened out first, so a new thread gets
 *   keys that are in use, not only empty entries.
 * - A move goes through OWNER_MOVING (CAS), so a consumer never reads a
 *   half-made decision: it defers what it claims meanwhile.
 */
import { KEY_SLOTS, KEY_WORDS, K_DONE, K_OWNER, K_SENT, K_STATES, MAX_CONSUMERS, OWNER_MOVING, OWNER_NONE } from './shared/layout.js';

export interface OwnerView {
  /** Slots whose loops run now and may take keys. */
  live: readonly number[];
  /** Slots whose loops are ending (retiring or revoked): they keep their entries until the loop is over. */
  retiring: ReadonlySet<number>;
  /** Actor mailbox: entries move only with SENT == DONE and no state. */
  actor: boolean;
  /** True when the dispatcher holds messages of this entry (they would be out of order across a move). */
  holds(entry: number): boolean;
}

/** A slot's loop is over: its entries have no owner (and no live state) any more. */
export function releaseOwner(kt: Int32Array, slot: number): void {
  for (let s = 0; s < KEY_SLOTS; s++) {
    const w = s * KEY_WORDS;
    if (Atomics.load(kt, w + K_OWNER) !== slot) continue;
    Atomics.store(kt, w + K_STATES, 0);
    Atomics.store(kt, w + K_OWNER, OWNER_NONE);
  }
}

/**
 * Assign orphan entries and even the load out. Returns true when some move
 * had to wait for a clean point (call again later).
 */
export function assignKeyOwners(kt: Int32Array, view: OwnerView): boolean {
  const { live } = view;
  if (live.length === 0) return false;
  const total = new Int32Array(MAX_CONSUMERS);
  const used = new Int32Array(MAX_CONSUMERS);
  const isLive = new Uint8Array(MAX_CONSUMERS);
  for (const l of live) isLive[l] = 1;
  let usedAll = 0;
  for (let s = 0; s < KEY_SLOTS; s++) {
    const w = s * KEY_WORDS;
    const o = Atomics.load(kt, w + K_OWNER);
    const u = Atomics.load(kt, w + K_SENT) !== 0;
    if (u) usedAll++;
    if (o >= 0 && (isLive[o] === 1 || view.retiring.has(o))) {
      total[o] = total[o]! + 1;
      if (u) used[o] = used[o]! + 1;
    }
  }
  const least = (by: Int32Array): number => {
    let best = live[0]!;
    for (const l of live) if (by[l]! < by[best]! || (by[l] === by[best] && total[l]! < total[best]!)) best = l;
    return best;
  };
  // Orphans: no owner yet, or the owner's loop is over (its state died with it, or was passivated).
  for (let s = 0; s < KEY_SLOTS; s++) {
    const w = s * KEY_WORDS;
    const o = Atomics.load(kt, w + K_OWNER);
    if (o === OWNER_MOVING || (o >= 0 && (isLive[o] === 1 || view.retiring.has(o)))) continue;
    const u = Atomics.load(kt, w + K_SENT) !== 0;
    const to = least(u ? used : total);
    Atomics.store(kt, w + K_STATES, 0);
    Atomics.store(kt, w + K_OWNER, to);
    total[to] = total[to]! + 1;
    if (u) used[to] = used[to]! + 1;
  }
  // Even out: entries in use first, then the rest.
  let waiting = false;
  for (const pass of [0, 1] as const) {
    const by = pass === 0 ? used : total;
    const hi = Math.ceil((pass === 0 ? usedAll : KEY_SLOTS) / live.length);
    for (const o of live) {
      for (let s = 0; s < KEY_SLOTS && by[o]! > hi; s++) {
        const w = s * KEY_WORDS;
        if (Atomics.load(kt, w + K_OWNER) !== o) continue;
        const u = Atomics.load(kt, w + K_SENT) !== 0;
        if (pass === 0 && !u) continue;
        const to = least(by);
        if (by[to]! + 1 >= by[o]!) break;
        const clean = (): boolean =>
          !view.holds(s) && (!view.actor || (Atomics.load(kt, w + K_SENT) === Atomics.load(kt, w + K_DONE) && Atomics.load(kt, w + K_STATES) === 0));
        // A first look without the CAS (no churn on entries that are busy), then the real check under OWNER_MOVING.
        if (!clean()) {
          waiting = true;
          continue;
        }
        if (Atomics.compareExchange(kt, w + K_OWNER, o, OWNER_MOVING) !== o) continue;
        if (!clean()) {
          Atomics.store(kt, w + K_OWNER, o);
          waiting = true;
          continue;
        }
        Atomics.store(kt, w + K_OWNER, to);
        total[o] = total[o]! - 1;
        total[to] = total[to]! + 1;
        if (u) {
          used[o] = used[o]! - 1;
          used[to] = used[to]! + 1;
        }
      }
    }
  }
  return waiting;
}
