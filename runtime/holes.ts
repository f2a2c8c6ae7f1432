/**
 * Holes a dying thread leaves in shared memory, and their repair. Main thread.
 *
 * A worker thread writes to shared memory in a few multi-step windows, each
 * under its slot's guard (guard.ts): a ctx.send's reserve..publish, a reply's
 * reserve..publish, a delayed send's count..hand-over, a hand-off push. The
 * dispatcher never terminates a thread inside one, but a thread can still die
 * there (an OOM). What it leaves:
 * - a ring reservation never published: consumers stop at its FREE state
 *   byte, and the ring stops for good;
 * - a keyed send's seq taken and never used: its key's turn never comes again;
 * - a delayed send counted as enqueued and never handed over: onIdle() waits forever;
 * - a keyed record whose claim moved to its owner, with no entry on the
 *   owner's queue (never run), or a queue entry reserved and never written
 *   (the owner's queue stops at it).
 * Each window writes down what it is doing in the thread's slot first
 * (layout.ts, RESV_* and HO_*; a few plain stores). When the thread is gone
 * with its guard still held, its retire reads those words and repairs:
 * - the reservation becomes a DONE record of its length (and a SKIP for the
 *   padding of one that wrapped), READ moves over it, and the send is taken
 *   out of the enqueued count: it was never accepted (ctx.send never returned);
 *   a batch (batch.ts) is one such hole, its records all taken out, the seqs
 *   its keyed records took voided;
 * - its seq is voided: the dispatcher passes the key's turn over it;
 * - the record goes back to the ring, and the entry is voided (the owner pops
 *   and drops it).
 *
 * Nothing here runs unless a thread died inside a guard.
 */
import {
  DELAYED_TAG,
  FLAG_KEYED,
  HANDOFF_VOID,
  RESV_BATCH,
  RESV_BATCH_LAID,
  R_KEY_SEQ,
  R_KEY_SLOT,
  READ,
  R_UNITS,
  MARK_HEAD,
  MARK_KEY,
  MARK_NEED,
  MARK_SEQ,
  MARK_TAG,
  ST_CLAIMED,
  ST_TAKEN,
  FLAG_VOID,
  R_FLAGS,
  ST_FREE,
  ST_SKIP,
} from './shared/layout.js';
import { handoffEntry } from './shared/handoff.js';
import type { Ring } from './shared/ring.js';

/** A reservation a dead thread made in some ring (and, for a keyed send, the seq it took: keySlot -1 when none). */
export interface Reservation {
  h: number;
  need: number;
  keySlot: number;
  seq: number;
  /** A batch send (batch.ts): its record count, and whether its headers were all written (RESV_BATCH_LAID). */
  batch: number;
  laid: boolean;
  /** Filled by the repair of a laid batch: the [slot, seq] pairs its keyed records took. */
  seqs?: Array<[number, number]>;
}

/** What a dead thread's slot says it was doing inside its guard. */
export interface DeadWrites {
  /** A ring reservation: in the ring of mailbox `box` (its reply ring when `reply`). */
  reservation: { box: number; reply: boolean; r: Reservation } | null;
  /** A delayed send counted (and keyed: its seq taken) and not handed over, to mailbox `box`. */
  delayed: { box: number; keySlot: number; seq: number } | null;
  /** A hand-off of the record at `unit` to slot `owner` (incarnation `inc`); `pos` its queue entry, -1 if not reserved. */
  handoff: { unit: number; owner: number; inc: number; pos: number } | null;
}

/** Read the RESV_* and HO_* words of `slot` (its thread is gone, its guard still held). */
export function deadWrites(ring: Ring, slot: number): DeadWrites {
  const view = ring.slot(slot);
  // Plain reads: the thread that wrote these words is gone, and all its writes are visible once it has exited.
  const i32 = ring.i32;
  const at = view.markWord;
  const out: DeadWrites = { reservation: null, delayed: null, handoff: view.deadHandoff() };
  const tag = i32[at + MARK_TAG]!;
  if (tag !== 0) {
    const t = (tag & ~DELAYED_TAG) - 1;
    const k = i32[at + MARK_KEY]!;
    const keySlot = k - 1;
    const seq = i32[at + MARK_SEQ]!;
    if ((tag & DELAYED_TAG) !== 0) out.delayed = { box: t >> 1, keySlot, seq };
    else {
      const batch = k === RESV_BATCH || k === RESV_BATCH_LAID ? seq : 0;
      const r: Reservation = { h: i32[at + MARK_HEAD]!, need: i32[at + MARK_NEED]!, keySlot: batch > 0 ? -1 : keySlot, seq, batch, laid: k === RESV_BATCH_LAID };
      out.reservation = { box: t >> 1, reply: (t & 1) === 1, r };
    }
  }
  return out;
}

/**
 * Repair reservation `r` in `ring` if it is a hole: 'done' (repaired),
 * 'gone' (no hole: it was published, or the thread's CAS lost and another
 * producer's record is there), or 'wait' (consumers have not reached it yet,
 * or a live thread is inside a guard: a reservation at the same place could
 * be that thread's, about to be published). `othersInside` says the latter.
 *
 * Why this is safe: consumers never pass a FREE state byte, so once READ sits
 * at the reservation and no live producer is inside its window (the main
 * thread is not: this runs on it), a FREE state byte there can only be the
 * dead thread's unpublished record.
 */
export function repairReservation(ring: Ring, r: Reservation, othersInside: boolean): 'done' | 'gone' | 'wait' {
  const i32 = ring.i32;
  const at = r.h & ring.indexMask;
  const toEnd = ring.capacityUnits - at;
  const wraps = r.need > toEnd;
  // A reservation that crossed the end is padding [at, end) and the record at unit 0.
  const hole = wraps ? (r.h + toEnd) | 0 : r.h;
  const end = (r.h + r.need) | 0;
  const read = Atomics.load(i32, READ);
  if (((read - r.h) | 0) < 0) return 'wait'; // ready records ahead of it: consumers get there first
  if (read !== r.h && read !== hole) return 'gone';
  if (othersInside) return 'wait';
  const hu = hole & ring.indexMask;
  if (Atomics.load(ring.state, hu) !== ST_FREE) return 'gone';
  if (wraps && read === r.h) {
    const s = Atomics.load(ring.state, at);
    if (s !== ST_FREE && s !== ST_SKIP) return 'gone';
    if (s === ST_FREE) Atomics.store(ring.state, at, ST_SKIP);
  }
  const len = wraps ? r.need - toEnd : r.need;
  // A batch: read what its headers say before the first one is overwritten, and clear the states of
  // the records after the first (published, but never visible past the first's FREE): the ring reuses these units.
  if (r.batch > 0) {
    if (r.laid) r.seqs = batchSeqs(ring, hu, len);
    ring.state.fill(ST_FREE, hu + 1, hu + len);
  }
  // A TAKEN record of the hole's length: consumers do not claim it, reclaimers free it, the outcome feed passes it by.
  i32[(ring.dataOff >> 2) + (hu << 2) + R_UNITS] = len;
  i32[(ring.dataOff >> 2) + (hu << 2) + R_FLAGS] = FLAG_VOID;
  Atomics.store(ring.state, hu, ST_TAKEN);
  // A journal passes the hole itself and consumers step over it below JOURNALED (READ may not pass JOURNALED).
  if (ring.journaled) {
    ring.wakeJournal();
    return 'done';
  }
  // Consumers may move READ from the padding to the hole meanwhile; never past it.
  for (;;) {
    const r0 = Atomics.load(i32, READ);
    if (r0 !== r.h && r0 !== hole) break;
    if (Atomics.compareExchange(i32, READ, r0, end) === r0) break;
  }
  ring.reclaim();
  return 'done';
}

/** The [key slot, seq] of each keyed record of a laid batch of `len` units at `unit`. */
function batchSeqs(ring: Ring, unit: number, len: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const i32 = ring.i32;
  for (let u = unit; u < unit + len; ) {
    const w = (ring.dataOff >> 2) + (u << 2);
    if ((i32[w + R_FLAGS]! & FLAG_KEYED) !== 0) out.push([i32[w + R_KEY_SLOT]!, i32[w + R_KEY_SEQ]!]);
    const units = i32[w + R_UNITS]!;
    if (units <= 0) break;
    u += units;
  }
  return out;
}

/**
 * A dead thread was handing the record at `ho.unit` to slot `ho.owner`. If the
 * claim had moved to the owner (and the owner is the loop it was then), the
 * owner never got the entry: take the record back with `takeBack` (it goes
 * back to the ring; it never ran). A queue entry reserved and never written is
 * voided: the owner cannot pass it before, and pops and drops it after.
 */
export function repairHandoff(
  ring: Ring,
  keys: Int32Array,
  ho: NonNullable<DeadWrites['handoff']>,
  takeBack: (unit: number, expected: number) => void,
): void {
  if (ring.slot(ho.owner).incarnation() !== ho.inc) return; // the owner was recovered since: its queue was reset, the record taken back
  const theirs = ST_CLAIMED + ho.owner;
  // An entry reserved and written means the push went through: the owner pops it (or has, and runs the
  // record): take nothing then. Only an entry still 0 (voided here, atomically) or none at all means the
  // owner can never see the record.
  if (ho.pos >= 0 && Atomics.compareExchange(keys, handoffEntry(ho.owner, ho.pos), 0, HANDOFF_VOID) !== 0) return;
  if (Atomics.load(ring.state, ho.unit) === theirs) takeBack(ho.unit, theirs);
}

/** What a mailbox gives its HoleRepairs. */
export interface RepairHost {
  readonly ring: Ring;
  readonly replyRing: Ring;
  readonly keys: Int32Array;
  stopped(): boolean;
  /** A live thread of any mailbox is inside its guard now. */
  othersInside(): boolean;
  /** Take the record at `unit` (in state `expected`) back to the ring; it never ran. */
  takeBack(unit: number, expected: number): void;
  /** A send counted and never made: out of the enqueued count (and its key's order, keySlot >= 0). */
  unaccept(keySlot: number, seq: number): void;
  /** The repairs of the mailbox at `index` (a dead thread may have written to any mailbox's ring). */
  holesAt(index: number): HoleRepairs | undefined;
}

/** One mailbox's holes: what its dead threads left, and the reservations in its rings waiting to be repaired. */
export class HoleRepairs {
  private waiting: Array<{ reply: boolean; r: Reservation }> = [];

  constructor(private readonly host: RepairHost) {}

  /** The thread of `slot` is gone with its guard held: repair what it was writing. */
  afterDeath(slot: number): void {
    const h = this.host;
    const dw = deadWrites(h.ring, slot);
    if (dw.handoff !== null) repairHandoff(h.ring, h.keys, dw.handoff, (unit, expected) => h.takeBack(unit, expected));
    if (dw.reservation !== null) h.holesAt(dw.reservation.box)?.add(dw.reservation.reply, dw.reservation.r);
    if (dw.delayed !== null) h.holesAt(dw.delayed.box)?.host.unaccept(dw.delayed.keySlot, dw.delayed.seq);
  }

  /** A reservation in this mailbox's ring (or reply ring) that a dead thread may have left unpublished. */
  add(reply: boolean, r: Reservation): void {
    this.waiting.push({ reply, r });
    queueMicrotask(() => this.run());
  }

  /** Repair what consumers have reached (every dispatcher tick, and once after each add). */
  run(): void {
    const h = this.host;
    if (this.waiting.length === 0 || h.stopped()) return;
    const inside = h.othersInside();
    this.waiting = this.waiting.filter(({ reply, r }) => {
      const ring = reply ? h.replyRing : h.ring;
      const res = repairReservation(ring, r, inside);
      if (res === 'wait') return true;
      if (res === 'done') {
        if (!reply) {
          if (r.batch === 0) h.unaccept(r.keySlot, r.seq);
          else {
            // Every record of the batch was counted; the keyed ones that took a seq leave it voided.
            const seqs = r.seqs ?? [];
            for (let i = 0; i < r.batch; i++) h.unaccept(i < seqs.length ? seqs[i]![0] : -1, i < seqs.length ? seqs[i]![1] : 0);
          }
        }
        ring.wakeAll();
      }
      return false;
    });
  }
}
