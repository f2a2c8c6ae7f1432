/**
 * What every built-in codec is to the ring (codec.ts explains the two-step
 * encode). Thread-neutral; its own file so codecs in other files (msgpack.ts)
 * extend it without an import cycle.
 */
import { ErrorCodes, RingpoolError } from './errors.js';

export abstract class PayloadCodec {
  abstract readonly name: string;
  /** True when the last prepared payload is 7-bit (json only). */
  ascii = false;
  /** Encode `value`; returns its byte length. Throws RINGPOOL_UNSERIALIZABLE. */
  abstract prepare(value: unknown): number;
  /** Write what `prepare` made at `offset`. */
  abstract write(buf: Buffer, offset: number): void;
  abstract decode(buf: Buffer, u8: Uint8Array, start: number, end: number, ascii: boolean): unknown;
  /**
   * A batch's payloads lie in [start, end) of `u8`, unchanged until endSpan():
   * a codec that copies payloads out (raw, custom) copies it once (byte-pool.ts).
   */
  span(_u8: Uint8Array, _start: number, _end: number): void {}
  endSpan(): void {}
  /** The prepared bytes as a fresh Uint8Array (for messages held on the main thread). */
  abstract preparedBytes(): Uint8Array;
  /**
   * What `prepare` made, kept past the next prepare (a batch encodes every
   * payload before it writes any): the JSON text, or the bytes.
   */
  abstract hold(): unknown;
  /** Write a held payload of `bytes` bytes at `offset`. */
  abstract writeHeld(held: unknown, buf: Buffer, offset: number, bytes: number, ascii: boolean): void;
  /** A held payload as a fresh Uint8Array. */
  abstract heldBytes(held: unknown): Uint8Array;
}

export function unserializable(codec: string, cause: unknown, detail: string): RingpoolError {
  return new RingpoolError(
    ErrorCodes.UNSERIALIZABLE,
    `the ${codec} codec cannot encode this payload: ${detail}`,
    { codec },
    { cause },
  );
}

/**
 * A codec whose output is a Uint8Array of its own, held as it is: v8 and
 * custom codecs make a fresh one each time, raw's is the user's, and msgpackr
 * never writes over a buffer it returned (it starts a new one when full).
 */
export abstract class BytesCodec extends PayloadCodec {
  protected bytes: Uint8Array = new Uint8Array(0);
  write(buf: Buffer, offset: number): void {
    buf.set(this.bytes, offset);
  }
  preparedBytes(): Uint8Array {
    return this.bytes.slice();
  }
  hold(): unknown {
    return this.bytes;
  }
  writeHeld(held: unknown, buf: Buffer, offset: number): void {
    buf.set(held as Uint8Array, offset);
  }
  heldBytes(held: unknown): Uint8Array {
    return (held as Uint8Array).slice();
  }
}
