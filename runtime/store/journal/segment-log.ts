/**
 * The journal's append-only log (journal thread): segment files in one
 * directory, opened by recovering what is there, appended to in batches with
 * one fdatasync a batch, rolled over at segmentBytes, and old segments
 * deleted. Every file call goes through JournalFiles, so a test sees (and can
 * cut or fail) each.
 *
 * Recovery tells a power cut from corruption by what was synced, which the
 * log writes down as it goes: the first batch after each fdatasync starts
 * with a sync mark (format.ts) naming the bytes synced, and a segment rolled
 * after a sync has its mark at the start of the next one. Damage in a
 * segment is cut off as a torn tail unless a mark says the damaged bytes were
 * synced: a power cut may keep any of the pages written since the last
 * fdatasync and lose the others (a later page kept, an earlier one lost), so
 * good records after the damage prove nothing; synced bytes never change, so
 * damage inside them is corruption and refused. With fsync 'never' nothing
 * is marked, and any segment's damage is a torn tail (what the OS had not
 * written back is lost, as that mode says).
 */
import { join } from 'node:path';
import { ErrorCodes, RingpoolError } from '../../shared/errors.js';
import type { JournalFiles } from './files.js';
import { HEAD_BYTES, MARK_DATA_BYTES, RT_SYNCED, firstMark, scanSegment, segmentName, segmentSeq, segmentsOf, writeHead, type ScannedRecord } from './format.js';

export interface SegmentInfo {
  name: string;
  firstSeq: number;
  /** Records in it (sync marks not counted: they take no sequence). */
  count: number;
  bytes: number;
  /** Bytes known to be on stable storage (fdatasynced), and the most a mark in it says so far. */
  synced: number;
  marked: number;
}

export interface Recovered {
  /** Every good record, oldest first, with its sequence. */
  records: Array<ScannedRecord & { seq: number; segment: string }>;
  /** Torn tails cut off (bytes dropped, all segments), or 0. */
  tornBytes: number;
}

export class SegmentLog {
  private segments: SegmentInfo[] = [];
  private fd = -1;
  /** Sequence the next appended record gets. */
  nextSeq = 0;
  fsyncs = 0;
  lastFsyncMs = 0;

  constructor(
    private readonly files: JournalFiles,
    readonly dir: string,
    private readonly segmentBytes: number,
    private readonly mailbox: string,
    /** fdatasync a segment when rolling past it (false for fsync 'never': the OS decides, and 64 MiB of dirty pages would stall the batch). */
    private readonly syncOnRoll = true,
  ) {}

  /**
   * Read every segment (oldest first; to `each`, a segment at a time, when
   * given, else into the result). Damage no sync mark covers is a torn tail:
   * cut it off and go on. Damage inside synced bytes is
   * RINGPOOL_JOURNAL_CORRUPT naming file and offset. The newest segment is
   * fdatasynced once read, so what recovery kept counts as synced.
   */
  open(each?: (seq: number, type: number, data: Buffer) => void, segmentDone?: () => void): Recovered {
    const files = this.files;
    files.mkdirp(this.dir);
    const names = segmentsOf(files.list(this.dir));
    const out: Recovered = { records: [], tornBytes: 0 };
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const path = join(this.dir, name);
      const buf = files.read(path);
      const scan = scanSegment(buf);
      const firstSeq = segmentSeq(name);
      if (scan.damage !== 'none') {
        // What was synced, by the marks after the damage and the roll's mark at the start of the next segment.
        let synced = 0;
        for (const [about, bytes] of scan.marksAfter) if (about === firstSeq) synced = Math.max(synced, bytes);
        const next = names[i + 1];
        const roll = next === undefined ? null : firstMark(files.read(join(this.dir, next)));
        if (roll !== null && roll[0] === firstSeq) synced = Math.max(synced, roll[1]);
        if (synced > scan.badOffset) {
          throw new RingpoolError(
            ErrorCodes.JOURNAL_CORRUPT,
            `mailbox '${this.mailbox}': journal segment ${path} is damaged at byte ${scan.badOffset}, inside the ${synced} bytes it had synced (a later record says so); refusing to start`,
            { mailbox: this.mailbox, file: path, offset: scan.badOffset, synced },
          );
        }
        out.tornBytes += buf.length - scan.goodBytes;
        files.truncate(path, scan.goodBytes);
      }
      this.segments.push({ name, firstSeq, count: scan.records.length, bytes: scan.goodBytes, synced: 0, marked: 0 });
      // With `each`, one segment at a time: its buffer can go once its records were seen.
      if (each !== undefined) {
        scan.records.forEach((r, k) => each(firstSeq + k, r.type, r.data));
        segmentDone?.();
      } else scan.records.forEach((r, k) => out.records.push({ ...r, seq: firstSeq + k, segment: name }));
    }
    const last = this.segments.at(-1);
    this.nextSeq = last === undefined ? 0 : last.firstSeq + last.count;
    if (last !== undefined) {
      this.fd = files.openAppend(join(this.dir, last.name));
      this.sync();
    }
    return out;
  }

  /**
   * Append records (each body starts with its type byte) and, when `sync`,
   * fdatasync once for all of them. Returns the sequence of the first.
   */
  append(bodies: readonly Uint8Array[], sync: boolean): number {
    const types = bodies.map((b) => b[0]!);
    return this.appendRecords(types, bodies.map((b) => b.subarray(1)), sync);
  }

  /**
   * Append records of `types[i]` with data `datas[i]` (written from where it
   * lies: a view into a ring is not copied) and, when `sync`, fdatasync once
   * for all of them. Returns the sequence of the first. A failure throws
   * RINGPOOL_JOURNAL_IO: nothing of this batch may be called durable.
   */
  appendRecords(types: ArrayLike<number>, datas: readonly Uint8Array[], sync: boolean): number {
    const first = this.nextSeq;
    const n = datas.length;
    if (n === 0) return first;
    try {
      let cur = this.current();
      // One buffer for the batch's frames (a frame a record, not an allocation a record).
      const heads = Buffer.allocUnsafe(HEAD_BYTES * n);
      let f = 0;
      const bufs: Uint8Array[] = [];
      let bytes = 0;
      const mark = (about: SegmentInfo): void => {
        // Rare (once a batch at most, and at a roll): a buffer of its own for the frame and the data.
        const m = Buffer.allocUnsafe(HEAD_BYTES + MARK_DATA_BYTES);
        const d = m.subarray(HEAD_BYTES);
        d.writeDoubleLE(about.firstSeq, 0);
        d.writeDoubleLE(about.synced, 8);
        writeHead(m, 0, RT_SYNCED, d);
        bufs.push(m);
        bytes += m.byteLength;
        about.marked = about.synced;
      };
      if (cur.synced > cur.marked) mark(cur);
      for (let i = 0; i < n; i++) {
        const d = datas[i]!;
        const size = HEAD_BYTES + d.byteLength;
        if (cur.count > 0 && cur.bytes + bytes + size > this.segmentBytes) {
          this.write(bufs, bytes);
          bufs.length = 0;
          bytes = 0;
          const old = cur;
          cur = this.roll();
          // The old segment synced whole at the roll: said at the start of the new one.
          if (old.synced === old.bytes && old.synced > old.marked) mark(old);
        }
        writeHead(heads, f, types[i]!, d);
        bufs.push(heads.subarray(f, f + HEAD_BYTES), d);
        f += HEAD_BYTES;
        bytes += size;
        cur.count++;
        this.nextSeq++;
      }
      this.write(bufs, bytes);
      if (sync) this.sync();
    } catch (err) {
      if (err instanceof RingpoolError) throw err;
      throw this.ioError(err);
    }
    return first;
  }

  /** fdatasync the open segment. */
  sync(): void {
    if (this.fd < 0) return;
    const t = performance.now();
    try {
      this.files.datasync(this.fd);
    } catch (err) {
      throw this.ioError(err);
    }
    this.fsyncs++;
    this.lastFsyncMs = performance.now() - t;
    const cur = this.segments.at(-1)!;
    cur.synced = cur.bytes;
  }

  /**
   * Delete the oldest segments while every record in them is dead
   * (`live(firstSeq, count)` false), up to the first live one; never the
   * open one. Only a prefix: a dead segment can still hold the acks that
   * cancel messages in an older, live one, and deleting it would bring them
   * back at the next recovery.
   */
  dropDead(live: (firstSeq: number, count: number) => boolean): number {
    let dropped = 0;
    while (dropped < this.segments.length - 1) {
      const s = this.segments[dropped]!;
      if (live(s.firstSeq, s.count)) break;
      this.files.unlink(join(this.dir, s.name));
      dropped++;
    }
    if (dropped > 0) {
      this.segments = this.segments.slice(dropped);
      this.files.syncDir(this.dir);
    }
    return dropped;
  }

  /** The first sequence of each segment, oldest first. */
  firsts(): number[] {
    return this.segments.map((s) => s.firstSeq);
  }

  /** How many segments there are (the last is the one appended to). */
  get segmentCount(): number {
    return this.segments.length;
  }

  stats(): { segments: number; bytes: number } {
    let bytes = 0;
    for (const s of this.segments) bytes += s.bytes;
    return { segments: this.segments.length, bytes };
  }

  close(): void {
    if (this.fd >= 0) this.files.close(this.fd);
    this.fd = -1;
  }

  private write(bufs: Uint8Array[], bytes: number): void {
    if (bufs.length === 0) return;
    this.files.append(this.fd, bufs);
    this.segments.at(-1)!.bytes += bytes;
  }

  /** The segment appended to: the newest, opened on first use (a new one if there is none). */
  private current(): SegmentInfo {
    const last = this.segments.at(-1);
    if (last === undefined) return this.roll();
    if (this.fd < 0) this.fd = this.files.openAppend(join(this.dir, last.name));
    return last;
  }

  /** Start a new segment at nextSeq: the old one synced and closed, the directory entry made durable. */
  private roll(): SegmentInfo {
    if (this.fd >= 0) {
      if (this.syncOnRoll) this.sync();
      this.files.close(this.fd);
    }
    const s: SegmentInfo = { name: segmentName(this.nextSeq), firstSeq: this.nextSeq, count: 0, bytes: 0, synced: 0, marked: 0 };
    this.fd = this.files.openAppend(join(this.dir, s.name));
    this.files.syncDir(this.dir);
    this.segments.push(s);
    return s;
  }

  private ioError(err: unknown): RingpoolError {
    const e = err as NodeJS.ErrnoException;
    return new RingpoolError(
      ErrorCodes.JOURNAL_IO,
      `mailbox '${this.mailbox}': journal write to ${this.dir} failed (${e?.code ?? 'error'}: ${e?.message ?? String(err)}); the mailbox stops accepting`,
      { mailbox: this.mailbox, dir: this.dir, errno: e?.code },
      { cause: err },
    );
  }
}
