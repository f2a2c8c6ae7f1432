/**
 * Failed attempts (main thread): take a record back from the ring, then retry
 * it after a backoff or dead-letter it (retry.ts decides); and recovery,
 * which takes back every record a dead or revoked consumer slot still holds.
 * It knows no mailbox: what it uses is given (FailuresDeps).
 */
import { ErrorCodes, RingpoolError, fromErrorInfo, type ErrorInfo } from '../shared/errors.js';
import { FLAG_PARTITION, READ, ST_CLAIMED, ST_FREE, ST_HELD, ST_READY, ST_RECLAIMING, ST_SKIP, TAIL } from '../shared/layout.js';
import type { Ring } from '../shared/ring.js';
import type { DeadLetter, DeadLetterReason, DeadLetterSink } from '../dead-letters.js';
import { HeldMessage } from '../held.js';
import type { Replies } from '../replies.js';
import type { Backlog } from './backlog.js';
import type { Counters } from './counters.js';
import type { KeyTurns } from './key-turns.js';
import type { OutcomeFeed } from './outcomes.js';
import { afterFailure, type FailureKind, type RetryPolicy } from './retry.js';

export type { FailureKind } from './retry.js';

export interface FailuresDeps {
  mailbox: string;
  ring: Ring;
  policy: RetryPolicy;
  /** ms since the epoch (clock.ts's now(), or a test's): due times of retries. */
  clock: () => number;
  /** The wall clock, whole ms since the epoch (Date.now, or a test's): when a letter died, as users read it. */
  wallClock: () => number;
  /** The counts a failure moves. */
  tally: Pick<Counters, 'failed' | 'retried' | 'redelivered' | 'deadLettered' | 'deadBy' | 'finishedHere'>;
  backlog: Pick<Backlog, 'schedule' | 'pend' | 'flush'>;
  turns: Pick<KeyTurns, 'passTurn'>;
  /** Where dead letters go (built after this part: read when one comes). */
  sink: () => DeadLetterSink;
  /** The outcome feed, when a store or source listens. */
  outcomes: Pick<OutcomeFeed, 'retry' | 'deadLettered'> | null;
  /** Open asks: one whose message is dead-lettered is rejected. */
  replies: Pick<Replies, 'size' | 'fail'>;
  emitDeadLetter(letter: DeadLetter): void;
  emitError(err: Error): void;
  /** A record the source read from a partition (FLAG_PARTITION) failed: true when the source drops it (this process lost the partition; its new owner runs it). */
  fenced(id: number): boolean;
  /** The circuit breaker, if the mailbox has one: a failed attempt it says not to charge goes back at the same attempt (breaker.ts). */
  breaker: { failure(): boolean } | null;
}

export class Failures {
  constructor(private readonly d: FailuresDeps) {}

  /**
   * Take the record at `unit` away from whoever holds it in state `expected`
   * (CAS to HELD, copy it out, mark it TAKEN) and count it as finished by the
   * dispatcher. Null when the CAS fails (acked meanwhile, or taken already).
   */
  takeBack(unit: number, expected: number): HeldMessage | null {
    const ring = this.d.ring;
    if (Atomics.compareExchange(ring.state, unit, expected, ST_HELD) !== expected) return null;
    const held = HeldMessage.takeFrom(ring, unit);
    this.d.tally.finishedHere++;
    return held;
  }

  /** A consumer's nack: its handler threw. */
  onNack(slot: number, unit: number, error: ErrorInfo, unrecoverable: boolean): void {
    const held = this.takeBack(unit, ST_CLAIMED + slot);
    if (held === null) return;
    this.d.ring.reclaim();
    this.fail(held, error, unrecoverable ? 'unrecoverable' : 'error');
  }

  /**
   * One failed attempt of `held`: retry after backoff (true), or dead-letter
   * (false). The reason names the last failure: an error (`max_attempts`), a
   * crash (`poison`), a lease expiry (`timeout`).
   */
  fail(held: HeldMessage, error: ErrorInfo, kind: FailureKind): boolean {
    const d = this.d;
    if ((held.kept & FLAG_PARTITION) !== 0) {
      if (d.fenced(held.id)) {
        // Neither retried nor dead-lettered here: the partition's new owner has the entry. Its key's turn goes on.
        d.turns.passTurn(held);
        return false;
      }
      if (error.code === ErrorCodes.FENCED) {
        // Its consumer did not start it (the lease had lapsed on its clock), and the partition is still ours
        // (renewed meanwhile): not an attempt. It runs again at the same attempt.
        d.tally.redelivered++;
        d.backlog.pend(held);
        d.backlog.flush();
        return true;
      }
    }
    if (error.code === ErrorCodes.RETRY_AFTER) {
      // The downstream said "not now" (ctx.retryAfter): its thread paused the mailbox; the message goes back at the
      // same attempt, no backoff, not a failure (the pause gates when it starts again).
      d.backlog.pend(held);
      d.backlog.flush();
      return true;
    }
    if (d.breaker?.failure() === true) {
      // The breaker is open (or this failure opened it): the downstream is out, not this message. Back at the same attempt;
      // it starts again when the breaker lets it (counted as failed, not retried).
      d.tally.failed++;
      if (held.firstError === undefined) held.firstError = error;
      held.lastError = error;
      d.backlog.pend(held);
      d.backlog.flush();
      return true;
    }
    d.tally.failed++;
    if (held.firstError === undefined) held.firstError = error;
    held.lastError = error;
    const next = afterFailure(held.attempt, kind, d.policy, d.clock());
    if (!next.retry) {
      this.deadLetter(held, next.reason);
      return false;
    }
    d.tally.retried++;
    held.dueAt = next.dueAt;
    held.attempt = next.attempt;
    d.outcomes?.retry(held.id, held.attempt, held.dueAt);
    d.backlog.schedule(held);
    return true;
  }

  private deadLetter(held: HeldMessage, reason: DeadLetterReason): void {
    const d = this.d;
    d.tally.deadLettered++;
    d.tally.deadBy[reason]++;
    const deadAt = d.wallClock();
    // Told first (the entry carries the letter, for a store that keeps it): with deadLetterLimit 0 (or a full
    // store) add() drops a letter at once, and its PURGED must come after.
    d.outcomes?.deadLettered(held, reason, deadAt);
    // Into the dead-letter store, or where the source keeps its messages' letters (a Redis mailbox: <stream>:dead).
    const letter = d.sink().add(held, reason, deadAt);
    if (d.replies.size > 0) {
      const last = held.lastError ?? { name: 'Error', message: reason };
      d.replies.fail(
        held.id,
        new RingpoolError(
          ErrorCodes.DEAD_LETTERED,
          `ask to mailbox '${d.mailbox}' failed: message ${held.id} was dead-lettered (${reason}) after ${held.attempt} attempt(s): ${last.message}`,
          { mailbox: d.mailbox, id: held.id, reason, attempts: held.attempt },
          { cause: fromErrorInfo(last) },
        ),
      );
    }
    d.turns.passTurn(held);
    d.emitDeadLetter(letter);
  }

  /**
   * Take back every record consumer `slot` holds (its thread is dead or
   * revoked). The one at `current` failed (crash); the others never started
   * and go back with the same attempt. Returns how many were put back.
   */
  recover(slot: number, current: number, crash: ErrorInfo, suspect = false): number {
    const d = this.d;
    const ring = d.ring;
    const i32 = ring.i32;
    const state = ring.state;
    const mine = ST_CLAIMED + slot;
    let back = 0;
    let p = Atomics.load(i32, TAIL);
    const end = Atomics.load(i32, READ);
    let spins = 0;
    while (p !== end) {
      const at = p & ring.indexMask;
      const s = Atomics.load(state, at);
      if (s === ST_FREE || s === ST_RECLAIMING) {
        // Only the record at TAIL can read so, while a consumer reclaims it
        // (a few instructions between its CAS and its TAIL store): wait for TAIL to move.
        const t = Atomics.load(i32, TAIL);
        if (t !== p) p = t;
        else if (++spins > 1_000_000) {
          d.emitError(new RingpoolError(ErrorCodes.RING_STALLED, `mailbox '${d.mailbox}': recovery stopped at a record being reclaimed`, { mailbox: d.mailbox }));
          break;
        }
        continue;
      }
      const units = s === ST_SKIP ? ring.capacityUnits - at : ring.units(at);
      // A consumer may reclaim DONE records under us; once TAIL passed p, what we read there is stale.
      const t = Atomics.load(i32, TAIL);
      if (((t - p) | 0) > 0) {
        p = t;
        continue;
      }
      if (!(units >= 1 && units <= ring.capacityUnits - at)) break; // never follow a bad length
      if (s === mine || s === ST_READY) {
        const held = this.takeBack(at, s);
        if (held !== null) {
          if (at === current && s === mine) {
            if (this.fail(held, crash, 'crash')) d.tally.redelivered++;
          } else {
            d.tally.redelivered++;
            back++;
            if (suspect && s === mine) held.suspect = true;
            d.backlog.pend(held);
          }
        }
      }
      p = (p + units) | 0;
    }
    ring.reclaim();
    d.backlog.flush();
    return back;
  }
}
