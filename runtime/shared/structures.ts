/**
 * A mailbox's msgpack record structures, shared by every thread through one
 * SharedArrayBuffer. Thread-neutral.
 *
 * A structure is the key list of an object shape (msgpackr's records): a
 * message then carries only the structure's id and the values. Every thread
 * that encodes or decodes for the mailbox reads the same table, so no message
 * carries its structure.
 *
 * ```
 *  words  0 LOCK   0 free, else the holder's tag (its threadId + 1)
 *         1 COUNT  structures published
 *         2 BYTES  bytes of entries published
 *         3 FULL   1 once an append did not fit: no more are added
 *  +16    entries back to back: u32 LE length, then the JSON of the key list
 * ```
 * The table only grows, and an append becomes visible in one store (BYTES,
 * then COUNT): readers take no lock and never see half an entry. Writers take
 * LOCK around check-and-append (msgpackr's saveStructures is told to retry
 * when another writer got in first), so two producers adding at once never
 * corrupt it. It is bounded twice: by msgpackr's maxSharedStructures, and by
 * its bytes (FULL); past either, new shapes are encoded inline in their
 * message (msgpackr's own structures), still decoded right.
 */
import { threadId } from 'node:worker_threads';
import { acquireGuard, releaseGuard } from './guard.js';
import { ErrorCodes, RingpoolError } from './errors.js';

const LOCK = 0;
const COUNT = 1;
const BYTES = 2;
const FULL = 3;
const HEAD = 16;
const LOCK_WAIT_MS = 1000;

/** The table's size: room for a few hundred shapes of ordinary keys. */
export const STRUCTURE_TABLE_BYTES = 64 << 10;
/** Most structures shared (msgpackr record ids 0x40 ..). */
export const MAX_SHARED_STRUCTURES = 256;

export type Structure = string[];

export class StructureTable {
  readonly i32: Int32Array;
  private readonly u8: Buffer;
  /** What this thread has parsed so far: the first `known` structures, ending at byte `knownBytes`. */
  private readonly parsed: Structure[] = [];
  private knownBytes = 0;
  /** Worker threads: the slot's send guard, held around an append so a kill never leaves LOCK taken. */
  guard: { i32: Int32Array; index: number } | null = null;
  private readonly tag = threadId + 1;

  static allocate(bytes = STRUCTURE_TABLE_BYTES): SharedArrayBuffer {
    return new SharedArrayBuffer(bytes);
  }

  constructor(readonly sab: SharedArrayBuffer) {
    this.i32 = new Int32Array(sab, 0, HEAD >> 2);
    this.u8 = Buffer.from(sab);
  }

  get count(): number {
    return Atomics.load(this.i32, COUNT);
  }

  /** Bytes of entries published (the journal persists the table when this grows). */
  get bytes(): number {
    return Atomics.load(this.i32, BYTES);
  }

  get full(): boolean {
    return Atomics.load(this.i32, FULL) === 1;
  }

  /** Every published structure (a fresh array; msgpackr keeps and extends it). */
  read(): Structure[] {
    const end = Atomics.load(this.i32, BYTES);
    const u8 = this.u8;
    let at = this.knownBytes;
    while (at < end) {
      const n = u8.readUInt32LE(HEAD + at);
      this.parsed.push(JSON.parse(u8.toString('utf8', HEAD + at + 4, HEAD + at + 4 + n)) as Structure);
      at += 4 + n;
    }
    this.knownBytes = at;
    return this.parsed.map((s) => s.slice());
  }

  /**
   * msgpackr's saveStructures: append the shared structures past the
   * published ones, if nobody else appended since this encoder last read
   * (`isCompatible` says; msgpackr then reloads and encodes again). False
   * too when they do not fit: the table is marked full and the retry encodes
   * the new shapes inline.
   */
  save(structures: Structure[] & { sharedLength?: number }, isCompatible: ((existing: Structure[]) => boolean) | number): boolean {
    const g = this.guard;
    if (g !== null && !acquireGuard(g.i32, g.index)) {
      throw new RingpoolError(ErrorCodes.CLOSED, 'this thread is being retired; ctx.send() is refused');
    }
    try {
      this.lock();
      try {
        const existing = this.read();
        const ok = typeof isCompatible === 'function' ? isCompatible(existing) : existing.length === isCompatible;
        if (!ok) return false;
        const shared = structures.sharedLength ?? structures.length;
        const adds: Buffer[] = [];
        let total = 0;
        for (let i = existing.length; i < shared; i++) {
          const b = Buffer.from(JSON.stringify(structures[i]), 'utf8');
          adds.push(b);
          total += 4 + b.byteLength;
        }
        const at = Atomics.load(this.i32, BYTES);
        if (HEAD + at + total > this.u8.byteLength) {
          Atomics.store(this.i32, FULL, 1);
          return false;
        }
        let p = HEAD + at;
        for (const b of adds) {
          this.u8.writeUInt32LE(b.byteLength, p);
          this.u8.set(b, p + 4);
          p += 4 + b.byteLength;
        }
        Atomics.store(this.i32, BYTES, at + total);
        Atomics.store(this.i32, COUNT, existing.length + adds.length);
        return true;
      } finally {
        Atomics.store(this.i32, LOCK, 0);
      }
    } finally {
      if (g !== null) releaseGuard(g.i32, g.index);
    }
  }

  /** msgpackr's shouldShareStructure: no new shared shape once the table is full. */
  readonly hasRoom = (): boolean => Atomics.load(this.i32, FULL) === 0;

  /** The published entries as bytes (the journal's copy on disk). */
  snapshot(): Buffer {
    const end = Atomics.load(this.i32, BYTES);
    return Buffer.from(this.u8.subarray(HEAD, HEAD + end));
  }

  /**
   * Load entries a journal kept, into an empty table: the main thread does it
   * when a durable mailbox is built, before anything can encode with the
   * table. Refuses a table that has entries already (a published slot is
   * never overwritten: records written with it would decode with another
   * shape's keys). Throws on damage.
   */
  load(entries: Uint8Array): void {
    if (Atomics.load(this.i32, BYTES) !== 0 || Atomics.load(this.i32, COUNT) !== 0) {
      throw new Error(`the structure table already holds ${Atomics.load(this.i32, COUNT)} structures; a journal's table loads only into an empty one`);
    }
    if (HEAD + entries.byteLength > this.u8.byteLength) throw new Error(`the structure table on disk (${entries.byteLength} bytes) is larger than the table`);
    let at = 0;
    let count = 0;
    const b = Buffer.from(entries.buffer, entries.byteOffset, entries.byteLength);
    while (at < b.byteLength) {
      if (at + 4 > b.byteLength) throw new Error('the structure table on disk is cut short');
      const n = b.readUInt32LE(at);
      if (at + 4 + n > b.byteLength) throw new Error('the structure table on disk is cut short');
      if (!Array.isArray(JSON.parse(b.toString('utf8', at + 4, at + 4 + n)))) throw new Error('the structure table on disk holds an entry that is not a key list');
      at += 4 + n;
      count++;
    }
    this.u8.set(b, HEAD);
    Atomics.store(this.i32, BYTES, b.byteLength);
    Atomics.store(this.i32, COUNT, count);
  }

  /** A thread died holding LOCK (only an OOM inside the guard can do it): free it. */
  releaseIfHeldBy(deadThreadId: number): void {
    Atomics.compareExchange(this.i32, LOCK, deadThreadId + 1, 0);
  }

  private lock(): void {
    const i32 = this.i32;
    // Held for a JSON.stringify of a few key lists: spin, no park. Bounded: a holder that died (an OOM
    // inside its guard) is freed by the dispatcher's repair, which must get its turn.
    let deadline = 0;
    for (let k = 1; Atomics.compareExchange(i32, LOCK, 0, this.tag) !== 0; k++) {
      if ((k & 1023) !== 0) continue;
      const t = Date.now();
      if (deadline === 0) deadline = t + LOCK_WAIT_MS;
      else if (t > deadline) {
        throw new RingpoolError(ErrorCodes.TIMEOUT, `the msgpack structure table stayed locked for ${LOCK_WAIT_MS} ms (its holder, thread ${Atomics.load(i32, LOCK) - 1}, died inside it?)`);
      }
    }
  }
}
