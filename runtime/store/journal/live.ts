/**
 * Which messages the journal still holds, and in which records (journal
 * thread). Recovery feeds it every record in order (and a Collector,
 * recovery.ts, keeps each unfinished message's bytes); afterwards the journal thread feeds it what it
 * writes, so it knows per segment how many references are live: a segment
 * with none is deleted, a mostly-dead one is copied forward (compaction).
 *
 * A live message has a content reference (the record holding its payload:
 * RING, a delayed ACCEPTED, a DEAD_LETTERED letter, a STATE) and maybe a
 * state reference (the last RETRY or REDRIVEN that changed it).
 */
import { Outcome } from '../../outcome.js';
import { RB_ATTEMPT, RB_ID, RT_OUTCOMES, RT_RING, RT_STATE, eachEntry, eachRingMessage, type JournaledMessage } from './records.js';

export interface LiveRef {
  /** Sequence of the record with its content. */
  c: number;
  /** Sequence of the record with its last change of state, or -1. */
  s: number;
  attempt: number;
  dueAt: number;
  dead: boolean;
}

/** What recovery collects as the records go by (recovery.ts); the live index calls it only while recovering. */
export interface Collector {
  /** Message `id`'s content is the ring record at `at` of `data` (a RING record of sequence `seq`). */
  ring(id: number, seq: number, data: Buffer, at: number): void;
  /** Its content is this whole state (a delayed send, a dead letter, a STATE record) in record `seq`; payload a view into the record. */
  state(m: JournaledMessage, seq: number): void;
  /** Finished (acked, purged). */
  drop(id: number): void;
  /** Redriven: its errors go. */
  redriven(id: number): void;
}

export class LiveIndex {
  readonly refs = new Map<number, LiveRef>();
  /** Set while recovering: told every message's content and fate. */
  collector: Collector | null = null;
  /** Live references per segment (by its first sequence), and references ever made there. */
  private readonly live = new Map<number, number>();
  private readonly made = new Map<number, number>();
  /** Segment first sequences, oldest first. */
  private firsts: number[] = [];
  /** Messages whose content was read at recovery (the `recovered` figure counts what was left of them). */
  highestId = -1;

  setSegments(firsts: readonly number[]): void {
    this.firsts = firsts.slice();
  }

  /** The first sequence of the segment holding `seq`. */
  segmentOf(seq: number): number {
    const f = this.firsts;
    // Most sequences are in the newest segment.
    if (f.length > 0 && seq >= f[f.length - 1]!) return f[f.length - 1]!;
    let lo = 0;
    let hi = f.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (f[mid]! <= seq) lo = mid;
      else hi = mid - 1;
    }
    return f[lo] ?? 0;
  }

  liveIn(first: number): number {
    return this.live.get(first) ?? 0;
  }
  madeIn(first: number): number {
    return this.made.get(first) ?? 0;
  }

  private inc(seq: number): void {
    const s = this.segmentOf(seq);
    this.live.set(s, (this.live.get(s) ?? 0) + 1);
    this.made.set(s, (this.made.get(s) ?? 0) + 1);
  }
  private dec(seq: number): void {
    if (seq < 0) return;
    const s = this.segmentOf(seq);
    this.live.set(s, (this.live.get(s) ?? 1) - 1);
  }
  /** A dropped segment's counts go with it. */
  forget(first: number): void {
    this.live.delete(first);
    this.made.delete(first);
  }

  /** One record, in journal order. */
  record(seq: number, type: number, data: Buffer): void {
    if (type === RT_RING) this.ring(seq, data);
    else if (type === RT_OUTCOMES || type === RT_STATE) this.entries(seq, type, data);
  }

  private content(seq: number, m: JournaledMessage): void {
    const old = this.refs.get(m.id);
    if (old !== undefined) {
      this.dec(old.c);
      this.dec(old.s);
    }
    this.refs.set(m.id, { c: seq, s: -1, attempt: m.attempt, dueAt: m.dueAt, dead: m.reason >= 0 });
    this.inc(seq);
    this.collector?.state(m, seq);
    if (m.id > this.highestId) this.highestId = m.id;
  }

  private drop(id: number): void {
    const r = this.refs.get(id);
    if (r === undefined) return;
    this.dec(r.c);
    this.dec(r.s);
    this.refs.delete(id);
    this.collector?.drop(id);
  }

  private restate(seq: number, id: number, attempt: number, dueAt: number): void {
    const r = this.refs.get(id);
    if (r === undefined) return;
    this.dec(r.s);
    r.s = seq;
    this.inc(seq);
    r.attempt = attempt;
    r.dueAt = dueAt;
    r.dead = false;
  }

  private ring(seq: number, data: Buffer): void {
    const collector = this.collector;
    eachRingMessage(data, (at) => {
      // No copy of the payload here: only the reference (recovery copies what is still live later).
      const id = data.readDoubleLE(at + RB_ID);
      collector?.ring(id, seq, data, at);
      const old = this.refs.get(id);
      if (old !== undefined) {
        this.dec(old.c);
        this.dec(old.s);
      }
      this.refs.set(id, { c: seq, s: -1, attempt: data.readInt32LE(at + RB_ATTEMPT), dueAt: 0, dead: false });
      this.inc(seq);
      if (id > this.highestId) this.highestId = id;
    });
  }

  /** An OUTCOMES or STATE record's entries. */
  private entries(seq: number, type: number, data: Buffer): void {
    eachEntry(type, data, {
      plain: (kind, id) => {
        if (kind === Outcome.REDRIVEN) {
          this.restate(seq, id, 1, 0);
          this.collector?.redriven(id);
        } else this.drop(id); // ACKED, PURGED
      },
      retry: (id, attempt, dueAt) => this.restate(seq, id, attempt, dueAt),
      state: (m) => this.content(seq, m),
    });
  }
}
