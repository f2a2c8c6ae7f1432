/**
 * Payload bytes copied out of shared memory (a consumer thread, or the main
 * thread): into a pooled ArrayBuffer of this thread, one view per payload,
 * as Buffer.allocUnsafe's pool does. A fresh ArrayBuffer per message (what
 * `u8.slice()` makes) costs about 1 µs on its own; a view of a pool, about
 * 60 ns. A batch's payloads are copied in one call (span()) and each is a
 * view of that copy. A payload's view is its own: nothing else writes where
 * it lies, but its `.buffer` is the pool's (`byteOffset` says where it starts),
 * as with a Node Buffer. Thread-neutral.
 */

/** One pool chunk. */
const CHUNK = 64 * 1024;
/** A payload over this gets an ArrayBuffer of its own (a pool chunk holds many). */
const OWN_ABOVE = CHUNK / 8;

export class BytePool {
  private buf = new ArrayBuffer(CHUNK);
  private u8 = new Uint8Array(this.buf);
  private off = 0;
  /** The batch's copy: [spanStart, spanEnd) of the source at spanAt of spanBuf. */
  private spanBuf: ArrayBuffer | null = null;
  private spanStart = 0;
  private spanEnd = 0;
  private spanAt = 0;

  /** Bytes [start, end) of `src`, as a Uint8Array no one else writes to. */
  copy(src: Uint8Array, start: number, end: number): Uint8Array {
    const n = end - start;
    if (this.spanBuf !== null && start >= this.spanStart && end <= this.spanEnd) return new Uint8Array(this.spanBuf, this.spanAt + (start - this.spanStart), n);
    if (n > OWN_ABOVE) return src.slice(start, end);
    const at = this.take(n);
    this.u8.set(src.subarray(start, end), at);
    return new Uint8Array(this.buf, at, n);
  }

  /**
   * Copy [start, end) of `src` now, in one call: the payloads within it are
   * views of this copy until the next span() or endSpan(). The caller keeps
   * those bytes unchanged meanwhile (records it has claimed).
   */
  span(src: Uint8Array, start: number, end: number): void {
    const n = end - start;
    if (n <= 0 || n > CHUNK / 2) {
      this.spanBuf = null;
      return;
    }
    const at = this.take(n);
    this.u8.set(src.subarray(start, end), at);
    this.spanBuf = this.buf;
    this.spanStart = start;
    this.spanEnd = end;
    this.spanAt = at;
  }

  endSpan(): void {
    this.spanBuf = null;
  }

  private take(n: number): number {
    if (this.off + n > CHUNK) {
      this.buf = new ArrayBuffer(CHUNK);
      this.u8 = new Uint8Array(this.buf);
      this.off = 0;
    }
    const at = this.off;
    this.off = (at + n + 7) & ~7;
    return at;
  }
}
