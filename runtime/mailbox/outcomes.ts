/**
 * The outcome feed (main thread): every moment of a message's life, in
 * batches, for the mailbox's store and source (runtime/store/, runtime/source/).
 * Built only when one is attached; the in-memory mailbox has none and pays
 * nothing (its rings are allocated unfollowed, so reclaim never looks here).
 *
 * What the consumers do is read from the ring itself, not sent: the feed
 * follows the ring with three cursors, as the Disruptor's journaller follows
 * its ring buffer, and reclaim may not pass the last of them (FOLLOWED):
 *
 * ```
 *   TAIL ≤ FOLLOWED ≤ claimed ≤ READ,  claimed ≤ accepted ≤ HEAD
 *   [TAIL, FOLLOWED)        finished, seen by the feed: reclaimable
 *   [FOLLOWED, claimed)     reported claimed; an ack is reported when the record reads DONE
 *   [claimed, accepted)     reported accepted, not yet claimed
 * ```
 *
 * So an ack costs the consumer nothing more than today's CAS to DONE: the
 * feed finds DONE records in a walk over shared memory, a batch at a time.
 * What only the dispatcher sees (a retry's due time, a dead letter, a
 * redrive, a purge, a delayed send) it appends as it happens. Listeners get
 * the entries in the order the main thread saw them.
 */
import type { DeadLetterReason } from '../dead-letters.js';
import { DEAD_LETTER_REASONS, Outcome, type AcceptedMessage, type DeadLetterRecord, type OutcomeBatch, type OutcomeKind, type OutcomeListener } from '../outcome.js';
import type { HeldMessage } from '../held.js';
import { FLAG_AGAIN, FLAG_ASCII, FLAG_HEADERS, FLAG_VOID, FOLLOWED, HEAD, READ, ST_DONE, ST_FREE, ST_SKIP, ST_TAKEN } from '../shared/layout.js';
import type { Ring } from '../shared/ring.js';

const CAPACITY = 4096;

export class OutcomeFeed implements OutcomeBatch {
  n = 0;
  readonly kind = new Uint8Array(CAPACITY);
  readonly id = new Float64Array(CAPACITY);
  readonly attempt = new Int32Array(CAPACITY);
  readonly value = new Float64Array(CAPACITY);
  /** ACCEPTED entries: the ring unit (>= 0) or -1 with the held message in `held`; DEAD_LETTERED entries: the held message. */
  private readonly unit = new Int32Array(CAPACITY);
  /** DEAD_LETTERED entries: when (ms since the epoch). */
  private readonly at = new Float64Array(CAPACITY);
  private readonly held: (HeldMessage | null)[] = new Array<HeldMessage | null>(CAPACITY).fill(null);
  private accepted: number;
  private claimed: number;
  /** Where FOLLOWED goes once the current batch is delivered. */
  private final: number;
  private timer: NodeJS.Timeout | null = null;
  private following = false;
  /** A walk is under way: a listener's call back into the mailbox during a delivery inside it must not walk again from the same cursors. */
  private walking = false;
  private flushing = false;
  /** Entries pushed while a flush was delivering (a listener's call back into the mailbox). */
  private later: Array<{ kind: number; id: number; attempt: number; value: number; unit: number; held: HeldMessage | null; at: number }> = [];

  constructor(
    readonly mailbox: string,
    private readonly ring: Ring,
    private readonly listeners: readonly OutcomeListener[],
    private readonly onError: (err: unknown) => void,
    /**
     * Report a ring record's ACCEPTED and each CLAIMED. False when the only
     * listener is the journal, which has the records from the ring itself and
     * needs only what finishes them (and what only the dispatcher sees).
     */
    private readonly ringEntries = true,
  ) {
    const f = Atomics.load(ring.i32, FOLLOWED);
    this.accepted = f;
    this.claimed = f;
    this.final = f;
  }

  /** Follow the ring every `everyMs` while the mailbox runs (and on every tick and space signal). */
  start(everyMs = 1): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.follow(), everyMs);
    this.timer.unref();
  }

  /** Stop the timer, after a last walk: what the consumers finished is reported before the listeners close. */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.follow();
  }

  // ---- what only the dispatcher sees ----
  // Each first catches up with the ring, so a message's entries come in the
  // order of its life (its ACCEPTED and CLAIMED before the RETRY of that attempt).

  /** A delayed send was accepted (it reaches the ring when due, flagged AGAIN). */
  acceptedHeld(held: HeldMessage): void {
    this.walk();
    // value: its due time as it was accepted (a later retry moves held.dueAt).
    this.push(Outcome.ACCEPTED, held.id, held.attempt, held.dueAt, -1, held);
  }

  retry(id: number, attempt: number, dueAt: number): void {
    this.walk();
    this.push(Outcome.RETRY, id, attempt, dueAt);
  }

  /** A message went to the dead letters: the entry carries it (a store keeps the letter from `letter(i)`). */
  deadLettered(held: HeldMessage, reason: DeadLetterReason, deadAt: number): void {
    this.walk();
    this.push(Outcome.DEAD_LETTERED, held.id, held.attempt, DEAD_LETTER_REASONS.indexOf(reason), -1, held, deadAt);
  }

  redriven(held: readonly HeldMessage[]): void {
    this.walk();
    for (const h of held) this.push(Outcome.REDRIVEN, h.id, 1, 0);
  }

  purged(held: readonly HeldMessage[]): void {
    this.walk();
    for (const h of held) this.push(Outcome.PURGED, h.id, h.attempt, 0);
  }

  // ---- what the consumers did, read from the ring ----

  /** Walk the ring from the feed's cursors, report what moved, let reclaim pass what is finished. */
  follow(): void {
    if (this.following) return; // a listener's call back into the mailbox
    this.following = true;
    try {
      this.walk();
      // Listeners may read the records of this batch (message()): let reclaim pass them only afterwards.
      this.flush();
      Atomics.store(this.ring.i32, FOLLOWED, this.final);
    } finally {
      this.following = false;
    }
    this.ring.reclaim();
  }

  /** Report what moved since the last walk; `final` is where FOLLOWED may go once the batch is delivered. */
  private walk(): void {
    if (this.walking) return;
    this.walking = true;
    try {
      this.walkRing();
    } finally {
      this.walking = false;
    }
  }

  private walkRing(): void {
    const ring = this.ring;
    const i32 = ring.i32;
    const state = ring.state;
    const mask = ring.indexMask;
    const cap = ring.capacityUnits;
    if (!this.ringEntries) {
      // Everything below READ was published and claimed: only the finished ones matter.
      this.walkFinished(Atomics.load(i32, READ));
      return;
    }
    const head = Atomics.load(i32, HEAD);
    // Published records: their headers stay as written until reclaimed, and reclaim stops at FOLLOWED.
    let a = this.accepted;
    while (a !== head) {
      const at = a & mask;
      const s = Atomics.load(state, at);
      if (s === ST_FREE) break; // reserved, not yet published
      if (s === ST_SKIP) {
        a = (a + cap - at) | 0;
        continue;
      }
      if ((ring.flags(at) & (FLAG_AGAIN | FLAG_VOID)) === 0) this.push(Outcome.ACCEPTED, ring.id(at), ring.attempt(at), 0, at);
      a = (a + ring.units(at)) | 0;
    }
    this.accepted = a;
    const read = Atomics.load(i32, READ);
    let c = this.claimed;
    while (c !== read && c !== a) {
      const at = c & mask;
      const s = Atomics.load(state, at);
      if (s === ST_SKIP) {
        c = (c + cap - at) | 0;
        continue;
      }
      if (s === ST_FREE) break;
      if ((ring.flags(at) & FLAG_VOID) === 0) this.push(Outcome.CLAIMED, ring.id(at), ring.attempt(at), 0);
      c = (c + ring.units(at)) | 0;
    }
    this.claimed = c;
    this.walkFinished(c);
  }

  /** Over finished records from FOLLOWED's next place up to `c`: DONE is an ack, TAKEN is not. */
  private walkFinished(c: number): void {
    const ring = this.ring;
    const state = ring.state;
    const mask = ring.indexMask;
    const cap = ring.capacityUnits;
    let f = this.final;
    while (f !== c) {
      const at = f & mask;
      const s = Atomics.load(state, at);
      if (s === ST_SKIP) {
        f = (f + cap - at) | 0;
        continue;
      }
      if (s === ST_DONE) this.push(Outcome.ACKED, ring.id(at), ring.attempt(at), 0);
      else if (s !== ST_TAKEN) break; // claimed, running: the feed waits here, as reclaim would
      f = (f + ring.units(at)) | 0;
    }
    this.final = f;
  }

  private push(kind: OutcomeKind, id: number, attempt: number, value: number, unit = -1, held: HeldMessage | null = null, at = 0): void {
    if (this.flushing) {
      // A listener made something happen (a send, a redrive): the outer flush delivers it next.
      this.later.push({ kind, id, attempt, value, unit, held, at });
      return;
    }
    if (this.n === CAPACITY) this.flush();
    this.put(kind, id, attempt, value, unit, held, at);
  }

  private put(kind: number, id: number, attempt: number, value: number, unit: number, held: HeldMessage | null, at: number): void {
    const i = this.n++;
    this.kind[i] = kind;
    this.id[i] = id;
    this.attempt[i] = attempt;
    this.value[i] = value;
    this.unit[i] = unit;
    this.held[i] = held;
    this.at[i] = at;
  }

  /** Hand the batch to every listener, then start a new one (with what they caused meanwhile, if anything). */
  flush(): void {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.n > 0) {
        for (const l of this.listeners) {
          try {
            l.outcomes(this);
          } catch (err) {
            this.onError(err);
          }
        }
        this.held.fill(null, 0, this.n);
        this.n = 0;
        const later = this.later;
        const k = Math.min(later.length, CAPACITY);
        for (let j = 0; j < k; j++) {
          const e = later[j]!;
          this.put(e.kind, e.id, e.attempt, e.value, e.unit, e.held, e.at);
        }
        later.splice(0, k);
      }
    } finally {
      this.flushing = false;
    }
  }

  letter(i: number): DeadLetterRecord | null {
    if (i < 0 || i >= this.n || this.kind[i] !== Outcome.DEAD_LETTERED) return null;
    const h = this.held[i];
    if (h === null || h === undefined) return null;
    return {
      id: h.id,
      key: h.key,
      payload: h.payload.slice(),
      ascii: h.ascii,
      sentAt: h.sentAt,
      dueAt: 0,
      attempt: h.attempt,
      kept: h.kept,
      reason: DEAD_LETTER_REASONS[this.value[i]!]!,
      deadAt: this.at[i]!,
      firstError: h.firstError,
      lastError: h.lastError,
      headers: h.headers,
    };
  }

  message(i: number): AcceptedMessage | null {
    if (i < 0 || i >= this.n || this.kind[i] !== Outcome.ACCEPTED) return null;
    const h = this.held[i];
    if (h !== null && h !== undefined) {
      return { id: h.id, key: h.key, payload: h.payload.slice(), ascii: h.ascii, sentAt: h.sentAt, dueAt: this.value[i]!, headers: h.headers };
    }
    const ring = this.ring;
    const at = this.unit[i]!;
    if (at < 0) return null;
    const start = ring.payloadStart(at);
    return {
      id: ring.id(at),
      key: ring.key(at) ?? null,
      payload: ring.u8.slice(start, start + ring.payloadBytes(at)),
      ascii: (ring.flags(at) & FLAG_ASCII) !== 0,
      sentAt: ring.sentAt(at),
      dueAt: 0,
      headers: (ring.flags(at) & FLAG_HEADERS) === 0 ? null : ring.u8.slice(start + ring.payloadBytes(at), start + ring.payloadBytes(at) + ring.headersBytes(at)),
    };
  }
}
