/**
 * The consumer loop: a long-lived Piscina task on a worker thread. It claims
 * batches from its mailbox's ring, decodes each message, calls the handler,
 * and acks (a CAS on the record's state byte) or nacks (a one-way event to
 * the dispatcher). It returns when the dispatcher sets its slot to STOP.
 * This file is the loop and the one-at-a-time path; the rest of the thread's
 * work is in this folder: handoff.ts (keyed records), concurrent.ts,
 * actors.ts, park.ts, outbound.ts (ctx.send, replies).
 */
import { threadId } from 'node:worker_threads';
import { isActor } from '../actor.js';
import * as Comlink from '../../runtime/shared/comlink.js';
import { loadCodec, type PayloadCodec } from '../../runtime/shared/codec.js';
import { MsgpackCodec } from '../../runtime/shared/msgpack.js';
import { toErrorInfo } from '../../runtime/shared/errors.js';
import { faultHook } from '../../runtime/shared/faults.js';
import {
  CONCURRENCY_WORD,
  FLAG_ASCII,
  FLAG_ASK,
  FLAG_CALL,
  FLAG_KEYED,
  GUARD_KILLED,
  S_ACKED,
  S_CUR_UNIT,
  S_F64_CUR_START,
  S_F64_ELU,
  S_F64_HANDLER_MS,
  S_GUARD,
  S_HO_UNIT,
  S_INFLIGHT,
  S_KEY_ACK,
  S_KEY_ACK_SEQ,
  S_KEY_ACK_UNIT,
  S_RESV_TAG,
  S_STATUS,
  S_THREAD_ID,
  SLOT_REVOKED,
  SLOT_RUNNING,
} from '../../runtime/shared/layout.js';
import type { BatchOptions, SendOptions } from '../../runtime/shared/producer.js';
import type { ConsumerTask, LoopResult, WorkerControl, WorkerEvent, WorkerStats } from '../../runtime/shared/protocol.js';
import { Ring } from '../../runtime/shared/ring.js';
import { H_END_TO_END, H_PROCESSING, H_QUEUE_WAIT, HistogramWriter, blockOffset, observe } from '../../runtime/shared/histogram.js';
import { MessageContext, type ContextHost, type Handler } from '../context.js';
import { isUnrecoverable, UnrecoverableError } from '../unrecoverable.js';
import { ActorStates, isThenable } from './actors.js';
import { Concurrent } from './concurrent.js';
import { KeyRouter } from './handoff.js';
import { loadHandler } from './load.js';
import { Outbound } from './outbound.js';
import { park, sleep, yieldToLoop, YIELD_EVERY_MS } from './park.js';

/** A batch aims at about this much handler time, so slow handlers do not hoard messages other threads could run. */
const TARGET_BATCH_MS = 1;

const origin = performance.timeOrigin;

export class ConsumerLoop implements ContextHost, WorkerControl {
  readonly mailbox: string;
  readonly leaseMs: number;
  readonly ring: Ring;
  /** This loop's consumer slot. */
  readonly c: number;
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  /** This mailbox's key table (keyed ordering). */
  readonly keys: Int32Array;
  // the slot's words (indices into i32 / f64)
  readonly wStatus: number;
  readonly wCurUnit: number;
  readonly wGuard: number;
  readonly wInflight: number;
  readonly wKeyAck: number;
  readonly wKeyAckSeq: number;
  readonly wKeyAckUnit: number;
  /** The slot's HO_* words: a hand-off push under way (holes.ts). */
  readonly wHandoff: number;
  readonly fCurStart: number;
  private readonly wAcked: number;
  private readonly fHandlerMs: number;
  private readonly fElu: number;
  /** One codec instance per mailbox, loaded at start (custom codecs are modules). */
  readonly codecs = new Map<string, PayloadCodec>();
  codec!: PayloadCodec;
  private handler: Handler | null = null;
  /** Set when the module's default export is an actor definition. */
  private actors: ActorStates | null = null;
  readonly router: KeyRouter;
  readonly conc: Concurrent;
  readonly out: Outbound;
  hw: HistogramWriter | null = null;
  /** When the event loop last had a turn. */
  lastYield = 0;
  /** The loop parked in the current ~100 ms window (its ELU then says nothing about its handlers). */
  parkedInWindow = true;
  /**
   * A send or reply of this loop woke a parked thread since it last parked.
   * The scheduler tends to run the woken thread on the waker's core, so
   * spinning here would hold it off (an ask's reply came ~60 µs late): park
   * at once instead.
   */
  wokeOther = false;
  private acked = 0;
  /** ACKED as this loop found it: the acks of the loops before it in this slot. */
  private readonly ackedBefore: number;
  private nacked = 0;
  /** Claim size; starts small so a slow handler's first batch does not hoard, then follows the handler's speed. */
  private batch = 8;
  private handlerMs = 0;
  private stopRequested = false;
  private reportedAt = 0;
  private eluPrev: ReturnType<typeof performance.eventLoopUtilization> | null = null;

  constructor(readonly task: ConsumerTask) {
    this.mailbox = task.mailbox;
    this.leaseMs = task.leaseMs;
    const ref = task.rings[task.mailbox]!;
    const ring = (this.ring = new Ring(ref.sab));
    const c = (this.c = task.consumer);
    this.i32 = ring.i32;
    this.f64 = ring.f64;
    this.keys = new Int32Array(ref.keys);
    this.wStatus = ring.slotWord(c, S_STATUS);
    this.wCurUnit = ring.slotWord(c, S_CUR_UNIT);
    this.wAcked = ring.slotWord(c, S_ACKED);
    this.wGuard = ring.slotWord(c, S_GUARD);
    this.wInflight = ring.slotWord(c, S_INFLIGHT);
    this.wKeyAck = ring.slotWord(c, S_KEY_ACK);
    this.wKeyAckSeq = ring.slotWord(c, S_KEY_ACK_SEQ);
    this.wKeyAckUnit = ring.slotWord(c, S_KEY_ACK_UNIT);
    this.wHandoff = ring.slotWord(c, S_HO_UNIT);
    this.fCurStart = ring.slotF64(c, S_F64_CUR_START);
    this.fHandlerMs = ring.slotF64(c, S_F64_HANDLER_MS);
    this.fElu = ring.slotF64(c, S_F64_ELU);
    this.router = new KeyRouter(this);
    this.conc = new Concurrent(this);
    this.out = new Outbound(this);
    Atomics.store(this.i32, this.wHandoff, 0);
    Atomics.store(this.i32, ring.slotWord(c, S_RESV_TAG), 0);
    Atomics.store(this.i32, this.wKeyAck, 0);
    Atomics.store(this.i32, this.wInflight, 0);
    // Unknown until the first ~100 ms have been measured (the autoscaler then treats the loop as CPU-bound).
    this.f64[this.fElu] = NaN;
    this.f64[this.fHandlerMs] = 0;
    // The slot's word counts across the loops that ran in it (the dispatcher folds it): this loop's own start from here.
    this.acked = Atomics.load(this.i32, this.wAcked);
    this.ackedBefore = this.acked;
  }

  post(ev: WorkerEvent): void {
    this.task.events.postMessage(ev);
  }

  async run(): Promise<LoopResult> {
    const { task } = this;
    try {
      const h = await loadHandler(task.handlerUrl);
      if (isActor(h)) this.actors = new ActorStates(this, h);
      else this.handler = h;
      for (const [name, ref] of Object.entries(task.rings)) {
        const codec = await loadCodec(ref.codec);
        // An append to a shared msgpack table runs under this thread's guard: a lease kill never leaves it locked.
        if (codec instanceof MsgpackCodec && codec.table !== null) codec.table.guard = { i32: this.i32, index: this.wGuard };
        this.codecs.set(name, codec);
      }
      this.codec = this.codecs.get(task.mailbox)!;
    } catch (err) {
      this.post({ type: 'load-error', consumer: this.c, incarnation: task.incarnation, error: toErrorInfo(err) });
      return { reason: 'load-error', stats: this.stats() };
    }
    Comlink.expose(this, Comlink.endpoint(task.control));
    Atomics.store(this.i32, this.ring.slotWord(this.c, S_THREAD_ID), threadId);
    this.post({ type: 'ready', consumer: this.c, incarnation: task.incarnation, threadId });
    const conc = this.conc;
    try {
      await this.loop();
      // Stopped with handlers still running (concurrent mode): let them finish and ack.
      while (conc.inflight > 0 && !conc.revoked) await conc.completion();
      // Retired (not revoked): the keys' states are dropped with their hooks run; the keys move to other threads.
      if (this.actors !== null && !conc.revoked && Atomics.load(this.i32, this.wStatus) !== SLOT_REVOKED) await this.actors.passivateAll();
    } finally {
      this.actors?.end();
      this.out.end();
      Atomics.store(this.i32, this.wCurUnit, -1);
      task.control.close();
      task.events.close();
    }
    return { reason: 'stopped', stats: this.stats() };
  }

  running(): boolean {
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
    const { ring, i32, f64, c, router } = this;
    const out = new Int32Array(Math.max(1, this.task.batchSize));
    const maxBatch = out.length;
    const again = new Int32Array(maxBatch);
    router.size(maxBatch);
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
      if (conc > 1 || this.conc.inflight > 0) {
        if (await this.conc.step(conc, out)) return;
        continue;
      }
      let n = router.take(out, this.batch);
      if (faultHook !== null && n > 0) faultHook('claimed', n);
      if (n === 0) {
        if (router.took || router.stalledN > 0) {
          // All of it went to the threads that own its keys, or waits for room in an owner's queue.
          if (!router.took) await sleep(1);
          else if (performance.now() - this.lastYield > YIELD_EVERY_MS) await yieldToLoop();
          else continue;
          this.lastYield = performance.now();
          continue;
        }
        // park() keeps lastYield itself: a wake-up from the blocking wait is not an event-loop turn.
        await park(this);
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
          if (!router.isTurn(unit, flags)) {
            if (pass < 2) again[m++] = unit;
            else router.defer(unit);
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
          let ctx: MessageContext | null = null;
          try {
            this.lastCtx = null;
            let result = this.invoke(unit, flags, t, keySlot);
            ctx = this.lastCtx as MessageContext | null; // set by invoke()
            if (isThenable(result)) result = await result;
            // The reply goes out before the ack: a crash in between runs the message again, it never loses the reply.
            if ((flags & FLAG_ASK) !== 0 && !this.out.reply(unit, result)) return;
          } catch (err) {
            threw = true;
            failed = err;
          }
          // Chained work: a ctx.send() to a durable mailbox is on disk before this message counts as acked.
          if (!threw && ctx !== null && ctx.marks !== null) {
            const e = this.out.awaitDurable(ctx.marks);
            if (e !== undefined) {
              threw = true;
              failed = e;
            }
          }
          if (!threw) {
            if (router.ack(unit, keySlot)) this.countAck();
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
        const k = pass === 0 ? router.popHandoff(out, 0, maxBatch - m) : 0;
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

  /** The ctx the last invoke() made (its durable marks are checked before that message's ack). */
  lastCtx: MessageContext | null = null;

  /** Decode a record and call the handler or the actor (both modes). Throws what decoding or a sync handler throws. */
  invoke(unit: number, flags: number, started: number, keySlot: number): unknown {
    const ring = this.ring;
    const start = ring.payloadStart(unit);
    const payload = this.codec.decode(ring.buf, ring.u8, start, start + ring.payloadBytes(unit), (flags & FLAG_ASCII) !== 0);
    const ctx = new MessageContext(this, ring.id(unit), ring.attempt(unit), ring.key(unit), started);
    this.lastCtx = ctx;
    if (this.actors !== null) return this.actors.invoke(payload, flags, ctx, keySlot);
    if ((flags & FLAG_CALL) !== 0) {
      throw new UnrecoverableError(`mailbox '${this.mailbox}' has a plain handler: actor method calls need an actor(...) module`);
    }
    return this.handler!(payload, ctx);
  }

  /** An ack went through: count it in the slot (the dispatcher folds the word). */
  countAck(): void {
    Atomics.store(this.i32, this.wAcked, ++this.acked);
  }

  /** A failed attempt: the dispatcher decides between retry and dead letter (the record stays claimed until it has). */
  nack(unit: number, err: unknown): void {
    this.nacked++;
    this.post({ type: 'nack', consumer: this.c, incarnation: this.task.incarnation, unit, error: toErrorInfo(err), unrecoverable: isUnrecoverable(err) });
  }

  /** One handler's time (concurrent mode): EWMA into the slot, for the autoscaler. */
  observeHandler(ms: number): void {
    this.handlerMs = this.handlerMs === 0 ? ms : this.handlerMs * 0.9 + ms * 0.1;
    this.f64[this.fHandlerMs] = this.handlerMs;
  }

  /** Publish this loop's event-loop utilisation to its slot, every ~100 ms. */
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

  // ---- ContextHost: ctx.send from the handler ----
  send(mailbox: string, payload: unknown, opts: SendOptions | undefined, from: MessageContext): number {
    return this.out.send(mailbox, payload, opts, from);
  }
  sendBatch(mailbox: string, payloads: readonly unknown[], opts: BatchOptions | undefined, from: MessageContext): number[] {
    return this.out.sendBatch(mailbox, payloads, opts, from);
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
