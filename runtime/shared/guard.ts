/**
 * A thread's send guard (its slot's GUARD word). Thread-neutral.
 *
 * A worker thread holds it (FREE -> SENDING) around every multi-step write to
 * shared memory that a kill must not cut in half: ctx.send's reserve..publish,
 * a hand-off push, a reply. The dispatcher's lease watchdog sets it REVOKED
 * before it terminates the thread, and gives it back (FREE) in the rare case
 * where the handler acked at that very moment: that REVOKED is a moment long,
 * so it is waited out here; a REVOKED that lasts is a thread being terminated.
 */
import { GUARD_FREE, GUARD_SENDING } from './layout.js';

/** How long a transient REVOKED is waited out (the main thread may be descheduled in the middle of it). */
const WAIT_MS = 5;

/** Take the guard; false when the thread is being terminated (touch nothing shared). */
export function acquireGuard(i32: Int32Array, index: number): boolean {
  if (Atomics.compareExchange(i32, index, GUARD_FREE, GUARD_SENDING) === GUARD_FREE) return true;
  const until = performance.now() + WAIT_MS;
  for (let k = 1; ; k++) {
    if (Atomics.compareExchange(i32, index, GUARD_FREE, GUARD_SENDING) === GUARD_FREE) return true;
    if ((k & 255) === 0 && performance.now() > until) return false;
  }
}

export function releaseGuard(i32: Int32Array, index: number): void {
  Atomics.store(i32, index, GUARD_FREE);
}
