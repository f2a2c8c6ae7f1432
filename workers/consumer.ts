/**
 * The consumer loop: a long-lived Piscina task on a worker thread. It claims
 * batches from its mailbox's ring, decodes each message, calls the handler,
 * and acks (a CAS on the record's state byte) or nacks (a one-way event to the
 * dispatcher). It returns when the dispatcher sets its slot to STOP.
 *
 * Nothing here runs on the main thread, and nothing here loads prom-client or
 * the dispatcher.
 */
import { threadId } from 'node:worker_threads';
import { isActor, type ActorDefinition } from './actor.js';
import * as Comlink from '../runtime/shared/comlink.js';
import { loadCodec, type PayloadCodec } from '../runtime/shared/codec.js';
import { ErrorCodes, RingpoolError, toErrorInfo } from '../runtime/shared/errors.js';
import {
  CONCURRENCY_WORD,
  FLAG_ASCII,
  FLAG_KEYED,
  KEY_WORDS,
  K_DONE,
  K_WAITING,
  FLAG_SUSPECT,
  GUARD_KILLED,
  S_HO_UNIT,
  S_INCARNATION,
  S_RESV_TAG,
  ringTag,
  FLAG_ASK,
  FLAG_CALL,
  K_OWNER,
  K_STATES,
  ST_CLAIMED,
  S_ACKED,
  S_CUR_UNIT,
  S_F64_CUR_START,
  S_F64_ELU,
  S_F64_HANDLER_MS,
  S_GUARD,
  S_INFLIGHT,
  S_KEY_ACK,
  S_KEY_ACK_SEQ,
  S_KEY_ACK_UNIT,
  S_STATUS,
  S_THREAD_ID,
  SLEEPERS,
  SLOT_REVOKED,
  SLOT_RUNNING,
  WAKE,
} from '../runtime/shared/layout.js';
import { Producer, type SendOptions } from '../runtime/shared/producer.js';
import type { ConsumerTask, LoopResult, ProbeResult, ProbeTask, WorkerControl, WorkerEvent, WorkerStats } from '../runtime/shared/protocol.js';
import { handoffPop, handoffPush, handoffReady } from '../runtime/shared/handoff.js';
import { acquireGuard, releaseGuard } from '../runtime/shared/guard.js';
import { faultHook } from '../runtime/shared/faults.js';
import { Ring } from '../runtime/shared/ring.js';
import { H_END_TO_END, H_PROCESSING, H_QUEUE_WAIT, HistogramWriter, blockOffset, observe } from '../runtime/shared/histogram.js';
import { MessageContext, type ContextHost, type Handler } from './context.js';
import { isUnrecoverable, UnrecoverableError } from './unrecoverable.js';

/** A batch aims at about this much handler time, so slow handlers do not hoard messages other threads could run. */
const TARGET_BATCH_MS = 1;
/** How long an idle consumer polls the ring before it parks on the wake word. */
const SPIN_MS = 0.05;
/** Parked consumers re-check their slot at least this often. */
const PARK_TIMEOUT_MS = 200;
/** A loop with nothing in flight blocks in the futex for at most this long before it gives its event loop a turn. */
const PARK_SYNC_MS = 10;
/** Under continuous load, give the event loop (comlink calls, handler timers) a turn this often. */
const YIELD_EVERY_MS = 5;

const origin = performance.timeOrigin;
const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Import a handler module and check its default export (also used by the dispatcher's start() probe). */
async function loadHandler(url: string): Promise<Handler | ActorDefinition> {
  let mod: { default?: unknown };
  try {
    mod = (await import(url)) as { default?: unknown };
  } catch (err) {
    throw new RingpoolError(ErrorCodes.HANDLER_LOAD, `handler module ${url} failed to load: ${(err as Error)?.message ?? err}`, { url }, { cause: err });
  }
  if (isActor(mod.default)) return mod.default;
  if (typeof mod.default !== 'function') {
    throw new RingpoolError(
      ErrorCodes.HANDLER_LOAD,
      `handler module ${url} must export a function or an actor(...) as default, got ${mod.default === undefined ? 'no default export' : typeof mod.default}`,
      { url },
    );
  }
  return mod.default as Handler;
}

/** Piscina task `probe`: load the handler and the codec, report what failed and what the module is. */
export async function probe(task: ProbeTask): Promise<ProbeResult> {
  const h = await loadHandler(task.handlerUrl);
  await loadCodec(task.codec);
  return isActor(h) ? { actor: true, methods: Object.keys(h.methods ?? {}) } : { actor: false, methods: [] };
}

interface Running {
  unit: number;
  started: number;
  done: boolean;
  keySlot: number;
  flags: number;
}

/** One key's actor state in this thread. */
interface StateEntry {
  state: unknown;
  keySlot: number;
  lastUsed: number;
  /** Handlers of this key running now (0 or 1: a key runs one message at a time). */
  busy: number;
}

const isThenable = (x: unknown): x is PromiseLike<unknown> =>
  x !== null && (typeof x === 'object' || typeof x === 'function') && typeof (x as PromiseLike<unknown>).then === 'function';

class ConsumerLoop implements ContextHost, WorkerControl {
  readonly mailbox: string;
  readonly leaseMs: number;
  private readonly ring: Ring;
  private readonly c: number;
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private readonly wStatus: number;
  private readonly wCurUnit: number;
  private readonly wAcked: number;
  private readonly fCurStart: number;
  private readonly producers = new Map<string, Producer>();
  /** One codec instance per mailbox, loaded at start (custom codecs are modules). */
  private readonly codecs = new Map<string, PayloadCodec>();
  private codec!: PayloadCodec;
  private handler: Handler | null = null;
  /** Set when the module's default export is an actor definition. */
  private def: ActorDefinition | null = null;
  private readonly states = new Map<string, StateEntry>();
  private sweepTimer: NodeJS.Timeout | null = null;
  /** The mailbox's reply ring (ask results). */
  private readonly replies: Ring;
  private readonly wGuard: number;
  /** The slot's HO_* words: a hand-off push under way (holes.ts). */
  private readonly wHandoff: number;
  /** Claims from the ring go here first, then to `out` or to their keys' owners. */
  private scratch = new Int32Array(1);
  /** The last take() claimed or popped something (even if all of it went to other threads). */
  private took = false;
  /** Records this loop claimed for another thread whose hand-off queue was full: pushed again before anything new is claimed. */
  private stalled = new Int32Array(1);
  private stalledN = 0;
  /** This take() handed something over: wake parked threads once, at its end. */
  private handedOff = false;
  /** Keys whose passivate hook is running: a message for one waits for it before init() runs again. */
  private readonly passivating = new Map<string, Promise<void>>();
  /** Set when the loop has ended: a passivation finishing later no longer touches the key table. */
  private statesReleased = false;
  private acked = 0;
  /** ACKED as this loop found it: the acks of the loops before it in this slot. */
  private ackedBefore = 0;
  private nacked = 0;
  /** Claim size; starts small so a slow handler's first batch does not hoard, then follows the handler's speed. */
  private batch = 8;
  private handlerMs = 0;
  private stopRequested = false;
  private readonly fHandlerMs: number;
  private readonly fElu: number;
  private hw: HistogramWriter | null = null;
  private reportedAt = 0;
  private eluPrev: ReturnType<typeof performance.eventLoopUtilization> | null = null;
  // concurrent mode
  private inflight = 0;
  private revoked = false;
  private readonly running_: Running[] = [];
  private runningHead = 0;
  private onCompletion: (() => void) | null = null;
  private completed: Promise<void> | null = null;
  private finishedCount = 0;
  private lastYield = 0;
  private parkedInWindow = true;
  private readonly wInflight: number;
  private readonly wKeyAck: number;
  private loopEnded = false;
  private readonly wKeyAckSeq: number;
  private readonly wKeyAckUnit: number;
  /** This mailbox's key table (keyed ordering). */
  private readonly keys: Int32Array;

  constructor(private readonly task: ConsumerTask) {
    this.mailbox = task.mailbox;
    this.leaseMs = task.leaseMs;
    this.ring = new Ring(task.rings[task.mailbox]!.sab);
    this.c = task.consumer;
    this.i32 = this.ring.i32;
    this.f64 = this.ring.f64;
    this.wStatus = this.ring.slotWord(this.c, S_STATUS);
    this.wCurUnit = this.ring.slotWord(this.c, S_CUR_UNIT);
    this.wAcked = this.ring.slotWord(this.c, S_ACKED);
    this.fCurStart = this.ring.slotF64(this.c, S_F64_CUR_START);
    this.fHandlerMs = this.ring.slotF64(this.c, S_F64_HANDLER_MS);
    this.fElu = this.ring.slotF64(this.c, S_F64_ELU);
    this.wInflight = this.ring.slotWord(this.c, S_INFLIGHT);
    this.keys = new Int32Array(task.rings[task.mailbox]!.keys);
    this.wKeyAck = this.ring.slotWord(this.c, S_KEY_ACK);
    this.wKeyAckSeq = this.ring.slotWord(this.c, S_KEY_ACK_SEQ);
    this.wKeyAckUnit = this.ring.slotWord(this.c, S_KEY_ACK_UNIT);
    this.wGuard = this.ring.slotWord(this.c, S_GUARD);
    this.wHandoff = this.ring.slotWord(this.c, S_HO_UNIT);
    const boxIndex = Object.keys(task.rings).indexOf(task.mailbox); // ring tags name mailboxes by this index
    this.replies = new Ring(task.rings[task.mailbox]!.replies);
    // Reservations this thread makes (ctx.send, replies) are written down in its slot (holes.ts).
    this.replies.markIn(this.i32, this.ring.slotWord(this.c, S_RESV_TAG), ringTag(boxIndex, true));
    Atomics.store(this.i32, this.wHandoff, 0);
    Atomics.store(this.i32, this.ring.slotWord(this.c, S_RESV_TAG), 0);
    Atomics.store(this.i32, this.wKeyAck, 0);
    Atomics.store(this.i32, this.wInflight, 0);
    // Unknown until the first ~100 ms have been measured (the autoscaler then treats the loop as CPU-bound).
    this.f64[this.fElu] = NaN;
    this.f64[this.fHandlerMs] = 0;
    // The slot's word counts across the loops that ran in it (the dispatcher folds it): this loop's own start from here.
    this.acked = Atomics.load(this.i32, this.wAcked);
    this.ackedBefore = this.acked;
  }

  private post(ev: WorkerEvent): void {
    this.task.events.postMessage(ev);
  }

  async run(): Promise<LoopResult> {
    const { task } = this;
    try {
      const h = await loadHandler(task.handlerUrl);
      if (isActor(h)) this.def = h;
      else this.handler = h;
      for (const [name, ref] of Object.entries(task.rings)) this.codecs.set(name, await loadCodec(ref.codec));
      this.codec = this.codecs.get(task.mailbox)!;
    } catch (err) {
      this.post({ type: 'load-error', consumer: this.c, incarnation: task.incarnation, error: toErrorInfo(err) });
      return { reason: 'load-error', stats: this.stats() };
    }
    Comlink.expose(this, Comlink.endpoint(task.control));
    Atomics.store(this.i32, this.ring.slotWord(this.c, S_THREAD_ID), threadId);
    this.post({ type: 'ready', consumer: this.c, incarnation: task.incarnation, threadId });
    try {
      await this.loop();
      // Stopped with handlers still running (concurrent mode): let them finish and ack.
      while (this.inflight > 0 && !this.revoked) await this.completion();
      // Retired (not revoked): the keys' states are dropped with their hooks run; the keys move to other threads.
      if (!this.revoked && Atomics.load(this.i32, this.wStatus) !== SLOT_REVOKED) await this.passivateAll();
    } finally {
      if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
      // The dispatcher resets this slot's key counts once the loop is over: a hook finishing later must not touch them.
      this.statesReleased = true;
      // A handler's timer may still call ctx.send(): refuse it (RINGPOOL_CLOSED)
      // rather than post to a port that is about to close and lose it.
      for (const p of this.producers.values()) p.closed = true;
      this.loopEnded = true;
      Atomics.store(this.i32, this.wCurUnit, -1);
      task.control.close();
      task.events.close();
    }
    return { reason: 'stopped', stats: this.stats() };
  }

  private running(): boolean {
    // REVOKED alone does not stop the loop: the dispatcher raises it a moment
    // before it tries to take the running record, and lowers it again when
    // that fails. A loop stops for it only when one of its own acks fails, or
    // when its guard reads KILLED: the take worked and this thread is being
    // terminated. It claims nothing more then: a message it started now would
    // be cut off by the kill and run again.
    if (this.stopRequested) return false;
    if (Atomics.load(this.i32, this.wGuard) === GUARD_KILLED) return false;
    const s = Atomics.load(this.i32, this.wStatus);
    return s === SLOT_RUNNING || s === SLOT_REVOKED;
  }

  private async loop(): Promise<void> {
    const { ring, i32, f64, c } = this;
    const out = new Int32Array(Math.max(1, this.task.batchSize));
    const maxBatch = out.length;
    const again = new Int32Array(maxBatch);
    this.scratch = new Int32Array(maxBatch);
    this.stalled = new Int32Array(maxBatch);
    this.batch = Math.min(this.batch, maxBatch);
    this.lastYield = performance.now();
    const hw = new HistogramWriter(this.task.metricsSab);
    const h64 = hw.f64;
    const qBase = blockOffset(c, H_QUEUE_WAIT);
    const pBase = blockOffset(c, H_PROCESSING);
    const eBase = blockOffset(c, H_END_TO_END);
    this.hw = hw;
    while (this.running()) {
      this.report();
      // Messages in flight per thread: 1 runs the batch one by one (the fast
      // path); more runs async handlers side by side (I/O-bound mailboxes).
      const conc = Atomics.load(i32, CONCURRENCY_WORD);
      if (conc > 1 || this.inflight > 0) {
        if (await this.concurrentStep(conc, out)) return;
        continue;
      }
      let n = this.take(out, this.batch);
      if (n === 0) {
        if (this.took || this.stalledN > 0) {
          // All of it went to the threads that own its keys, or waits for room in an owner's queue.
          if (!this.took) await sleep(1);
          else if (performance.now() - this.lastYield > YIELD_EVERY_MS) await yieldToLoop();
          else continue;
          this.lastYield = performance.now();
          continue;
        }
        // park() keeps lastYield itself: a wake-up from the blocking wait is not an event-loop turn.
        await this.park();
        continue;
      }
      const batchStart = performance.now();
      const record = hw.refresh();
      let t = batchStart;
      let ran = 0;
      // A keyed record whose turn has not come is looked at again after the
      // rest of the batch and what other threads handed us meanwhile (its
      // predecessor is usually there, or finishing right now); only then is
      // it handed to the dispatcher to wait.
      for (let pass = 0; n > 0; pass++) {
        let m = 0;
        for (let i = 0; i < n; i++) {
          const unit = out[i]!;
          const flags = ring.flags(unit);
          if (!this.isTurn(unit, flags)) {
            if (pass < 2) again[m++] = unit;
            else this.defer(unit);
            continue;
          }
          ran++;
          const keySlot = (flags & FLAG_KEYED) !== 0 ? ring.keySlot(unit) : -1;
          // Lease bookkeeping: start time first, then the unit (release); the
          // watchdog loads the unit (acquire) and then reads a start that is
          // this one or a later one, never an older one.
          f64[this.fCurStart] = origin + t;
          Atomics.store(i32, this.wCurUnit, unit);
          // Read before the handler runs: once acked, another loop may reclaim the record.
          const sentAt = record ? ring.sentAt(unit) : 0;
          if (record) observe(h64, qBase, hw.bounds, hw.n, Math.max(0, (origin + batchStart - ring.readyAt(unit)) / 1000));
          const started = t;
          let failed: unknown = undefined;
          let threw = false;
          try {
            let result = this.invoke(unit, flags, t, keySlot);
            if (isThenable(result)) result = await result;
            // The reply goes out before the ack: a crash in between runs the message again, it never loses the reply.
            if ((flags & FLAG_ASK) !== 0 && !this.reply(unit, result)) return;
          } catch (err) {
            threw = true;
            failed = err;
          }
          if (!threw) {
            if (this.ackRecord(unit, keySlot)) {
              Atomics.store(i32, this.wAcked, ++this.acked);
            }
            // The dispatcher took the record back (lease expired) and this thread
            // is about to be terminated: touch nothing shared any more.
            else if (Atomics.load(i32, this.wStatus) === SLOT_REVOKED) return;
          } else {
            this.nack(unit, failed);
          }
          t = performance.now();
          if (record) {
            observe(h64, pBase, hw.bounds, hw.n, (t - started) / 1000);
            if (!threw) observe(h64, eBase, hw.bounds, hw.n, Math.max(0, (origin + t - sentAt) / 1000));
          }
        }
        if (m === 0) break;
        const k = pass === 0 ? this.popHandoff(out, 0, maxBatch - m) : 0;
        for (let j = 0; j < m; j++) out[k + j] = again[j]!;
        n = k + m;
      }
      Atomics.store(i32, this.wCurUnit, -1);
      ring.reclaim();
      // Adapt the batch to the handler's speed (EWMA of per-message time).
      if (ran > 0) {
        const perMsg = (t - batchStart) / ran;
        this.handlerMs = this.handlerMs === 0 ? perMsg : this.handlerMs * 0.8 + perMsg * 0.2;
        f64[this.fHandlerMs] = this.handlerMs;
        this.batch = Math.max(1, Math.min(maxBatch, Math.floor(TARGET_BATCH_MS / Math.max(this.handlerMs, 1e-6))));
      }
      if (t - this.lastYield > YIELD_EVERY_MS) {
        await yieldToLoop();
        this.lastYield = performance.now();
      }
    }
  }

  // ---- key affinity: a keyed record runs on the thread that owns its key ----

  /**
   * Fill `out` with up to `max` records this loop runs now: first what other
   * threads handed over, then fresh claims from the ring. A claimed keyed
   * record owned by another thread goes to that thread instead. Sets `took`.
   */
  private take(out: Int32Array, max: number): number {
    const { ring, keys, c } = this;
    let m = handoffReady(keys, c) ? this.popHandoff(out, 0, max) : 0;
    this.took = m > 0;
    if (this.stalledN > 0) m = this.retryStalled(out, m, max);
    // While an owner's queue is full, claim nothing new: the owner is the bottleneck, and this is its backpressure.
    if (m >= max || this.stalledN > 0) return this.endTake(m);
    const scratch = this.scratch;
    const n = ring.claim(c, max - m, scratch);
    if (n > 0) this.took = true;
    for (let i = 0; i < n; i++) {
      const u = scratch[i]!;
      if ((ring.flags(u) & FLAG_KEYED) !== 0) {
        const owner = Atomics.load(keys, ring.keySlot(u) * KEY_WORDS + K_OWNER);
        if (owner !== c) {
          if (!this.route(u, owner)) this.stalled[this.stalledN++] = u;
          continue;
        }
      }
      out[m++] = u;
    }
    return this.endTake(m);
  }

  private endTake(m: number): number {
    if (this.handedOff) {
      this.handedOff = false;
      this.ring.wakeAllIfSleeping();
    }
    return m;
  }

  /** Push again what did not fit in an owner's queue (or run it, if the key is ours now). */
  private retryStalled(out: Int32Array, m: number, max: number): number {
    const { ring, keys, c, stalled } = this;
    const mine = ST_CLAIMED + c;
    let k = 0;
    for (let i = 0; i < this.stalledN; i++) {
      const u = stalled[i]!;
      if (Atomics.load(ring.state, u) !== mine) continue; // taken back by the dispatcher
      const owner = Atomics.load(keys, ring.keySlot(u) * KEY_WORDS + K_OWNER);
      if (owner === c && m < max) {
        out[m++] = u;
        this.took = true;
      } else if (owner === c || !this.route(u, owner)) {
        stalled[k++] = u;
      } else {
        this.took = true;
      }
    }
    this.stalledN = k;
    return m;
  }

  /** Pop this slot's hand-off queue into `out` from `at`; entries whose record is no longer claimed by this slot are stale and dropped. */
  private popHandoff(out: Int32Array, at: number, max: number): number {
    if (max <= 0) return 0;
    const got = handoffPop(this.keys, this.c, out, at, max);
    const mine = ST_CLAIMED + this.c;
    const state = this.ring.state;
    let m = at;
    for (let i = at, end = at + got; i < end; i++) {
      const u = out[i]!;
      if (Atomics.load(state, u) === mine) out[m++] = u;
    }
    return m - at;
  }

  /**
   * Hand a claimed keyed record to the thread that owns its key: move the
   * claim (CAS of the state byte), push the unit on the owner's queue. Under
   * this thread's guard, with the owner's status and ownership checked inside
   * it: the dispatcher, after it marks a slot IDLE, waits until no guard is
   * SENDING before it resets that slot's queue and recovers it, so a push
   * either lands before that recovery (which takes the record back) or sees
   * the owner gone. When the owner is not running, or the key is moving, the
   * record goes to the dispatcher, which holds it until the key has a running
   * owner. Returns false when the owner's queue is full: the record stays
   * claimed by this loop, to be pushed again.
   */
  private route(u: number, owner: number): boolean {
    const { ring, keys, i32, c } = this;
    const mine = ST_CLAIMED + c;
    if (owner >= 0 && acquireGuard(i32, this.wGuard)) {
      let full = false;
      try {
        if (
          Atomics.load(i32, ring.slotWord(owner, S_STATUS)) === SLOT_RUNNING &&
          Atomics.load(keys, ring.keySlot(u) * KEY_WORDS + K_OWNER) === owner
        ) {
          const theirs = ST_CLAIMED + owner;
          // Written down first: should this thread die before the entry is
          // written, the dispatcher takes the record back and voids the entry (holes.ts).
          const ho = this.wHandoff;
          i32[ho + 1] = owner;
          i32[ho + 2] = Atomics.load(i32, ring.slotWord(owner, S_INCARNATION));
          i32[ho + 3] = -1;
          i32[ho] = u + 1;
          if (Atomics.compareExchange(ring.state, u, mine, theirs) !== mine) {
            i32[ho] = 0;
            return true; // the dispatcher took it from us
          }
          if (faultHook !== null) faultHook('handoff-claimed', owner);
          if (handoffPush(keys, owner, u, i32, ho + 3)) {
            i32[ho] = 0;
            this.handedOff = true;
            return true;
          }
          // The owner cannot have it (no entry was written), so this cannot fail; if it ever did, the record is not ours to keep.
          const back = Atomics.compareExchange(ring.state, u, theirs, mine) === theirs;
          i32[ho] = 0;
          if (!back) return true;
          full = true;
        }
      } finally {
        releaseGuard(i32, this.wGuard);
      }
      if (full) return false;
    }
    if (Atomics.load(ring.state, u) === mine) this.defer(u);
    return true;
  }

  // ---- keyed ordering ----

  /** True unless `unit` is keyed and its key's turn has not come. */
  private isTurn(unit: number, flags: number): boolean {
    if ((flags & FLAG_KEYED) === 0) return true;
    const ring = this.ring;
    return Atomics.load(this.keys, ring.keySlot(unit) * KEY_WORDS + K_DONE) === ring.keySeq(unit);
  }

  /** Hand a keyed record whose turn has not come to the dispatcher, which holds it until it has. */
  private defer(unit: number): void {
    this.post({ type: 'defer', consumer: this.c, incarnation: this.task.incarnation, unit });
  }

  /** Decode a record and call the handler or the actor (both modes). Throws what decoding or a sync handler throws. */
  private invoke(unit: number, flags: number, started: number, keySlot: number): unknown {
    const ring = this.ring;
    const start = ring.payloadStart(unit);
    const payload = this.codec.decode(ring.buf, ring.u8, start, start + ring.payloadBytes(unit), (flags & FLAG_ASCII) !== 0);
    const ctx = new MessageContext(this, ring.id(unit), ring.attempt(unit), ring.key(unit), started);
    if (this.def !== null) return this.actorInvoke(payload, flags, ctx, keySlot);
    if ((flags & FLAG_CALL) !== 0) {
      throw new UnrecoverableError(`mailbox '${this.mailbox}' has a plain handler: actor method calls need an actor(...) module`);
    }
    return this.handler!(payload, ctx);
  }

  /**
   * Write an ask's result to the reply ring (or, if it does not fit, post it).
   * Under the guard: a lease kill never leaves a reply half-written. False
   * when this thread is being revoked (the message runs again elsewhere and
   * that run replies). Throws UnrecoverableError when the codec cannot encode it.
   */
  private reply(unit: number, value: unknown): boolean {
    const codec = this.codec;
    let bytes: number;
    try {
      bytes = codec.prepare(value);
    } catch (err) {
      throw new UnrecoverableError(`the reply cannot be encoded by the ${codec.name} codec: ${(err as Error)?.message ?? err}`, { cause: err });
    }
    const id = this.ring.id(unit);
    const { i32, wGuard } = this;
    if (!acquireGuard(i32, wGuard)) return false;
    let ok = false;
    try {
      ok = this.replies.write(codec, bytes, null, 0, 1, id, 0, 0, codec.ascii);
    } finally {
      releaseGuard(i32, wGuard);
    }
    if (!ok) this.post({ type: 'reply', id, payload: codec.preparedBytes(), ascii: codec.ascii });
    return true;
  }

  // ---- actors: per-key state in the thread that owns the key ----

  private actorInvoke(payload: unknown, flags: number, ctx: MessageContext, keySlot: number): unknown {
    const def = this.def!;
    const key = ctx.key;
    if (key === undefined || keySlot < 0) {
      throw Object.assign(new UnrecoverableError(`mailbox '${this.mailbox}' runs an actor: send with { key } (${ErrorCodes.KEY_REQUIRED})`), {
        code: ErrorCodes.KEY_REQUIRED,
      });
    }
    let method: ((...a: unknown[]) => unknown) | undefined;
    if ((flags & FLAG_CALL) !== 0) {
      const name = Array.isArray(payload) ? payload[0] : undefined;
      const methods = def.methods;
      if (typeof name !== 'string' || methods === undefined || !Object.hasOwn(methods, name)) {
        throw new UnrecoverableError(`the actor of mailbox '${this.mailbox}' has no method ${JSON.stringify(name)}`);
      }
      method = methods[name] as (...a: unknown[]) => unknown;
    } else if (def.handle === undefined) {
      throw new UnrecoverableError(`the actor of mailbox '${this.mailbox}' has no handle(): call its methods through rt.actor()`);
    }
    const e = this.states.get(key);
    if (e !== undefined) return this.runActor(e, payload, method, ctx);
    // The key's passivate hook is still running (it may be saving the state init() will load): wait for it.
    const pending = this.passivating.get(key);
    if (pending !== undefined) return pending.then(() => this.actorInvoke(payload, flags, ctx, keySlot));
    const made = def.init === undefined ? undefined : def.init(key);
    if (isThenable(made)) return Promise.resolve(made).then((st) => this.runActor(this.addState(key, st, keySlot), payload, method, ctx));
    return this.runActor(this.addState(key, made, keySlot), payload, method, ctx);
  }

  private addState(key: string, state: unknown, keySlot: number): StateEntry {
    const e: StateEntry = { state, keySlot, lastUsed: performance.now(), busy: 0 };
    this.states.set(key, e);
    // Counted in the key table: the dispatcher moves a key entry to another thread only when no state of it lives here.
    Atomics.add(this.keys, keySlot * KEY_WORDS + K_STATES, 1);
    this.armSweep();
    return e;
  }

  private runActor(e: StateEntry, payload: unknown, method: ((...a: unknown[]) => unknown) | undefined, ctx: MessageContext): unknown {
    e.busy++;
    let r: unknown;
    try {
      if (method !== undefined) {
        // [name, ...args] -> (state, ...args): the decoded array is ours to reuse.
        (payload as unknown[])[0] = e.state;
        r = method.apply(ctx, payload as unknown[]);
      } else {
        r = this.def!.handle!(e.state, payload, ctx);
      }
    } catch (err) {
      e.busy--;
      e.lastUsed = performance.now();
      throw err;
    }
    if (!isThenable(r)) {
      e.busy--;
      e.lastUsed = performance.now();
      return r;
    }
    return Promise.resolve(r).finally(() => {
      e.busy--;
      e.lastUsed = performance.now();
    });
  }

  /** Passivate idle states every quarter of idleMs (at most once a second). */
  private armSweep(): void {
    const idleMs = this.def!.idleMs ?? 60_000;
    if (this.sweepTimer !== null || !Number.isFinite(idleMs)) return;
    this.sweepTimer = setInterval(() => {
      const t = performance.now();
      for (const [key, e] of this.states) if (e.busy === 0 && t - e.lastUsed >= idleMs) void this.passivate(key, e);
    }, Math.min(1000, Math.max(5, idleMs / 4)));
    this.sweepTimer.unref();
  }

  /** Drop one key's state: the hook first, then the count in the key table (so the key cannot move before the hook is done). */
  private passivate(key: string, e: StateEntry): Promise<void> {
    this.states.delete(key);
    // Registered before the body runs: with no hook (or one that throws at
    // once) the body would otherwise finish, and unregister, before the
    // entry exists, leaving a settled promise that actorInvoke waits on forever.
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    this.passivating.set(key, done);
    void (async () => {
      try {
        const hook = this.def!.passivate;
        if (hook !== undefined) await hook(e.state, key);
      } catch (err) {
        process.emitWarning(`ringpool: passivate() of key ${JSON.stringify(key)} in mailbox '${this.mailbox}' threw: ${(err as Error)?.message ?? err}`);
      } finally {
        if (this.passivating.get(key) === done) this.passivating.delete(key);
        if (!this.statesReleased) Atomics.sub(this.keys, e.keySlot * KEY_WORDS + K_STATES, 1);
        finish();
      }
    })();
    return done;
  }

  /**
   * A retiring loop passivates every state, and waits for hooks already
   * running, for up to leaseMs: a hook that never settles must not keep the
   * keys from moving to the threads left (they are told so in a warning).
   */
  private async passivateAll(): Promise<void> {
    for (const [key, e] of [...this.states]) void this.passivate(key, e);
    const all = Promise.all([...this.passivating.values()]);
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([all.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), this.leaseMs)))]);
    clearTimeout(timer);
    if (late) {
      process.emitWarning(
        `ringpool: ${this.passivating.size} passivate() hook(s) in mailbox '${this.mailbox}' still running after leaseMs (${this.leaseMs} ms); their keys move on without them`,
      );
    }
    this.statesReleased = true;
  }

  /** A failed attempt: the dispatcher decides between retry and dead letter (the record stays claimed until it has). */
  private nack(unit: number, err: unknown): void {
    this.nacked++;
    this.post({ type: 'nack', consumer: this.c, incarnation: this.task.incarnation, unit, error: toErrorInfo(err), unrecoverable: isUnrecoverable(err) });
  }

  /**
   * Ack a record and, if keyed, pass its key's turn on. The slot's KEY_ACK
   * words say a keyed ack is under way, so a thread killed between the ack and
   * the turn does not leave its key stuck: the dispatcher finishes the job.
   */
  private ackRecord(unit: number, keySlot: number): boolean {
    const { ring, i32 } = this;
    if (keySlot < 0) return ring.ack(this.c, unit);
    const seq = ring.keySeq(unit);
    Atomics.store(i32, this.wKeyAckSeq, seq);
    Atomics.store(i32, this.wKeyAckUnit, unit);
    Atomics.store(i32, this.wKeyAck, keySlot + 1);
    const ok = ring.ack(this.c, unit);
    if (ok) {
      const w = keySlot * KEY_WORDS;
      Atomics.compareExchange(this.keys, w + K_DONE, seq, (seq + 1) | 0);
      Atomics.store(i32, this.wKeyAck, 0);
      if (Atomics.load(this.keys, w + K_WAITING) > 0) this.post({ type: 'key-turn', slot: keySlot });
    } else {
      Atomics.store(i32, this.wKeyAck, 0);
    }
    return ok;
  }

  // ---- concurrent mode (concurrency > 1) ----

  /**
   * One step of the concurrent mode: start handlers while fewer than `conc`
   * run, else wait for one to finish. The lease follows the oldest running
   * handler (its start and unit are in the slot), so the watchdog still sees
   * a hung handler. Returns true when the loop must end now (revoked).
   */
  private async concurrentStep(conc: number, out: Int32Array): Promise<boolean> {
    if (this.revoked) return true;
    const room = conc - this.inflight;
    if (room <= 0) {
      await this.completion();
      return this.revoked;
    }
    const n = this.take(out, Math.min(room, out.length));
    if (n === 0 && this.took) {
      const now = performance.now();
      if (now - this.lastYield > YIELD_EVERY_MS) {
        await yieldToLoop();
        this.lastYield = performance.now();
      }
      return this.revoked;
    }
    if (n === 0 && this.stalledN > 0) {
      await Promise.race([this.completion(), sleep(1)]);
      return this.revoked;
    }
    if (n === 0) {
      if (this.inflight > 0) {
        // Handlers are waiting on I/O: look again when one finishes, or in 2 ms.
        await Promise.race([this.completion(), new Promise((r) => setTimeout(r, 2))]);
      } else {
        await this.park();
      }
      return this.revoked;
    }
    const claimedAt = performance.now();
    const record = this.hw!.refresh();
    for (let i = 0; i < n; i++) {
      const unit = out[i]!;
      if ((this.ring.flags(unit) & FLAG_SUSPECT) !== 0) {
        // Back from a crash while several handlers ran: run it alone, so if
        // it is the one that kills the thread, the blame lands on it.
        while (this.inflight > 0) await this.completion();
        if (this.revoked) return true;
        this.startOne(unit, claimedAt, record);
        while (this.inflight > 0) await this.completion();
      } else if (this.startOne(unit, claimedAt, record) && i < n - 1) {
        // An async handler that finished at once (no await inside) acks in a
        // promise reaction: give it that microtask before the next handler
        // starts, so a next one that kills the thread does not take an
        // already finished message down with it (it would run again).
        await undefined;
      }
      if (this.revoked) return true;
    }
    // Sync handlers finish inside startOne: give the event loop (comlink, timers) its turn.
    const now = performance.now();
    if (now - this.lastYield > YIELD_EVERY_MS) {
      await yieldToLoop();
      this.lastYield = performance.now();
    }
    return this.revoked;
  }

  /** Start one handler; true when it returned a promise (it finishes, and acks, in a reaction). */
  private startOne(unit: number, claimedAt: number, record: boolean): boolean {
    const { ring, c } = this;
    const flags = ring.flags(unit);
    if (!this.isTurn(unit, flags)) {
      this.defer(unit);
      return false;
    }
    const started = performance.now();
    const entry: Running = { unit, started, done: false, keySlot: (flags & FLAG_KEYED) !== 0 ? ring.keySlot(unit) : -1, flags };
    this.running_.push(entry);
    if (this.running_.length - this.runningHead === 1) this.setLease(entry);
    const sentAt = record ? ring.sentAt(unit) : 0;
    if (record) observe(this.hw!.f64, blockOffset(c, H_QUEUE_WAIT), this.hw!.bounds, this.hw!.n, Math.max(0, (claimedAt - (ring.readyAt(unit) - origin)) / 1000));
    this.inflight++;
    Atomics.store(this.i32, this.wInflight, this.inflight);
    let result: unknown;
    try {
      result = this.invoke(unit, flags, started, entry.keySlot);
    } catch (err) {
      this.finishOne(entry, sentAt, record, true, err, undefined);
      return false;
    }
    if (isThenable(result)) {
      // Promise.resolve: a thenable that calls back twice, or throws, still finishes exactly once.
      Promise.resolve(result).then(
        (value) => this.finishOne(entry, sentAt, record, false, undefined, value),
        (err: unknown) => this.finishOne(entry, sentAt, record, true, err, undefined),
      );
      return true;
    }
    this.finishOne(entry, sentAt, record, false, undefined, result);
    return false;
  }

  private finishOne(entry: Running, sentAt: number, record: boolean, threw: boolean, err: unknown, value: unknown): void {
    const { ring, i32, c } = this;
    const t = performance.now();
    let dropped = false;
    if (!threw && (entry.flags & FLAG_ASK) !== 0) {
      try {
        // False: this thread is being terminated; the record runs again elsewhere and that run replies.
        dropped = !this.reply(entry.unit, value);
        if (dropped) this.revoked = true;
      } catch (e) {
        threw = true;
        err = e;
      }
    }
    if (dropped) {
      // leave the record to the dispatcher
    } else if (!threw) {
      if (this.ackRecord(entry.unit, entry.keySlot)) {
        Atomics.store(i32, this.wAcked, ++this.acked);
      } else if (Atomics.load(i32, this.wStatus) === SLOT_REVOKED) this.revoked = true;
    } else {
      this.nack(entry.unit, err);
    }
    if (record) {
      const hw = this.hw!;
      observe(hw.f64, blockOffset(c, H_PROCESSING), hw.bounds, hw.n, (t - entry.started) / 1000);
      if (!threw) observe(hw.f64, blockOffset(c, H_END_TO_END), hw.bounds, hw.n, Math.max(0, (origin + t - sentAt) / 1000));
    }
    this.handlerMs = this.handlerMs === 0 ? t - entry.started : this.handlerMs * 0.9 + (t - entry.started) * 0.1;
    this.f64[this.fHandlerMs] = this.handlerMs;
    this.inflight--;
    Atomics.store(i32, this.wInflight, this.inflight);
    entry.done = true;
    // Free ring space as records finish, not only when the thread runs dry.
    if ((++this.finishedCount & 15) === 0 && !this.revoked) ring.reclaim();
    // The lease follows the oldest handler still running.
    const q = this.running_;
    while (this.runningHead < q.length && q[this.runningHead]!.done) this.runningHead++;
    if (this.runningHead === q.length) {
      q.length = 0;
      this.runningHead = 0;
      Atomics.store(i32, this.wCurUnit, -1);
      if (!this.revoked && this.running()) ring.reclaim();
    } else {
      this.setLease(q[this.runningHead]!);
      if (this.runningHead > 64) {
        q.splice(0, this.runningHead);
        this.runningHead = 0;
      }
    }
    const w = this.onCompletion;
    if (w !== null) {
      this.onCompletion = null;
      this.completed = null;
      w();
    }
  }

  private setLease(entry: Running): void {
    this.f64[this.fCurStart] = origin + entry.started;
    Atomics.store(this.i32, this.wCurUnit, entry.unit);
  }

  /** Resolves when the next running handler finishes (one promise shared by every waiter). */
  private completion(): Promise<void> {
    if (this.completed === null) this.completed = new Promise<void>((resolve) => (this.onCompletion = resolve));
    return this.completed;
  }

  /** Publish this loop's handler time and event-loop utilisation to its slot, every ~100 ms. */
  private report(): void {
    const now = performance.now();
    if (now - this.reportedAt < 100) return;
    this.reportedAt = now;
    const elu = performance.eventLoopUtilization();
    // Only a window in which the loop always had work says whether its handlers
    // are CPU- or I/O-bound: a window with parking in it would read as "idle".
    if (this.eluPrev !== null && !this.parkedInWindow) {
      this.f64[this.fElu] = performance.eventLoopUtilization(elu, this.eluPrev).utilization;
    }
    this.eluPrev = elu;
    this.parkedInWindow = false;
  }

  /** Sleep on the wake word until a producer publishes, the slot is stopped, or a timeout. */
  private async park(): Promise<void> {
    const { ring, i32 } = this;
    if (!this.running()) return;
    this.parkedInWindow = true;
    ring.reclaim();
    // Messages arriving every few ms would wake the blocking wait below each
    // time, and the event loop (comlink calls, handler timers, ctx.send's
    // delayed posts) would never run: give it its turn first when it is due.
    if (performance.now() - this.lastYield > YIELD_EVERY_MS) {
      await yieldToLoop();
      this.lastYield = performance.now();
      if (!this.running()) return;
    }
    // Spin a little first: under a stream of sends the next record is usually
    // microseconds away, and a parked consumer costs the producer a futex wake
    // (tens of µs on a send, and the wake-up latency on the message).
    const spinUntil = performance.now() + SPIN_MS;
    const { keys, c } = this;
    for (let k = 1; ; k++) {
      if (ring.hasReady() || handoffReady(keys, c)) return;
      if ((k & 63) === 0 && performance.now() > spinUntil) break;
    }
    Atomics.add(i32, SLEEPERS, 1);
    try {
      const seen = Atomics.load(i32, WAKE);
      // Last look after announcing ourselves: a producer that published before
      // it could see SLEEPERS > 0 left its record for us to find here.
      if (ring.hasReady() || handoffReady(keys, c) || !this.running()) return;
      if (this.inflight === 0) {
        // Nothing of this loop waits on its event loop: block in the futex.
        // A wake-up then costs the futex alone, not also a task through the
        // event loop (Atomics.waitAsync: ~40 µs more at p50 in bench W4).
        // Back to the event loop every PARK_SYNC_MS, for control calls and timers.
        if (Atomics.wait(i32, WAKE, seen, PARK_SYNC_MS) === 'timed-out') {
          await yieldToLoop();
          this.lastYield = performance.now();
        }
      } else {
        const res = Atomics.waitAsync(i32, WAKE, seen, PARK_TIMEOUT_MS);
        if (res.async) {
          await res.value;
          this.lastYield = performance.now();
        }
      }
    } finally {
      Atomics.sub(i32, SLEEPERS, 1);
      ring.wakeConsumed();
    }
  }

  // ---- ContextHost: ctx.send from the handler ----
  send(mailbox: string, payload: unknown, opts?: SendOptions): number {
    let p = this.producers.get(mailbox);
    if (p === undefined) p = this.producerFor(mailbox);
    return p.send(payload, opts);
  }

  private producerFor(mailbox: string): Producer {
    const ref = this.task.rings[mailbox];
    if (ref === undefined) {
      throw new RingpoolError(ErrorCodes.UNKNOWN_MAILBOX, `no mailbox named '${mailbox}'`, { mailbox });
    }
    // A ring of its own even for this mailbox: its reservations are written down (markIn), the loop's claims are not.
    const ring = new Ring(ref.sab);
    ring.markIn(this.i32, this.ring.slotWord(this.c, S_RESV_TAG), ringTag(Object.keys(this.task.rings).indexOf(mailbox), false));
    const p = new Producer(
      mailbox,
      ring,
      this.codecs.get(mailbox)!,
      ref.maxMessageBytes,
      (_p, bytes, ascii, key, delayMs, id, sentAt, keySlot, keySeq) =>
        this.post({ type: 'delayed-send', mailbox, payload: bytes, ascii, key, delayMs, id, sentAt, keySlot, keySeq }),
      mailbox === this.mailbox ? this.keys : new Int32Array(ref.keys),
    );
    p.guard = { i32: this.i32, index: this.ring.slotWord(this.c, S_GUARD) };
    p.closed = this.loopEnded;
    this.producers.set(mailbox, p);
    return p;
  }

  // ---- WorkerControl (comlink) ----
  stop(): WorkerStats {
    this.stopRequested = true;
    this.ring.wakeAll();
    return this.stats();
  }

  stats(): WorkerStats {
    return {
      threadId,
      consumer: this.c,
      incarnation: this.task.incarnation,
      acked: (this.acked - this.ackedBefore) | 0,
      nacked: this.nacked,
      batchSize: this.batch,
      handlerMs: this.handlerMs,
    };
  }
}

/** Piscina task (default export): run one consumer loop until the dispatcher stops it. */
export default async function consumerLoop(task: ConsumerTask): Promise<LoopResult> {
  return new ConsumerLoop(task).run();
}
