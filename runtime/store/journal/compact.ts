/**
 * Compaction's copy-forward (journal thread): the live messages of a mostly
 * dead segment are rewritten at the end of the log, so the segment can be
 * deleted and one old unacked message cannot pin it. Their content (and
 * their current attempt, due time, dead-letter state) becomes one STATE
 * record; a retry state whose content lives in another segment moves as a
 * RETRY entry. Synced in every fsync mode: the old segment goes next.
 */
import { Outcome } from '../../outcome.js';
import { ErrorCodes, RingpoolError } from '../../shared/errors.js';
import type { JournalFiles } from './files.js';
import { scanSegment } from './format.js';
import type { LiveIndex } from './live.js';
import { RT_OUTCOMES, RT_RING, RT_STATE, eachRingMessage, encodeStates, readState, ringMessage, type JournaledMessage } from './records.js';
import type { SegmentLog } from './segment-log.js';

/** Rewrite the live messages whose records are in segment [first, end) (the file at `path`) at the end of the log. */
export function copyForward(log: SegmentLog, index: LiveIndex, files: JournalFiles, path: string, first: number, end: number, mailbox: string): void {
  const scan = scanSegment(files.read(path));
  const bySeq = new Map<number, { type: number; data: Buffer }>();
  scan.records.forEach((r, k) => bySeq.set(first + k, r));
  const states: JournaledMessage[] = [];
  const restated: Array<[number, number, number]> = [];
  for (const [id, r] of index.refs) {
    const inC = r.c >= first && r.c < end;
    if (inC) {
      const m = findMessage(bySeq.get(r.c), id);
      if (m === null) throw new RingpoolError(ErrorCodes.JOURNAL_CORRUPT, `mailbox '${mailbox}': message ${id} is not in journal record ${r.c} of ${path}`, { mailbox, file: path });
      m.attempt = r.attempt;
      m.dueAt = r.dueAt;
      if (!r.dead) m.reason = -1;
      states.push(m);
    } else if (r.s >= first && r.s < end) restated.push([id, r.attempt, r.dueAt]);
  }
  const types: number[] = [];
  const datas: Uint8Array[] = [];
  if (states.length > 0) {
    types.push(RT_STATE);
    datas.push(encodeStates(states));
  }
  if (restated.length > 0) {
    // Their content is elsewhere: only the state moves, as a RETRY entry (attempt, due; not dead).
    const b = Buffer.allocUnsafe(4 + restated.length * 21);
    b.writeUInt32LE(restated.length, 0);
    let p = 4;
    for (const [id, attempt, dueAt] of restated) {
      b[p] = Outcome.RETRY;
      b.writeDoubleLE(id, p + 1);
      b.writeInt32LE(attempt, p + 9);
      b.writeDoubleLE(dueAt, p + 13);
      p += 21;
    }
    types.push(RT_OUTCOMES);
    datas.push(b);
  }
  const segs = log.segmentCount;
  // Synced in every mode: the old segment is deleted next.
  const at = log.appendRecords(types, datas, true);
  if (log.segmentCount !== segs) index.setSegments(log.firsts());
  for (let i = 0; i < datas.length; i++) index.record(at + i, types[i]!, datas[i] as Buffer);
}

/** Message `id`'s content in a journal record (a copy). */
function findMessage(rec: { type: number; data: Buffer } | undefined, id: number): JournaledMessage | null {
  if (rec === undefined) return null;
  const { type, data } = rec;
  let found: JournaledMessage | null = null;
  if (type === RT_RING) {
    eachRingMessage(data, (at) => {
      if (found === null && data.readDoubleLE(at + 16) === id) found = ringMessage(data, at);
    });
    return found;
  }
  const n = data.readUInt32LE(0);
  let p = 4;
  for (let i = 0; i < n; i++) {
    if (type === RT_OUTCOMES) {
      const kind = data[p]!;
      p += 9;
      if (kind === Outcome.RETRY) {
        p += 12;
        continue;
      }
      if (kind !== Outcome.ACCEPTED && kind !== Outcome.DEAD_LETTERED) continue; // ACKED, REDRIVEN, PURGED: nothing more
    }
    const r = readState(data, p);
    p = r.end;
    if (r.m.id === id) return { ...r.m, payload: r.m.payload.slice() };
  }
  return null;
}
