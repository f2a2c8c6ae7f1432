/**
 * Retiring a consumer slot waits until no other live loop of the mailbox is
 * inside its send guard (main thread): a loop handing a keyed record to the
 * retiring slot does so under its guard, so once none is SENDING, no push to
 * that slot is under way or can start (consumers.ts retire()).
 */
import { ErrorCodes, RingpoolError } from '../shared/errors.js';
import { GUARD_SENDING, MAX_CONSUMERS } from '../shared/layout.js';
import type { Ring } from '../shared/ring.js';

/** A live loop inside its send guard is waited for this long at most before a slot is retired anyway. */
const GUARD_GIVE_UP_MS = 10_000;

export interface GuardWaitHost {
  ring: Ring;
  mailbox: string;
  stopped(): boolean;
  emitError(err: Error): void;
  /** Slot `s` runs a loop that is not retired yet. */
  live(s: number): boolean;
}

/**
 * Run `then` once no other live loop is inside its guard. Guards cover a
 * few instructions, so this is nearly always at once (a short spin, on the
 * first look only); a loop descheduled inside one is waited for off the
 * main thread's back (a timer, one plain look a millisecond), never given
 * up on, or its push could land in the slot after its recovery. A guard
 * held by a thread that died inside it (an OOM) stays SENDING: that
 * thread's own retire marks it dead, and it is skipped from then on;
 * GUARD_GIVE_UP_MS is only the last resort against a hang. Once the
 * mailbox is stopping, its threads are being terminated: no waiting then.
 * `since` is -1 on the first look.
 */
export function whenGuardsFree(h: GuardWaitHost, except: number, since: number, then: () => void): void {
  const ring = h.ring;
  const now = performance.now();
  const first = since < 0;
  if (first) since = now;
  const spinUntil = first ? now + 0.5 : 0;
  for (let s = 0; s < MAX_CONSUMERS && !h.stopped(); s++) {
    if (s === except || !h.live(s)) continue;
    const view = ring.slot(s);
    while (view.guard() === GUARD_SENDING) {
      if (performance.now() < spinUntil) continue;
      if (performance.now() - since > GUARD_GIVE_UP_MS) {
        h.emitError(
          new RingpoolError(ErrorCodes.RING_STALLED, `mailbox '${h.mailbox}': consumer slot ${s} held its send guard for ${GUARD_GIVE_UP_MS} ms; retiring slot ${except} anyway`, {
            mailbox: h.mailbox,
          }),
        );
        break;
      }
      setTimeout(() => whenGuardsFree(h, except, since, then), 1).unref();
      return;
    }
  }
  then();
}
