/**
 * The journal's bytes on disk (thread-neutral): segment file names and the
 * record frame, and the scan that recovery runs over a segment: where the
 * good records end, whether what follows is a torn tail (truncate it) or
 * corruption (refuse to start).
 *
 * ```
 *  segment  <20-digit sequence of its first record>.log, records back to back
 *  record   +0 u32 LE  body bytes (the type byte included)
 *           +4 u32 LE  CRC-32 (zlib) of the body
 *           +8 u8      type
 *           +9 ...     the rest of the body
 * ```
 * A record's sequence is its segment's first sequence plus its index there.
 *
 * One record type belongs to the log itself, not to the journal's records:
 * a sync mark (RT_SYNCED, data `f64 segment's first sequence, f64 bytes`),
 * which says "this segment was fdatasynced through this many bytes" and is
 * written at the start of the first batch after each fdatasync (a roll's
 * sync is marked at the start of the next segment). Marks take no sequence
 * and are not handed to the journal. They are recovery's evidence of what was
 * synced: damage a later mark covers was synced data (corrupt, refused);
 * damage no mark covers may be a power cut's work on pages never synced (a
 * torn tail, cut off), whatever good records the disk kept after it.
 */
import { crc32 } from 'node:zlib';

export const FRAME_BYTES = 8;
/** The frame and the type byte: what goes in front of a record's data when the data is written from where it lies (a ring). */
export const HEAD_BYTES = FRAME_BYTES + 1;
/** Larger bodies are not records: a length field this big is damage. */
export const MAX_BODY_BYTES = 1 << 30;
/** The log's sync mark (see above); journal record types (records.ts) are small numbers, never this. */
export const RT_SYNCED = 0xf0;
/** A sync mark's data: the segment it is about (its first sequence) and the bytes synced. */
export const MARK_DATA_BYTES = 16;
const NAME = /^(\d{20})\.log$/;

/** `00000000000000000042.log` for the segment whose first record has sequence 42. */
export function segmentName(firstSeq: number): string {
  return `${String(firstSeq).padStart(20, '0')}.log`;
}

/** The first sequence of a segment file name, or -1 if the name is not a segment's. */
export function segmentSeq(name: string): number {
  const m = NAME.exec(name);
  return m === null ? -1 : Number(m[1]);
}

/** The segment names of a directory listing, oldest first. */
export function segmentsOf(names: readonly string[]): string[] {
  return names.filter((n) => segmentSeq(n) >= 0).sort((a, b) => segmentSeq(a) - segmentSeq(b));
}

/** Write the frame of `body` (type byte first) at `at` in `target`; the body follows it on disk. */
export function writeFrame(target: Buffer, at: number, body: Uint8Array): void {
  target.writeUInt32LE(body.byteLength, at);
  target.writeUInt32LE(crc32(body), at + 4);
}

/**
 * Write the frame and the type byte of a record of `type` whose data is
 * `data` (HEAD_BYTES at `at`; the data follows on disk, written from where
 * it lies). The same bytes as writeFrame of the joined body.
 */
export function writeHead(target: Buffer, at: number, type: number, data: Uint8Array): void {
  target[at + FRAME_BYTES] = type;
  target.writeUInt32LE(data.byteLength + 1, at);
  target.writeUInt32LE(crc32(data, crc32(target.subarray(at + FRAME_BYTES, at + HEAD_BYTES))), at + 4);
}

export interface ScannedRecord {
  /** Byte offset of the frame in the segment. */
  offset: number;
  type: number;
  /** The body after the type byte (a view into the scanned buffer). */
  data: Buffer;
}

export interface Scan {
  /** The journal's records before the damage, in order (sync marks left out). */
  records: ScannedRecord[];
  /** Where the good records end: the segment's length when nothing is wrong. */
  goodBytes: number;
  /**
   * What follows the good records: `none`; `torn` (a partial or bad record
   * with no good record after it); `corrupt` (a bad record with a good one
   * after it). Whether to cut it off or refuse is the log's call, from the
   * sync marks (segment-log.ts).
   */
  damage: 'none' | 'torn' | 'corrupt';
  /** Offset of the first bad byte (damage != none). */
  badOffset: number;
  /** The good sync marks after the damage: [segment's first sequence, bytes synced] each. */
  marksAfter: Array<[number, number]>;
}

/** The record whose frame starts at `at`, if it is whole and its checksum holds. */
function recordAt(buf: Buffer, at: number): ScannedRecord | null {
  if (at + FRAME_BYTES + 1 > buf.length) return null;
  const len = buf.readUInt32LE(at);
  if (len < 1 || len > MAX_BODY_BYTES || at + FRAME_BYTES + len > buf.length) return null;
  const body = buf.subarray(at + FRAME_BYTES, at + FRAME_BYTES + len);
  if (crc32(body) !== buf.readUInt32LE(at + 4)) return null;
  return { offset: at, type: body[0]!, data: body.subarray(1) };
}

/** A sync mark's claim, [segment's first sequence, bytes synced], or null if `r` is not one. */
export function markOf(r: ScannedRecord): [number, number] | null {
  if (r.type !== RT_SYNCED || r.data.length !== MARK_DATA_BYTES) return null;
  return [r.data.readDoubleLE(0), r.data.readDoubleLE(8)];
}

/** The claim of the sync mark a segment starts with (a roll's mark about the segment before it), or null. */
export function firstMark(buf: Buffer): [number, number] | null {
  const r = recordAt(buf, 0);
  return r === null ? null : markOf(r);
}

/**
 * Read a segment's records in order (its sync marks left out). At the first record that is not whole
 * or fails its checksum, look for good records further on (every byte
 * offset: a flipped length can hide where the next frame starts): any found
 * means good records follow the damage (`corrupt`), none means `torn`. The
 * sync marks among them are kept: they tell whether the damage was synced.
 */
export function scanSegment(buf: Buffer): Scan {
  const records: ScannedRecord[] = [];
  let at = 0;
  while (at < buf.length) {
    const r = recordAt(buf, at);
    if (r === null) break;
    if (r.type !== RT_SYNCED) records.push(r); // the log's own: not a record of the journal's, no sequence
    at += FRAME_BYTES + 1 + r.data.length;
  }
  if (at === buf.length) return { records, goodBytes: at, damage: 'none', badOffset: -1, marksAfter: [] };
  const marksAfter: Array<[number, number]> = [];
  let found = false;
  for (let p = at + 1; p + FRAME_BYTES < buf.length; ) {
    const r = recordAt(buf, p);
    if (r === null) {
      p++;
      continue;
    }
    found = true;
    const m = markOf(r);
    if (m !== null) marksAfter.push(m);
    p += FRAME_BYTES + 1 + r.data.length;
  }
  return { records, goodBytes: at, damage: found ? 'corrupt' : 'torn', badOffset: at, marksAfter };
}
