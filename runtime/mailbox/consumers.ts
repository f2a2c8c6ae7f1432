/**
 * A mailbox's consumer loops (main thread): starting one in a free slot on
 * the threads it is given (a LaneHost: the runtime's shared pool, or threads
 * of its own; runtime/pool/), stopping it, and retiring its slot when the
 * loop ends (a stop, a crash, a lease kill): what the slot still holds is
 * taken back, its keys move on, and the loops are filled to the desired count.
 * It knows no mailbox: what it uses is given (ConsumersDeps), and what it
 * tells (a loop's events, the probe's answer, slots that changed) goes up
 * through callbacks the wiring passes in.
 */
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import * as Comlink from '../shared/comlink.js';
import { codecSpec } from '../shared/codec.js';
import { ErrorCodes, RingpoolError, type ErrorInfo } from '../shared/errors.js';
import {
  ACTOR_WORD,
  GUARD_FREE,
  GUARD_SENDING,
  HANDOFF_WORDS,
  MAX_CONSUMERS,
  SLOT_IDLE,
  SLOT_RUNNING,
  SLOT_STOP,
  handoffBase,
} from '../shared/layout.js';
import type { ConsumerTask, LoopResult, ProbeResult, WorkerControl, WorkerEvent, WorkerStats } from '../shared/protocol.js';
import { LaneLost } from '../pool/shared.js';
import { handlerLoadError, withTimeout, type LaneHost } from '../pool/threads.js';
import { releaseOwner } from '../key-owners.js';
import { LoadBackoff } from './load-backoff.js';
import { whenGuardsFree, type GuardWaitHost } from './guard-wait.js';
import type { ResolvedMailbox } from '../mailbox-options.js';
import type { Ring } from '../shared/ring.js';
import type { RingRef } from '../shared/protocol.js';
import type { Counters } from './counters.js';
import type { Failures } from './failures.js';
import type { KeyTurns } from './key-turns.js';
import type { ConsumerState, WorkerCrashEvent } from './types.js';

export interface ConsumersDeps {
  mailbox: string;
  opts: Pick<ResolvedMailbox, 'minThreads' | 'handlerUrl' | 'codec' | 'leaseMs' | 'batchSize' | 'tracing'>;
  /** The threads its loops run on, made at start() (the runtime's shared pool, or its own). */
  threads: () => LaneHost;
  ring: Ring;
  /** The key table: a retired slot's hand-off queue and its keys are cleared there. */
  keys: Int32Array;
  /** Histogram blocks the loops write. */
  metricsSab: SharedArrayBuffer;
  /** Every mailbox's rings, for a loop's ctx.send() (the runtime's). */
  ringRefs: () => Record<string, RingRef>;
  /** Threads wanted now (scaling.ts). */
  desired: () => number;
  stopped: () => boolean;
  /** The runtime runs (not starting, not closed): a retired slot is filled again. */
  running: () => boolean;
  turns: Pick<KeyTurns, 'finishKeyAck'>;
  failures: Pick<Failures, 'recover'>;
  tally: Pick<Counters, 'workerCrashes'>;
  /** Up: what a loop reports on its event port (index.ts routes it). */
  onEvent: (c: Consumer, ev: WorkerEvent) => void;
  /** Up: what the probe found (an actor module and its methods), before any loop starts. */
  onProbe: (info: ProbeResult) => void;
  /** Up: a loop started or a slot was retired: keys need owners (owners.ts). */
  onSlotsChanged: () => void;
  /** Up: a thread died inside its send guard: repair what it left (holes.ts, the structure tables). */
  onDeathInGuard: (slot: number, threadId: number) => void;
  /** A loop's thread is gone: what its slot held of the mailbox (an adaptive limit's places) goes back. */
  onLoopGone: (slot: number) => void;
  emitWorkerCrash(ev: WorkerCrashEvent): void;
  emitError(err: Error): void;
}


export type { ConsumerState } from './types.js';

export interface Consumer {
  slot: number;
  incarnation: number;
  state: ConsumerState;
  threadId: number;
  control: Comlink.Remote<WorkerControl>;
  controlPort: MessagePort;
  events: MessagePort;
  ready: Promise<void>;
  onReady: (err?: Error) => void;
  done: Promise<void>;
  /** After a lease kill: resolves when that thread has exited (the slot is not reused before). */
  exited: Promise<unknown> | null;
  /** The record the lease watchdog took back from this loop (-1: none). */
  revokedUnit: number;
  /**
   * Its lease expired while several handlers ran on it: the one that blocked
   * the thread may be any of them (a busy loop in a younger handler starves
   * the oldest, whose lease then runs out), so none is charged and all go back
   * flagged to run alone, as after a crash with several in flight.
   */
  revokedSeveral: boolean;
  /** Its loop ended without loading the handler. */
  loadFailed?: boolean;
}

export class Consumers {
  private pool: LaneHost | null = null;
  private readonly consumers = new Map<number, Consumer>();
  private readonly slotBusy = new Uint8Array(MAX_CONSUMERS);
  private incarnations = 0;
  /** Slots that ever ran a loop are below this (counters.ts reads their ack words only). */
  slotsUsed = 0;

  constructor(private readonly m: ConsumersDeps) {
    this.guards = {
      ring: m.ring,
      mailbox: m.mailbox,
      stopped: () => m.stopped(),
      emitError: (err) => m.emitError(err),
      live: (s) => this.slotBusy[s] !== 0 && this.consumers.get(s)?.state !== 'dead',
    };
  }

  all(): IterableIterator<Consumer> {
    return this.consumers.values();
  }

  get(slot: number): Consumer | undefined {
    return this.consumers.get(slot);
  }

  /** Start the pool, probe the handler module (what it is, whether it loads), start minThreads loops. */
  async start(timeoutMs: number): Promise<ProbeResult> {
    const m = this.m;
    const o = m.opts;
    this.pool = m.threads();
    const info = await withTimeout(
      this.pool.probe({ handlerUrl: o.handlerUrl, codec: codecSpec(o.codec) }),
      timeoutMs,
      () => handlerLoadError(m.mailbox, o.handlerUrl, new Error(`loading took longer than startTimeoutMs (${timeoutMs} ms)`)),
    ).catch((err: unknown) => {
      if (err instanceof RingpoolError && err.code === ErrorCodes.HANDLER_LOAD && err.details.mailbox === m.mailbox) throw err;
      throw handlerLoadError(m.mailbox, o.handlerUrl, err);
    });
    m.onProbe(info);
    // Every thread's send path refuses a message without a key to an actor (shared word, read only then).
    Atomics.store(m.ring.i32, ACTOR_WORD, info.actor ? 1 : 0);
    const starting: Promise<void>[] = [];
    for (let i = 0; i < o.minThreads; i++) {
      const c = this.startOne();
      if (c) starting.push(c.ready);
    }
    await withTimeout(Promise.all(starting), timeoutMs, () =>
      handlerLoadError(m.mailbox, o.handlerUrl, new Error(`threads not ready within startTimeoutMs (${timeoutMs} ms)`)),
    );
    return info;
  }

  private startOne(): Consumer | null {
    const m = this.m;
    const pool = this.pool;
    if (pool === null || m.stopped()) return null;
    const slot = this.slotBusy.indexOf(0);
    if (slot < 0) return null;
    this.slotBusy[slot] = 1;
    if (slot >= this.slotsUsed) this.slotsUsed = slot + 1;
    const ring = m.ring;
    const incarnation = ++this.incarnations;
    const view = ring.slot(slot);
    view.setIncarnation(incarnation);
    view.setChain(0, 0); // its chained sends are numbered from 1 (chained.ts)
    view.clearCurrent();
    view.setGuard(GUARD_FREE);
    view.setPoolThread(-1); // the shared pool names its thread when it places the loop
    view.setStatus(SLOT_RUNNING);
    const ctl = new MessageChannel();
    const ev = new MessageChannel();
    let onReady!: (err?: Error) => void;
    const ready = new Promise<void>((resolve, reject) => {
      onReady = (err) => (err ? reject(err) : resolve());
    });
    ready.catch(() => {});
    const consumer: Consumer = {
      slot,
      incarnation,
      state: 'starting',
      threadId: -1,
      control: Comlink.wrap<WorkerControl>(Comlink.endpoint(ctl.port1)),
      controlPort: ctl.port1,
      events: ev.port1,
      ready,
      onReady,
      done: Promise.resolve(),
      exited: null,
      revokedUnit: -1,
      revokedSeveral: false,
    };
    void ready.then(() => this.loads.loaded(), () => undefined);
    ev.port1.on('message', (e: WorkerEvent) => m.onEvent(consumer, e));
    ev.port1.unref();
    ctl.port1.unref();
    const task: ConsumerTask = {
      mailbox: m.mailbox,
      consumer: slot,
      incarnation,
      handlerUrl: m.opts.handlerUrl,
      leaseMs: m.opts.leaseMs,
      batchSize: m.opts.batchSize,
      rings: m.ringRefs(),
      metricsSab: m.metricsSab,
      control: ctl.port2,
      events: ev.port2,
      tracing: m.opts.tracing,
    };
    const run = pool.run(task, [ctl.port2, ev.port2], (exit) => (consumer.exited = exit));
    if (run === null) {
      // No thread can take another loop of this mailbox now (the shared pool is at its size).
      view.setStatus(SLOT_IDLE);
      this.slotBusy[slot] = 0;
      ctl.port1.close();
      ev.port1.close();
      return null;
    }
    this.consumers.set(slot, consumer);
    m.onSlotsChanged();
    consumer.done = run.then(
      (r: LoopResult) => this.onLoopEnd(consumer, null, r),
      (err: Error) => this.onLoopEnd(consumer, err, null),
    );
    return consumer;
  }

  private stopOne(c: Consumer): void {
    if (c.state === 'stopping' || c.state === 'revoked' || c.state === 'dead') return;
    c.state = 'stopping';
    // The shared flag reaches a loop parked on the wake word or busy in a batch;
    // the comlink call is the control plane's record of it (and wakes the loop's event loop).
    this.m.ring.slot(c.slot).setStatus(SLOT_STOP);
    this.m.ring.wakeAll();
    c.control.stop().catch(() => {});
  }

  /** After a lease kill: terminate the loop's thread (its slot is reused only once that thread is gone). */
  terminate(c: Consumer): void {
    const exited = this.pool?.terminate(c.threadId, c.slot) ?? null;
    if (exited !== null) c.exited = exited;
  }

  /** On a shared thread: another mailbox's handler holds the thread that runs `c` (leases.ts charges nobody then). */
  blockedByOther(c: Consumer): boolean {
    return this.pool?.runsOther?.(c.slot) ?? false;
  }

  /** Per-thread figures, asked of each running loop over its comlink control port. */
  async workerStats(): Promise<WorkerStats[]> {
    const live = [...this.consumers.values()].filter((c) => c.state === 'running');
    // A thread that dies mid-call never answers: bound each call.
    const settled = await Promise.allSettled(live.map((c) => withTimeout(c.control.stats(), 2_000, () => new Error('no answer'))));
    return settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  }

  private onLoopEnd(c: Consumer, err: Error | null, result: LoopResult | null): void {
    if (result?.reason === 'load-error') {
      c.loadFailed = true;
      c.onReady(handlerLoadError(this.m.mailbox, this.m.opts.handlerUrl, new Error('handler failed to load in a consumer thread')));
    }
    // A revoked loop may have returned by itself just before the kill landed:
    // never hand its slot (or its Piscina worker) to a new loop before that thread is gone.
    if (c.exited !== null) void c.exited.then(() => this.retire(c, err));
    else this.retire(c, err);
  }

  /** The loop of `c` is over: take back what its slot still holds, free the slot, replace it if needed. */
  private retire(c: Consumer, err: Error | null): void {
    const m = this.m;
    const ring = m.ring;
    // Events the loop posted before it ended are queued on the port: handle
    // them first (a delayed ctx.send must not be lost, a nack not forgotten).
    for (let e = receiveMessageOnPort(c.events); e !== undefined; e = receiveMessageOnPort(c.events)) {
      m.onEvent(c, e.message as WorkerEvent);
    }
    // Shutting down (close() past its deadline, destroy()): not a crash; what it held stays as leftovers.
    // A lane of a shared thread that died of another lane's fault (LaneLost.collateral) is not a crash of its own.
    const lost = err instanceof LaneLost ? err : null;
    const crashed = err !== null && c.state !== 'revoked' && !m.stopped() && lost?.collateral !== true;
    // With several handlers running at the crash, nobody can tell which one
    // killed the thread: none is charged an attempt; all come back flagged to
    // run alone, so a second crash is blamed on the right one.
    const several = crashed && (ring.slot(c.slot).inflight() > 1 || lost?.several === true);
    const current = crashed && !several ? ring.slot(c.slot).currentUnit() : -1;
    c.state = 'dead';
    // Not RUNNING any more before anything is taken back: a thread handing a
    // keyed record to this slot checks that under its guard (route()), so once
    // no guard is SENDING, no push to this slot is under way or can start.
    ring.slot(c.slot).setStatus(SLOT_IDLE);
    whenGuardsFree(this.guards, c.slot, -1, () => this.finishRetire(c, err, crashed, several, current));
  }

  private finishRetire(c: Consumer, err: Error | null, crashed: boolean, several: boolean, current: number): void {
    const m = this.m;
    const ring = m.ring;
    // An empty hand-off queue for the slot (a kill may have cut a pop short).
    const base = handoffBase(c.slot);
    m.keys.fill(0, base, base + HANDOFF_WORDS);
    // Its keys have no owner now (their state died with the thread, or was passivated as it stopped).
    releaseOwner(m.keys, c.slot);
    const info: ErrorInfo = {
      name: 'WorkerCrash',
      message: `worker thread ${c.threadId} died while handling this message: ${err?.message ?? 'unknown'}`,
    };
    // A thread that died inside its guard left a write half done: repair it (holes.ts).
    if (!m.stopped() && ring.slot(c.slot).guard() === GUARD_SENDING) {
      m.onDeathInGuard(c.slot, c.threadId);
    }
    // Before recovery: a record still CLAIMED by the slot then means "not acked".
    m.turns.finishKeyAck(c.slot, c.revokedUnit);
    const back = m.failures.recover(c.slot, current, info, several || c.revokedSeveral);
    c.onReady(err ?? new Error('the consumer loop ended before it was ready'));
    if (crashed) {
      m.tally.workerCrashes++;
      m.emitWorkerCrash({ mailbox: m.mailbox, threadId: c.threadId, error: info, redelivered: back });
    }
    ring.slot(c.slot).setStatus(SLOT_IDLE);
    ring.slot(c.slot).clearCurrent();
    this.m.onLoopGone(c.slot);
    this.consumers.delete(c.slot);
    this.slotBusy[c.slot] = 0;
    c.controlPort.close();
    c.events.close();
    // Its keys go to the threads left (their state died with it, or was passivated as it stopped).
    m.onSlotsChanged();
    if (m.stopped() || !m.running()) return;
    if (c.loadFailed !== true) return this.fillToDesired();
    // Mid-run (a replacement thread, files changed under the process): said, and tried again later; the messages wait in the ring.
    const ms = this.loads.failed(performance.now());
    m.emitError(handlerLoadError(m.mailbox, m.opts.handlerUrl, new Error(`a consumer thread could not load it (were its files changed under the running process? a thread that failed to import a module keeps failing it: restart the process once they are whole); its messages wait in the ring, a new loop is tried in ${ms} ms`)));
    setTimeout(() => {
      if (!m.stopped() && m.running()) this.fillToDesired();
    }, ms).unref();
  }

  /** After loops failed to load their handler mid-run: when the next may start (load-backoff.ts). */
  private readonly loads = new LoadBackoff();
  /** What the guard wait looks at (guard-wait.ts): the slots whose loop is not retired yet. */
  private readonly guards: GuardWaitHost;

  /** Whether a live loop of this mailbox is inside its guard now. */
  guardHeld(): boolean {
    const ring = this.m.ring;
    for (const c of this.consumers.values()) {
      if (c.state !== 'dead' && ring.slot(c.slot).guard() === GUARD_SENDING) return true;
    }
    return false;
  }

  runningCount(): number {
    let n = 0;
    for (const c of this.consumers.values()) if (c.state === 'running' || c.state === 'starting') n++;
    return n;
  }

  /** Start or stop loops until as many run as the scaler wants. */
  fillToDesired(): void {
    const desired = this.m.desired();
    let running = this.runningCount();
    while (running < desired && this.loads.mayStart(performance.now()) && this.startOne() !== null) running++;
    if (running > desired) {
      for (const c of [...this.consumers.values()].reverse()) {
        if (running <= desired) break;
        if (c.state === 'running') {
          this.stopOne(c);
          running--;
        }
      }
    }
  }

  /** Ask every loop to return after its batch; wait up to `graceMs`. */
  async stopAll(graceMs: number): Promise<void> {
    for (const c of this.consumers.values()) this.stopOne(c);
    const all = Promise.all([...this.consumers.values()].map((c) => c.done));
    await Promise.race([all, new Promise((r) => setTimeout(r, graceMs).unref())]);
  }

  /** Terminate the threads now. */
  async destroy(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    if (pool !== null) await pool.destroy();
  }
}
