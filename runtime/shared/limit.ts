/**
 * A mailbox's start gate in its ring header (issue #31): a rate limit (GCRA
 * in shared memory: every consumer thread of the mailbox takes its starts
 * from one word with a CAS, no message to the main thread) and a pause (from
 * `rt.pause`, or a handler's `ctx.retryAfter`). Thread-neutral: consumer
 * loops take starts before they claim; the dispatcher sets the limit and the
 * pause.
 *
 * Times are microseconds since the epoch modulo 2^32 (`now32`); every
 * comparison is a wrap-safe difference, and no stored time is ever more than
 * a window (`perMs`, at most MAX_PER_MS) from now.
 *
 * The limit `max` starts per `perMs`: an emission interval T = perMs / (max
 * - b) and a burst tolerance tau = b * T, b = floor(max / 200), so that any
 * half-open window of `perMs` holds at most `max` starts (the GCRA bound,
 * ceil(W / T) + b) while a thread that fell behind may catch up b starts.
 * The steady rate is (max - b) / perMs, up to 0.5 % under max (none under
 * below 200 a window: no burst there, a late start's time is lost).
 */
import { HEADER_BYTES } from './layout.js';

/** Header words (after the journal's; HEADER_BYTES holds 128). */
export const LIMIT_T = 100;
export const LIMIT_TAU = 101;
export const LIMIT_TAT = 102;
export const PAUSE = 103;
export const PAUSE_UNTIL = 104;
/** Times a consumer found no start to take (held back by the limit or the pause): counted once a wait. */
export const LIMIT_WAITS = 105;
export const PAUSE_WAITS = 106;
/** The circuit breaker (runtime/mailbox/breaker.ts): BREAKER_* below; PROBE 1 while a half-open breaker's one probe may start. */
export const BREAKER = 107;
export const PROBE = 108;
/**
 * A limit shared by a Redis group (scope 'group', runtime/source/redis/group-gate.ts): GROUP 1 when on.
 * Starts then take only this process's slots of the group's schedule: the block [FLOOR, END) in force, and
 * the next one (NEXT_START, NEXT_K slots) once the dispatcher has it (NEXT_K 0: none yet). (After the
 * adaptive words, runtime/shared/adaptive.ts.)
 */
export const LIMIT_GROUP = 115;
export const LIMIT_END = 116;
export const LIMIT_FLOOR = 117;
export const LIMIT_NEXT_START = 118;
export const LIMIT_NEXT_K = 119;

export const PAUSE_NONE = 0;
/** Paused until PAUSE_UNTIL. */
export const PAUSE_TIMED = 1;
/** Paused until resumed. */
export const PAUSE_HELD = 2;

/** Longest `perMs` a rate limit takes (its times stay well inside the 2^31 µs a difference can say). */
export const MAX_PER_MS = 600_000;
/** Longest timed pause (30 min: 1.8e9 µs, inside what a difference can say); longer is a held pause. */
export const MAX_PAUSE_MS = 1_800_000;

export const BREAKER_CLOSED = 0;
export const BREAKER_OPEN = 1;
export const BREAKER_HALF_OPEN = 2;

if (LIMIT_NEXT_K >= HEADER_BYTES >> 2) throw new Error('limit words past the ring header');

/** µs since the epoch, modulo 2^32. */
export function now32(epochMs: number): number {
  return Math.floor(epochMs * 1000) | 0;
}

/** The emission interval and burst tolerance (µs) of `max` per `perMs`. */
export function limitParams(max: number, perMs: number): { T: number; tau: number } {
  const b = Math.floor(max / 200);
  const T = Math.ceil((perMs * 1000) / (max - b));
  return { T, tau: b * T };
}

/** The dispatcher sets (or, with max 0, clears) the limit. */
export function setLimit(i32: Int32Array, max: number, perMs: number): void {
  if (max <= 0) {
    Atomics.store(i32, LIMIT_T, 0);
    return;
  }
  const { T, tau } = limitParams(max, perMs);
  Atomics.store(i32, LIMIT_TAU, tau);
  Atomics.store(i32, LIMIT_T, T);
}

/**
 * Take up to `want` starts at `t` (now32): how many were taken (0 when the
 * limit holds them back: `limitWait` says for how long). Unused ones go back
 * with `refund`.
 */
export function takeStarts(i32: Int32Array, want: number, t: number): number {
  const T = Atomics.load(i32, LIMIT_T);
  if (T === 0) return want;
  const tau = Atomics.load(i32, LIMIT_TAU);
  const group = Atomics.load(i32, LIMIT_GROUP) !== 0;
  // A group's block may start well ahead of now (other processes' slots first): only a TAT past 2^30 µs is stale.
  const far = group ? 1 << 30 : 2 * (tau + T);
  for (;;) {
    const tat = Atomics.load(i32, LIMIT_TAT);
    const ahead = (tat - t) | 0;
    // TAT in the past (an idle gate), or further ahead than any taking leaves it (an idle gate seen across a wrap): start from now.
    const base = ahead <= 0 || ahead > far ? t : tat;
    const lead = (base - t) | 0;
    let room = Math.floor((tau - lead) / T) + 1;
    if (group) {
      // Only this process's slots: up to the end of its block; at the end, on to its next block (once there is one).
      const left = Math.floor(((Atomics.load(i32, LIMIT_END) - base) | 0) / T);
      if (left <= 0) {
        if (nextBlock(i32, T)) continue;
        return 0;
      }
      room = Math.min(room, left);
    }
    if (room <= 0) return 0;
    const k = Math.min(want, room);
    if (Atomics.compareExchange(i32, LIMIT_TAT, tat, (base + k * T) | 0) === tat) return k;
  }
}

/**
 * A group's block is used up: move on to the next one, if the dispatcher has
 * it. Whoever takes NEXT_K (a CAS) moves TAT to its start, then its floor and
 * end; a thread that sees the old end meanwhile finds no room and waits.
 */
function nextBlock(i32: Int32Array, T: number): boolean {
  const k = Atomics.load(i32, LIMIT_NEXT_K);
  if (k === 0) return false;
  // Stable while NEXT_K is not 0: the dispatcher writes a next block only after this one was taken.
  const start = Atomics.load(i32, LIMIT_NEXT_START);
  if (Atomics.compareExchange(i32, LIMIT_NEXT_K, k, 0) !== k) return true;
  for (;;) {
    const tat = Atomics.load(i32, LIMIT_TAT);
    const to = ((start - tat) | 0) > 0 ? start : tat;
    if (Atomics.compareExchange(i32, LIMIT_TAT, tat, to) === tat) break;
  }
  Atomics.store(i32, LIMIT_FLOOR, start);
  Atomics.store(i32, LIMIT_END, (start + k * T) | 0);
  return true;
}

/** The dispatcher: the group granted this process `k` slots from `start` (now32): its next block, once the one in force is used. */
export function offerBlock(i32: Int32Array, start: number, k: number): void {
  Atomics.store(i32, LIMIT_NEXT_START, start);
  Atomics.store(i32, LIMIT_NEXT_K, k);
}

/** Whether the dispatcher may offer a block (the last one offered was taken). */
export function blockTaken(i32: Int32Array): boolean {
  return Atomics.load(i32, LIMIT_NEXT_K) === 0;
}

/** The dispatcher makes the limit a group's: no start until it has a block (a block ending now, used up). */
export function setGroup(i32: Int32Array, t: number): void {
  Atomics.store(i32, LIMIT_TAT, t);
  Atomics.store(i32, LIMIT_FLOOR, t);
  Atomics.store(i32, LIMIT_END, t);
  Atomics.store(i32, LIMIT_GROUP, 1);
}

/** Give back `n` starts taken and not used (fewer ready than taken); a group's, never before its block. */
export function refund(i32: Int32Array, n: number): void {
  const T = Atomics.load(i32, LIMIT_T);
  if (T === 0 || n <= 0) return;
  const group = Atomics.load(i32, LIMIT_GROUP) !== 0;
  for (;;) {
    const tat = Atomics.load(i32, LIMIT_TAT);
    let to = (tat - n * T) | 0;
    if (group) {
      const floor = Atomics.load(i32, LIMIT_FLOOR);
      if (((to - floor) | 0) < 0) to = floor;
    }
    if (Atomics.compareExchange(i32, LIMIT_TAT, tat, to) === tat) return;
  }
}

/** How long a loop waits for a group's next block before it looks again (µs). */
const BLOCK_LOOK_US = 5_000;

/** µs until the limit has a start again at `t` (0: now). */
export function limitWait(i32: Int32Array, t: number): number {
  const T = Atomics.load(i32, LIMIT_T);
  if (T === 0) return 0;
  const tau = Atomics.load(i32, LIMIT_TAU);
  const tat = Atomics.load(i32, LIMIT_TAT);
  const ahead = (tat - t) | 0;
  if (Atomics.load(i32, LIMIT_GROUP) !== 0) {
    if (((Atomics.load(i32, LIMIT_END) - (ahead > 0 ? tat : t)) | 0) < T) return BLOCK_LOOK_US;
    return Math.max(0, ahead - tau);
  }
  if (ahead > 2 * (tau + T)) return 0;
  return Math.max(0, ahead - tau);
}

/** µs the mailbox stays paused at `t`: 0 not paused, -1 until resumed. */
export function pausedFor(i32: Int32Array, t: number): number {
  const p = Atomics.load(i32, PAUSE);
  if (p === PAUSE_NONE) return 0;
  if (p === PAUSE_HELD) return -1;
  const left = (Atomics.load(i32, PAUSE_UNTIL) - t) | 0;
  // Past (or seen across a wrap of the µs clock, after the dispatcher should have cleared it): over.
  return left > 0 && left <= MAX_PAUSE_MS * 1000 ? left : 0;
}

/**
 * The dispatcher, each tick: a timed pause that is over goes back to none
 * (before the µs clock wraps round to it again). A pause set meanwhile (its
 * time written, then its state) is put back: the time is read again after.
 */
export function expirePause(i32: Int32Array, t: number): void {
  if (Atomics.load(i32, PAUSE) !== PAUSE_TIMED) return;
  const until = Atomics.load(i32, PAUSE_UNTIL);
  const left = (until - t) | 0;
  if (left > 0 && left <= MAX_PAUSE_MS * 1000) return;
  if (Atomics.compareExchange(i32, PAUSE, PAUSE_TIMED, PAUSE_NONE) !== PAUSE_TIMED) return;
  if (Atomics.load(i32, PAUSE_UNTIL) !== until) Atomics.compareExchange(i32, PAUSE, PAUSE_NONE, PAUSE_TIMED);
}

/**
 * Pause until `until` (now32, at most MAX_PAUSE_MS ahead), or later if
 * already paused later (a handler's retryAfter, rt.pause({ ms })). The time
 * is written first, then the state (expirePause relies on that order).
 */
export function pauseUntil(i32: Int32Array, until: number, t: number): void {
  for (;;) {
    const p = Atomics.load(i32, PAUSE);
    const cur = Atomics.load(i32, PAUSE_UNTIL);
    if (p !== PAUSE_NONE && pausedFor(i32, t) !== 0 && ((cur - until) | 0) >= 0) return; // already paused at least that long
    if (Atomics.compareExchange(i32, PAUSE_UNTIL, cur, until) !== cur) continue;
    Atomics.compareExchange(i32, PAUSE, PAUSE_NONE, PAUSE_TIMED);
    return;
  }
}

/**
 * A start the breaker allows now: 1 closed (no say), 0 open, and half-open 1
 * for the one probe (taken by a CAS), 0 after it.
 */
export function breakerAllows(i32: Int32Array): boolean {
  const b = Atomics.load(i32, BREAKER);
  if (b === BREAKER_CLOSED) return true;
  return b === BREAKER_HALF_OPEN && Atomics.compareExchange(i32, PROBE, 1, 0) === 1;
}

/** The dispatcher moves the breaker's gate. */
export function setBreaker(i32: Int32Array, state: number): void {
  if (state === BREAKER_HALF_OPEN) Atomics.store(i32, PROBE, 1);
  Atomics.store(i32, BREAKER, state);
}

/** Pause until resumed (rt.pause without ms). */
export function hold(i32: Int32Array): void {
  Atomics.store(i32, PAUSE, PAUSE_HELD);
}

/** rt.resume: no pause, timed or held. */
export function resume(i32: Int32Array): void {
  Atomics.store(i32, PAUSE, PAUSE_NONE);
}
