/**
 * Looking into a mailbox without taking anything (main thread, for the
 * console and `rt.inspect()`): the records in the ring, ready or claimed by
 * a loop, walked from TAIL to HEAD, and the messages held outside it
 * (waiting for room or a key's turn, delayed or retrying). A snapshot of a
 * moving queue: best effort, bounded by the ring's size, never a lock.
 * Records cannot be reclaimed while the walk runs (only this thread reclaims).
 */
import { FLAG_ASCII, HEAD, ST_CLAIMED, ST_FREE, ST_HELD, ST_READY, ST_RECLAIMING, ST_SKIP, TAIL } from '../shared/layout.js';
import type { Ring } from '../shared/ring.js';
import type { PayloadCodec } from '../shared/codec.js';
import type { HeldMessage } from '../held.js';

/** Where a message is: in the ring to claim, running on a thread, or held until due. */
export type MessageState = 'ready' | 'in-flight' | 'delayed';

/** One message as `rt.inspect()` shows it. */
export interface InspectedMessage {
  id: number;
  state: MessageState;
  attempt: number;
  key: string | null;
  /** When it was sent (ms since the epoch), or null when not known. */
  sentAt: number | null;
  /** A delayed or retrying message: when it is due (ms since the epoch). */
  dueAt: number | null;
  /** In flight: the thread running it (its threadId). */
  thread: number | null;
  /** In flight: when its loop's oldest running handler started (ms since the epoch); null for the others of a batch. */
  runningSince: number | null;
  /** Payload bytes. */
  bytes: number;
}

/** `rt.inspect(mailbox, { state, limit })`: the first `limit` messages in that state, and how many there are. */
export interface InspectPage {
  mailbox: string;
  state: MessageState;
  total: number;
  messages: InspectedMessage[];
}

export interface InspectDeps {
  ring: Ring;
  codec: PayloadCodec;
  /** Loops by slot: their thread. */
  threadOf: (slot: number) => number | null;
  /** Held outside the ring: waiting for room or a key's turn (ready), and due later (delayed). */
  waiting: () => Iterable<HeldMessage>;
  delayed: () => Iterable<HeldMessage>;
  /** Make a delayed or retrying message due now (backlog.ts); false when none has that id. */
  promote: (id: number) => boolean;
}

/** A ring record: where it lies, for the payload. */
interface Found {
  message: InspectedMessage;
  unit: number;
  held: HeldMessage | null;
}

export class Inspector {
  constructor(private readonly d: InspectDeps) {}

  /** Messages in `state`, oldest first, at most `limit` of them, and the total. */
  page(mailbox: string, state: MessageState, limit: number): InspectPage {
    const messages: InspectedMessage[] = [];
    let total = 0;
    this.each(state, (f) => {
      total++;
      if (messages.length < limit) messages.push(f.message);
      return false;
    });
    return { mailbox, state, total, messages };
  }

  /** A delayed or retrying message held here runs now (its attempt and its place in its key's order unchanged). */
  promote(id: number): boolean {
    return this.d.promote(id);
  }

  /** One message by id, with its payload decoded (undefined when it cannot be), or null when the mailbox does not hold it. */
  find(id: number): (InspectedMessage & { payload?: unknown }) | null {
    let hit: Found | null = null;
    for (const state of ['in-flight', 'ready', 'delayed'] as const) {
      this.each(state, (f) => {
        if (f.message.id !== id) return false;
        hit = f;
        return true;
      });
      if (hit !== null) break;
    }
    if (hit === null) return null;
    const f: Found = hit;
    try {
      return { ...f.message, payload: this.decode(f) };
    } catch {
      return { ...f.message };
    }
  }

  private decode(f: Found): unknown {
    const codec = this.d.codec;
    if (f.held !== null) {
      const p = f.held.payload;
      return codec.decode(Buffer.from(p.buffer, p.byteOffset, p.byteLength), p, 0, p.byteLength, f.held.ascii);
    }
    const ring = this.d.ring;
    const start = ring.payloadStart(f.unit);
    return codec.decode(ring.buf, ring.u8, start, start + ring.payloadBytes(f.unit), (ring.flags(f.unit) & FLAG_ASCII) !== 0);
  }

  /** Call `visit` for each message in `state` until it returns true. */
  private each(state: MessageState, visit: (f: Found) => boolean): void {
    if (state === 'delayed') {
      for (const h of this.d.delayed()) if (visit(heldFound(h, 'delayed'))) return;
      return;
    }
    if (this.walkRing(state, visit)) return;
    if (state === 'ready') for (const h of this.d.waiting()) if (visit(heldFound(h, 'ready'))) return;
  }

  /** The ring's records from TAIL to HEAD in `state`; true when `visit` stopped the walk. */
  private walkRing(state: 'ready' | 'in-flight', visit: (f: Found) => boolean): boolean {
    const ring = this.d.ring;
    const cap = ring.capacityUnits;
    const mask = ring.indexMask;
    const head = Atomics.load(ring.i32, HEAD);
    let p = Atomics.load(ring.i32, TAIL);
    // At most the ring's units: a record read while a producer writes it cannot send the walk round forever.
    for (let steps = 0; p !== head && steps < cap; steps++) {
      const at = p & mask;
      const s = Atomics.load(ring.state, at);
      if (s === ST_SKIP) {
        p = (p + (cap - at)) | 0;
        continue;
      }
      // Reserved and not yet published: its header may not be written; what lies beyond is not walked.
      if (s === ST_FREE || s === ST_RECLAIMING) return false;
      const units = ring.units(at);
      if (!(units >= 1 && units <= cap)) return false; // reserved and not yet written: nothing further is readable
      const inFlight = s >= ST_CLAIMED;
      if ((state === 'ready' && (s === ST_READY || s === ST_HELD)) || (state === 'in-flight' && inFlight)) {
        const slot = inFlight ? s - ST_CLAIMED : -1;
        const sv = inFlight ? ring.slot(slot) : null;
        const key = ring.key(at);
        const message: InspectedMessage = {
          id: ring.id(at),
          state,
          attempt: ring.attempt(at),
          key: key ?? null,
          sentAt: ring.sentAt(at) || null,
          dueAt: null,
          thread: inFlight ? this.d.threadOf(slot) : null,
          runningSince: sv !== null && sv.currentUnit() === at ? sv.currentStart() : null,
          bytes: ring.payloadBytes(at),
        };
        if (visit({ message, unit: at, held: null })) return true;
      }
      p = (p + units) | 0;
    }
    return false;
  }
}

function heldFound(h: HeldMessage, state: MessageState): Found {
  return {
    message: { id: h.id, state, attempt: h.attempt, key: h.key, sentAt: h.sentAt || null, dueAt: state === 'delayed' ? h.dueAt : null, thread: null, runningSince: null, bytes: h.payload.byteLength },
    unit: -1,
    held: h,
  };
}
