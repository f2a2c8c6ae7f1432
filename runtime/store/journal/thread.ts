/**
 * The journal thread of one durable mailbox: a plain worker thread (not a
 * Piscina handler thread) that opens the journal, hands what it recovered to
 * the main thread, then runs the journaller (writer.ts) until told to close.
 *
 * Its loop is synchronous: outcome posts are taken with
 * receiveMessageOnPort, and it parks on JOURNAL_WAKE with Atomics.wait, so
 * nothing here waits for an event-loop turn. Producers (publish) and the main
 * thread (after a post) wake it when it is parked.
 */
import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { RingpoolError } from '../../shared/errors.js';
import { JOURNAL_IDLE, JOURNAL_WAKE } from '../../shared/layout.js';
import { StructureTable } from '../../shared/structures.js';
import { nodeFiles } from './files.js';
import type { RecoveredParts } from './recovery.js';
import { JournalWriter, type WriterOptions } from './writer.js';

export interface JournalThreadData extends WriterOptions {
  sab: SharedArrayBuffer;
  /** The mailbox's msgpack structure table (null for other codecs). */
  structures: SharedArrayBuffer | null;
  /** Bytes of the `structures` file the main thread loaded into it. */
  structuresOnDisk: number;
  stats: SharedArrayBuffer;
  port: MessagePort;
  /** The shared pool's board when a pool serves the mailbox: the journal's publishes wake its threads. */
  board: SharedArrayBuffer | null;
}

/** Main thread -> journal thread. */
export type ToJournal = { t: 'outcomes'; buf: Uint8Array } | { t: 'close' };
/** Journal thread -> main thread. */
export type FromJournal =
  | ({ t: 'opened'; tornBytes: number } & RecoveredParts)
  | { t: 'error'; fatal: boolean; code: string; message: string; details: Record<string, unknown> }
  | { t: 'closed' };

/** Park at most this long: stats and compaction run at least this often. */
const PARK_MS = 100;
/**
 * Poll this long before parking: under a stream of sends the next record is
 * microseconds away, and a parked journal costs every producer a futex wake
 * (it was 7 % of the main thread's time on W1 without it).
 */
const SPIN_MS = 0.05;
const COMPACT_EVERY_MS = 1000;

function errorOf(err: unknown, fatal: boolean): FromJournal {
  if (err instanceof RingpoolError) return { t: 'error', fatal, code: err.code, message: err.message, details: { ...err.details } };
  const e = err as Error;
  return { t: 'error', fatal, code: 'RINGPOOL_JOURNAL_IO', message: String(e?.message ?? err), details: {} };
}

function run(d: JournalThreadData): void {
  const port = d.port;
  const writer = new JournalWriter(nodeFiles, d.sab, d, new Float64Array(d.stats), d.structures === null ? null : new StructureTable(d.structures), d.structuresOnDisk);
  if (d.board !== null) writer.ring.attachBoard(d.board);
  try {
    const { chunks, index, states, tornBytes } = writer.open();
    const msg: FromJournal = { t: 'opened', chunks, index, states, tornBytes };
    port.postMessage(msg, [...chunks.map((c) => c.buffer as ArrayBuffer), index.buffer as ArrayBuffer, states.buffer as ArrayBuffer]);
  } catch (err) {
    port.postMessage(errorOf(err, true));
    port.close();
    return;
  }
  const i32 = writer.ring.i32;
  const posts: Uint8Array[] = [];
  let closing = false;
  let broken = false;
  let lastCompact = performance.now();
  const drain = (): void => {
    for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
      const msg = m.message as ToJournal;
      // A Buffer arrives as a plain Uint8Array: give it Buffer's readers again (no copy).
      if (msg.t === 'outcomes') posts.push(Buffer.from(msg.buf.buffer, msg.buf.byteOffset, msg.buf.byteLength));
      else closing = true;
    }
  };
  for (;;) {
    drain();
    let wrote = false;
    if (!broken) {
      try {
        wrote = writer.pass(posts);
        posts.length = 0;
        const t = performance.now();
        writer.syncIfDue(t);
        if (t - lastCompact > COMPACT_EVERY_MS) {
          lastCompact = t;
          writer.compact();
        }
      } catch (err) {
        // Nothing more is written: JOURNAL_FAILED refuses sends; what was not on disk is never called durable.
        broken = true;
        posts.length = 0;
        port.postMessage(errorOf(err, false));
      }
    } else posts.length = 0;
    if (wrote) continue;
    if (closing) break;
    if (!broken) {
      const spinUntil = performance.now() + SPIN_MS;
      let k = 0;
      while (!writer.hasWork() && ((++k & 63) !== 0 || performance.now() < spinUntil));
      if (writer.hasWork()) continue;
    }
    // Park: IDLE first, then the last look (seq-cst with the producers' publish-then-load).
    const seq = Atomics.load(i32, JOURNAL_WAKE);
    Atomics.store(i32, JOURNAL_IDLE, 1);
    drain();
    if (posts.length > 0 || closing || (!broken && writer.hasWork())) {
      Atomics.store(i32, JOURNAL_IDLE, 0);
      continue;
    }
    const due = broken ? Infinity : writer.syncWait(performance.now());
    Atomics.wait(i32, JOURNAL_WAKE, seq, Math.min(PARK_MS, Math.max(0, due)));
    Atomics.store(i32, JOURNAL_IDLE, 0);
  }
  try {
    writer.close();
  } catch (err) {
    port.postMessage(errorOf(err, false));
  }
  port.postMessage({ t: 'closed' } satisfies FromJournal);
  port.close();
}

run(workerData as JournalThreadData);
