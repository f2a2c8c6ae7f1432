/**
 * Partitions of a Redis mailbox (any thread): which partition a key goes to,
 * and the fence table through which the main thread tells its consumer
 * threads which partitions this process may still run (issue #29).
 *
 * The hash, documented for producers written in other languages:
 *   partition = fnv1a32(utf8(key)) mod partitions
 * where fnv1a32 starts at 2166136261 and, for each byte b, does
 * h = (h XOR b) * 16777619 mod 2^32 (unsigned). `redisProducer` and the
 * mailbox both use partitionOf() below.
 *
 * The fence table (a SharedArrayBuffer of FENCE_WORDS Int32 words a
 * partition, written by the main thread only, read plainly by consumers):
 *   UNTIL  the lease's end as this process last renewed it: clock.ts ms,
 *          modulo 2^32 (compared by their signed difference, which stays
 *          small, so no origin runs out); 0: not owned.
 *          A consumer starts no record of a partition past it: a process
 *          paused beyond its lease (GC, SIGSTOP) runs nothing of it on resume,
 *          before its main thread even learns it lost it.
 *   EPOCH  the fencing epoch of this process's lease (ctx.fence).
 *   GIVE   1 while the main thread gives the partition back (a rebalance):
 *          consumers passivate its keys' actor states (the hook runs).
 *   STATES actor states of the partition's keys alive in consumers: the
 *          low 20 bits count them (consumers add and subtract), the high 12
 *          are a generation. The partition is given back, or taken again,
 *          only at 0. The main thread forgets a count that no consumer will
 *          take back (a thread that died with its states) by moving to the
 *          next generation at 0; a consumer subtracts only within the
 *          generation it added in (one CAS each), so the count never goes
 *          below what lives. States of a partition lost (UNTIL 0: the main
 *          thread knows another may own it) are dropped without their hook:
 *          the messages that changed them since their init() were not
 *          acknowledged, and the new owner runs them again. A lease that
 *          merely lapsed here (UNTIL passed, the main thread late) drops
 *          nothing: no new record starts until it renews or loses it.
 */
import { now } from './clock.js';

/** The most partitions a partitioned Redis mailbox may have. */
export const MAX_PARTITIONS = 1024;
export const FENCE_WORDS = 4;
export const F_UNTIL = 0;
export const F_EPOCH = 1;
export const F_GIVE = 2;
export const F_STATES = 3;
const COUNT_BITS = 20;
const COUNT_MASK = (1 << COUNT_BITS) - 1;
const GEN_MASK = (1 << (32 - COUNT_BITS)) - 1;

const encoder = new TextEncoder();
const scratch = new Uint8Array(256);

/** FNV-1a (32 bits) of the key's UTF-8 bytes, mod `partitions`. */
export function partitionOf(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  let bytes: Uint8Array;
  let n: number;
  if (key.length * 3 <= scratch.length) {
    n = encoder.encodeInto(key, scratch).written;
    bytes = scratch;
  } else {
    bytes = encoder.encode(key);
    n = bytes.length;
  }
  for (let i = 0; i < n; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return (h >>> 0) % partitions;
}

/** The fence table of one mailbox: shared by its main thread (writes) and its consumers (read). */
export interface FenceRef {
  sab: SharedArrayBuffer;
  partitions: number;
}

export function createFence(partitions: number): FenceRef {
  return { sab: new SharedArrayBuffer(partitions * FENCE_WORDS * 4), partitions };
}

/** A consumer's (or the main thread's) view of a fence table. */
export class FenceView {
  readonly i32: Int32Array;
  constructor(readonly ref: FenceRef) {
    this.i32 = new Int32Array(ref.sab);
  }

  /** The partition of `key`, when this view's table has partitions. */
  partition(key: string): number {
    return partitionOf(key, this.ref.partitions);
  }

  /** ms left on this process's lease of partition `p` (<= 0: not ours, or lapsed). */
  leftMs(p: number): number {
    const until = Atomics.load(this.i32, p * FENCE_WORDS + F_UNTIL);
    return until === 0 ? 0 : (until - (Math.floor(now()) | 0)) | 0;
  }

  epoch(p: number): number {
    return Atomics.load(this.i32, p * FENCE_WORDS + F_EPOCH);
  }

  /** The main thread gives `p` back: its actor states are to be passivated. */
  giving(p: number): boolean {
    return Atomics.load(this.i32, p * FENCE_WORDS + F_GIVE) !== 0;
  }

  /** The main thread said `p` is not this process's (lost or given back): not merely lapsed. */
  lost(p: number): boolean {
    return Atomics.load(this.i32, p * FENCE_WORDS + F_UNTIL) === 0;
  }

  /** Actor states of `p`'s keys alive in consumers (this generation). */
  states(p: number): number {
    return Atomics.load(this.i32, p * FENCE_WORDS + F_STATES) & COUNT_MASK;
  }

  /** Consumer: one actor state of `p` made; returns the generation to give back to dropState(). */
  addState(p: number): number {
    const at = p * FENCE_WORDS + F_STATES;
    for (;;) {
      const w = Atomics.load(this.i32, at);
      if (Atomics.compareExchange(this.i32, at, w, ((w & ~COUNT_MASK) | (((w & COUNT_MASK) + 1) & COUNT_MASK)) | 0) === w) return w >>> COUNT_BITS;
    }
  }

  /** Consumer: one actor state of `p` gone; counted down only within the generation it was added in. */
  dropState(p: number, gen: number): void {
    const at = p * FENCE_WORDS + F_STATES;
    for (;;) {
      const w = Atomics.load(this.i32, at);
      if (w >>> COUNT_BITS !== gen || (w & COUNT_MASK) === 0) return;
      if (Atomics.compareExchange(this.i32, at, w, w - 1) === w) return;
    }
  }

  /** Main thread: forget the count (states no consumer will give back: their thread died): the next generation, at 0. */
  resetStates(p: number): void {
    const at = p * FENCE_WORDS + F_STATES;
    for (;;) {
      const w = Atomics.load(this.i32, at);
      const next = ((((w >>> COUNT_BITS) + 1) & GEN_MASK) << COUNT_BITS) | 0;
      if (Atomics.compareExchange(this.i32, at, w, next) === w) return;
    }
  }

  /** Main thread: start (or stop) giving `p` back. */
  give(p: number, on: boolean): void {
    Atomics.store(this.i32, p * FENCE_WORDS + F_GIVE, on ? 1 : 0);
  }

  /** Main thread: partition `p` is ours under `epoch` until `untilMs` (clock.ts ms). */
  own(p: number, epoch: number, untilMs: number): void {
    Atomics.store(this.i32, p * FENCE_WORDS + F_EPOCH, epoch);
    Atomics.store(this.i32, p * FENCE_WORDS + F_UNTIL, Math.floor(untilMs) | 0 || 1);
  }

  /** Main thread: partition `p` is no longer ours. */
  lose(p: number): void {
    Atomics.store(this.i32, p * FENCE_WORDS + F_UNTIL, 0);
    Atomics.store(this.i32, p * FENCE_WORDS + F_GIVE, 0);
  }
}
