/**
 * The msgpack codec (`codec: 'msgpack'`), on msgpackr. Thread-neutral.
 *
 * Objects are msgpackr records: a message carries its shape's id and the
 * values, and the shapes (structures) live in the mailbox's StructureTable,
 * shared by every thread in shared memory (structures.ts). Without a table
 * (a Redis mailbox: its consumers are other processes) each message carries
 * its own shapes inline.
 *
 * msgpackr is loaded on first use (a mailbox without this codec never loads
 * it). Decoding copies the payload out of the ring into a scratch buffer of
 * this thread first: msgpackr's native string decoder refuses a
 * SharedArrayBuffer (and falls back to JS after an exception), and nothing
 * decoded may keep a view into shared memory.
 */
import { createRequire } from 'node:module';
import type { Packr as PackrType } from 'msgpackr';
import { BytesCodec, unserializable } from './payload-codec.js';
import { RingpoolError, messageOf } from './errors.js';
import { MAX_SHARED_STRUCTURES, StructureTable, type Structure } from './structures.js';

type PackrClass = new (opts: Record<string, unknown>) => PackrType;
let PackrCtor: PackrClass | null = null;

function packrClass(): PackrClass {
  if (PackrCtor === null) PackrCtor = (createRequire(import.meta.url)('msgpackr') as { Packr: PackrClass }).Packr;
  return PackrCtor;
}

/** Shapes beyond the shared table, defined inline in the message that uses them. */
const MAX_OWN_STRUCTURES = 32;

export class MsgpackCodec extends BytesCodec {
  readonly name = 'msgpack';
  private readonly packr: PackrType;
  private scratch = Buffer.allocUnsafeSlow(1024);
  private readonly range = { start: 0, end: 0 };

  constructor(readonly table: StructureTable | null) {
    super();
    const Packr = packrClass();
    const common = {
      useRecords: true,
      moreTypes: true,
      copyBuffers: true,
      mapsAsObjects: false,
      maxOwnStructures: MAX_OWN_STRUCTURES,
    };
    this.packr = table === null
      ? new Packr({ ...common, maxSharedStructures: 0 })
      : new Packr({
          ...common,
          maxSharedStructures: MAX_SHARED_STRUCTURES,
          getStructures: () => table.read(),
          saveStructures: (s: Structure[], isCompatible: ((e: Structure[]) => boolean) | number) => table.save(s, isCompatible),
          shouldShareStructure: table.hasRoom,
        });
  }

  prepare(value: unknown): number {
    // msgpackr sets `offset` only when a pack completes. A getter or toJSON
    // that throws a falsy value (null, undefined, 0, '') while a new shape is
    // being shared is swallowed by msgpackr 2.1.4 (its finally block returns
    // the partial buffer): -1 left here says the pack did not complete.
    const packr = this.packr as PackrType & { offset: number };
    packr.offset = -1;
    try {
      this.bytes = packr.pack(value);
    } catch (err) {
      if (err instanceof RingpoolError) throw err;
      throw unserializable('msgpack', err, messageOf(err));
    }
    if (packr.offset === -1) throw unserializable('msgpack', undefined, 'reading the payload threw a falsy value (null, undefined, 0 or an empty string)');
    return this.bytes.byteLength;
  }

  decode(buf: Buffer, _u8: Uint8Array, start: number, end: number): unknown {
    const n = end - start;
    if (n === 0) return undefined;
    let s = this.scratch;
    if (s.byteLength < n) s = this.scratch = Buffer.allocUnsafeSlow(Math.max(n, s.byteLength * 2));
    buf.copy(s, 0, start, end);
    this.range.end = n;
    return this.packr.unpack(s, this.range);
  }
}
