/**
 * Compaction's copy-forward (journal thread): the live messages of the
 * oldest segment, when it is mostly dead, are rewritten at the end of the
 * log, so the segment can be deleted and one old unacked message cannot pin
 * it. Their content (with their current attempt, due time, dead-letter
 * state) becomes one STATE record; a retry state whose content lives in
 * another segment moves as a RETRY entry. Synced in every fsync mode: the
 * old segment goes next. One pass over the segment, whatever it holds.
 */
import { ErrorCodes, RingpoolError } from '../../shared/errors.js';
import type { JournalFiles } from './files.js';
import { scanSegment } from './format.js';
import type { LiveIndex, LiveRef } from './live.js';
import { RB_ID, RETRY_BYTES, RT_OUTCOMES, RT_RING, RT_STATE, eachEntry, eachRingMessage, encodeStates, ringMessage, writeRetry, type JournaledMessage } from './records.js';
import type { SegmentLog } from './segment-log.js';

/** Rewrite the live messages whose records are in segment [first, end) (the file at `path`) at the end of the log. */
export function copyForward(log: SegmentLog, index: LiveIndex, files: JournalFiles, path: string, first: number, end: number, mailbox: string): void {
  // Which messages have their content here (by the record's sequence), and which only their last state.
  const wanted = new Map<number, LiveRef>();
  const restated: Array<[number, number, number]> = [];
  for (const [id, r] of index.refs) {
    if (r.c >= first && r.c < end) wanted.set(id, r);
    else if (r.s >= first && r.s < end) restated.push([id, r.attempt, r.dueAt]);
  }
  const states: JournaledMessage[] = [];
  const take = (m: JournaledMessage, seq: number): void => {
    const r = wanted.get(m.id);
    if (r === undefined || r.c !== seq) return;
    wanted.delete(m.id);
    m.attempt = r.attempt;
    m.dueAt = r.dueAt;
    if (!r.dead && m.reason >= 0) {
      // A dead letter redriven since: alive again, without the old errors.
      m.reason = -1;
      m.firstError = m.lastError = undefined;
    }
    states.push(m);
  };
  if (wanted.size > 0) {
    const scan = scanSegment(files.read(path));
    scan.records.forEach((rec, k) => {
      const seq = first + k;
      const data = rec.data;
      if (rec.type === RT_RING) {
        eachRingMessage(data, (at) => {
          if (wanted.get(data.readDoubleLE(at + RB_ID))?.c === seq) take(ringMessage(data, at), seq);
        });
      } else if (rec.type === RT_OUTCOMES || rec.type === RT_STATE) {
        eachEntry(rec.type, data, { plain: () => undefined, retry: () => undefined, state: (m) => take({ ...m, payload: m.payload.slice(), headers: m.headers === null ? null : m.headers.slice() }, seq) });
      }
    });
    if (wanted.size > 0) {
      const [id, r] = wanted.entries().next().value as [number, LiveRef];
      throw new RingpoolError(ErrorCodes.JOURNAL_CORRUPT, `mailbox '${mailbox}': message ${id} is not in journal record ${r.c} of ${path}`, { mailbox, file: path });
    }
  }
  const types: number[] = [];
  const datas: Uint8Array[] = [];
  if (states.length > 0) {
    types.push(RT_STATE);
    datas.push(encodeStates(states));
  }
  if (restated.length > 0) {
    // Their content is elsewhere: only the state moves, as a RETRY entry (attempt, due; not dead).
    const b = Buffer.allocUnsafe(4 + restated.length * RETRY_BYTES);
    b.writeUInt32LE(restated.length, 0);
    let p = 4;
    for (const [id, attempt, dueAt] of restated) p = writeRetry(b, p, id, attempt, dueAt);
    types.push(RT_OUTCOMES);
    datas.push(b);
  }
  if (datas.length === 0) return;
  const segs = log.segmentCount;
  // Synced in every mode: the old segment is deleted next.
  const at = log.appendRecords(types, datas, true);
  if (log.segmentCount !== segs) index.setSegments(log.firsts());
  for (let i = 0; i < datas.length; i++) index.record(at + i, types[i]!, datas[i] as Buffer);
}
