/**
 * A thread's send guard (its slot's GUARD word). Thread-neutral.
 *
 * A worker thread holds it (FREE -> SENDING) around every multi-step write to
 * shared memory that a kill must not cut in half: ctx.send's reserve..publish,
 * a hand-off push, a reply. The dispatcher's lease watchdog raises REVOKED
 * (only from FREE) while it tries to take the running record back. Then:
 * - the handler acked meanwhile: the take fails and the guard goes back to FREE;
 * - the take worked: the guard becomes KILLED and the thread is terminated.
 * REVOKED lasts a few instructions of the main thread (longer only if that
 * thread is descheduled in between), so it is waited out here, with no time
 * limit: only KILLED is a refusal. A time limit would read a slow main thread
 * as a kill, and a loop that then gave up on its reply or ack would run the
 * message twice.
 */
import { GUARD_FREE, GUARD_KILLED, GUARD_SENDING } from './layout.js';

/** Take the guard; false when the thread is being terminated (touch nothing shared). */
export function acquireGuard(i32: Int32Array, index: number): boolean {
  for (;;) {
    const was = Atomics.compareExchange(i32, index, GUARD_FREE, GUARD_SENDING);
    if (was === GUARD_FREE) return true;
    if (was === GUARD_KILLED) return false;
    // Only this thread takes its own guard, and never inside it: spinning on that would never end.
    if (was === GUARD_SENDING) throw new Error('ringpool internal error: a thread took its send guard twice');
    // REVOKED: transient, wait it out.
  }
}

export function releaseGuard(i32: Int32Array, index: number): void {
  Atomics.store(i32, index, GUARD_FREE);
}
