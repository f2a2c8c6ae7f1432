/**
 * What every Ring is over its SharedArrayBuffer: the typed views, the
 * allocation of a new buffer, the record header's fields, the counters and
 * cursors read for stats, message ids, and the wake words. Thread-neutral. The protocol
 * that moves records through the ring (reserve, publish, claim, ack,
 * reclaim) is ring.ts, which extends this.
 */
import {
  CAPACITY_UNITS_WORD,
  CLAIMED,
  CONCURRENCY_WORD,
  ENQUEUED,
  FOLLOWED,
  FOLLOW_WORD,
  ID_BLOCK,
  ID_BLOCK_SIZE,
  JOURNALED,
  JOURNAL_IDLE,
  JOURNAL_WAKE,
  JOURNAL_WORD,
  HEAD,
  LAYOUT_VERSION,
  MAGIC,
  MAGIC_WORD,
  MAX_PAYLOAD_WORD,
  PUBLISHED,
  READ,
  RECORD_HEADER_BYTES,
  REJECTED_BASE,
  REJECT_REASONS,
  R_ATTEMPT,
  R_F64_ID,
  R_F64_READY_AT,
  R_F64_SENT_AT,
  R_FLAGS,
  R_KEY_BYTES,
  R_KEY_SEQ,
  R_KEY_SLOT,
  R_META_BYTES,
  R_HEADERS_BYTES,
  R_PAYLOAD_BYTES,
  R_UNITS,
  POOL_HOSTS,
  POOL_LANE,
  SLEEPERS,
  TAIL,
  UNIT_SHIFT,
  VERSION_WORD,
  WAKE,
  WAKE_PENDING,
  regions,
  type RejectReason,
} from './layout.js';
import { PoolBoard } from './pool-board.js';
import { SlotView } from './slot.js';

export interface RingInit {
  /** Data region size in bytes; a power of two. */
  capacityBytes: number;
  /** Largest payload + key accepted. */
  maxPayloadBytes: number;
  /** Start value of every cursor (tests start near 2^32 to cross the wrap). */
  initialCursor?: number;
  /** An outcome feed follows the ring: reclaim stops at FOLLOWED (runtime/mailbox/outcomes.ts). */
  followed?: boolean;
  /** A journal thread follows the ring: claims stop at JOURNALED (runtime/store/journal/). */
  journaled?: boolean;
  /** Touch every page at allocation (default true); false for a ring used now and then (a reply ring): its pages come on first use. */
  prefault?: boolean;
}

export class RingView {
  readonly sab: SharedArrayBuffer;
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  readonly u8: Uint8Array;
  readonly buf: Buffer;
  /** One byte per data unit. */
  readonly state: Uint8Array;
  readonly capacityUnits: number;
  readonly indexMask: number;
  readonly dataOff: number;
  readonly maxPayloadBytes: number;

  static allocate(init: RingInit): SharedArrayBuffer {
    const { capacityBytes, maxPayloadBytes } = init;
    if (capacityBytes <= 0 || (capacityBytes & (capacityBytes - 1)) !== 0) {
      throw new RangeError(`capacityBytes must be a power of two, got ${capacityBytes}`);
    }
    const { total } = regions(capacityBytes);
    const sab = new SharedArrayBuffer(total);
    const i32 = new Int32Array(sab);
    // Touch every page now: a first-lap page fault costs microseconds, and it
    // would land on a send() in the middle of a burst.
    if (init.prefault !== false) for (let w = 0; w < i32.length; w += 1024) i32[w] = 0;
    const c = (init.initialCursor ?? 0) | 0;
    // Plain writes: no other thread has the buffer yet (postMessage of it to a thread orders them before).
    i32[HEAD] = c;
    i32[READ] = c;
    i32[TAIL] = c;
    i32[MAGIC_WORD] = MAGIC;
    i32[VERSION_WORD] = LAYOUT_VERSION;
    i32[CAPACITY_UNITS_WORD] = capacityBytes >>> UNIT_SHIFT;
    i32[MAX_PAYLOAD_WORD] = maxPayloadBytes;
    i32[CONCURRENCY_WORD] = 1;
    i32[FOLLOWED] = c;
    // Before any Ring wraps the buffer: each reads it once (see Ring's reclaim limit).
    i32[FOLLOW_WORD] = init.followed === true ? 1 : 0;
    i32[JOURNALED] = c;
    i32[JOURNAL_WORD] = init.journaled === true ? 1 : 0;
    return sab;
  }

  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.i32 = new Int32Array(sab);
    // Plain reads of words written once at allocation, before the buffer reached this thread.
    if (this.i32[MAGIC_WORD] !== MAGIC || this.i32[VERSION_WORD] !== LAYOUT_VERSION) {
      throw new TypeError('not a ringpool ring (bad magic or layout version)');
    }
    this.f64 = new Float64Array(sab, 0, sab.byteLength >>> 3);
    this.u8 = new Uint8Array(sab);
    this.buf = Buffer.from(sab);
    this.capacityUnits = this.i32[CAPACITY_UNITS_WORD]!;
    this.indexMask = this.capacityUnits - 1;
    const capacityBytes = this.capacityUnits << UNIT_SHIFT;
    const { stateOff, dataOff } = regions(capacityBytes);
    this.state = new Uint8Array(sab, stateOff, this.capacityUnits);
    this.dataOff = dataOff;
    this.maxPayloadBytes = this.i32[MAX_PAYLOAD_WORD]!;
  }

  get capacityBytes(): number {
    return this.capacityUnits << UNIT_SHIFT;
  }

  /** Byte offset of a unit in the buffer. */
  offsetOf(unit: number): number {
    return this.dataOff + (unit << UNIT_SHIFT);
  }

  countEnqueued(n: number): void {
    Atomics.add(this.i32, ENQUEUED, n);
  }

  countRejected(reason: RejectReason, n = 1): void {
    Atomics.add(this.i32, REJECTED_BASE + REJECT_REASONS.indexOf(reason), n);
  }

  // ---------------------------------------------------------------- record fields

  units(unit: number): number {
    return this.i32[(this.dataOff >> 2) + (unit << 2) + R_UNITS]!;
  }
  payloadBytes(unit: number): number {
    return this.i32[(this.dataOff >> 2) + (unit << 2) + R_PAYLOAD_BYTES]!;
  }
  keyBytes(unit: number): number {
    return this.i32[(this.dataOff >> 2) + (unit << 2) + R_KEY_BYTES]!;
  }
  attempt(unit: number): number {
    return this.i32[(this.dataOff >> 2) + (unit << 2) + R_ATTEMPT]!;
  }
  keySeq(unit: number): number {
    return this.i32[(this.dataOff >> 2) + (unit << 2) + R_KEY_SEQ]!;
  }
  keySlot(unit: number): number {
    return this.i32[(this.dataOff >> 2) + (unit << 2) + R_KEY_SLOT]!;
  }
  metaBytes(unit: number): number {
    return this.i32[(this.dataOff >> 2) + (unit << 2) + R_META_BYTES]!;
  }
  /** FLAG_HEADERS: their bytes, after the payload (0 without the flag: the word is written with every header). */
  headersBytes(unit: number): number {
    return this.i32[(this.dataOff >> 2) + (unit << 2) + R_HEADERS_BYTES]!;
  }
  flags(unit: number): number {
    return this.i32[(this.dataOff >> 2) + (unit << 2) + R_FLAGS]!;
  }
  id(unit: number): number {
    return this.f64[(this.dataOff >> 3) + (unit << 1) + R_F64_ID]!;
  }
  sentAt(unit: number): number {
    return this.f64[(this.dataOff >> 3) + (unit << 1) + R_F64_SENT_AT]!;
  }
  readyAt(unit: number): number {
    return this.f64[(this.dataOff >> 3) + (unit << 1) + R_F64_READY_AT]!;
  }
  /** The record's key, or undefined. Allocates a string: only for keyed records. */
  key(unit: number): string | undefined {
    const n = this.keyBytes(unit);
    if (n === 0) return undefined;
    const start = this.offsetOf(unit) + RECORD_HEADER_BYTES;
    return this.buf.toString('utf8', start, start + n);
  }
  /** Byte range of the payload. */
  payloadStart(unit: number): number {
    return this.offsetOf(unit) + RECORD_HEADER_BYTES + this.keyBytes(unit);
  }

  // ---------------------------------------------------------------- counters and cursors

  /** Ready records not yet claimed. */
  depth(): number {
    const d = (Atomics.load(this.i32, PUBLISHED) - Atomics.load(this.i32, CLAIMED)) | 0;
    return d > 0 ? d : 0;
  }
  /** Units in use (reserved and not yet reclaimed). */
  usedUnits(): number {
    const t = Atomics.load(this.i32, TAIL);
    return (Atomics.load(this.i32, HEAD) - t) >>> 0;
  }
  private slotViews: SlotView[] | null = null;
  /** Consumer slot `c`'s words (slot.ts); one view per slot, made on first use. */
  slot(c: number): SlotView {
    const views = (this.slotViews ??= []);
    return (views[c] ??= new SlotView(this.i32, this.f64, c));
  }

  // ---------------------------------------------------------------- ids

  private idNext = 0;
  private idEnd = 0;

  /** Forget this thread's id block: the next id starts a new one (after ids were handed out elsewhere, a replay). */
  dropIdBlock(): void {
    this.idNext = this.idEnd = 0;
  }

  /** A message id unique in this ring: ids come in blocks of 2^16 per producer thread. */
  nextId(): number {
    if (this.idNext === this.idEnd) {
      const block = Atomics.add(this.i32, ID_BLOCK, 1) >>> 0;
      this.idNext = block * ID_BLOCK_SIZE;
      this.idEnd = this.idNext + ID_BLOCK_SIZE;
    }
    return this.idNext++;
  }

  // ---------------------------------------------------------------- wake words

  /** The shared pool's board when a pool serves this ring (attachBoard), and the ring's lane on it. */
  private board: PoolBoard | null = null;
  private lane = 0;

  /** A shared pool serves this ring: its wake-ups go through the pool's board too (its lane is in the header). */
  attachBoard(sab: SharedArrayBuffer): void {
    this.board = new PoolBoard(sab);
    this.lane = Atomics.load(this.i32, POOL_LANE);
  }

  /** A keyed record was pushed to slot `owner`'s hand-off queue: on a shared pool, wake the thread that runs it. */
  wakeOwner(owner: number): void {
    const b = this.board;
    if (b === null) return;
    const t = this.slot(owner).poolThread();
    if (t >= 0) b.handoff(t);
  }

  /** The board attached (for another thread's view of this ring: the journal's), or null. */
  get boardSab(): SharedArrayBuffer | null {
    return this.board === null ? null : (this.board.i32.buffer as SharedArrayBuffer);
  }

  /** Notify one parked consumer, if any is parked and no wake-up is on its way already. */
  wakeIfSleeping(): boolean {
    const i32 = this.i32;
    const b = this.board;
    if (b !== null && b.markReady(this.lane, Atomics.load(i32, POOL_HOSTS))) return true;
    // Seq-cst: a consumer increments SLEEPERS before its last look for work,
    // so either we see it here or it sees the record we just published.
    if (Atomics.load(i32, SLEEPERS) === 0) return false;
    // A wake-up already on its way will find this record too (the woken
    // consumer claims until the ring is empty before it parks again).
    if (Atomics.compareExchange(i32, WAKE_PENDING, 0, 1) !== 0) return false;
    Atomics.add(i32, WAKE, 1);
    if (Atomics.notify(i32, WAKE, 1) === 0) Atomics.store(i32, WAKE_PENDING, 0);
    return true;
  }

  /**
   * Wake the journal thread if it is parked (seq-cst: it sets JOURNAL_IDLE
   * before its last look, so either we see 1 here or it sees our record).
   * The one that turns IDLE 1 -> 0 notifies: one futex wake per wake-up.
   */
  wakeJournal(): void {
    const i32 = this.i32;
    if (Atomics.load(i32, JOURNAL_IDLE) === 0) return;
    if (Atomics.compareExchange(i32, JOURNAL_IDLE, 1, 0) !== 1) return;
    Atomics.add(i32, JOURNAL_WAKE, 1);
    Atomics.notify(i32, JOURNAL_WAKE, 1);
  }

  /** A consumer leaving park(): the next publish may notify again. */
  wakeConsumed(): void {
    Atomics.store(this.i32, WAKE_PENDING, 0);
  }

  /** Wake every parked consumer, if any is parked (a hand-off to a consumer that may be one of them). */
  wakeAllIfSleeping(): void {
    const b = this.board;
    if (b !== null) b.markReady(this.lane, Atomics.load(this.i32, POOL_HOSTS));
    if (Atomics.load(this.i32, SLEEPERS) > 0) this.wakeAll();
  }

  /** Wake every parked consumer (stop requests). */
  wakeAll(): void {
    const b = this.board;
    if (b !== null) b.markReady(this.lane, Atomics.load(this.i32, POOL_HOSTS));
    Atomics.add(this.i32, WAKE, 1);
    Atomics.notify(this.i32, WAKE);
  }
}
