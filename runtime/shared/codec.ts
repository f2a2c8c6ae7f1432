/**
 * Message codecs. Thread-neutral.
 *
 * A codec turns a payload into bytes in two steps so that the built-in JSON
 * codec can write straight into the ring: `prepare(value)` returns the byte
 * length (and keeps what it made in the codec instance, one per thread), and
 * `write(buf, offset)` writes those bytes at `offset` of a Buffer over the
 * ring's SharedArrayBuffer. `decode(buf, u8, start, end, ascii)` reads them
 * back; it never returns a view into shared memory (raw and custom codecs
 * copy into a pool of the thread's own memory, byte-pool.ts).
 */
import * as v8 from 'node:v8';
import { ErrorCodes, RingpoolError, messageOf } from './errors.js';
import { MsgpackCodec } from './msgpack.js';
import { BytesCodec, PayloadCodec, unserializable } from './payload-codec.js';
import { StructureTable } from './structures.js';
import { BytePool } from './byte-pool.js';

export { PayloadCodec } from './payload-codec.js';

/** A user codec. `url` names a module whose default export is this codec, so worker threads can load it. */
export interface Codec<T = unknown> {
  readonly name: string;
  /** Bytes of a payload (main thread and consumer threads). */
  encode(value: T): Uint8Array;
  /** The payload back from its bytes. */
  decode(bytes: Uint8Array): T;
  readonly url?: string | URL;
}

/** A built-in codec by name, or your own. */
export type CodecOption = 'json' | 'msgpack' | 'v8' | 'raw' | Codec;

/** Buffer's own latin1/utf8 fast paths (public `buf.write`/`toString` dispatch on the encoding name each call). */
interface FastBuffer extends Buffer {
  latin1Write(s: string, offset: number, length: number): number;
  utf8Write(s: string, offset: number, length: number): number;
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
}

/**
 * Buffer's latin1/utf8 slice and write methods are undocumented (Node's own
 * `buf.toString()`/`buf.write()` dispatch to them by encoding name). Call them
 * directly where they exist (Node 20-24 have them); fall back to the public API
 * if a future Node drops them. Nothing global is patched.
 */
const fast = typeof (Buffer.prototype as Partial<FastBuffer>).latin1Write === 'function' && typeof (Buffer.prototype as Partial<FastBuffer>).latin1Slice === 'function';
export const writeLatin1: (b: Buffer, s: string, o: number, l: number) => number = fast
  ? (b, s, o, l) => (b as FastBuffer).latin1Write(s, o, l)
  : (b, s, o, l) => b.write(s, o, l, 'latin1');
export const writeUtf8: (b: Buffer, s: string, o: number, l: number) => number = fast
  ? (b, s, o, l) => (b as FastBuffer).utf8Write(s, o, l)
  : (b, s, o, l) => b.write(s, o, l, 'utf8');
const sliceLatin1: (b: Buffer, a: number, e: number) => string = fast ? (b, a, e) => (b as FastBuffer).latin1Slice(a, e) : (b, a, e) => b.toString('latin1', a, e);
const sliceUtf8: (b: Buffer, a: number, e: number) => string = fast ? (b, a, e) => (b as FastBuffer).utf8Slice(a, e) : (b, a, e) => b.toString('utf8', a, e);

export class JsonCodec extends PayloadCodec {
  readonly name = 'json';
  private text = '';
  private bytes = 0;

  prepare(value: unknown): number {
    let text: string | undefined;
    try {
      text = JSON.stringify(value);
    } catch (err) {
      throw unserializable('json', err, messageOf(err));
    }
    if (text === undefined) {
      if (value !== undefined) throw unserializable('json', undefined, `a ${typeof value} has no JSON form`);
      this.text = '';
      this.bytes = 0;
      this.ascii = true;
      return 0;
    }
    const bytes = Buffer.byteLength(text, 'utf8');
    this.text = text;
    this.bytes = bytes;
    this.ascii = bytes === text.length;
    return bytes;
  }

  write(buf: Buffer, offset: number): void {
    if (this.bytes === 0) return;
    if (this.ascii) writeLatin1(buf, this.text, offset, this.bytes);
    else writeUtf8(buf, this.text, offset, this.bytes);
  }

  decode(buf: Buffer, _u8: Uint8Array, start: number, end: number, ascii: boolean): unknown {
    if (start === end) return undefined;
    return JSON.parse(ascii ? sliceLatin1(buf, start, end) : sliceUtf8(buf, start, end));
  }

  preparedBytes(): Uint8Array {
    return Buffer.from(this.text, 'utf8');
  }

  hold(): unknown {
    return this.text;
  }

  writeHeld(held: unknown, buf: Buffer, offset: number, bytes: number, ascii: boolean): void {
    if (bytes === 0) return;
    if (ascii) writeLatin1(buf, held as string, offset, bytes);
    else writeUtf8(buf, held as string, offset, bytes);
  }

  heldBytes(held: unknown): Uint8Array {
    return Buffer.from(held as string, 'utf8');
  }
}

export class V8Codec extends BytesCodec {
  readonly name = 'v8';
  prepare(value: unknown): number {
    try {
      this.bytes = v8.serialize(value);
    } catch (err) {
      throw unserializable('v8', err, messageOf(err));
    }
    return this.bytes.byteLength;
  }
  decode(buf: Buffer, _u8: Uint8Array, start: number, end: number): unknown {
    return v8.deserialize(buf.subarray(start, end));
  }
}

export class RawCodec extends BytesCodec {
  readonly name = 'raw';
  prepare(value: unknown): number {
    // isView first: it reads an internal slot, where instanceof would run a Proxy's getPrototypeOf trap.
    if (!ArrayBuffer.isView(value) || !(value instanceof Uint8Array)) {
      throw unserializable('raw', undefined, `expected a Uint8Array, got ${value === null ? 'null' : typeof value}`);
    }
    this.bytes = value;
    return value.byteLength;
  }
  private readonly pool = new BytePool();
  decode(_buf: Buffer, u8: Uint8Array, start: number, end: number): Uint8Array {
    return this.pool.copy(u8, start, end);
  }
  override span(u8: Uint8Array, start: number, end: number): void {
    this.pool.span(u8, start, end);
  }
  override endSpan(): void {
    this.pool.endSpan();
  }
}

export class CustomCodec extends BytesCodec {
  readonly name: string;
  constructor(private readonly codec: Codec) {
    super();
    this.name = codec.name;
  }
  prepare(value: unknown): number {
    let out: Uint8Array | null;
    try {
      const got: unknown = this.codec.encode(value);
      out = got instanceof Uint8Array ? got : null;
    } catch (err) {
      throw unserializable(this.name, err, messageOf(err));
    }
    if (out === null) throw unserializable(this.name, undefined, 'encode() did not return a Uint8Array');
    this.bytes = out;
    return out.byteLength;
  }
  private readonly pool = new BytePool();
  decode(_buf: Buffer, u8: Uint8Array, start: number, end: number): unknown {
    return this.codec.decode(this.pool.copy(u8, start, end));
  }
  override span(u8: Uint8Array, start: number, end: number): void {
    this.pool.span(u8, start, end);
  }
  override endSpan(): void {
    this.pool.endSpan();
  }
}

/** A serializable description of a mailbox's codec, sent to worker threads (msgpack: its structure table, or null for none). */
export type CodecSpec =
  | { kind: 'json' | 'v8' | 'raw' }
  | { kind: 'msgpack'; structures: SharedArrayBuffer | null }
  | { kind: 'custom'; name: string; url: string };

export function codecSpec(option: CodecOption, structures: SharedArrayBuffer | null = null): CodecSpec {
  if (option === 'msgpack') return { kind: 'msgpack', structures };
  if (typeof option === 'string') return { kind: option };
  return { kind: 'custom', name: option.name, url: String(option.url) };
}

export function builtinCodec(spec: Exclude<CodecSpec, { kind: 'custom' }>): PayloadCodec {
  switch (spec.kind) {
    case 'json':
      return new JsonCodec();
    case 'msgpack':
      return new MsgpackCodec(spec.structures === null ? null : new StructureTable(spec.structures));
    case 'v8':
      return new V8Codec();
    case 'raw':
      return new RawCodec();
  }
}

/** The codec for a mailbox's `codec` option (main thread: a custom one is the object itself; msgpack shares `structures`). */
export function codecOf(option: CodecOption, structures: SharedArrayBuffer | null = null): PayloadCodec {
  return typeof option === 'string' ? builtinCodec(codecSpec(option, structures) as Exclude<CodecSpec, { kind: 'custom' }>) : new CustomCodec(option);
}

/** The codec for a spec; custom codecs are imported from their url (worker side). */
export async function loadCodec(spec: CodecSpec): Promise<PayloadCodec> {
  if (spec.kind !== 'custom') return builtinCodec(spec);
  const mod = (await import(spec.url)) as { default?: Codec };
  if (!mod.default || typeof mod.default.encode !== 'function' || typeof mod.default.decode !== 'function') {
    throw new RingpoolError(ErrorCodes.HANDLER_LOAD, `codec module ${spec.url} has no default export with encode() and decode()`);
  }
  return new CustomCodec(mod.default);
}
