/**
 * Hand-off queues for key affinity. Thread-neutral.
 *
 * A keyed record may be claimed by any consumer of its mailbox (the ring is
 * one MPMC queue), but it runs on the thread that owns its key (where the
 * key's actor state lives). The claimer moves the claim to the owner (a CAS
 * of the record's state byte from CLAIMED+me to CLAIMED+owner) and pushes the
 * unit onto the owner's queue: a bounded MPSC array of `unit + 1` words in the
 * key table buffer (layout.ts). Nothing is copied and nothing is posted.
 *
 * Crash safety comes from the state byte, not the queue: a record handed to a
 * slot is CLAIMED by that slot, so the dispatcher's recovery of the slot takes
 * it back like any other. A queue entry whose record is no longer claimed by
 * the popping slot is stale and skipped.
 */
import { HANDOFF_CAP, HANDOFF_VOID, H_HEAD, H_TAIL, handoffBase } from './layout.js';
import { faultHook } from './faults.js';

/**
 * Push `unit` onto slot `c`'s queue; false when it is full. The position
 * reserved is written to `mark[at]` right after its CAS, so the dispatcher can
 * void an entry a pusher reserved and died before writing (holes.ts).
 */
export function handoffPush(keys: Int32Array, c: number, unit: number, mark: Int32Array, at: number): boolean {
  const base = handoffBase(c);
  for (;;) {
    const t = Atomics.load(keys, base + H_TAIL);
    if (((t - Atomics.load(keys, base + H_HEAD)) | 0) >= HANDOFF_CAP) return false;
    if (Atomics.compareExchange(keys, base + H_TAIL, t, (t + 1) | 0) === t) {
      mark[at] = t;
      if (faultHook !== null) faultHook('handoff-reserved', c);
      Atomics.store(keys, handoffEntry(c, t), unit + 1);
      return true;
    }
  }
}

/** Word index of slot `c`'s queue entry at position `pos`. */
export function handoffEntry(c: number, pos: number): number {
  return handoffBase(c) + 2 + ((pos >>> 0) % HANDOFF_CAP);
}

/**
 * Pop up to `max` units from slot `c`'s queue into `out` from index `at`
 * (owner only). Stops at an entry reserved but not yet written. Returns how
 * many were popped.
 */
export function handoffPop(keys: Int32Array, c: number, out: Int32Array, at: number, max: number): number {
  const base = handoffBase(c);
  const h0 = Atomics.load(keys, base + H_HEAD);
  let h = h0;
  let n = 0;
  while (n < max) {
    const w = base + 2 + ((h >>> 0) % HANDOFF_CAP);
    const v = Atomics.load(keys, w);
    if (v === 0) break;
    Atomics.store(keys, w, 0);
    h = (h + 1) | 0;
    if (v !== HANDOFF_VOID) out[at + n++] = v - 1;
  }
  if (h !== h0) Atomics.store(keys, base + H_HEAD, h);
  return n;
}

/** True when slot `c`'s queue has an entry ready (cheap: one load). */
export function handoffReady(keys: Int32Array, c: number): boolean {
  const base = handoffBase(c);
  const h = Atomics.load(keys, base + H_HEAD);
  return Atomics.load(keys, base + 2 + ((h >>> 0) % HANDOFF_CAP)) !== 0;
}
