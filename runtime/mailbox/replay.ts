/**
 * What a store gave back at start() (main thread): messages an earlier run
 * left unfinished, accepted anew, and the dead letters it kept.
 */
import { headerBytesProblem } from '../shared/headers.js';
import type { DeadLetterRecord } from '../outcome.js';
import { HeldMessage } from '../held.js';
import { ID_BLOCK, ID_BLOCK_SIZE, KEY_WORDS, K_SENT, keySlotOf } from '../shared/layout.js';
import type { StoredMessage } from '../store/store.js';
import type { DeadLetterSink } from '../dead-letters.js';
import type { Ring } from '../shared/ring.js';
import type { Backlog } from './backlog.js';

/** What a replay writes to: the ring's id and enqueued words, the key table, the backlog. */
export interface ReplayDeps {
  ring: Ring;
  keys: Int32Array;
  backlog: Pick<Backlog, 'schedule' | 'pend' | 'flush'>;
  /** ms since the epoch (clock.ts's now(), or a test's): a due time past it runs at once. */
  clock: () => number;
}

/** Accepted anew (counted, keyed ones at the end of their key's order, in the order given), ids kept. */
export function replay(m: ReplayDeps, stored: readonly StoredMessage[]): void {
  if (stored.length === 0) return;
  let maxId = -1;
  const held: HeldMessage[] = [];
  const t = m.clock();
  for (const s of stored) {
    const h = new HeldMessage(s.id, s.attempt, s.sentAt, s.key, s.payload, s.ascii, s.firstError);
    h.kept = s.kept ?? 0;
    h.headers = storedHeaders(s.headers);
    if (s.key !== null) {
      h.keySlot = keySlotOf(s.key);
      h.keySeq = Atomics.add(m.keys, h.keySlot * KEY_WORDS + K_SENT, 1);
    }
    // A delayed send or a retry's backoff not yet over: it waits for its time again.
    h.dueAt = s.dueAt > t ? s.dueAt : 0;
    held.push(h);
    if (s.id > maxId) maxId = s.id;
  }
  // New ids start past the replayed ones.
  const block = Math.floor(maxId / ID_BLOCK_SIZE) + 1;
  if ((Atomics.load(m.ring.i32, ID_BLOCK) >>> 0) < block) Atomics.store(m.ring.i32, ID_BLOCK, block);
  // A send before start() took a block already: drop it, so the next id comes from past the replayed ones.
  m.ring.dropIdBlock();
  m.ring.countEnqueued(held.length);
  for (const h of held) {
    if (h.dueAt > 0) m.backlog.schedule(h);
    else m.backlog.pend(h);
  }
  m.backlog.flush();
}

/** The dead letters a store kept, back in the dead-letter store. */
export function restoreDead(sink: DeadLetterSink, letters: readonly DeadLetterRecord[]): void {
  for (const d of letters) {
    const h = new HeldMessage(d.id, d.attempt, d.sentAt, d.key, d.payload, d.ascii, d.firstError);
    h.lastError = d.lastError;
    h.kept = d.kept;
    h.headers = storedHeaders(d.headers);
    sink.add(h, d.reason, d.deadAt);
  }
}

/** A store's headers as a record can carry them: bytes of headers (shared/headers.ts), else none (what a store of its own gave is not trusted blindly). */
function storedHeaders(h: unknown): Uint8Array | null {
  return h instanceof Uint8Array && h.byteLength > 0 && headerBytesProblem(h) === null ? h : null;
}
