/**
 * Failed attempts (main thread): take a record back from the ring, then retry
 * it after a backoff or dead-letter it; and recovery, which takes back every
 * record a dead or revoked consumer slot still holds.
 */
import { now } from '../shared/clock.js';
import { ErrorCodes, RingpoolError, fromErrorInfo, type ErrorInfo } from '../shared/errors.js';
import { READ, ST_CLAIMED, ST_FREE, ST_HELD, ST_READY, ST_RECLAIMING, ST_SKIP, TAIL } from '../shared/layout.js';
import type { DeadLetterReason } from '../dead-letters.js';
import { HeldMessage } from '../held.js';
import { backoffDelay } from '../timer-heap.js';
import type { Mailbox } from './index.js';

/** What ended an attempt: the handler threw (`error`, or `unrecoverable`), its thread died (`crash`), its lease ran out (`timeout`). */
export type FailureKind = 'error' | 'unrecoverable' | 'crash' | 'timeout';

export class Failures {
  constructor(private readonly m: Mailbox) {}

  /**
   * Take the record at `unit` away from whoever holds it in state `expected`
   * (CAS to HELD, copy it out, mark it TAKEN) and count it as finished by the
   * dispatcher. Null when the CAS fails (acked meanwhile, or taken already).
   */
  takeBack(unit: number, expected: number): HeldMessage | null {
    const ring = this.m.ring;
    if (Atomics.compareExchange(ring.state, unit, expected, ST_HELD) !== expected) return null;
    const held = HeldMessage.takeFrom(ring, unit);
    this.m.counters.finishedHere++;
    return held;
  }

  /** A consumer's nack: its handler threw. */
  onNack(slot: number, unit: number, error: ErrorInfo, unrecoverable: boolean): void {
    const held = this.takeBack(unit, ST_CLAIMED + slot);
    if (held === null) return;
    this.m.ring.reclaim();
    this.fail(held, error, unrecoverable ? 'unrecoverable' : 'error');
  }

  /**
   * One failed attempt of `held`: retry after backoff (true), or dead-letter
   * (false). The reason names the last failure: an error (`max_attempts`), a
   * crash (`poison`), a lease expiry (`timeout`).
   */
  fail(held: HeldMessage, error: ErrorInfo, kind: FailureKind): boolean {
    const m = this.m;
    const counters = m.counters;
    counters.failed++;
    if (held.firstError === undefined) held.firstError = error;
    held.lastError = error;
    if (kind === 'unrecoverable') {
      this.deadLetter(held, 'unrecoverable');
      return false;
    }
    if (held.attempt >= m.opts.maxAttempts) {
      this.deadLetter(held, kind === 'error' ? 'max_attempts' : kind === 'crash' ? 'poison' : 'timeout');
      return false;
    }
    counters.retried++;
    const { baseMs, maxMs } = m.opts.backoff;
    held.dueAt = now() + backoffDelay(held.attempt, baseMs, maxMs);
    held.attempt++;
    m.outcomes?.retry(held.id, held.attempt, held.dueAt);
    m.delays.schedule(held);
    return true;
  }

  private deadLetter(held: HeldMessage, reason: DeadLetterReason): void {
    const m = this.m;
    m.counters.deadLettered++;
    m.counters.deadBy[reason]++;
    const deadAt = Date.now();
    // Told first (the entry carries the letter, for a store that keeps it): with deadLetterLimit 0 (or a full
    // store) add() drops a letter at once, and its PURGED must come after.
    m.outcomes?.deadLettered(held, reason, deadAt);
    // Into the dead-letter store, or where the source keeps its messages' letters (a Redis mailbox: <stream>:dead).
    const letter = m.deadLetters.add(held, reason, deadAt);
    if (m.replies.size > 0) {
      const last = held.lastError ?? { name: 'Error', message: reason };
      m.replies.fail(
        held.id,
        new RingpoolError(
          ErrorCodes.DEAD_LETTERED,
          `ask to mailbox '${m.name}' failed: message ${held.id} was dead-lettered (${reason}) after ${held.attempt} attempt(s): ${last.message}`,
          { mailbox: m.name, id: held.id, reason, attempts: held.attempt },
          { cause: fromErrorInfo(last) },
        ),
      );
    }
    m.keyed.passTurn(held);
    m.host.emitDeadLetter(letter);
  }

  /**
   * Take back every record consumer `slot` holds (its thread is dead or
   * revoked). The one at `current` failed (crash); the others never started
   * and go back with the same attempt. Returns how many were put back.
   */
  recover(slot: number, current: number, crash: ErrorInfo, suspect = false): number {
    const m = this.m;
    const ring = m.ring;
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
          m.host.emitError(new RingpoolError(ErrorCodes.RING_STALLED, `mailbox '${m.name}': recovery stopped at a record being reclaimed`, { mailbox: m.name }));
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
            if (this.fail(held, crash, 'crash')) m.counters.redelivered++;
          } else {
            m.counters.redelivered++;
            back++;
            if (suspect && s === mine) held.suspect = true;
            m.delays.pend(held);
          }
        }
      }
      p = (p + units) | 0;
    }
    ring.reclaim();
    m.delays.flushPending();
    return back;
  }
}
