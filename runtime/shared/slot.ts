/**
 * One consumer slot's words behind named accessors (the layout is in
 * layout.ts, "Consumer slot"). Thread-neutral: the consumer loop that owns
 * the slot and the dispatcher both read and write it, each accessor says who
 * writes the word and with what ordering, as the Disruptor's Sequence does
 * with setRelease / getAcquire. Atomics.load / store are sequentially
 * consistent, so "release" and "acquire" below name the pairing that matters,
 * not a weaker order. A plain read or write says why it may be plain.
 *
 * Writers: L = the slot's consumer loop, D = the dispatcher (main thread).
 */
import {
  GUARD_FREE,
  GUARD_REVOKED,
  HO_INC,
  HO_OWNER,
  HO_POS,
  HO_UNIT,
  S_ACKED,
  S_CUR_UNIT,
  S_F64_CUR_START,
  S_F64_ELU,
  S_F64_HANDLER_MS,
  S_GUARD,
  S_HO_UNIT,
  S_INCARNATION,
  S_INFLIGHT,
  S_KEY_ACK,
  S_KEY_ACK_SEQ,
  S_KEY_ACK_UNIT,
  S_RESV_TAG,
  S_STATUS,
  S_THREAD_ID,
  S_POOL_THREAD,
  S_CHAIN_DONE,
  S_CHAIN_FAILED,
  SLOTS_OFF,
  SLOT_WORDS,
} from './layout.js';

export class SlotView {
  /** Int32 index of the slot's word 0. */
  private readonly base: number;
  /** Float64 index of the slot's f64 word 0. */
  private readonly fBase: number;
  /** Int32 index of the GUARD word: acquireGuard / releaseGuard (guard.ts) and a Producer's guard take it. */
  readonly guardWord: number;
  /** Int32 index of the RESV_* words (MARK_* offsets from it): a Ring's markIn() writes a thread's reservations there (holes.ts). */
  readonly markWord: number;
  /** Int32 index of the HO_* words: a hand-off push under way (holes.ts). */
  readonly handoffWord: number;

  constructor(
    readonly i32: Int32Array,
    readonly f64: Float64Array,
    /** The slot's number: consumer loop c runs in slot c. */
    readonly c: number,
  ) {
    this.base = (SLOTS_OFF >> 2) + c * SLOT_WORDS;
    this.fBase = this.base >> 1;
    this.guardWord = this.base + S_GUARD;
    this.markWord = this.base + S_RESV_TAG;
    this.handoffWord = this.base + S_HO_UNIT;
  }

  // ---- STATUS: D writes (RUNNING at start, STOP, REVOKED, IDLE); L reads it between records (acquire).
  status(): number {
    return Atomics.load(this.i32, this.base + S_STATUS);
  }
  setStatus(s: number): void {
    Atomics.store(this.i32, this.base + S_STATUS, s);
  }
  /** D: set the status, return the one it replaced (the lease watchdog puts it back when its take fails). */
  swapStatus(s: number): number {
    return Atomics.exchange(this.i32, this.base + S_STATUS, s);
  }

  // ---- INCARNATION: D bumps it before it sets RUNNING; hand-off pushers (L of other slots) read it.
  incarnation(): number {
    return Atomics.load(this.i32, this.base + S_INCARNATION);
  }
  setIncarnation(n: number): void {
    Atomics.store(this.i32, this.base + S_INCARNATION, n);
  }

  // ---- CUR_UNIT and CUR_START: the lease. L writes the start (plain), then the unit (release);
  // D's watchdog loads the unit (acquire), then reads a start that is this one or a later one.
  /** L: the handler of `unit` started at `startedAt` (clock.now() ms). */
  running(unit: number, startedAt: number): void {
    this.f64[this.fBase + S_F64_CUR_START] = startedAt;
    Atomics.store(this.i32, this.base + S_CUR_UNIT, unit);
  }
  /** L or D: no handler runs (-1). */
  clearCurrent(): void {
    Atomics.store(this.i32, this.base + S_CUR_UNIT, -1);
  }
  currentUnit(): number {
    return Atomics.load(this.i32, this.base + S_CUR_UNIT);
  }
  /** Plain: read after currentUnit() (acquire), it is the start of that unit's handler or of a later one. */
  currentStart(): number {
    return this.f64[this.fBase + S_F64_CUR_START]!;
  }

  // ---- ACKED: L only (release, one store per ack); D folds it (acquire).
  acked(): number {
    return Atomics.load(this.i32, this.base + S_ACKED);
  }
  setAcked(n: number): void {
    Atomics.store(this.i32, this.base + S_ACKED, n);
  }

  // ---- GUARD: see guard.ts (L takes and releases it; D raises REVOKED and KILLED).
  guard(): number {
    return Atomics.load(this.i32, this.guardWord);
  }
  setGuard(g: number): void {
    Atomics.store(this.i32, this.guardWord, g);
  }
  /** D: raise REVOKED if the guard is FREE (a CAS); returns what the guard was (SENDING: try again later). */
  revokeGuard(): number {
    return Atomics.compareExchange(this.i32, this.guardWord, GUARD_FREE, GUARD_REVOKED);
  }

  // ---- POOL_THREAD: D writes it before the loop starts (its shared pool thread + 1, 0 for a thread of its own).
  poolThread(): number {
    return Atomics.load(this.i32, this.base + S_POOL_THREAD) - 1;
  }
  setPoolThread(t: number): void {
    Atomics.store(this.i32, this.base + S_POOL_THREAD, t + 1);
  }

  // ---- CHAIN_DONE, CHAIN_FAILED: D writes FAILED, then DONE (release) and wakes its waiters; L loads DONE
  // (acquire) then FAILED, waiting asynchronously (Atomics.waitAsync) for a handler's group of chained sends.
  /** Int32 index of the CHAIN_DONE word (L waits on it). */
  get chainDoneWord(): number {
    return this.base + S_CHAIN_DONE;
  }
  chainDone(): number {
    return Atomics.load(this.i32, this.base + S_CHAIN_DONE);
  }
  chainFailed(): number {
    return Atomics.load(this.i32, this.base + S_CHAIN_FAILED);
  }
  /** D: groups answered up to `done`, the highest failed `failed`; wakes the loop's waiters. */
  setChain(done: number, failed: number): void {
    Atomics.store(this.i32, this.base + S_CHAIN_FAILED, failed);
    Atomics.store(this.i32, this.base + S_CHAIN_DONE, done);
    Atomics.notify(this.i32, this.base + S_CHAIN_DONE);
  }

  // ---- THREAD_ID: L writes it once when ready; read for diagnostics.
  threadId(): number {
    return Atomics.load(this.i32, this.base + S_THREAD_ID);
  }
  setThreadId(id: number): void {
    Atomics.store(this.i32, this.base + S_THREAD_ID, id);
  }

  // ---- INFLIGHT: L (concurrent mode); D reads it after a crash: whom the crash can be blamed on.
  inflight(): number {
    return Atomics.load(this.i32, this.base + S_INFLIGHT);
  }
  setInflight(n: number): void {
    Atomics.store(this.i32, this.base + S_INFLIGHT, n);
  }

  // ---- KEY_ACK (+ SEQ, UNIT): L writes seq and unit, then KEY_ACK (release) before a keyed ack, clears it after the turn passed;
  // D reads KEY_ACK (acquire) then seq and unit once the thread is gone, and finishes the turn (key-turns.ts).
  beginKeyAck(keySlot: number, seq: number, unit: number): void {
    const i32 = this.i32;
    Atomics.store(i32, this.base + S_KEY_ACK_SEQ, seq);
    Atomics.store(i32, this.base + S_KEY_ACK_UNIT, unit);
    Atomics.store(i32, this.base + S_KEY_ACK, keySlot + 1);
  }
  endKeyAck(): void {
    Atomics.store(this.i32, this.base + S_KEY_ACK, 0);
  }
  /** The key slot of a keyed ack under way, or -1. */
  keyAckSlot(): number {
    return Atomics.load(this.i32, this.base + S_KEY_ACK) - 1;
  }
  keyAckSeq(): number {
    return Atomics.load(this.i32, this.base + S_KEY_ACK_SEQ);
  }
  keyAckUnit(): number {
    return Atomics.load(this.i32, this.base + S_KEY_ACK_UNIT);
  }

  // ---- HO_*: a hand-off push under way. L writes OWNER, INC, POS, then UNIT + 1 (plain: only read by D after
  // this thread is gone, and a thread's own writes are all visible once it has exited); cleared after the push.
  beginHandoff(unit: number, owner: number, ownerIncarnation: number): void {
    const i32 = this.i32;
    const ho = this.handoffWord;
    i32[ho + HO_OWNER] = owner;
    i32[ho + HO_INC] = ownerIncarnation;
    i32[ho + HO_POS] = -1;
    i32[ho + HO_UNIT] = unit + 1;
  }
  endHandoff(): void {
    this.i32[this.handoffWord + HO_UNIT] = 0;
  }
  /** D, the thread gone: the hand-off it left half done, or null. Plain reads, as above. */
  deadHandoff(): { unit: number; owner: number; inc: number; pos: number } | null {
    const i32 = this.i32;
    const ho = this.handoffWord;
    const u = i32[ho + HO_UNIT]!;
    return u === 0 ? null : { unit: u - 1, owner: i32[ho + HO_OWNER]!, inc: i32[ho + HO_INC]!, pos: i32[ho + HO_POS]! };
  }

  // ---- f64 HANDLER_MS and ELU: L writes, the autoscaler reads, both plain (Atomics has no f64): they are
  // estimates, read every tick; one read a tick late changes one tick's decision, nothing a message depends on.
  handlerMs(): number {
    return this.f64[this.fBase + S_F64_HANDLER_MS]!;
  }
  setHandlerMs(ms: number): void {
    this.f64[this.fBase + S_F64_HANDLER_MS] = ms;
  }
  elu(): number {
    return this.f64[this.fBase + S_F64_ELU]!;
  }
  setElu(u: number): void {
    this.f64[this.fBase + S_F64_ELU] = u;
  }

  /** L at the start of a loop: a fresh hand-off, reservation, keyed-ack and in-flight record. */
  resetForLoop(): void {
    const i32 = this.i32;
    Atomics.store(i32, this.handoffWord + HO_UNIT, 0);
    Atomics.store(i32, this.markWord, 0);
    Atomics.store(i32, this.base + S_KEY_ACK, 0);
    Atomics.store(i32, this.base + S_INFLIGHT, 0);
  }
}
