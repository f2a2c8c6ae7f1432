/**
 * What recovery keeps of the records it reads (journal thread), and how the
 * main thread reads it back (thread-neutral).
 *
 * A segment is read whole, and most messages in it were acked within it: so
 * a message's bytes are only noted (where they lie) while its segment is
 * read, and copied out, into one buffer per segment ("chunk", sized to
 * what is live) of ring records, only if the message is still live when its
 * segment is done. Nothing is allocated per message but Map entries; the
 * main thread gets the chunks, an index in journal order and the few whole
 * states (delayed sends, dead letters, copied-forward messages), all
 * transferred, not copied.
 *
 * ```
 *  index  per live message, 4 f64: kind (0: ring record in a chunk, 1: a state),
 *         chunk * 2^32 + offset, or the state's number; attempt; due time
 * ```
 */
import { ErrorCodes, RingpoolError } from '../../shared/errors.js';
import { UNIT_SHIFT } from '../../shared/layout.js';
import type { Collector, LiveRef } from './live.js';
import { decodeStates, encodeStates, ringMessage, RB_UNITS, type JournaledMessage } from './records.js';

export interface RecoveredParts {
  chunks: Uint8Array[];
  index: Float64Array;
  states: Uint8Array;
}

const CHUNK = 2 ** 32;

export class Recovery implements Collector {
  /** id -> its content: >= 0 chunk * 2^32 + offset, or <= -2 a state (-2 - its number); ring messages join when their segment is done. */
  private readonly loc = new Map<number, number>();
  private readonly others: JournaledMessage[] = [];
  private readonly chunks: Buffer[] = [];
  /** The segment being read, in journal order: ring records (where they lie) and whole states. */
  private readonly pIds: number[] = [];
  private readonly pSeq: number[] = [];
  /** A ring record's offset in pData[k], or -1 - its state's index in pStates. */
  private readonly pAt: number[] = [];
  private readonly pData: Array<Buffer | null> = [];
  private readonly pStates: JournaledMessage[] = [];

  constructor(private readonly refs: ReadonlyMap<number, LiveRef>) {}

  ring(id: number, seq: number, data: Buffer, at: number): void {
    // Only noted: most are acked before their segment is done (then refs has no entry, or a newer content).
    this.pIds.push(id);
    this.pSeq.push(seq);
    this.pAt.push(at);
    this.pData.push(data);
  }

  state(m: JournaledMessage, seq: number): void {
    m.payload = m.payload.slice(); // out of the segment's buffer
    if (m.headers !== null) m.headers = m.headers.slice();
    this.pIds.push(m.id);
    this.pSeq.push(seq);
    this.pAt.push(-1 - this.pStates.length);
    this.pData.push(null);
    this.pStates.push(m);
  }

  drop(id: number): void {
    this.loc.delete(id);
  }

  redriven(id: number): void {
    // The newest copy of its letter: one in this segment (not yet settled), else the settled one.
    let m: JournaledMessage | undefined;
    for (let i = this.pStates.length - 1; m === undefined && i >= 0; i--) if (this.pStates[i]!.id === id) m = this.pStates[i];
    const v = this.loc.get(id);
    if (m === undefined && v !== undefined && v <= -2) m = this.others[-2 - v];
    if (m !== undefined) m.firstError = m.lastError = undefined;
  }

  /**
   * The segment is done: copy out the messages of it still live, so its
   * buffer can go (neighbours in one RING record as one run), in journal order.
   */
  segmentDone(): void {
    const { pIds, pSeq, pAt, pData, pStates, loc, refs, others } = this;
    let bytes = 0;
    for (let k = 0; k < pIds.length; k++) {
      const d = pData[k];
      if (d !== null && refs.get(pIds[k]!)?.c === pSeq[k]) bytes += d!.readInt32LE(pAt[k]! + RB_UNITS) << UNIT_SHIFT;
    }
    const chunk = bytes > 0 ? Buffer.allocUnsafeSlow(bytes) : null;
    const base = this.chunks.length * CHUNK;
    if (chunk !== null) this.chunks.push(chunk);
    let used = 0;
    let runData: Buffer | null = null;
    let runFrom = 0;
    let runTo = 0;
    for (let k = 0; k < pIds.length; k++) {
      const id = pIds[k]!;
      if (refs.get(id)?.c !== pSeq[k]) continue; // finished, or its content is a later record
      const data = pData[k]!;
      const at = pAt[k]!;
      if (data === null) {
        const m = pStates[-1 - at]!;
        const v = loc.get(id);
        if (v !== undefined && v <= -2) others[-2 - v] = m;
        else {
          loc.set(id, -2 - others.length);
          others.push(m);
        }
        continue;
      }
      if (runData !== data || runTo !== at) {
        if (runData !== null) used += runData.copy(chunk!, used, runFrom, runTo);
        runData = data;
        runFrom = at;
      }
      loc.set(id, base + used + (at - runFrom));
      runTo = at + (data.readInt32LE(at + RB_UNITS) << UNIT_SHIFT);
    }
    if (runData !== null) runData.copy(chunk!, used, runFrom, runTo);
    pIds.length = pSeq.length = pAt.length = pData.length = pStates.length = 0;
  }

  /** Every live message, in journal order, with its attempt and due time as the journal last said. */
  finish(): RecoveredParts {
    this.segmentDone();
    const index = new Float64Array(this.loc.size * 4);
    const states: JournaledMessage[] = [];
    let k = 0;
    for (const [id, v] of this.loc) {
      const r = this.refs.get(id)!;
      if (v >= 0) {
        index[k] = 0;
        index[k + 1] = v;
      } else {
        const m = this.others[-2 - v]!;
        if (!r.dead) m.reason = -1;
        index[k] = 1;
        index[k + 1] = states.length;
        states.push(m);
      }
      index[k + 2] = r.attempt;
      index[k + 3] = r.dueAt;
      k += 4;
    }
    return { chunks: this.chunks, index, states: encodeStates(states) };
  }

  /** How many messages recovery found live (after finish()). */
  get size(): number {
    return this.loc.size;
  }
}

/** The main thread's side: the recovered messages (payloads are views into the arena). */
export function recoveredMessages(parts: RecoveredParts): JournaledMessage[] {
  const chunks = parts.chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength));
  const states = decodeStates(Buffer.from(parts.states.buffer, parts.states.byteOffset, parts.states.byteLength));
  const ix = parts.index;
  const out: JournaledMessage[] = new Array(ix.length / 4);
  for (let k = 0, i = 0; k < ix.length; k += 4, i++) {
    const attempt = ix[k + 2]!;
    const dueAt = ix[k + 3]!;
    if (ix[k] === 1) {
      const m = states[ix[k + 1]!];
      if (m === undefined) throw new RingpoolError(ErrorCodes.JOURNAL_CORRUPT, 'journal recovery: a state is missing from the hand-over', {});
      m.attempt = attempt;
      m.dueAt = dueAt;
      out[i] = m;
      continue;
    }
    const where = ix[k + 1]!;
    const m = ringMessage(chunks[Math.floor(where / CHUNK)]!, where % CHUNK, false);
    m.attempt = attempt;
    m.dueAt = dueAt;
    out[i] = m;
  }
  // Journal order is send order, except for messages compaction copied forward: keys take their order from
  // the replay, so put them back in first-send order (a stable sort; a key's sends from one thread are in it).
  if (out.some((m) => m.key !== null)) out.sort((a, b) => a.sentAt - b.sentAt);
  return out;
}
