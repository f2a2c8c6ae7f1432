/**
 * The lease watchdog and the stall watch (main thread, every tick). A handler
 * running past leaseMs loses its message and its thread; a record reserved
 * and never published, which stops every consumer at it, is reported. It
 * knows no mailbox: the ring, the loops (their slots and states, given by
 * the wiring) and what it hands a taken-back message to; the time is the
 * tick's.
 */
import { ErrorCodes, RingpoolError } from '../shared/errors.js';
import {
  GUARD_FREE,
  GUARD_KILLED,
  GUARD_SENDING,
  HEAD,
  READ,
  SLOT_REVOKED,
  ST_CLAIMED,
  ST_FREE,
} from '../shared/layout.js';
import type { HandlerTimeoutEvent } from './types.js';
import type { Ring } from '../shared/ring.js';
import type { Backlog } from './backlog.js';
import type { Consumer } from './consumers.js';
import type { Counters } from './counters.js';
import type { Failures } from './failures.js';

export interface LeasesDeps {
  mailbox: string;
  ring: Ring;
  leaseMs: number;
  /** The loops (consumers.ts), through the wiring. */
  loops: () => Iterable<Consumer>;
  /** End a loop whose lease ran out: its thread is terminated and its slot retired (consumers.ts). */
  terminate: (c: Consumer) => void;
  /** On a shared thread: another mailbox's handler holds the loop's thread (its kill is blamed on that one; none of ours is charged). */
  blockedByOther?: (c: Consumer) => boolean;
  failures: Pick<Failures, 'takeBack' | 'fail'>;
  tally: Pick<Counters, 'handlerTimeouts' | 'redelivered'>;
  backlog: Pick<Backlog, 'pend' | 'flush'>;
  emitHandlerTimeout(ev: HandlerTimeoutEvent): void;
  emitError(err: Error): void;
}

/** Whether a handler started at `started` has run past its lease at `t`. */
export function leaseExpired(started: number, t: number, leaseMs: number): boolean {
  return t - started > leaseMs;
}

/** How long READ may sit on an unpublished record before the runtime reports it. */
const STALL_REPORT_MS = 5_000;

export class Leases {
  /** Stall watch: READ sitting on an unpublished record. */
  private stallAt = 0;
  private stallSince = 0;
  private stallReported = false;

  constructor(private readonly d: LeasesDeps) {}

  /** Lease watchdog: a handler running past leaseMs loses its message and its thread. */
  watch(t: number): void {
    const d = this.d;
    const ring = d.ring;
    const leaseMs = d.leaseMs;
    for (const c of d.loops()) {
      if (c.state !== 'running' && c.state !== 'stopping') continue;
      const slot = ring.slot(c.slot);
      const unit = slot.currentUnit();
      if (unit < 0) continue;
      const started = slot.currentStart();
      if (!leaseExpired(started, t, leaseMs)) continue;
      // Read before the take: with several handlers running, the lease's
      // holder (the oldest) is not necessarily the one that blocks the thread.
      // On a shared thread another mailbox's handler may be what holds it: then ours is not to blame either.
      const several = slot.inflight() > 1 || (d.blockedByOther?.(c) ?? false);
      // Never kill a thread between reserve and publish of a ctx.send(): try again next tick.
      if (slot.revokeGuard() === GUARD_SENDING) continue;
      // REVOKED goes up before the record is taken: a loop whose ack then fails
      // finds it and returns at once, so the kill never lands in a reclaim.
      const before = slot.swapStatus(SLOT_REVOKED);
      const held = d.failures.takeBack(unit, ST_CLAIMED + c.slot);
      if (held === null) {
        // acked just now: the lease did not run out after all
        slot.setStatus(before);
        slot.setGuard(GUARD_FREE);
        continue;
      }
      // Final: a guard the thread waits for while REVOKED is now refused (touch nothing shared any more).
      slot.setGuard(GUARD_KILLED);
      c.state = 'revoked';
      c.revokedUnit = unit;
      c.revokedSeveral = several;
      d.tally.handlerTimeouts++;
      d.emitHandlerTimeout({ mailbox: d.mailbox, id: held.id, attempt: held.attempt, leaseMs, threadId: c.threadId });
      if (several) {
        // Nobody can tell which handler held the thread: charge none; all of
        // the slot's records come back flagged to run alone (the rest at
        // retire), so the next expiry lands on the one that blocks.
        held.suspect = true;
        d.tally.redelivered++;
        d.backlog.pend(held);
        d.backlog.flush();
      } else if (d.failures.fail(held, { name: 'LeaseExpired', message: `handler ran past leaseMs (${leaseMs} ms)` }, 'timeout')) {
        d.tally.redelivered++;
      }
      d.terminate(c);
      ring.reclaim();
    }
  }

  /**
   * A record reserved and never published stops every consumer at it. Only a
   * thread that died inside ctx.send()'s reserve..publish window (an OOM there)
   * can leave one; say so loudly rather than stall in silence.
   */
  watchStall(t: number): void {
    const d = this.d;
    const ring = d.ring;
    const i32 = ring.i32;
    const r = Atomics.load(i32, READ);
    if (r === Atomics.load(i32, HEAD) || Atomics.load(ring.state, r & ring.indexMask) !== ST_FREE) {
      this.stallSince = 0;
      return;
    }
    if (this.stallSince === 0 || this.stallAt !== r) {
      this.stallAt = r;
      this.stallSince = t;
      this.stallReported = false;
    } else if (!this.stallReported && t - this.stallSince > STALL_REPORT_MS) {
      this.stallReported = true;
      d.emitError(
        new RingpoolError(
          ErrorCodes.RING_STALLED,
          `mailbox '${d.mailbox}': a reserved record has not been published for ${STALL_REPORT_MS} ms; consumers cannot pass it ` +
            `(a thread died inside ctx.send()). ${ring.depth()} messages are behind it.`,
          { mailbox: d.mailbox },
        ),
      );
    }
  }
}
