/**
 * Entries into the ring (main thread), for a Redis mailbox: what a read or a
 * takeover brought, one message each, at its attempt, waiting for ring room.
 * An entry held here, or finished here and not yet confirmed by Redis, is
 * skipped (it came back through the other path). An entry that cannot run is
 * dead-lettered without running: trimmed (acknowledged and reported), not
 * written by ringpool (no field `d`), over maxMessageBytes, with a field `h`
 * that is not headers (over 4096 bytes, not the JSON of an object of
 * strings: written by another client), or delivered more than maxAttempts
 * times without an outcome (a crash loop). An entry's headers (field `h`)
 * go into its record, and with it into its dead letter.
 */
import { decodeHeaderBytes, headerBytesProblem } from '../../shared/headers.js';
import type { DeadLetter, DeadLetterReason } from '../../dead-letters.js';
import { now } from '../../shared/clock.js';
import { ErrorCodes } from '../../shared/errors.js';
import type { SourceIntake } from '../source.js';
import { FLAG_ASK, FLAG_CALL, FLAG_PARTITION } from '../../shared/layout.js';
import { entryTime, type Entries } from './connection.js';
import { qualify, unqualify } from './held.js';
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
  async take(e: Entries, counts: ((ids: readonly string[]) => Promise<number[]>) | null, part = -1, epoch = 0): Promise<void> {
    const held = this.src.held;
    const reserved = e.reserved;
    reserved.length = e.n;
    // Qualified ids (held.ts): a partition's entries are named with the partition and the epoch they are read under.
    const q = part < 0 ? e.ids : e.ids.map((sid) => qualify(sid, part, epoch));
    for (let i = 0; i < e.n; i++) {
      const sid = q[i]!;
      reserved[i] = !this.mine(sid);
      if (reserved[i]) held.reserve(sid);
    }
    const flags = part < 0 ? 0 : FLAG_PARTITION;
    try {
      const attempts = counts === null ? null : await counts(e.ids);
      const intake = this.intake();
      const { maxAttempts, maxMessageBytes } = this.host;
      for (let i = 0; i < e.n; i++) {
        if (!reserved[i]) continue;
        const sid = q[i]!;
        const key = part < 0 ? null : e.keys[i]!;
        const attempt = attempts === null ? 1 : attempts[i]!;
        const p = e.payloads[i]!;
        let h: Buffer | null = e.headers[i] ?? null;
        // Headers another client wrote that a handler could not read: not run (the letter keeps no `h`, and says why).
        const bad = h === null || h.byteLength === 0 ? null : headerBytesProblem(h);
        if (bad !== null || h?.byteLength === 0) h = null;
        // Each of these ends its reservation below: no longer pending for us, or finished unrun (in acks' unconfirmed set).
        if (attempt === 0) {
          // no longer pending for us (acknowledged meanwhile, or taken over): not ours to run
        } else if (p === null) {
          if (e.foreign[i]) this.deadNow(sid, key, e.calls[i]!, Buffer.alloc(0), h, attempt - 1, 'poison', `entry ${e.ids[i]} has no field 'd' (it was not written by ringpool)`);
          else this.src.trimmed([e.ids[i]!], part, epoch);
        } else if (p.byteLength > maxMessageBytes) {
          this.deadNow(sid, key, e.calls[i]!, p, h, attempt - 1, 'poison', `entry ${e.ids[i]} of ${p.byteLength} bytes is over maxMessageBytes ${maxMessageBytes}`);
        } else if (bad !== null) {
          this.deadNow(sid, key, e.calls[i]!, p, null, attempt - 1, 'poison', `entry ${e.ids[i]} has a field 'h' that is not headers: ${bad}`);
        } else if (attempt > maxAttempts) {
          this.deadNow(sid, key, e.calls[i]!, p, h, attempt - 1, 'max_attempts', `delivered ${attempt - 1} times without an outcome (its consumers died while it ran)`);
        } else {
          // When Redis took it (the id's ms; +0.5 for the truncation), so end-to-end time includes the wait in the stream.
          const sentAt = Math.min(entryTime(sid) + 0.5, now());
          for (;;) {
            if (!intake.open || !this.src.running) return;
            // A partition lost meanwhile: its new owner has the rest.
            if (part >= 0 && !this.src.holds(part, epoch)) return;
            let id: number;
            try {
              const to = e.replyTo[i]!;
              id = intake.offerBytes(p, attempt, sentAt, key, (e.calls[i] ? flags | FLAG_CALL : flags) | (to === null ? 0 : FLAG_ASK), h);
              // An ask from another process (or this one): opened here, its reply goes back to `to` (asks.ts).
              if (id >= 0 && to !== null) this.host.openAsk(id, this.src.replier.expect(id, to, e.corrs[i] ?? ''));
            } catch {
              return; // the mailbox closed: the entry stays pending, for a takeover
            }
            if (id >= 0) {
              held.hold(id, sid);
              // Its key's XACKs and letters in the key's order (key-order.ts).
              if (key !== null && part >= 0) this.src.order?.add(sid, `${key}@${part}`);
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
      let left = 0;
      for (let i = 0; i < e.n; i++) {
        if (!reserved[i]) continue;
        held.unreserve(q[i]!);
        left++;
      }
      // A read that came back after the mailbox began to close: its entries are pending under this consumer, for
      // another to claim (or this name's next start); close() reports them as left.
      if (!this.src.running) this.src.leftPending += left;
    }
  }

  /** Held here, or finished here with its XACK or dead letter not yet confirmed by Redis: not to be run again. */
  mine(sid: string): boolean {
    return this.src.held.has(sid) || this.src.acks.unconfirmed(sid);
  }

  /** Dead-letter an entry without running it (too large, not ours, out of attempts). */
  private deadNow(q: string, key: string | null, call: boolean, payload: Uint8Array, headers: Uint8Array | null, attempts: number, reason: DeadLetterReason, why: string): void {
    const err = { name: 'RingpoolError', message: why, code: ErrorCodes.DEAD_LETTERED };
    const { sid, p, epoch } = unqualify(q);
    const f: DeadFields = { payload, streamId: sid, q, partition: p, epoch, key, call, headers, localId: -1, attempts, reason, firstError: undefined, lastError: err, enqueuedAt: entryTime(sid), deadAt: Date.now() };
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
    return { id: f.localId, mailbox: this.src.mailbox, payload, key: f.key ?? undefined, attempts: f.attempts, firstError: f.firstError, lastError: f.lastError, enqueuedAt: f.enqueuedAt, deadAt: f.deadAt, reason: f.reason, headers: decodeHeaderBytes(f.headers) };
  }
}
