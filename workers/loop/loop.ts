/**
 * The consumer loop: a long-lived Piscina task on a worker thread. It claims
 * batches from its mailbox's ring, decodes each message, calls the handler,
 * and acks (a CAS on the record's state byte) or nacks (a one-way event to
 * the dispatcher). It returns when the dispatcher sets its slot to STOP.
 * This file builds the loop's parts, runs the one-at-a-time path and answers
 * the dispatcher's control calls; the parts are in this folder, each given
 * what it uses (never the loop): tally.ts (acks, nacks, handler time),
 * park.ts (pacing and parking), handoff.ts (keyed records), outbound.ts
 * (ctx.send, replies), actors.ts and invoke.ts (running a record),
 * concurrent.ts (concurrency > 1).
 */
import { Gate } from './gate.js';
import { threadId } from 'node:worker_threads';
import { isActor } from '../actor.js';
import * as Comlink from '../../runtime/shared/comlink.js';
import type { PayloadCodec } from '../../runtime/shared/codec.js';
import { toErrorInfo } from '../../runtime/shared/errors.js';
import { faultHook } from '../../runtime/shared/faults.js';
import { CONCURRENCY_WORD, FLAG_ASK, FLAG_KEYED, GUARD_KILLED, SLOT_REVOKED, SLOT_RUNNING } from '../../runtime/shared/layout.js';
import type { ConsumerTask, LoopResult, WorkerControl, WorkerEvent, WorkerStats } from '../../runtime/shared/protocol.js';
import { FenceView } from '../../runtime/shared/partition.js';
import { Ring } from '../../runtime/shared/ring.js';
import type { SlotView } from '../../runtime/shared/slot.js';
import { H_END_TO_END, H_PROCESSING, H_QUEUE_WAIT, HistogramWriter, blockOffset, observe } from '../../runtime/shared/histogram.js';
import type { Handler, MessageContext } from '../context.js';
import { ActorStates, isThenable } from './actors.js';
import { LaneCodecs, loadCustomCodecs } from './codecs.js';
import { Concurrent } from './concurrent.js';
import { KeyRouter } from './handoff.js';
import { Invoker } from './invoke.js';
import { loadHandler } from './load.js';
import { loadTracing, type ProcessTracer } from './trace.js';
import { Outbound } from './outbound.js';
import { Pace, Parker, sleep, yieldToLoop, YIELD_EVERY_MS, type ParkerParts, type Parks } from './park.js';
import { LoopTally } from './tally.js';

/** A batch aims at about this much handler time, so slow handlers do not hoard messages other threads could run. */
const TARGET_BATCH_MS = 1;

const origin = performance.timeOrigin;

/** What a thread shared by mailboxes gives each of its loops (workers/pool/); a loop of its own thread needs none. */
export interface LoopHooks {
  /** The loop's parker: the pool thread's, which parks the thread only when all its loops wait. */
  parker(parts: ParkerParts): Parks;
  /** Custom codecs, loaded once per thread. */
  customCodecs: Map<string, PayloadCodec>;
  /** After a batch: another loop of this thread has work (the loop then gives the event loop a turn). */
  othersWaiting(): boolean;
  /** The thread's word naming the loop whose handler runs, and this loop's value in it. */
  mark: { i32: Int32Array; index: number; value: number };
}

export class ConsumerLoop implements WorkerControl {
  private readonly ring: Ring;
  /** This loop's consumer slot. */
  private readonly slot: SlotView;
  /** This mailbox's key table (keyed ordering) and hand-off queues. */
  private readonly keys: Int32Array;
  /** One codec instance per mailbox, made on first use (custom codecs are loaded at start). */
  private readonly codecs: LaneCodecs;
  private readonly customCodecs: Map<string, PayloadCodec>;
  private readonly tally: LoopTally;
  private readonly pace = new Pace();
  private readonly parker: Parks;
  private readonly router: KeyRouter;
  private readonly hw: HistogramWriter;
  // Made once the handler module and the codecs are loaded (run()).
  private out!: Outbound;
  private invoker!: Invoker;
  private conc!: Concurrent;
  /** The mailbox's start gate: a rate limit, a pause (gate.ts). */
  private gate!: Gate;
  /** Set when the module's default export is an actor definition. */
  private actors: ActorStates | null = null;
  private tracing: ProcessTracer | null = null;
  /** Claim size; starts small so a slow handler's first batch does not hoard, then follows the handler's speed. */
  private batch = 8;
  private stopRequested = false;
  private reportedAt = 0;
  private eluPrev: ReturnType<typeof performance.eventLoopUtilization> | null = null;
  /** running() for the parts (they are given this function, not the loop). */
  private readonly isRunning = (): boolean => this.running();

  constructor(
    private readonly task: ConsumerTask,
    private readonly hooks: LoopHooks | null = null,
  ) {
    const ref = task.rings[task.mailbox]!;
    const ring = (this.ring = new Ring(ref.sab));
    if (ref.board !== null) ring.attachBoard(ref.board);
    const slot = (this.slot = ring.slot(task.consumer));
    this.keys = new Int32Array(ref.keys);
    const post = (ev: WorkerEvent): void => this.post(ev);
    this.tally = new LoopTally(slot, post, task.incarnation);
    // Parks only inside loop(), once run() has made conc.
    const parts: ParkerParts = { ring, keys: this.keys, c: slot.c, pace: this.pace, running: this.isRunning, inflight: () => this.conc.inflight, busy: () => this.router.heldN > 0 };
    this.parker = hooks !== null ? hooks.parker(parts) : new Parker(parts);
    this.customCodecs = hooks?.customCodecs ?? new Map();
    // An append to a shared msgpack table runs under this thread's guard: a lease kill never leaves it locked.
    this.codecs = new LaneCodecs(task.rings, this.customCodecs, { i32: slot.i32, index: slot.guardWord });
    this.router = new KeyRouter(ring, this.keys, slot, post, task.incarnation);
    this.hw = new HistogramWriter(task.metricsSab);
    slot.resetForLoop();
    // Unknown until the first ~100 ms have been measured (the autoscaler then treats the loop as CPU-bound).
    slot.setElu(NaN);
    slot.setHandlerMs(0);
  }

  private post(ev: WorkerEvent): void {
    this.task.events.postMessage(ev);
  }

  async run(): Promise<LoopResult> {
    const { task, slot } = this;
    let handler: Handler | null = null;
    try {
      // The setup module first: instrumentations it registers patch what the handler imports.
      this.tracing = await loadTracing(task.tracing);
      const h = await loadHandler(task.handlerUrl);
      const fence = task.rings[task.mailbox]!.fence;
      if (isActor(h)) this.actors = new ActorStates(h, task.mailbox, this.keys, task.leaseMs, fence === null ? null : new FenceView(fence));
      else handler = h;
      await loadCustomCodecs(task.rings, this.customCodecs);
    } catch (err) {
      this.post({ type: 'load-error', consumer: slot.c, incarnation: task.incarnation, error: toErrorInfo(err) });
      return { reason: 'load-error', stats: this.stats() };
    }
    const post = (ev: WorkerEvent): void => this.post(ev);
    const out = (this.out = new Outbound(task.mailbox, task.leaseMs, task.rings, this.keys, slot, this.codecs, post, this.pace));
    out.tracing = task.tracing !== null;
    const fence = task.rings[task.mailbox]!.fence;
    this.invoker = new Invoker(this.ring, this.codecs.get(task.mailbox)!, out, handler, this.actors, this.hooks?.mark ?? null, fence === null ? null : new FenceView(fence), this.tracing);
    this.gate = new Gate(this.ring.i32, this.slot.c);
    const conc = (this.conc = new Concurrent({
      gate: this.gate,
      ring: this.ring,
      slot,
      router: this.router,
      invoker: this.invoker,
      out,
      tally: this.tally,
      hw: this.hw,
      pace: this.pace,
      parker: this.parker,
      running: this.isRunning,
    }));
    Comlink.expose(this, Comlink.endpoint(task.control));
    slot.setThreadId(threadId);
    this.post({ type: 'ready', consumer: slot.c, incarnation: task.incarnation, threadId });
    try {
      await this.loop();
      // Stopped with handlers still running (concurrent mode): let them finish and ack.
      while (conc.inflight > 0 && !conc.revoked) await conc.completion();
      // Retired (not revoked): the keys' states are dropped with their hooks run; the keys move to other threads.
      if (!conc.revoked && slot.status() !== SLOT_REVOKED) {
        // Stopped: keyed records it kept for their turn go to the dispatcher, which holds them until their key has an owner.
        this.router.deferHeld();
        if (this.actors !== null) await this.actors.passivateAll();
      }
    } finally {
      this.actors?.end();
      out.end();
      slot.clearCurrent();
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
    const slot = this.slot;
    if (slot.guard() === GUARD_KILLED) return false;
    const s = slot.status();
    return s === SLOT_RUNNING || s === SLOT_REVOKED;
  }

  private async loop(): Promise<void> {
    const { ring, slot, router, invoker, out: outbound, tally, pace, hw, gate } = this;
    const i32 = ring.i32;
    const c = slot.c;
    const out = new Int32Array(Math.max(1, this.task.batchSize));
    const maxBatch = out.length;
    const again = new Int32Array(maxBatch);
    router.size(maxBatch);
    this.batch = Math.min(this.batch, maxBatch);
    pace.lastYield = performance.now();
    const h64 = hw.f64;
    const qBase = blockOffset(c, H_QUEUE_WAIT);
    const pBase = blockOffset(c, H_PROCESSING);
    const eBase = blockOffset(c, H_END_TO_END);
    while (this.running()) {
      this.report();
      // Messages in flight per thread: 1 runs the batch one by one (the fast
      // path); more runs async handlers side by side (I/O-bound mailboxes), as does adaptive concurrency.
      const conc = Atomics.load(i32, CONCURRENCY_WORD);
      if (conc > 1 || this.conc.inflight > 0 || gate.adaptive) {
        if (await this.conc.step(conc, out)) return;
        continue;
      }
      // The start gate (a rate limit, a pause): claim only what may start now; held back, messages stay in the ring.
      const allow = gate.take(this.batch);
      if (allow === 0) {
        await gate.wait(false);
        continue;
      }
      let n = router.take(out, allow);
      gate.refund(allow - n);
      if (faultHook !== null && n > 0) faultHook('claimed', n);
      if (n === 0) {
        if (router.took || router.stalledN > 0) {
          // All of it went to the threads that own its keys, or waits for room in an owner's queue.
          if (!router.took) await sleep(1);
          else if (performance.now() - pace.lastYield > YIELD_EVERY_MS) await yieldToLoop();
          else continue;
          pace.lastYield = performance.now();
          continue;
        }
        // park() keeps lastYield itself: a wake-up from the blocking wait is not an event-loop turn.
        await this.parker.park();
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
      // The first pass's records are this loop's claims: a copying codec (raw) copies their payloads in one call.
      invoker.span(out, n);
      for (let pass = 0; n > 0; pass++) {
        let m = 0;
        for (let i = 0; i < n; i++) {
          const unit = out[i]!;
          const flags = ring.flags(unit);
          if (!router.isTurn(unit, flags)) {
            if (pass < 2) again[m++] = unit;
            else router.hold(unit);
            continue;
          }
          ran++;
          const keySlot = (flags & FLAG_KEYED) !== 0 ? ring.keySlot(unit) : -1;
          // The lease: its start, then the unit (SlotView.running).
          slot.running(unit, origin + t);
          // Read before the handler runs: once acked, another loop may reclaim the record.
          const sentAt = record ? ring.sentAt(unit) : 0;
          if (record) observe(h64, qBase, hw.bounds, hw.n, Math.max(0, (origin + batchStart - ring.readyAt(unit)) / 1000));
          const started = t;
          let failed: unknown = undefined;
          let threw = false;
          let ctx: MessageContext | null = null;
          try {
            ctx = invoker.context(unit, t);
            let result = invoker.invoke(unit, flags, ctx, keySlot);
            if (isThenable(result)) result = await result;
            // The reply goes out before the ack: a crash in between runs the message again, it never loses the reply.
            if ((flags & FLAG_ASK) !== 0 && !outbound.reply(ring.id(unit), result)) return;
          } catch (err) {
            threw = true;
            failed = err;
          }
          // Chained work: a ctx.send() to a durable mailbox is on disk, one to a Redis mailbox in Redis, before this message counts as acked.
          const chained = ctx === null ? 0 : outbound.streams.flush(ctx);
          if (!threw && ctx !== null && ctx.marks !== null) {
            const e = outbound.awaitDurable(ctx.marks);
            if (e !== undefined) {
              threw = true;
              failed = e;
            }
          }
          if (!threw && chained !== 0) {
            const e = await outbound.streams.wait(chained, outbound.leaseMs - (performance.now() - started));
            if (e !== undefined) {
              threw = true;
              failed = e;
            }
          }
          if (!threw) {
            if (router.ack(unit, keySlot)) tally.countAck();
            // The dispatcher took the record back (lease expired) and this thread
            // is about to be terminated: touch nothing shared any more.
            else if (slot.status() === SLOT_REVOKED) return;
          } else {
            tally.nack(unit, failed);
          }
          t = performance.now();
          if (record) {
            observe(h64, pBase, hw.bounds, hw.n, (t - started) / 1000);
            if (!threw) observe(h64, eBase, hw.bounds, hw.n, Math.max(0, (origin + t - sentAt) / 1000));
          }
        }
        // Later passes may hold records handed over since, written after the span was copied.
        if (pass === 0) invoker.endSpan();
        if (m === 0) break;
        const k = pass === 0 ? router.popHandoff(out, 0, maxBatch - m) : 0;
        for (let j = 0; j < m; j++) out[k + j] = again[j]!;
        n = k + m;
      }
      slot.clearCurrent();
      ring.reclaim();
      // Adapt the batch to the handler's speed (EWMA of per-message time).
      if (ran > 0) {
        tally.observeBatch((t - batchStart) / ran);
        this.batch = Math.max(1, Math.min(maxBatch, Math.floor(TARGET_BATCH_MS / Math.max(tally.handlerMs, 1e-6))));
      }
      if (t - pace.lastYield > YIELD_EVERY_MS || (this.hooks !== null && this.hooks.othersWaiting())) {
        await yieldToLoop();
        pace.lastYield = performance.now();
      }
    }
  }

  /** Publish this loop's event-loop utilisation to its slot, every ~100 ms. */
  private report(): void {
    const now = performance.now();
    if (now - this.reportedAt < 100) return;
    this.reportedAt = now;
    const elu = performance.eventLoopUtilization();
    // Only a window in which the loop always had work says whether its handlers
    // are CPU- or I/O-bound: a window with parking in it would read as "idle".
    if (this.eluPrev !== null && !this.pace.parkedInWindow) {
      this.slot.setElu(performance.eventLoopUtilization(elu, this.eluPrev).utilization);
    }
    this.eluPrev = elu;
    this.pace.parkedInWindow = false;
  }

  // ---- WorkerControl (comlink) ----
  stop(): WorkerStats {
    this.stopRequested = true;
    this.ring.wakeAll();
    return this.stats();
  }

  stats(): WorkerStats {
    return this.tally.stats(threadId, this.batch);
  }
}
