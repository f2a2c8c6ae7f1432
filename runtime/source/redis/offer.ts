/**
 * Entries into the ring (main thread), for a Redis mailbox: what a read or a
 * takeover brought, one message each, at its attempt, waiting for ring room.
 * An entry held here, or finished here and not yet confirmed by Redis, is
 * skipped (it came back through the other path). An entry that cannot run is
 * dead-lettered without running: trimmed (acknowledged and reported), not
 * written by ringpool (no field `d`), over maxMessageBytes, or delivered
 * more than maxAttempts times without an outcome (a crash loop).
 */
import type { DeadLetter, DeadLetterReason } from '../../dead-letters.js';
import { now } from '../../shared/clock.js';
import { ErrorCodes } from '../../shared/errors.js';
import type { SourceIntake } from '../source.js';
import { entryTime, type Entries } from './connection.js';
import type { DeadFields } from './dead.js';
import type { RedisSource, SourceHost } from './source.js';

export class Offer {
  constructor(
    private readonly src: RedisSource,
    private readonly host: SourceHost,
    private readonly intake: () => SourceIntake,
  ) {}

  /**
   * Put read or claimed entries into the ring, waiting for room. Each entry
   * not already ours is held from this moment (reserved: counted, touched,
   * skipped by the other path) until it is in the ring, or dead-lettered
   * unrun, or left behind because the mailbox stops (then it is no longer
   * touched, and a takeover finds it after claimIdleMs). `counts`: their
   * delivery counters (XPENDING), asked once they are reserved; null: first
   * deliveries (attempt 1).
   */
  async take(e: Entries, counts: ((ids: readonly string[]) => Promise<number[]>) | null): Promise<void> {
    const held = this.src.held;
    const reserved = e.reserved;
    reserved.length = e.n;
    for (let i = 0; i < e.n; i++) {
      const sid = e.ids[i]!;
      reserved[i] = !this.mine(sid);
      if (reserved[i]) held.reserve(sid);
    }
    try {
      const attempts = counts === null ? null : await counts(e.ids);
      const intake = this.intake();
      const { maxAttempts, maxMessageBytes } = this.host;
      for (let i = 0; i < e.n; i++) {
        if (!reserved[i]) continue;
        const sid = e.ids[i]!;
        const attempt = attempts === null ? 1 : attempts[i]!;
        const p = e.payloads[i]!;
        // Each of these ends its reservation below: no longer pending for us, or finished unrun (in acks' unconfirmed set).
        if (attempt === 0) {
          // no longer pending for us (acknowledged meanwhile, or taken over): not ours to run
        } else if (p === null) {
          if (e.foreign[i]) this.deadNow(sid, Buffer.alloc(0), attempt - 1, 'poison', `entry ${sid} has no field 'd' (it was not written by ringpool)`);
          else this.src.trimmed([sid]);
        } else if (p.byteLength > maxMessageBytes) {
          this.deadNow(sid, p, attempt - 1, 'poison', `entry ${sid} of ${p.byteLength} bytes is over maxMessageBytes ${maxMessageBytes}`);
        } else if (attempt > maxAttempts) {
          this.deadNow(sid, p, attempt - 1, 'max_attempts', `delivered ${attempt - 1} times without an outcome (its consumers died while it ran)`);
        } else {
          // When Redis took it (the id's ms; +0.5 for the truncation), so end-to-end time includes the wait in the stream.
          const sentAt = Math.min(entryTime(sid) + 0.5, now());
          for (;;) {
            if (!intake.open || !this.src.running) return;
            let id: number;
            try {
              id = intake.offerBytes(p, attempt, sentAt);
            } catch {
              return; // the mailbox closed: the entry stays pending, for a takeover
            }
            if (id >= 0) {
              held.hold(id, sid);
              break;
            }
            await intake.whenRoom();
          }
        }
        reserved[i] = false;
        held.unreserve(sid); // a no-op once in the ring (hold() moved it)
      }
    } finally {
      // Left unrun (stopping, or the counts could not be read): pending in Redis, untouched from now on.
      for (let i = 0; i < e.n; i++) if (reserved[i]) held.unreserve(e.ids[i]!);
    }
  }

  /** Held here, or finished here with its XACK or dead letter not yet confirmed by Redis: not to be run again. */
  mine(sid: string): boolean {
    return this.src.held.has(sid) || this.src.acks.unconfirmed(sid);
  }

  /** Dead-letter an entry without running it (too large, not ours, out of attempts). */
  private deadNow(sid: string, payload: Uint8Array, attempts: number, reason: DeadLetterReason, why: string): void {
    const err = { name: 'RingpoolError', message: why, code: ErrorCodes.DEAD_LETTERED };
    const f: DeadFields = { payload, streamId: sid, localId: -1, attempts, reason, firstError: undefined, lastError: err, enqueuedAt: entryTime(sid), deadAt: Date.now() };
    this.src.acks.deadLetter(f);
    this.host.emitDeadLetter(this.letter(f));
  }

  letter(f: DeadFields): DeadLetter {
    const b = f.payload;
    let payload: unknown = b;
    try {
      payload = this.host.codec.decode(Buffer.from(b.buffer, b.byteOffset, b.byteLength), b, 0, b.byteLength, false);
    } catch {
      // undecodable: the bytes
    }
    return { id: f.localId, mailbox: this.src.mailbox, payload, key: undefined, attempts: f.attempts, firstError: f.firstError, lastError: f.lastError, enqueuedAt: f.enqueuedAt, deadAt: f.deadAt, reason: f.reason };
  }
}
