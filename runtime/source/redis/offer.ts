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

  /** Put read or claimed entries into the ring, waiting for room; `attempts` null: first deliveries. */
  async take(e: Entries, attempts: number[] | null): Promise<void> {
    const intake = this.intake();
    const { maxAttempts, maxMessageBytes } = this.host;
    for (let i = 0; i < e.n; i++) {
      const sid = e.ids[i]!;
      const attempt = attempts === null ? 1 : attempts[i]!;
      if (attempt === 0 || this.mine(sid)) continue;
      const p = e.payloads[i]!;
      if (p === null) {
        if (e.foreign[i]) this.deadNow(sid, Buffer.alloc(0), attempt - 1, 'poison', `entry ${sid} has no field 'd' (it was not written by ringpool)`);
        else this.src.trimmed([sid]);
        continue;
      }
      if (p.byteLength > maxMessageBytes) {
        this.deadNow(sid, p, attempt - 1, 'poison', `entry ${sid} of ${p.byteLength} bytes is over maxMessageBytes ${maxMessageBytes}`);
        continue;
      }
      if (attempt > maxAttempts) {
        this.deadNow(sid, p, attempt - 1, 'max_attempts', `delivered ${attempt - 1} times without an outcome (its consumers died while it ran)`);
        continue;
      }
      // When Redis took it (the id's ms; +0.5 for the truncation), so end-to-end time includes the wait in the stream.
      const sentAt = Math.min(entryTime(sid) + 0.5, now());
      for (let waited = false; ; waited = true) {
        if (!intake.open || !this.src.running) return;
        if (waited && this.mine(sid)) break; // taken while we waited, by the other path (a read of our pending list, a takeover)
        let id: number;
        try {
          id = intake.offerBytes(p, attempt, sentAt);
        } catch {
          return; // the mailbox closed: the entry stays pending, for a takeover
        }
        if (id >= 0) {
          this.src.held.hold(id, sid);
          break;
        }
        await intake.whenRoom();
      }
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
