/**
 * Histograms kept in a Float64Array, shared or not. Thread-neutral.
 *
 * The metrics buffer of a mailbox (one SharedArrayBuffer, separate from the
 * ring) holds the bucket bounds and one block per (consumer slot, histogram):
 *
 * ```
 *  i32 word 0  GEN       0 = recording off; bumped when bounds are (re)set
 *  i32 word 1  NBOUNDS   finite bucket bounds in use (<= MAX_BOUNDS)
 *  f64 1 .. MAX_BOUNDS   bounds, seconds, ascending
 *  f64 BLOCKS_F64 + (slot * HISTS + h) * STRIDE:
 *        [0 .. NBOUNDS]  per-bucket counts (not cumulative; the last is +Inf)
 *        [NBOUNDS + 1]   sum of observed values
 *        [NBOUNDS + 2]   count
 * ```
 *
 * Each block has one writer (the loop in that slot), so a record is three
 * plain read-modify-writes; the reader (collect() at scrape time, main
 * thread) sums the blocks of all slots. Aligned f64 stores do not tear on the
 * platforms Node runs on; a scrape may see a block mid-update (count one
 * ahead of its bucket), which the next scrape corrects.
 */
import { MAX_CONSUMERS } from './layout.js';

export const MAX_BOUNDS = 64;
export const HISTS = 3;
export const H_QUEUE_WAIT = 0;
export const H_PROCESSING = 1;
export const H_END_TO_END = 2;
export const STRIDE = MAX_BOUNDS + 3;
const BLOCKS_F64 = 1 + MAX_BOUNDS;

/** 10 µs doubling to ~42 s: 23 bounds. */
export const DEFAULT_BOUNDS: readonly number[] = Object.freeze(Array.from({ length: 23 }, (_, i) => 1e-5 * 2 ** i));

export function allocateMetricsBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer((BLOCKS_F64 + MAX_CONSUMERS * HISTS * STRIDE) * 8);
}

export function blockOffset(slot: number, h: number): number {
  return BLOCKS_F64 + (slot * HISTS + h) * STRIDE;
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
    const gen = Atomics.load(this.i32, 0);
    if (gen !== this.gen) {
      this.gen = gen;
      this.n = Atomics.load(this.i32, 1);
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
  Atomics.store(i32, 1, bounds.length);
  Atomics.add(i32, 0, 1);
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
