/**
 * One clock for every thread: milliseconds since the epoch with sub-ms
 * precision. `performance.now()` alone is relative to each thread's own
 * time origin, so a time written by a worker and read by the main thread must
 * add `performance.timeOrigin`.
 */
const origin = performance.timeOrigin;

export function now(): number {
  return origin + performance.now();
}
