/**
 * One clock for every thread: milliseconds since the epoch with sub-ms
 * precision. `performance.now()` alone is relative to each thread's own
 * time origin, so a time written by a worker and read by the main thread must
 * add `performance.timeOrigin`.
 */
const origin = performance.timeOrigin;

/** The longest delay setTimeout holds (2^31 - 1 ms, ~24.8 days); past it Node fires after 1 ms instead. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export function now(): number {
  return origin + performance.now();
}
