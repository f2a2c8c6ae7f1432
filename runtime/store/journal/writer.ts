/**
 * The journaller (journal thread): one more consumer of the ring, the
 * Disruptor's way. It follows the published records from JOURNALED, writes
 * the new ones as they lie in the ring (one RING record per contiguous run
 * of them, no copy; records the dispatcher put back are in the journal already)
 * with the outcome posts the main thread sent meanwhile, fdatasyncs once for
 * the batch ('always'), and only then moves JOURNALED: consumers claim below
 * it, so no handler acts on a message that is not on disk, and a batch is
 * whatever arrived during the previous fsync (group commit).
 *
 * Files go through JournalFiles, so tests run it in-process on recorded files.
 */
import { join } from 'node:path';
import {
  FLAG_AGAIN,
  FLAG_VOID,
  HEAD,
  ID_BLOCK,
  ID_BLOCK_SIZE,
  JOURNALED,
  JOURNAL_BROKEN,
  JOURNAL_CLOSED,
  JOURNAL_FAILED,
  JOURNAL_SEQ,
  JOURNAL_WATCHERS,
  OUTCOMES_DONE,
  ST_READY,
  ST_SKIP,
  ST_TAKEN,
  UNIT_SHIFT,
  J_BYTES,
  J_COMPACTIONS,
  J_FSYNCS,
  J_LAST_FSYNC_MS,
  J_RECOVERED,
  J_SEGMENTS,
} from '../../shared/layout.js';
import { Ring } from '../../shared/ring.js';
import type { StructureTable } from '../../shared/structures.js';
import type { JournalFiles } from './files.js';
import { copyForward } from './compact.js';
import { segmentName } from './format.js';
import { LiveIndex } from './live.js';
import { Recovery, type RecoveredParts } from './recovery.js';
import { lockDir, type HeldLock } from './lock.js';
import { RT_OUTCOMES, RT_RING } from './records.js';
import { SegmentLog } from './segment-log.js';

export interface WriterOptions {
  mailbox: string;
  dir: string;
  fsync: 'always' | 'interval' | 'never';
  intervalMs: number;
  segmentBytes: number;
}

/** The file in `dir` holding an id no journaled message reaches (ids after a restart start there). */
export const IDS_NAME = 'ids';
/** The file in `dir` holding the msgpack record structures (structures.ts's entries). */
export const STRUCTURES_NAME = 'structures';
/** The stats words (Float64) the journal thread writes and stats() reads: their layout is in layout.ts. */
export { J_BYTES, J_COMPACTIONS, J_FSYNCS, J_LAST_FSYNC_MS, J_RECOVERED, J_SEGMENTS, J_STATS_WORDS } from '../../shared/layout.js';

/** Most ring bytes one batch writes. */
const MAX_BATCH_BYTES = 4 << 20;
/** A segment with fewer live references than this share of those ever made in it is copied forward. */
const LIVE_SHARE = 0.5;

export interface Opened extends RecoveredParts {
  /** Live messages and dead letters found. */
  count: number;
  tornBytes: number;
}

export class JournalWriter {
  readonly ring: Ring;
  private readonly i32: Int32Array;
  private readonly log: SegmentLog;
  private readonly index = new LiveIndex();
  private lock: HeldLock | null = null;
  /** The journal's cursor here (JOURNALED once the batch is on disk). */
  private pos: number;
  private idMark = 0;
  private dirty = false;
  private lastSync = 0;
  private failed = false;
  private readonly types: number[] = [];
  private readonly datas: Uint8Array[] = [];
  private readonly data: Buffer;

  constructor(
    private readonly files: JournalFiles,
    sab: SharedArrayBuffer,
    private readonly opts: WriterOptions,
    private readonly stats: Float64Array,
    /** The msgpack codec's record structures, persisted before any record that may use them. */
    private readonly structures: StructureTable | null = null,
    /** Bytes of the `structures` file the main thread loaded into the table (journal/index.ts). */
    private structuresBytes = 0,
  ) {
    this.ring = new Ring(sab);
    this.i32 = this.ring.i32;
    this.pos = Atomics.load(this.i32, JOURNALED);
    this.data = this.ring.buf.subarray(this.ring.dataOff, this.ring.dataOff + this.ring.capacityBytes);
    this.log = new SegmentLog(files, opts.dir, opts.segmentBytes, opts.mailbox, opts.fsync !== 'never');
  }

  /** Take the lock, recover the segments, and return what is unfinished in them. */
  open(): Opened {
    this.files.mkdirp(this.opts.dir);
    this.lock = lockDir(this.files, this.opts.dir, this.opts.mailbox);
    try {
      return this.recover();
    } catch (err) {
      // Refused (corrupt) or failed: let the directory go, so a fixed one can be opened again by this process.
      this.unlockDir();
      throw err;
    }
  }

  private recover(): Opened {
    const index = this.index;
    const log = this.log;
    const recovery = new Recovery(index.refs);
    index.collector = recovery;
    let known = 0;
    const rec = log.open(
      (seq, type, data) => {
        if (log.segmentCount !== known) {
          known = log.segmentCount;
          index.setSegments(log.firsts());
        }
        index.record(seq, type, data);
      },
      () => recovery.segmentDone(),
    );
    index.setSegments(log.firsts());
    index.collector = null;
    const parts = recovery.finish();
    const count = recovery.size;
    this.stats[J_RECOVERED] = count;
    this.publishStats();
    return { ...parts, count, tornBytes: rec.tornBytes };
  }

  /**
   * One batch: the ring's new records and `posts` (outcome batches), written
   * and synced as the mode says, then JOURNALED moved. False when there was
   * nothing to write. A failure sets JOURNAL_FAILED and throws RINGPOOL_JOURNAL_IO.
   */
  pass(posts: readonly Uint8Array[]): boolean {
    if (this.failed) return false;
    const { ring, i32, types, datas } = this;
    const state = ring.state;
    const mask = ring.indexMask;
    const cap = ring.capacityUnits;
    const head = Atomics.load(i32, HEAD);
    let p = this.pos;
    let run = -1;
    let bytes = 0;
    let records = 0;
    types.length = 0;
    datas.length = 0;
    while (p !== head && bytes < MAX_BATCH_BYTES) {
      const at = p & mask;
      const s = Atomics.load(state, at);
      if (s === ST_READY || s === ST_TAKEN) {
        const units = ring.units(at);
        p = (p + units) | 0;
        records++;
        // Put back by the dispatcher (a retry, a redelivery, a replay: the journal has it already) or
        // a repaired hole (TAKEN past JOURNALED, holes.ts): passed over, not written.
        if (s === ST_TAKEN || (ring.flags(at) & (FLAG_AGAIN | FLAG_VOID)) !== 0) {
          if (run >= 0) this.pushRun(run, at);
          run = -1;
          continue;
        }
        if (run < 0) run = at;
        bytes += units << UNIT_SHIFT;
        if (at + units === cap) {
          this.pushRun(run, cap);
          run = -1;
        }
      } else if (s === ST_SKIP) {
        if (run >= 0) this.pushRun(run, at);
        run = -1;
        p = (p + cap - at) | 0;
      } else break; // reserved, not yet published
    }
    if (run >= 0) this.pushRun(run, p & mask);
    for (const post of posts) {
      types.push(RT_OUTCOMES);
      datas.push(post);
    }
    if (datas.length === 0) {
      if (p !== this.pos) this.advance(p, 0, records); // padding, or only records the dispatcher put back
      return false;
    }
    try {
      this.markIds();
      this.markStructures();
      const segs = this.log.segmentCount;
      const first = this.log.appendRecords(types, datas, this.opts.fsync === 'always');
      if (this.log.segmentCount !== segs) this.index.setSegments(this.log.firsts());
      if (this.opts.fsync === 'interval') this.dirty = true;
      // Before JOURNALED moves: past it, consumers may finish and reclaim these records.
      for (let i = 0; i < datas.length; i++) this.index.record(first + i, types[i]!, datas[i] as Buffer);
    } catch (err) {
      this.fail();
      throw err;
    } finally {
      datas.length = 0;
    }
    // Stats first: whoever sees JOURNALED move also sees the fsync that made it.
    this.publishStats();
    this.advance(p, posts.length, records);
    return true;
  }

  /** fsync 'interval': fdatasync what was written, when intervalMs has passed. Returns ms until the next is due (Infinity: none). */
  syncIfDue(t: number): number {
    if (!this.dirty || this.failed) return Infinity;
    const wait = this.lastSync + this.opts.intervalMs - t;
    if (wait > 0) return wait;
    try {
      this.log.sync();
    } catch (err) {
      this.fail();
      throw err;
    }
    this.dirty = false;
    this.lastSync = t;
    this.publishStats();
    return Infinity;
  }

  /** Ms until syncIfDue has work (Infinity: nothing unsynced). */
  syncWait(t: number): number {
    if (!this.dirty || this.failed) return Infinity;
    return Math.max(0, this.lastSync + this.opts.intervalMs - t);
  }

  /** True when the ring has a record past the journal's cursor. */
  hasWork(): boolean {
    const p = this.pos;
    if (p === Atomics.load(this.i32, HEAD)) return false;
    return Atomics.load(this.ring.state, p & this.ring.indexMask) !== 0;
  }

  /**
   * Delete the oldest segments while nothing in them is live; if the oldest
   * left is mostly dead, copy its live messages forward, then it goes too.
   * Only from the oldest (segment-log.ts dropDead says why); never the open one.
   */
  compact(): void {
    if (this.failed) return;
    try {
      this.dropDead();
      const firsts = this.log.firsts();
      if (firsts.length > 1) {
        const f = firsts[0]!;
        const live = this.index.liveIn(f);
        if (live > 0 && live < this.index.madeIn(f) * LIVE_SHARE) {
          copyForward(this.log, this.index, this.files, join(this.opts.dir, segmentName(f)), f, firsts[1]!, this.opts.mailbox);
          this.dropDead();
        }
      }
    } catch (err) {
      this.fail();
      throw err;
    }
    this.publishStats();
  }

  /**
   * A clean stop: what is written is synced (every mode), files closed, the
   * lock let go; the ring says the journal closed (a late send is refused, a
   * handler waiting for a chained send stops waiting).
   */
  close(): void {
    try {
      if (!this.failed) this.log.sync();
    } finally {
      this.log.close();
      this.unlockDir();
      const i32 = this.i32;
      Atomics.compareExchange(i32, JOURNAL_FAILED, 0, JOURNAL_CLOSED);
      Atomics.add(i32, JOURNAL_SEQ, 1);
      Atomics.notify(i32, JOURNAL_SEQ);
    }
  }

  private pushRun(from: number, to: number): void {
    this.types.push(RT_RING);
    this.datas.push(this.data.subarray(from << UNIT_SHIFT, to << UNIT_SHIFT));
  }

  /** JOURNALED to `p`; who waits for it is told, and the consumers are woken (all of them when more than one record came). */
  private advance(p: number, posts: number, records: number): void {
    const i32 = this.i32;
    this.pos = p;
    Atomics.store(i32, JOURNALED, p);
    if (posts > 0) Atomics.add(i32, OUTCOMES_DONE, posts);
    Atomics.add(i32, JOURNAL_SEQ, 1);
    if (Atomics.load(i32, JOURNAL_WATCHERS) > 0) Atomics.notify(i32, JOURNAL_SEQ);
    if (records > 1) this.ring.wakeAllIfSleeping();
    else if (records === 1) this.ring.wakeIfSleeping();
  }

  /** Every id handed out so far stays below the mark on disk: a restart's first sends start past it. */
  private markIds(): void {
    const next = ((Atomics.load(this.i32, ID_BLOCK) >>> 0) + 1) * ID_BLOCK_SIZE;
    if (next <= this.idMark) return;
    this.idMark = next + 64 * ID_BLOCK_SIZE;
    const b = Buffer.alloc(8);
    b.writeDoubleLE(this.idMark);
    // Synced in every mode (once per 4M ids): a mark lost to a power cut would let new ids meet journaled ones.
    this.files.replace(join(this.opts.dir, IDS_NAME), b, true);
  }

  /**
   * The structures as they were when the last batch was written, on disk
   * before the records that may use them (read after the records: a record
   * is published after its structure). Synced in every mode: the table only
   * grows, at most a few hundred times in a journal's life.
   */
  private markStructures(): void {
    const t = this.structures;
    if (t === null || t.bytes === this.structuresBytes) return;
    const b = t.snapshot();
    this.files.replace(join(this.opts.dir, STRUCTURES_NAME), b, true);
    this.structuresBytes = b.byteLength;
  }

  /** Let the directory go. */
  private unlockDir(): void {
    const l = this.lock;
    if (l === null) return;
    this.lock = null;
    l.release();
  }

  private fail(): void {
    this.failed = true;
    const i32 = this.i32;
    Atomics.store(i32, JOURNAL_FAILED, JOURNAL_BROKEN);
    Atomics.add(i32, JOURNAL_SEQ, 1);
    Atomics.notify(i32, JOURNAL_SEQ);
  }

  private dropDead(): void {
    const before = this.log.firsts();
    const dropped = this.log.dropDead((first) => this.index.liveIn(first) > 0);
    if (dropped === 0) return;
    const after = new Set(this.log.firsts());
    for (const f of before) if (!after.has(f)) this.index.forget(f);
    this.index.setSegments([...after]);
    this.stats[J_COMPACTIONS]! += dropped;
  }

  private publishStats(): void {
    const s = this.log.stats();
    const st = this.stats;
    st[J_SEGMENTS] = s.segments;
    st[J_BYTES] = s.bytes;
    st[J_FSYNCS] = this.log.fsyncs;
    st[J_LAST_FSYNC_MS] = this.log.lastFsyncMs;
  }
}
