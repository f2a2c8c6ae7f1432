/**
 * The mailbox ring: a bounded multi-producer, multi-consumer queue of
 * variable-length records in one SharedArrayBuffer. Thread-neutral: the
 * dispatcher and every consumer thread wrap the same buffer in their own
 * `Ring` instance. Layout and cursor arithmetic: see layout.ts.
 *
 * The protocol, in the order things happen to a record:
 *
 * 1. reserve  (producer) CAS HEAD h -> h+n after checking `h + n - TAIL <= C`.
 *             The units [h, h+n) now belong to this producer; their state
 *             bytes are all FREE (0), so no consumer takes them for a record.
 *             A record that would cross the end of the data region makes the
 *             producer reserve the rest of the region too and mark it SKIP.
 * 2. write    (producer) plain stores of the header, key and payload.
 * 3. publish  (producer) Atomics.add(PUBLISHED), then Atomics.store(state, READY).
 *             The store is the release: a consumer that loads READY with
 *             Atomics.load (acquire) sees every byte written in step 2.
 *             Then, only if SLEEPERS > 0: bump WAKE and Atomics.notify it.
 * 4. claim    (consumer) load READ, walk forward over READY/SKIP records up to
 *             a batch (and, when a journal follows the ring, only below its
 *             JOURNALED cursor: no handler acts on a record not yet on disk), CAS READ to the end of the walk (one CAS a batch), then
 *             CAS each record's state READY -> CLAIMED+c. The per-record CAS
 *             fails only when the dispatcher, recovering after a thread died,
 *             took a READY record behind READ first (it cannot tell a claim cut
 *             short by a death from one in progress); that record is then
 *             redelivered by the dispatcher instead (possibly out of order).
 * 5. ack      (consumer) CAS CLAIMED+c -> DONE. It fails when the dispatcher
 *             already took the record back (lease expired, thread revoked):
 *             a late result from a dead lease is ignored, never double-counted.
 *    nack     the consumer reports to the dispatcher; the record stays CLAIMED
 *             until the dispatcher has copied it out (HELD), then the
 *             dispatcher marks it TAKEN.
 * 6. reclaim  (anyone, usually the acking consumer) at TAIL t: CAS the state
 *             DONE|TAKEN|SKIP -> RECLAIMING (one winner), store FREE, store TAIL.
 *             Up to READ; or, when an outcome feed follows the ring, up to its
 *             FOLLOWED cursor (the feed reports each finished record, then lets
 *             it go: runtime/mailbox/outcomes.ts).
 *             Only the start unit of a record ever has a non-zero state byte,
 *             so resetting it restores the invariant "every state byte in
 *             free space is FREE". A record that is not DONE stops reclaiming:
 *             a slow message holds the space behind it (bounded by leaseMs).
 */
import {
  CLAIMED, FLAG_ASCII, FLAG_HEADERS, RECORD_HEADER_BYTES, R_ATTEMPT, R_F64_ID, R_F64_READY_AT, R_F64_SENT_AT,
  R_FLAGS, R_KEY_BYTES, R_META_BYTES, R_HEADERS_BYTES, R_PAYLOAD_BYTES, UNIT_SHIFT, FLAG_KEYED, FOLLOWED,
  FOLLOW_WORD, HEAD, JOURNALED, JOURNAL_WORD, HELD_UNITS_WORD, KEY_WORDS, K_SENT, PUBLISHED, READ, R_KEY_SEQ,
  R_KEY_SLOT, R_UNITS, SPACE_SEQ, SPACE_WAITERS, ST_CLAIMED, ST_DONE, ST_FREE, ST_READY, ST_RECLAIMING, ST_SKIP,
  ST_TAKEN, TAIL, DELAYED_TAG, RESV_BATCH, RESV_BATCH_LAID, MARK_HEAD, MARK_KEY, MARK_NEED, MARK_SEQ, MARK_TAG,
  recordUnits,
} from './layout.js';
import { writeUtf8 } from './codec.js';
import { faultHook } from './faults.js';
import { RingView } from './ring-view.js';

export type { RingInit } from './ring-view.js';

/** Anything that can write a payload at a byte offset (a prepared codec, or held bytes). */
export interface PayloadWriter {
  write(buf: Buffer, offset: number): void;
}

export class Ring extends RingView {
  /**
   * Count the units the dispatcher holds outside the ring (HELD_UNITS_WORD) as
   * used. Off only for the dispatcher's own re-publishing of held messages.
   */
  countHeld = true;
  /** This thread's last look at TAIL (see reserve). */
  private cachedTail: number;
  /** Where reclaim stops: READ, or FOLLOWED when an outcome feed follows the ring (read once, here). */
  private readonly reclaimLimit: number;
  /** Where claims stop: HEAD, or JOURNALED when a journal follows the ring (read once, here). */
  private readonly claimLimit: number;
  /** A journal follows the ring: publish wakes it (it wakes the consumers once the record is on disk). */
  readonly journaled: boolean;
  /** The cursor just past the last record this Ring wrote (write()): sendAsync waits for JOURNALED to pass it. */
  lastEnd = 0;
  /** The last write() woke a parked consumer (a thread that just woke another should not then spin on its core: park.ts). */
  woke = false;
  /**
   * Worker threads: the slot words where each reservation is written down
   * before its CAS (see markIn), so the dispatcher can repair a hole left by
   * a thread that dies before it publishes. Null on the main thread.
   */
  private mark: Int32Array | null = null;
  private markAt = 0;
  /** Which ring this is, for the dispatcher (layout.ringTag). */
  markTag = 0;

  constructor(sab: SharedArrayBuffer) {
    super(sab);
    this.cachedTail = Atomics.load(this.i32, TAIL);
    this.reclaimLimit = Atomics.load(this.i32, FOLLOW_WORD) === 1 ? FOLLOWED : READ;
    this.journaled = Atomics.load(this.i32, JOURNAL_WORD) === 1;
    this.claimLimit = this.journaled ? JOURNALED : HEAD;
  }

  /**
   * Write this thread's reservations down in the words of its slot from `at`
   * (SlotView.markWord; each word at its MARK_* offset), as ring `tag`. Plain
   * writes: the dispatcher reads them only after this thread is gone (holes.ts).
   */
  markIn(i32: Int32Array, at: number, tag: number): void {
    this.mark = i32;
    this.markAt = at;
    this.markTag = tag;
  }

  /** A delayed send to this ring counted and (keyed) given its seq, about to be handed to the dispatcher: written down. */
  markDelayed(keySlot: number, seq: number): void {
    const m = this.mark;
    if (m === null) return;
    const b = this.markAt;
    m[b + MARK_KEY] = keySlot + 1;
    m[b + MARK_SEQ] = seq;
    m[b + MARK_TAG] = DELAYED_TAG | this.markTag;
  }

  /** A batch's headers are all written (batch.ts): from now on its keyed records' seqs are in their headers. */
  markLaid(): void {
    if (this.mark !== null) this.mark[this.markAt + MARK_KEY] = RESV_BATCH_LAID;
  }

  /** The delayed send was handed over. */
  unmark(): void {
    if (this.mark !== null) this.mark[this.markAt + MARK_TAG] = 0;
  }

  // ---------------------------------------------------------------- producer


  /**
   * Reserve `units` contiguous units. Returns the unit index of the record,
   * or -1 when the ring has no room now. `batch` > 0: the units hold that
   * many records (batch.ts), and the mark says so.
   */
  reserve(units: number, batch = 0): number {
    const i32 = this.i32;
    const cap = this.capacityUnits;
    let fresh = false;
    let helped = false;
    for (;;) {
      // A stale TAIL under-estimates free space (TAIL only grows), so this
      // thread's cached copy is safe to use until it says "full"; only then do
      // we pay the cross-core load (the Disruptor's cached gating sequence).
      const t = this.cachedTail;
      const h = Atomics.load(i32, HEAD);
      const at = h & this.indexMask;
      const toEnd = cap - at;
      const need = units <= toEnd ? units : toEnd + units;
      // Plain: an estimate of units held outside the ring (backpressure); the HEAD CAS below is what orders the reservation.
      const held = this.countHeld ? i32[HELD_UNITS_WORD]! : 0;
      if (((h - t) >>> 0) + need + held > cap) {
        if (!fresh) {
          // Reload TAIL, then read HEAD again (next turn): HEAD read after TAIL is never behind it.
          this.cachedTail = Atomics.load(i32, TAIL);
          fresh = true;
          continue;
        }
        // Records may be DONE but not yet reclaimed (their consumer is
        // between ack and reclaim): help once, then report full.
        if (!helped && this.reclaim() > 0) {
          helped = true;
          fresh = false;
          continue;
        }
        return -1;
      }
      const m = this.mark;
      if (m !== null) {
        // Written before the CAS: a thread that dies after it leaves its hole described (holes.ts).
        const b = this.markAt;
        m[b + MARK_KEY] = batch > 0 ? RESV_BATCH : 0;
        m[b + MARK_SEQ] = batch;
        m[b + MARK_HEAD] = h;
        m[b + MARK_NEED] = need;
        m[b + MARK_TAG] = this.markTag;
      }
      if (Atomics.compareExchange(i32, HEAD, h, (h + need) | 0) === h) {
        this.lastEnd = (h + need) | 0;
        if (need !== units) {
          // The rest of the region is padding; a consumer passes over it.
          Atomics.store(this.state, at, ST_SKIP);
          return 0;
        }
        return at;
      }
    }
  }

  /** Write a record header (step 2). */
  writeHeader(
    unit: number,
    units: number,
    payloadBytes: number,
    keyBytes: number,
    attempt: number,
    id: number,
    sentAt: number,
    readyAt: number,
    flags: number,
    metaBytes: number,
    headersBytes = 0,
  ): number {
    const off = this.dataOff + (unit << UNIT_SHIFT);
    const w = off >> 2;
    const f = off >> 3;
    const i32 = this.i32;
    const f64 = this.f64;
    i32[w + R_UNITS] = units;
    i32[w + R_PAYLOAD_BYTES] = payloadBytes;
    i32[w + R_KEY_BYTES] = keyBytes;
    i32[w + R_ATTEMPT] = attempt;
    i32[w + R_FLAGS] = flags;
    i32[w + R_META_BYTES] = metaBytes;
    i32[w + R_HEADERS_BYTES] = headersBytes;
    f64[f + R_F64_ID] = id;
    f64[f + R_F64_SENT_AT] = sentAt;
    f64[f + R_F64_READY_AT] = readyAt;
    return off + RECORD_HEADER_BYTES;
  }

  /** Step 3. Returns true when a sleeping consumer was notified. */
  publish(unit: number): boolean {
    Atomics.add(this.i32, PUBLISHED, 1);
    Atomics.store(this.state, unit, ST_READY);
    if (this.journaled) {
      this.wakeJournal();
      return false;
    }
    return this.wakeIfSleeping();
  }

  /**
   * Reserve, write and publish one record. `key` is written when keyBytes > 0;
   * `payload.write` writes the payload and then, past the `headers` (written
   * here, after the payload), `metaBytes` of meta.
   * Returns false when the ring is full (nothing written).
   */
  write(
    payload: PayloadWriter,
    payloadBytes: number,
    key: string | null,
    keyBytes: number,
    attempt: number,
    id: number,
    sentAt: number,
    readyAt: number,
    ascii: boolean,
    metaBytes = 0,
    extraFlags = 0,
    keyTable: Int32Array | null = null,
    keySlot = 0,
    keySeq: number | null = null,
    headers: Uint8Array | null = null,
  ): boolean {
    const headersBytes = headers === null ? 0 : headers.byteLength;
    const units = recordUnits(keyBytes + metaBytes + headersBytes, payloadBytes);
    const unit = this.reserve(units);
    if (unit < 0) return false;
    let flags = (ascii ? FLAG_ASCII : 0) | (headersBytes === 0 ? extraFlags & ~FLAG_HEADERS : extraFlags | FLAG_HEADERS);
    if (keyTable !== null) {
      // The key's sequence number is taken only now that the record has room:
      // a send that fails on a full ring must not leave a hole in its key's order.
      const seq = keySeq ?? Atomics.add(keyTable, keySlot * KEY_WORDS + K_SENT, 1);
      const m = this.mark;
      if (m !== null && keySeq === null) {
        // The seq is taken: a thread that dies before publishing leaves a hole in its key's order too.
        m[this.markAt + MARK_SEQ] = seq;
        m[this.markAt + MARK_KEY] = keySlot + 1;
      }
      const w = (this.dataOff >> 2) + (unit << 2);
      this.i32[w + R_KEY_SEQ] = seq;
      this.i32[w + R_KEY_SLOT] = keySlot;
      flags |= FLAG_KEYED;
    }
    const body = this.writeHeader(unit, units, payloadBytes, keyBytes, attempt, id, sentAt, readyAt, flags, metaBytes, headersBytes);
    if (keyBytes !== 0) writeUtf8(this.buf, key!, body, keyBytes);
    payload.write(this.buf, body + keyBytes);
    if (headers !== null) this.buf.set(headers, body + keyBytes + payloadBytes);
    if (faultHook !== null) faultHook('ring-reserved', this.markTag);
    this.woke = this.publish(unit);
    if (faultHook !== null) faultHook('published', this.woke ? 1 : 0);
    return true;
  }

  // ---------------------------------------------------------------- consumer

  /** True when the record at READ is ready to claim (or padding before one). */
  hasReady(): boolean {
    const r = Atomics.load(this.i32, READ);
    if (r === Atomics.load(this.i32, this.claimLimit)) return false;
    const s = Atomics.load(this.state, r & this.indexMask);
    return s === ST_READY || s === ST_SKIP || (s === ST_TAKEN && this.journaled);
  }

  /**
   * Claim up to `max` ready records for consumer `c`; their unit indices go
   * to `out`. Returns how many were claimed (0 when none is ready).
   */
  claim(c: number, max: number, out: Int32Array): number {
    const i32 = this.i32;
    const state = this.state;
    const mask = this.indexMask;
    for (;;) {
      const r = Atomics.load(i32, READ);
      const h = Atomics.load(i32, this.claimLimit);
      let p = r;
      let k = 0;
      while (p !== h && k < max) {
        const at = p & mask;
        const s = Atomics.load(state, at);
        if (s === ST_READY) {
          out[k++] = at;
          p = (p + i32[(this.dataOff >> 2) + (at << 2) + R_UNITS]!) | 0;
        } else if (s === ST_SKIP) {
          p = (p + (this.capacityUnits - at)) | 0;
        } else if (s === ST_TAKEN && this.journaled) {
          // A repaired hole (holes.ts) the journal passed: READ was left at it, step over.
          p = (p + i32[(this.dataOff >> 2) + (at << 2) + R_UNITS]!) | 0;
        } else {
          break; // reserved, not yet published
        }
      }
      if (k === 0) {
        // Only padding ahead of an unpublished record: move READ over it so it can be reclaimed.
        if (p !== r) Atomics.compareExchange(i32, READ, r, p);
        return 0;
      }
      if (Atomics.compareExchange(i32, READ, r, p) !== r) continue;
      Atomics.add(i32, CLAIMED, k);
      const mine = ST_CLAIMED + c;
      let n = 0;
      for (let i = 0; i < k; i++) {
        const at = out[i]!;
        if (Atomics.compareExchange(state, at, ST_READY, mine) === ST_READY) out[n++] = at;
      }
      return n;
    }
  }

  /** Step 5: CAS CLAIMED+c -> DONE. False when the dispatcher took the record back. */
  ack(c: number, unit: number): boolean {
    return Atomics.compareExchange(this.state, unit, ST_CLAIMED + c, ST_DONE) === ST_CLAIMED + c;
  }

  /** Step 6. Returns the number of units freed. */
  reclaim(): number {
    const i32 = this.i32;
    const state = this.state;
    let freed = 0;
    for (;;) {
      const t = Atomics.load(i32, TAIL);
      if (t === Atomics.load(i32, this.reclaimLimit)) break;
      const at = t & this.indexMask;
      const s = Atomics.load(state, at);
      let units: number;
      if (s === ST_DONE || s === ST_TAKEN) units = i32[(this.dataOff >> 2) + (at << 2) + R_UNITS]!;
      else if (s === ST_SKIP) units = this.capacityUnits - at;
      else break;
      if (Atomics.compareExchange(state, at, s, ST_RECLAIMING) !== s) break;
      // The state byte is only 8 bits: the record we CASed may be a newer one
      // at the same unit if TAIL moved meanwhile. Holding RECLAIMING at TAIL's
      // unit means nobody else can move TAIL, so this check is final.
      if (Atomics.load(i32, TAIL) !== t) {
        Atomics.store(state, at, s);
        continue;
      }
      // TAIL is ours while its unit says RECLAIMING: the finished records right
      // after it are freed in the same pass (DONE, TAKEN and SKIP are final
      // until reclaimed, and only TAIL's holder reclaims), and TAIL moves once.
      // Their states go FREE before TAIL passes them: a producer writes only
      // behind TAIL.
      const limit = Atomics.load(i32, this.reclaimLimit);
      let p = (t + units) | 0;
      let n = units;
      while (p !== limit && n < this.capacityUnits) {
        const a = p & this.indexMask;
        const ps = Atomics.load(state, a);
        let u: number;
        if (ps === ST_DONE || ps === ST_TAKEN) u = i32[(this.dataOff >> 2) + (a << 2) + R_UNITS]!;
        else if (ps === ST_SKIP) u = this.capacityUnits - a;
        else break;
        Atomics.store(state, a, ST_FREE);
        p = (p + u) | 0;
        n += u;
      }
      Atomics.store(state, at, ST_FREE);
      Atomics.store(i32, TAIL, p);
      freed += n;
    }
    if (freed !== 0 && Atomics.load(i32, SPACE_WAITERS) !== 0) {
      Atomics.add(i32, SPACE_SEQ, 1);
      Atomics.notify(i32, SPACE_SEQ);
    }
    return freed;
  }
}
