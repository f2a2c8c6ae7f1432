/**
 * Every layout of shared memory: one mailbox ring (below), its key table,
 * the metrics buffer and the journal's stats words (at the end).
 * Thread-neutral: imported by the dispatcher (main thread), the consumer
 * loops and the journal thread. A consumer slot's words are read and written
 * through SlotView (slot.ts), which says who writes each and in what order.
 *
 * One SharedArrayBuffer holds four regions:
 *
 * ```
 *  byte 0                HEADER_BYTES          SLOTS_END          STATE_END (=DATA_OFF)        end
 *  ├─ control header ────┼─ consumer slots ────┼─ state bytes ─────┼─ data: C bytes, records ───┤
 *  │ cursors, counters,  │ MAX_CONSUMERS x     │ 1 byte per 16-byte│ variable-length records,   │
 *  │ wake words, config  │ SLOT_BYTES          │ unit of data      │ 16-byte aligned            │
 * ```
 *
 * Cursors (HEAD, READ, TAIL) count 16-byte *units* as uint32 that wrap at
 * 2^32; the data region holds C_units = 2^k units, so `cursor & indexMask` is
 * the unit index and `(a - b) >>> 0` is a distance that stays right across
 * the wrap. Counting units, not bytes, makes an ABA on a cursor need 64 GiB of
 * traffic while one CAS is pending.
 *
 * Control header (Int32 words; each group on its own 64-byte line so that
 * producers, consumers and reclaimers do not share a cache line):
 *
 * ```
 *  word  0 HEAD          reserve cursor (producers CAS it)
 *  word  1 PUBLISHED     records made READY (sends + re-enqueues), += 1 before the publish store
 *  word  2 ENQUEUED      accepted first sends from any thread (Atomics.add)
 *  word  3 ID_BLOCK      next block of message ids (a producer takes 2^16 ids at a time)
 *  word  4-7 REJECTED_*  refused sends by reason: queue_full, too_large, unserializable, closed
 *  word 16 READ          claim cursor (consumers CAS it, one CAS per batch)
 *  word 17 CLAIMED       records claimed (+= batch size)
 *  word 32 TAIL          reclaim cursor (one reclaimer at a time per record, see ring.ts)
 *  word 33 SPACE_SEQ     bumped when TAIL moves while SPACE_WAITERS > 0
 *  word 34 SPACE_WAITERS producers parked on SPACE_SEQ (main thread, Atomics.waitAsync)
 *  word 35 FOLLOWED      the outcome feed's cursor (TAIL <= FOLLOWED <= READ): with FOLLOW_WORD set,
 *                        reclaim stops here, so a finished record is freed only once the feed has seen it
 *  word 48 WAKE          bumped + notified by producers when SLEEPERS > 0
 *  word 49 SLEEPERS      consumers parked on WAKE
 *  word 50 WAKE_PENDING  1 while a notify is on its way: producers do not notify again
 *                        (one futex wake per wake-up, not one per message sent meanwhile)
 *  word 51 POOL_HOSTS, 52 POOL_LANE  served by a shared pool: its threads hosting a loop of this ring (a bit
 *                        each), and the ring's lane on the pool's board (pool-board.ts, which has that layout)
 *  word 64 MAGIC, 65 VERSION, 66 CAPACITY_UNITS, 67 MAX_PAYLOAD_BYTES
 *  word 68 CONCURRENCY   messages in flight per consumer loop (set by the dispatcher/autoscaler, read each batch)
 *  word 69 ACTOR, 70 HELD_UNITS (below)
 *  word 71 FOLLOW        1: an outcome feed follows this ring (set at allocation, read once by each Ring)
 *  word 72 JOURNAL       1: a journal thread follows this ring and consumers claim only below JOURNALED
 *                        (set at allocation, read once by each Ring; runtime/store/journal/)
 *  word 73 JOURNAL_FAILED 1 once a journal write or fdatasync failed: sends are refused (RINGPOOL_JOURNAL_IO);
 *                        2 once the journal closed (RINGPOOL_CLOSED)
 *  word 80 JOURNALED     the journal's cursor (READ <= JOURNALED <= HEAD): records below it are on disk
 *                        ('always': fdatasynced; 'interval', 'never': written)
 *  word 81 JOURNAL_SEQ   bumped (and notified while JOURNAL_WATCHERS > 0) after each journal batch
 *  word 82 JOURNAL_WATCHERS  threads waiting on JOURNAL_SEQ (sendAsync on the main thread; a handler's chained ctx.send)
 *  word 83 OUTCOMES_DONE  outcome batches (posts from the main thread) the journal has written
 *  word 96 JOURNAL_WAKE  bumped + notified by producers when JOURNAL_IDLE is 1
 *  word 97 JOURNAL_IDLE  1 while the journal thread is parked (the producer that clears it notifies)
 * ```
 *
 * Consumer slot (SLOT_WORDS Int32 words, 128 bytes; slot c belongs to the
 * consumer loop with id c; only that loop writes the counters in it):
 *
 * ```
 *  word 0 STATUS       IDLE / RUNNING / STOP (finish the batch, return) / REVOKED (return now)
 *  word 1 INCARNATION  bumped by the dispatcher each time a loop is started in the slot
 *  word 2 CUR_UNIT     data unit of the record whose handler runs now, or -1
 *  word 3 ACKED        records this slot acked (monotonic, wraps)
 *  word 4 GUARD        0 free, 1 inside a guarded write (ctx.send, hand-off push, reply), 2 revoked (transient),
 *                      3 killed (the thread is being terminated)
 *  word 5 THREAD_ID    worker threadId of the loop
 *  word 6 INFLIGHT     handlers running now (concurrent mode); tells the dispatcher whom a crash can be blamed on
 *  word 7 KEY_ACK      a keyed ack in progress (key slot + 1; seq in word 14, unit in word 15): if the
 *                      thread dies between its ack and advancing the key's turn, the dispatcher finishes it
 *  word 8-9  f64 CUR_START  when the current (oldest running) handler started (clock.now() ms)
 *  word 10-11 f64 HANDLER_MS EWMA of handler time per message, written by the loop
 *  word 12-13 f64 ELU        the loop's event-loop utilisation over its last ~100 ms
 *  word 16-20 RESV_*    the thread's last reservation in a ring (written before its CAS; see holes.ts):
 *                       16 TAG (which ring: 1 + 2 * mailbox index + 1 for its reply ring; DELAYED_TAG
 *                       for a delayed send handed to the dispatcher), 17 HEAD, 18 NEED (units),
 *                       19 KEY (key slot + 1 once a keyed send took its seq, else 0; RESV_BATCH or
 *                       RESV_BATCH_LAID for a batch send), 20 SEQ (a batch: its record count)
 *  word 21-24 HO_*      a hand-off push under way: 21 UNIT + 1 (0 none), 22 OWNER slot,
 *                       23 the owner's INCARNATION, 24 POS in the owner's queue (-1 until reserved)
 *  word 25 POOL_THREAD  the shared pool thread running the loop, + 1
 *  word 26 CHAIN_DONE   the loop's chained sends to Redis mailboxes (one group a handler, numbered
 *                       from 1 by the loop): every group up to this one is answered (dispatcher)
 *  word 27 CHAIN_FAILED the highest group the dispatcher saw fail (0 none)
 *  word 28 ADAPT_HELD   adaptive concurrency: what the loop holds of the mailbox's limit (adaptive.ts);
 *                       the dispatcher gives it back when the loop's thread is gone
 * ```
 * Only a thread that dies inside its guard leaves RESV/HO words that matter:
 * the dispatcher reads them after that thread is gone and repairs the hole.
 *
 * Record (at a 16-byte aligned unit; a record never wraps past the end: a
 * producer that would cross it reserves the rest of the ring as a SKIP):
 *
 * ```
 *  +0  i32 units        record length in 16-byte units, header included
 *  +4  i32 payloadBytes
 *  +8  i32 keyBytes     0 = no key
 *  +12 i32 attempt      1 for the first delivery
 *  +16 f64 id
 *  +24 f64 sentAt       first send (clock.now() ms), kept across retries
 *  +32 f64 readyAt      when this delivery was published (queue wait starts)
 *  +40 i32 flags        FLAG_ASCII: the payload is 7-bit (decoder may use latin1);
 *                       FLAG_SUSPECT: run alone (put back after a crash with several handlers running);
 *                       FLAG_KEYED, FLAG_ASK, FLAG_CALL (below); FLAG_AGAIN: put back by the dispatcher
 *                       (not a new acceptance); FLAG_VOID: a repaired hole, no message;
 *                       FLAG_PARTITION: from a partition a source reads (fenced)
 *  +44 i32 metaBytes    JSON of the first failure, carried across retries (0 = none)
 *  +48 i32 keySeq       FLAG_KEYED: this message's place in its key's order (see keys below)
 *  +52 i32 keySlot      FLAG_KEYED: the key's entry in the mailbox's key table
 *  +56 i32 headersBytes FLAG_HEADERS: the message's headers (JSON, utf8) after the payload (0 = none)
 *  +60 4 bytes spare
 *  +64 key bytes (utf8), then payload bytes, then headers bytes, then meta bytes
 *
 * Key table (a second small SharedArrayBuffer per mailbox, KEY_SLOTS entries
 * of KEY_WORDS Int32 words, indexed by a hash of the key; keys that share an
 * entry are ordered together):
 *
 *  word 0 SENT     next sequence number (a keyed send takes one after its reserve succeeds)
 *  word 1 DONE     sequence number whose turn it is (advanced on ack or dead-letter)
 *  word 2 WAITING  messages of this entry the dispatcher holds until their turn
 *  word 3 OWNER    the consumer slot that runs this entry's messages (key affinity; actor state
 *                  lives there), -1 = none, -2 = being moved; written only by the dispatcher
 *  word 4 STATES   live actor states of this entry's keys on the owner (the owner adds and
 *                  subtracts); an entry moves to another thread only at 0 and with SENT == DONE
 *
 * After the entries, one hand-off queue per consumer slot (HANDOFF_WORDS each):
 * a consumer that claims a keyed record owned by another slot moves the claim
 * to the owner (CAS of the state byte) and pushes the unit here; the owner
 * pops it. Words: 0 HEAD (owner), 1 TAIL (pushers, CAS), then HANDOFF_CAP
 * entries of unit + 1 (0 = empty).
 * ```
 */

export const UNIT_BYTES = 16;
export const UNIT_SHIFT = 4;

// ---- control header (Int32 word indices) ----
export const HEAD = 0;
export const PUBLISHED = 1;
export const ENQUEUED = 2;
export const ID_BLOCK = 3;
export const REJECTED_BASE = 4;
export const REJECT_REASONS = ['queue_full', 'too_large', 'unserializable', 'closed'] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];
export const READ = 16;
export const CLAIMED = 17;
export const TAIL = 32;
export const SPACE_SEQ = 33;
export const SPACE_WAITERS = 34;
/** The outcome feed's cursor: reclaim stops here when FOLLOW_WORD is 1 (runtime/mailbox/outcomes.ts). */
export const FOLLOWED = 35;
export const WAKE = 48;
export const SLEEPERS = 49;
export const WAKE_PENDING = 50;
export const POOL_HOSTS = 51;
export const POOL_LANE = 52;
export const MAGIC_WORD = 64;
export const VERSION_WORD = 65;
export const CAPACITY_UNITS_WORD = 66;
export const MAX_PAYLOAD_WORD = 67;
export const CONCURRENCY_WORD = 68;
/** 1 when the mailbox's handler is an actor (set after the start() probe): a send without a key is refused. */
export const ACTOR_WORD = 69;
/**
 * Units of keyed messages the dispatcher holds outside the ring (waiting for
 * their key's turn or owner): producers count them as used, so a paused key's
 * backlog pushes back on senders instead of growing the main thread's memory.
 */
export const HELD_UNITS_WORD = 70;
/** 1 when an outcome feed follows the ring: set at allocation, before any Ring wraps the buffer. */
export const FOLLOW_WORD = 71;
/** 1 when a journal gates the consumers (claims stop at JOURNALED): set at allocation, read once by each Ring. */
export const JOURNAL_WORD = 72;
/** 1 once the journal failed to write: sends are refused with RINGPOOL_JOURNAL_IO; 2 once it closed (RINGPOOL_CLOSED). */
export const JOURNAL_FAILED = 73;
export const JOURNAL_BROKEN = 1;
export const JOURNAL_CLOSED = 2;
/** The journal's cursor: records below it are on disk; consumers claim only below it. */
export const JOURNALED = 80;
export const JOURNAL_SEQ = 81;
export const JOURNAL_WATCHERS = 82;
export const OUTCOMES_DONE = 83;
export const JOURNAL_WAKE = 96;
export const JOURNAL_IDLE = 97;

export const HEADER_BYTES = 512;
export const MAGIC = 0x52_50_4f_4c; // "RPOL"
export const LAYOUT_VERSION = 1;

// ---- consumer slots ----
export const MAX_CONSUMERS = 64;
export const SLOT_WORDS = 32;
export const SLOT_BYTES = SLOT_WORDS * 4;
export const SLOTS_OFF = HEADER_BYTES;
export const SLOTS_END = SLOTS_OFF + MAX_CONSUMERS * SLOT_BYTES;

export const S_STATUS = 0;
export const S_INCARNATION = 1;
export const S_CUR_UNIT = 2;
export const S_ACKED = 3;
export const S_GUARD = 4;
export const S_THREAD_ID = 5;
/** Handlers running now in concurrent mode (0 or 1 in one-at-a-time mode). */
export const S_INFLIGHT = 6;
/** Keyed ack in progress: key slot + 1 (0 = none); its seq and unit in words 14 and 15. */
export const S_KEY_ACK = 7;
export const S_KEY_ACK_SEQ = 14;
export const S_KEY_ACK_UNIT = 15;
/**
 * The last ring reservation of a worker thread's producers (see holes.ts):
 * the RESV words from S_RESV_TAG, each at its MARK_* offset (a Ring's
 * markIn() is given the index of the first one).
 */
export const S_RESV_TAG = 16;
export const MARK_TAG = 0;
export const MARK_HEAD = 1;
export const MARK_NEED = 2;
export const MARK_KEY = 3;
export const MARK_SEQ = 4;
export const S_RESV_HEAD = S_RESV_TAG + MARK_HEAD;
export const S_RESV_NEED = S_RESV_TAG + MARK_NEED;
export const S_RESV_KEY = S_RESV_TAG + MARK_KEY;
export const S_RESV_SEQ = S_RESV_TAG + MARK_SEQ;
/** S_RESV_KEY of a batch send: reserved, its records' headers not all written yet (no seq taken). */
export const RESV_BATCH = -1;
/** S_RESV_KEY of a batch send whose headers are all written: a keyed record's seq is in its header once FLAG_KEYED is. */
export const RESV_BATCH_LAID = -2;
/** A hand-off push under way (see holes.ts): the HO words from S_HO_UNIT, each at its HO_* offset. */
export const S_HO_UNIT = 21;
/** The shared pool thread running the slot's loop, + 1 (0: a thread of the mailbox's own); the dispatcher writes it. */
export const S_POOL_THREAD = 25;
/** Chained sends to Redis mailboxes (chained.ts): every group up to this one answered; the highest that failed. */
export const S_CHAIN_DONE = 26;
export const S_CHAIN_FAILED = 27;
/** Adaptive concurrency (adaptive.ts): what the slot's loop holds of the mailbox's limit, reserved or running. */
export const S_ADAPT_HELD = 28;
export const HO_UNIT = 0;
export const HO_OWNER = 1;
export const HO_INC = 2;
export const HO_POS = 3;
export const S_HO_OWNER = S_HO_UNIT + HO_OWNER;
export const S_HO_INC = S_HO_UNIT + HO_INC;
export const S_HO_POS = S_HO_UNIT + HO_POS;
/** S_RESV_TAG of a delayed send between taking its seq (or its enqueued count) and its post. */
export const DELAYED_TAG = 1 << 20;
/** The tag of a mailbox's ring (reply = false) or reply ring, by the mailbox's index in the runtime. */
export function ringTag(index: number, reply: boolean): number {
  return 1 + 2 * index + (reply ? 1 : 0);
}
/** f64 index offset inside the slot (word 8 = f64 word 4). */
export const S_F64_CUR_START = 4;
export const S_F64_HANDLER_MS = 5;
export const S_F64_ELU = 6;

export const SLOT_IDLE = 0;
export const SLOT_RUNNING = 1;
export const SLOT_STOP = 2;
/** The dispatcher took the running message back (lease expired): drop the rest of the batch. */
export const SLOT_REVOKED = 3;

export const GUARD_FREE = 0;
export const GUARD_SENDING = 1;
/** Raised by the lease watchdog while it tries to take the running record back; lowered (FREE) if the handler acked meanwhile. */
export const GUARD_REVOKED = 2;
/** The record was taken back and the thread is being terminated: the guard is never given again. */
export const GUARD_KILLED = 3;

// ---- state bytes (one per data unit; non-zero only at the start of a live record) ----
export const ST_FREE = 0;
export const ST_READY = 1;
export const ST_DONE = 2;
export const ST_SKIP = 3;
export const ST_RECLAIMING = 4;
export const ST_HELD = 5;
/**
 * Finished by the dispatcher, not acked (taken back for a retry, a
 * redelivery or a dead letter; or a repaired hole): reclaimed like DONE, but
 * the outcome feed reports no ack for it.
 */
export const ST_TAKEN = 6;
/** CLAIMED by consumer c is `ST_CLAIMED + c` (64..127). */
export const ST_CLAIMED = 64;

// ---- record header ----
export const R_UNITS = 0; // i32 word offsets
export const R_PAYLOAD_BYTES = 1;
export const R_KEY_BYTES = 2;
export const R_ATTEMPT = 3;
export const R_F64_ID = 2; // f64 word offsets (byte 16)
export const R_F64_SENT_AT = 3; // byte 24
export const R_F64_READY_AT = 4; // byte 32
export const R_FLAGS = 10; // i32 word, byte 40
export const R_META_BYTES = 11; // i32 word, byte 44
export const R_KEY_SEQ = 12; // i32 word, byte 48
export const R_KEY_SLOT = 13; // i32 word, byte 52
export const R_HEADERS_BYTES = 14; // i32 word, byte 56
export const RECORD_HEADER_BYTES = 64;
export const FLAG_ASCII = 1;
/** Put back after a thread crashed while several handlers ran on it: run it alone, so a second crash is blamed right. */
export const FLAG_SUSPECT = 2;
/** Ordered by key: run only when the key table says it is this record's turn. */
export const FLAG_KEYED = 4;
/** Sent by ask(): the handler's result goes back in the mailbox's reply ring. */
export const FLAG_ASK = 8;
/** An actor method call: the payload is `[method, ...args]`. */
export const FLAG_CALL = 16;
/** Put back by the dispatcher (a retry, a redelivery, a keyed turn, a redrive, a delayed send): not a new acceptance. */
export const FLAG_AGAIN = 32;
/** A repaired hole (holes.ts): no message in it. */
export const FLAG_VOID = 64;
/** A record a source read from a partition of its engine (issue #29): a consumer starts it only while the fence table says the partition is this process's. */
export const FLAG_PARTITION = 128;
/** The record carries headers (R_HEADERS_BYTES of them after the payload): ctx.headers. */
export const FLAG_HEADERS = 256;
/** Flags a retry keeps (the rest are set per write). */
export const FLAGS_KEPT = FLAG_ASK | FLAG_CALL | FLAG_PARTITION;

export const KEY_SLOTS = 4096;
export const KEY_WORDS = 8;
export const K_SENT = 0;
export const K_DONE = 1;
export const K_WAITING = 2;
export const K_OWNER = 3;
export const K_STATES = 4;
export const OWNER_NONE = -1;
export const OWNER_MOVING = -2;

export const HANDOFF_CAP = 1024;
export const HANDOFF_WORDS = 2 + HANDOFF_CAP;
export const H_HEAD = 0;
export const H_TAIL = 1;
/** A hand-off entry the dispatcher voided: reserved by a pusher that died before writing it; popped and dropped. */
export const HANDOFF_VOID = -1;
/** Int32 word where consumer slot c's hand-off queue starts in the key table buffer. */
export function handoffBase(c: number): number {
  return KEY_SLOTS * KEY_WORDS + c * HANDOFF_WORDS;
}

export function allocateKeyTable(): SharedArrayBuffer {
  const sab = new SharedArrayBuffer((KEY_SLOTS * KEY_WORDS + MAX_CONSUMERS * HANDOFF_WORDS) * 4);
  const i32 = new Int32Array(sab);
  for (let s = 0; s < KEY_SLOTS; s++) i32[s * KEY_WORDS + K_OWNER] = OWNER_NONE;
  return sab;
}

/** The key table entry of `key` (FNV-1a over its UTF-16 code units). */
export function keySlotOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return (h >>> 0) & (KEY_SLOTS - 1);
}
/** Most meta bytes a record carries: the first error's JSON is cut to fit (held.ts). */
export const META_MAX_BYTES = 4096;

export const ID_BLOCK_SIZE = 1 << 16;

/** Smallest ring we build, in data bytes. */
export const MIN_CAPACITY_BYTES = 4096;
/** Largest ring: 1 GiB of data (2^26 units keeps cursor distances far from 2^31). */
export const MAX_CAPACITY_BYTES = 1 << 30;

/** Units a record of `keyBytes` + `payloadBytes` takes. */
export function recordUnits(keyBytes: number, payloadBytes: number): number {
  return (RECORD_HEADER_BYTES + keyBytes + payloadBytes + UNIT_BYTES - 1) >>> UNIT_SHIFT;
}

export function nextPowerOfTwo(n: number): number {
  let p = MIN_CAPACITY_BYTES;
  while (p < n) p *= 2;
  return p;
}

/** Where each region starts, for a data region of `capacityBytes` (a power of two). */
export function regions(capacityBytes: number): { stateOff: number; dataOff: number; total: number } {
  const units = capacityBytes >>> UNIT_SHIFT;
  const stateOff = SLOTS_END;
  // keep the data region 64-byte aligned (f64 views need 8)
  const dataOff = (stateOff + units + 63) & ~63;
  return { stateOff, dataOff, total: dataOff + capacityBytes };
}

// ---- metrics buffer (one SharedArrayBuffer per mailbox, apart from the ring; histogram.ts) ----
/**
 * ```
 *  i32 word 0  GEN       0 = recording off; bumped (release) after the bounds are (re)set
 *  i32 word 1  NBOUNDS   finite bucket bounds in use (<= MAX_BOUNDS)
 *  f64 1 .. MAX_BOUNDS   bounds, seconds, ascending
 *  f64 H_BLOCKS_F64 + (slot * HISTS + h) * STRIDE, written by the loop in that slot only:
 *        [0 .. NBOUNDS]  per-bucket counts (not cumulative; the last is +Inf)
 *        [NBOUNDS + 1]   sum of observed values
 *        [NBOUNDS + 2]   count
 * ```
 */
export const H_GEN = 0;
export const H_NBOUNDS = 1;
export const MAX_BOUNDS = 64;
export const HISTS = 3;
export const H_QUEUE_WAIT = 0;
export const H_PROCESSING = 1;
export const H_END_TO_END = 2;
export const STRIDE = MAX_BOUNDS + 3;
export const H_BLOCKS_F64 = 1 + MAX_BOUNDS;

// ---- journal stats (a small Float64 SharedArrayBuffer per durable mailbox) ----
/** Written by the journal thread only, plain (estimates for stats(): a read a batch late is fine); read by stats() on the main thread. */
export const J_SEGMENTS = 0;
export const J_BYTES = 1;
export const J_FSYNCS = 2;
export const J_LAST_FSYNC_MS = 3;
export const J_RECOVERED = 4;
export const J_COMPACTIONS = 5;
export const J_STATS_WORDS = 8;
