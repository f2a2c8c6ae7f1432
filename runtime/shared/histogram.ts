/**
 * Histograms kept in a Float64Array, shared or not. Thread-neutral.
 *
 * The metrics buffer of a mailbox (layout.ts, "Metrics buffer") holds the
 * bucket bounds and one block per (consumer slot, histogram). Each block has
 * one writer (the loop in that slot), so a record is three plain
 * read-modify-writes; the reader (collect() at scrape time, main thread)
 * sums the blocks of all slots. A scrape may see a block mid-update (count
 * one ahead of its bucket, or, as f64 stores are not atomic, a torn value),
 * which the next scrape corrects: these are metrics, no message depends on them.
 */
import { H_BLOCKS_F64, H_GEN, H_NBOUNDS, HISTS, MAX_BOUNDS, MAX_CONSUMERS, STRIDE } from './layout.js';

export { H_END_TO_END, H_PROCESSING, H_QUEUE_WAIT, HISTS, MAX_BOUNDS, STRIDE } from './layout.js';

/** 10 µs doubling to ~42 s: 23 bounds. */
export const DEFAULT_BOUNDS: readonly number[] = Object.freeze(Array.from({ length: 23 }, (_, i) => 1e-5 * 2 ** i));

export function allocateMetricsBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer((H_BLOCKS_F64 + MAX_CONSUMERS * HISTS * STRIDE) * 8);
}

export function blockOffset(slot: number, h: number): number {
  return H_BLOCKS_F64 + (slot * HISTS + h) * STRIDE;
}

/** Index of the bucket `v` falls in: the first bound >= v, or bounds.length for +Inf. */
export function bucketOf(bounds: Float64Array, n: number, v: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (v <= bounds[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Record `v` (seconds) into the block at `base` of `f64`. */
export function observe(f64: Float64Array, base: number, bounds: Float64Array, n: number, v: number): void {
  f64[base + bucketOf(bounds, n, v)]! += 1;
  f64[base + n + 1]! += v;
  f64[base + n + 2]! += 1;
}

/** The writer's view of a metrics buffer: follows GEN, reloads bounds when it changes. */
export class HistogramWriter {
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  bounds = new Float64Array(MAX_BOUNDS);
  n = 0;
  private gen = 0;

  constructor(sab: SharedArrayBuffer) {
    this.i32 = new Int32Array(sab, 0, 2);
    this.f64 = new Float64Array(sab);
  }

  /** True when recording is on (checked once a batch). */
  refresh(): boolean {
    // GEN (acquire) before NBOUNDS and the bounds: enableRecording() writes them before it bumps GEN.
    const gen = Atomics.load(this.i32, H_GEN);
    if (gen !== this.gen) {
      this.gen = gen;
      this.n = Atomics.load(this.i32, H_NBOUNDS);
      for (let i = 0; i < this.n; i++) this.bounds[i] = this.f64[1 + i]!;
    }
    return gen !== 0;
  }
}

/** Turn recording on with `bounds` (main thread). */
export function enableRecording(sab: SharedArrayBuffer, bounds: readonly number[]): void {
  const i32 = new Int32Array(sab, 0, 2);
  const f64 = new Float64Array(sab);
  for (let i = 0; i < bounds.length; i++) f64[1 + i] = bounds[i]!;
  Atomics.store(i32, H_NBOUNDS, bounds.length);
  Atomics.add(i32, H_GEN, 1); // release: the bounds and NBOUNDS above are visible to a writer that sees the new GEN
}

export interface HistogramSnapshot {
  /** Cumulative counts per bound, then +Inf. */
  cumulative: number[];
  sum: number;
  count: number;
}

/** Sum the blocks of histogram `h` over all slots (main thread, at scrape time). */
export function readHistogram(sab: SharedArrayBuffer, h: number, n: number): HistogramSnapshot {
  const f64 = new Float64Array(sab);
  const buckets = new Array<number>(n + 1).fill(0);
  let sum = 0;
  let count = 0;
  for (let slot = 0; slot < MAX_CONSUMERS; slot++) {
    const base = blockOffset(slot, h);
    const c = f64[base + n + 2]!;
    if (c === 0) continue;
    for (let i = 0; i <= n; i++) buckets[i]! += f64[base + i]!;
    sum += f64[base + n + 1]!;
    count += c;
  }
  for (let i = 1; i <= n; i++) buckets[i]! += buckets[i - 1]!;
  return { cumulative: buckets, sum, count };
}

/** A histogram in ordinary memory (the main thread's send() timing). */
export class LocalHistogram {
  readonly f64: Float64Array;
  readonly bounds: Float64Array;
  readonly n: number;
  constructor(bounds: readonly number[]) {
    this.n = bounds.length;
    this.bounds = Float64Array.from(bounds);
    this.f64 = new Float64Array(this.n + 3);
  }
  observe(v: number): void {
    observe(this.f64, 0, this.bounds, this.n, v);
  }
  snapshot(): HistogramSnapshot {
    const cumulative = Array.from(this.f64.subarray(0, this.n + 1));
    for (let i = 1; i <= this.n; i++) cumulative[i]! += cumulative[i - 1]!;
    return { cumulative, sum: this.f64[this.n + 1]!, count: this.f64[this.n + 2]! };
  }
}
