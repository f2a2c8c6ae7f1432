/**
 * The dispatcher of one mailbox (main thread): its ring, its Piscina pool and
 * consumer loops, lease watchdog, retry scheduler, redelivery, dead letters,
 * overflow waiters and counters.
 */
import { once } from 'node:events';
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import * as Comlink from './shared/comlink.js';
import { builtinCodec, codecSpec, CustomCodec, type PayloadCodec } from './shared/codec.js';
import { now } from './shared/clock.js';
import { ErrorCodes, RingpoolError, fromErrorInfo, safeString, type ErrorInfo } from './shared/errors.js';
import {
  CLAIMED,
  ACTOR_WORD,
  HELD_UNITS_WORD,
  CONCURRENCY_WORD,
  ENQUEUED,
  PUBLISHED,
  HEAD,
  ST_FREE,
  GUARD_FREE,
  GUARD_KILLED,
  GUARD_REVOKED,
  GUARD_SENDING,
  MAX_CONSUMERS,
  READ,
  REJECTED_BASE,
  REJECT_REASONS,
  S_ACKED,
  S_CUR_UNIT,
  S_F64_CUR_START,
  S_F64_ELU,
  S_F64_HANDLER_MS,
  S_GUARD,
  S_INCARNATION,
  S_INFLIGHT,
  S_KEY_ACK,
  S_KEY_ACK_SEQ,
  S_KEY_ACK_UNIT,
  S_STATUS,
  SLOT_IDLE,
  SLOT_REVOKED,
  SLOT_RUNNING,
  SLOT_STOP,
  SPACE_SEQ,
  SPACE_WAITERS,
  ST_CLAIMED,
  allocateKeyTable,
  keySlotOf,
  KEY_WORDS,
  K_DONE,
  K_WAITING,
  K_SENT,
  K_OWNER,
  HANDOFF_WORDS,
  handoffBase,
  ST_HELD,
  ST_READY,
  ST_RECLAIMING,
  ST_SKIP,
  TAIL,
  type RejectReason,
} from './shared/layout.js';
import { Producer, type SendOptions } from './shared/producer.js';
import type { ConsumerTask, LoopResult, ProbeResult, RingRef, WorkerControl, WorkerEvent, WorkerStats } from './shared/protocol.js';
import { assignKeyOwners, releaseOwner } from './key-owners.js';
import { REPLY_RING_BYTES, Replies } from './replies.js';
import { Ring } from './shared/ring.js';
import { DeadLetterStore, type DeadLetter, type DeadLetterReason } from './dead-letters.js';
import { HeldMessage } from './held.js';
import { HoleRepairs } from './holes.js';
import type { ResolvedAutoscale, ResolvedMailbox } from './options.js';
import { autoscaleDefaults, decide, type Recommendation } from './autoscale-policy.js';
import { backoffDelay, TimerHeap, timerDelay } from './timer-heap.js';
import {
  allocateMetricsBuffer,
  enableRecording,
  H_END_TO_END,
  H_PROCESSING,
  H_QUEUE_WAIT,
  LocalHistogram,
  readHistogram,
  type HistogramSnapshot,
} from './shared/histogram.js';

const CONSUMER_URL = new URL('../workers/consumer.js', import.meta.url);
/** How long READ may sit on an unpublished record before the runtime reports it. */
const STALL_REPORT_MS = 5_000;
/** A live loop inside its send guard is waited for this long at most before a slot is retired anyway (see whenGuardsFree). */
const GUARD_GIVE_UP_MS = 10_000;

/** What the mailbox needs from its runtime. */
export interface MailboxHost {
  ringRefs(): Record<string, RingRef>;
  mailbox(name: string): Mailbox | undefined;
  /** The mailbox at `index` in the runtime's order (ring tags, holes.ts). */
  mailboxAt(index: number): Mailbox | undefined;
  /** Whether a live thread of any mailbox is inside its guard now. */
  guardsHeld(): boolean;
  running(): boolean;
  emitDeadLetter(letter: DeadLetter): void;
  emitWorkerCrash(ev: WorkerCrashEvent): void;
  emitHandlerTimeout(ev: HandlerTimeoutEvent): void;
  emitScale(ev: ScaleEvent): void;
  emitError(err: Error): void;
}

export interface WorkerCrashEvent {
  mailbox: string;
  threadId: number;
  error: ErrorInfo;
  /** Message ids put back (the one whose handler ran is retried or dead-lettered). */
  redelivered: number;
}

export interface ScaleEvent {
  mailbox: string;
  /** Desired threads before and after. */
  from: number;
  to: number;
  /** Messages in flight per thread after the decision. */
  concurrency: number;
  reason: string;
}

export interface HandlerTimeoutEvent {
  mailbox: string;
  id: number;
  attempt: number;
  leaseMs: number;
  threadId: number;
}

/** `rt.stats(mailbox)`. Counters count since the runtime was created. */
export interface MailboxStats {
  /** Ready messages not yet claimed (including redeliveries waiting for room). */
  depth: number;
  /** Claimed by a thread, not yet acked or failed. */
  inFlight: number;
  /** Waiting for a retry backoff or a delayMs. */
  delayed: number;
  /** Accepted sends (first sends and redriven dead letters; not retries). */
  enqueued: number;
  /** Messages whose handler succeeded (acked). */
  processed: number;
  /** Failed attempts: handler threw, its thread crashed, or its lease expired. */
  failed: number;
  /** Failed attempts scheduled again. */
  retried: number;
  /** Messages put back after a thread crash or lease expiry (the running one and its unstarted batch). */
  redelivered: number;
  /** Messages moved to the dead-letter store (all time). */
  deadLettered: number;
  deadLetteredBy: Record<DeadLetterReason, number>;
  /** Refused sends (full, too large, unserializable, closed). */
  rejected: number;
  rejectedBy: Record<RejectReason, number>;
  /** Consumer threads running now. */
  threads: number;
  desiredThreads: number;
  minThreads: number;
  maxThreads: number;
  /** Age of the oldest ready message (time since it became ready), seconds; 0 when none. */
  oldestAgeSeconds: number;
  /** depth / recent drain rate (EWMA over ~5 s), seconds; with no drain yet, the oldest age. */
  estimatedLagSeconds: number;
  /** Messages acked per second, EWMA over ~5 s. */
  drainRate: number;
  /** Thread-count decisions taken, by direction. */
  scaleDecisions: { up: number; down: number };
  /** Messages in flight per thread. */
  concurrency: number;
  /** Publishes per second (sends, retries and redeliveries), EWMA over ~5 s. */
  arrivalRate: number;
  /** Whether the autoscaler sizes this mailbox now (false when off or pinned by resize()). */
  autoscale: boolean;
  /** The autoscaler's last reason, in words. */
  scaleReason: string;
  workerCrashes: number;
  handlerTimeouts: number;
  /** Dead letters held now. */
  deadLetterSize: number;
  /** Dead letters dropped (oldest first) because the store was at deadLetterLimit. */
  deadLettersDropped: number;
  capacityBytes: number;
  usedBytes: number;
}

/** A 64-bit count folded from a wrapping Int32 word. */
class Folded {
  private last = 0;
  total = 0;
  fold(raw: number): number {
    // Signed: a producer that counts a send and then finds the ring full takes it back.
    this.total += (raw - this.last) | 0;
    this.last = raw;
    return this.total;
  }
}

/** `revoked`: its lease expired and its thread is being terminated; `dead`: its slot was recovered (late events are ignored). */
type ConsumerState = 'starting' | 'running' | 'stopping' | 'revoked' | 'dead';

interface Consumer {
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
}

interface SendWaiter {
  payload: unknown;
  opts: SendOptions | undefined;
  /** FLAG_ASK / FLAG_CALL for asks. */
  flags: number;
  /** Called with the id in the same step as the send (an ask opens itself here, before its reply can come). */
  onSent: ((id: number) => void) | undefined;
  resolve: (id: number) => void;
  reject: (err: unknown) => void;
  cleanup: () => void;
}

export class Mailbox {
  readonly name: string;
  readonly ring: Ring;
  readonly producer: Producer;
  readonly deadLetters: DeadLetterStore;
  private readonly codec: PayloadCodec;
  private pool: Piscina | null = null;
  private readonly consumers = new Map<number, Consumer>();
  private readonly slotBusy = new Uint8Array(MAX_CONSUMERS);
  private incarnations = 0;
  private desired: number;
  private readonly heap = new TimerHeap();
  private heapTimer: NodeJS.Timeout | null = null;
  private heapTimerAt = 0;
  /** Ready to go back into the ring, waiting for room. */
  private pending: HeldMessage[] = [];
  private readonly waiters: SendWaiter[] = [];
  private spaceWatch = false;
  private stopped = false;
  /** Stall watch: READ sitting on an unpublished record. */
  private stallAt = 0;
  private stallSince = 0;
  private stallReported = false;

  // counters the dispatcher keeps
  private failed = 0;
  private retried = 0;
  private redelivered = 0;
  private deadLettered = 0;
  private workerCrashes = 0;
  private handlerTimeouts = 0;
  /** Claimed records the dispatcher finished (nacked or recovered). */
  private finishedHere = 0;
  private readonly enqueued = new Folded();
  private readonly acked: Folded[] = Array.from({ length: MAX_CONSUMERS }, () => new Folded());
  private readonly rejected: Folded[] = REJECT_REASONS.map(() => new Folded());
  private readonly claimed = new Folded();
  /** PUBLISHED - CLAIMED at the last fold. */
  private readyInRing = 0;
  private readonly deadBy: Record<DeadLetterReason, number> = { max_attempts: 0, poison: 0, timeout: 0, unrecoverable: 0 };
  private readonly decisions = { up: 0, down: 0 };
  private autoscaleCfg: ResolvedAutoscale | null;
  private pinned: number | null = null;
  private concurrency: number;
  private history: Recommendation[] = [];
  private lastDecisionAt = 0;
  private lastReason = '';
  private handlerSeconds: number | undefined = undefined;
  private arrivalRate = 0;
  private arrivalKnown = false;
  private lastArrivalAt = 0;
  private lastPublished = 0;
  private readonly published = new Folded();
  private drainRate = 0;
  private lastRateAt = 0;
  private lastProcessed = 0;
  /** Histogram blocks written by the consumer loops (see shared/histogram.ts). */
  readonly metricsSab = allocateMetricsBuffer();
  /** Keyed ordering: the key table, and keyed messages held until their turn, by key slot (seq order). */
  readonly keysSab = allocateKeyTable();
  private readonly keyTable: Int32Array;
  private readonly blocked = new Map<number, HeldMessage[]>();
  private blockedCount = 0;
  /** Ring units of the keyed messages held outside the ring (published in HELD_UNITS_WORD, with pendingUnits). */
  private heldUnits = 0;
  /** Ring units of the pending messages (waiting for room): counted as used in HELD_UNITS_WORD. */
  private pendingUnits = 0;
  /** The same ring, for putting held messages back: it does not count the held units (they are the ones going in). */
  private readonly republish: Ring;
  /** Keyed messages whose key's owner is retiring: held until its loop is over and the key has a new owner. */
  private readonly ownerWait = new Map<number, HeldMessage[]>();
  /** Some key table entries wait for a clean point to move to a less loaded thread. */
  private rebalance = false;
  /** Holes left by threads that died inside a guard, repaired once consumers reach them (holes.ts). */
  readonly holes: HoleRepairs;
  /** Keyed seqs taken by sends that died before publishing: each key's turn passes over them. */
  private readonly voids = new Map<number, number[]>();
  /** What the start() probe found: an actor module (a key is required) and its methods. */
  actorInfo: ProbeResult = { actor: false, methods: [] };
  /** ask(): open asks and the reply ring. */
  readonly replies: Replies;
  private bounds: readonly number[] | null = null;

  constructor(
    private readonly host: MailboxHost,
    readonly opts: ResolvedMailbox,
  ) {
    this.name = opts.name;
    const sab = Ring.allocate({ capacityBytes: opts.capacityBytes, maxPayloadBytes: opts.maxMessageBytes });
    this.ring = new Ring(sab);
    const c = opts.codec;
    this.codec = typeof c === 'string' ? builtinCodec(c) : new CustomCodec(c);
    this.keyTable = new Int32Array(this.keysSab);
    this.republish = new Ring(sab);
    this.republish.countHeld = false;
    this.replies = new Replies(new Ring(Ring.allocate({ capacityBytes: REPLY_RING_BYTES, maxPayloadBytes: opts.maxMessageBytes })), this.codec);
    this.producer = new Producer(
      this.name,
      this.ring,
      this.codec,
      opts.maxMessageBytes,
      (_p, bytes, ascii, key, delayMs, id, sentAt, keySlot, keySeq) => this.holdDelayed(heldKeyed(new HeldMessage(id, 1, sentAt, key, bytes, ascii, undefined), keySlot, keySeq), delayMs),
      this.keyTable,
    );
    this.producer.countLocally = true;
    this.holes = new HoleRepairs({
      ring: this.ring,
      replyRing: this.replies.ring,
      keys: this.keyTable,
      stopped: () => this.stopped,
      othersInside: () => this.host.guardsHeld(),
      takeBack: (unit, expected) => {
        const held = this.takeBack(unit, expected);
        if (held === null) return;
        this.redelivered++;
        this.pend(held);
        this.flushPending();
      },
      unaccept: (keySlot, seq) => this.unaccept(keySlot, seq),
      holesAt: (index) => this.host.mailboxAt(index)?.holes,
    });
    this.desired = opts.minThreads;
    this.autoscaleCfg = opts.autoscale === false ? null : opts.autoscale;
    this.concurrency = opts.concurrency;
    Atomics.store(this.ring.i32, CONCURRENCY_WORD, opts.concurrency);
    this.deadLetters = new DeadLetterStore(
      this.name,
      opts.deadLetterLimit,
      (held) => this.codec.decode(Buffer.from(held.payload.buffer, held.payload.byteOffset, held.payload.byteLength), held.payload, 0, held.payload.byteLength, held.ascii),
      (held) => this.redrive(held),
    );
  }

  ringRef(): RingRef {
    return {
      sab: this.ring.sab,
      keys: this.keysSab,
      replies: this.replies.ring.sab,
      codec: codecSpec(this.opts.codec),
      maxMessageBytes: this.opts.maxMessageBytes,
    };
  }

  // ------------------------------------------------------------------ lifecycle

  async start(timeoutMs: number): Promise<void> {
    const o = this.opts;
    this.pool = new Piscina({
      filename: CONSUMER_URL.href,
      minThreads: o.minThreads,
      maxThreads: o.maxThreads + 1, // one spare while a terminated thread exits
      idleTimeout: 10_000,
      atomics: 'disabled',
      concurrentTasksPerWorker: 1,
      ...(o.resourceLimits ? { resourceLimits: o.resourceLimits } : {}),
    });
    this.pool.on('error', (err: Error) => this.host.emitError(err));
    this.actorInfo = await withTimeout(
      this.pool.run({ handlerUrl: o.handlerUrl, codec: codecSpec(o.codec) }, { name: 'probe' }) as Promise<ProbeResult>,
      timeoutMs,
      () => handlerLoadError(this.name, o.handlerUrl, new Error(`loading took longer than startTimeoutMs (${timeoutMs} ms)`)),
    ).catch((err: unknown) => {
      if (err instanceof RingpoolError && err.code === ErrorCodes.HANDLER_LOAD && err.details.mailbox === this.name) throw err;
      throw handlerLoadError(this.name, o.handlerUrl, err);
    });
    // Every thread's send path refuses a message without a key to an actor (shared word, read only then).
    Atomics.store(this.ring.i32, ACTOR_WORD, this.actorInfo.actor ? 1 : 0);
    const starting: Promise<void>[] = [];
    for (let i = 0; i < o.minThreads; i++) {
      const c = this.startConsumer();
      if (c) starting.push(c.ready);
    }
    await withTimeout(Promise.all(starting), timeoutMs, () =>
      handlerLoadError(this.name, o.handlerUrl, new Error(`threads not ready within startTimeoutMs (${timeoutMs} ms)`)),
    );
  }

  private startConsumer(): Consumer | null {
    const pool = this.pool;
    if (pool === null || this.stopped) return null;
    const slot = this.slotBusy.indexOf(0);
    if (slot < 0) return null;
    this.slotBusy[slot] = 1;
    const ring = this.ring;
    const i32 = ring.i32;
    const incarnation = ++this.incarnations;
    Atomics.store(i32, ring.slotWord(slot, S_INCARNATION), incarnation);
    Atomics.store(i32, ring.slotWord(slot, S_CUR_UNIT), -1);
    Atomics.store(i32, ring.slotWord(slot, S_GUARD), GUARD_FREE);
    Atomics.store(i32, ring.slotWord(slot, S_STATUS), SLOT_RUNNING);
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
    ev.port1.on('message', (m: WorkerEvent) => this.onEvent(consumer, m));
    ev.port1.unref();
    ctl.port1.unref();
    const task: ConsumerTask = {
      mailbox: this.name,
      consumer: slot,
      incarnation,
      handlerUrl: this.opts.handlerUrl,
      leaseMs: this.opts.leaseMs,
      batchSize: this.opts.batchSize,
      rings: this.host.ringRefs(),
      metricsSab: this.metricsSab,
      control: ctl.port2,
      events: ev.port2,
    };
    this.consumers.set(slot, consumer);
    this.assignKeys();
    consumer.done = pool.run(task, { transferList: [ctl.port2, ev.port2] as never }).then(
      (r: LoopResult) => this.onLoopEnd(consumer, null, r),
      (err: Error) => this.onLoopEnd(consumer, err, null),
    );
    return consumer;
  }

  private stopConsumer(c: Consumer): void {
    if (c.state === 'stopping' || c.state === 'revoked' || c.state === 'dead') return;
    c.state = 'stopping';
    // The shared flag reaches a loop parked on the wake word or busy in a batch;
    // the comlink call is the control plane's record of it (and wakes the loop's event loop).
    Atomics.store(this.ring.i32, this.ring.slotWord(c.slot, S_STATUS), SLOT_STOP);
    this.ring.wakeAll();
    c.control.stop().catch(() => {});
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
      c.onReady(handlerLoadError(this.name, this.opts.handlerUrl, new Error('handler failed to load in a consumer thread')));
    }
    // A revoked loop may have returned by itself just before the kill landed:
    // never hand its slot (or its Piscina worker) to a new loop before that thread is gone.
    if (c.exited !== null) void c.exited.then(() => this.retire(c, err));
    else this.retire(c, err);
  }

  /** The loop of `c` is over: take back what its slot still holds, free the slot, replace it if needed. */
  private retire(c: Consumer, err: Error | null): void {
    const ring = this.ring;
    const i32 = ring.i32;
    // Events the loop posted before it ended are queued on the port: handle
    // them first (a delayed ctx.send must not be lost, a nack not forgotten).
    for (let m = receiveMessageOnPort(c.events); m !== undefined; m = receiveMessageOnPort(c.events)) {
      this.onEvent(c, m.message as WorkerEvent);
    }
    // Shutting down (close() past its deadline, destroy()): not a crash; what it held stays as leftovers.
    const crashed = err !== null && c.state !== 'revoked' && !this.stopped;
    // With several handlers running at the crash, nobody can tell which one
    // killed the thread: none is charged an attempt; all come back flagged to
    // run alone, so a second crash is blamed on the right one.
    const several = crashed && Atomics.load(i32, ring.slotWord(c.slot, S_INFLIGHT)) > 1;
    const current = crashed && !several ? Atomics.load(i32, ring.slotWord(c.slot, S_CUR_UNIT)) : -1;
    c.state = 'dead';
    // Not RUNNING any more before anything is taken back: a thread handing a
    // keyed record to this slot checks that under its guard (route()), so once
    // no guard is SENDING, no push to this slot is under way or can start.
    Atomics.store(i32, ring.slotWord(c.slot, S_STATUS), SLOT_IDLE);
    this.whenGuardsFree(c.slot, -1, () => this.finishRetire(c, err, crashed, several, current));
  }

  private finishRetire(c: Consumer, err: Error | null, crashed: boolean, several: boolean, current: number): void {
    const ring = this.ring;
    const i32 = ring.i32;
    this.resetHandoff(c.slot);
    // Its keys have no owner now (their state died with the thread, or was passivated as it stopped).
    releaseOwner(this.keyTable, c.slot);
    const info: ErrorInfo = {
      name: 'WorkerCrash',
      message: `worker thread ${c.threadId} died while handling this message: ${err?.message ?? 'unknown'}`,
    };
    // A thread that died inside its guard left a write half done: repair it (holes.ts).
    if (!this.stopped && Atomics.load(i32, ring.slotWord(c.slot, S_GUARD)) === GUARD_SENDING) this.holes.afterDeath(c.slot);
    // Before recovery: a record still CLAIMED by the slot then means "not acked".
    this.finishKeyAck(c.slot, c.revokedUnit);
    const back = this.recover(c.slot, current, info, several || c.revokedSeveral);
    c.onReady(err ?? new Error('the consumer loop ended before it was ready'));
    if (crashed) {
      this.workerCrashes++;
      this.host.emitWorkerCrash({ mailbox: this.name, threadId: c.threadId, error: info, redelivered: back });
    }
    Atomics.store(i32, ring.slotWord(c.slot, S_STATUS), SLOT_IDLE);
    Atomics.store(i32, ring.slotWord(c.slot, S_CUR_UNIT), -1);
    this.consumers.delete(c.slot);
    this.slotBusy[c.slot] = 0;
    c.controlPort.close();
    c.events.close();
    // Its keys go to the threads left (their state died with it, or was passivated as it stopped).
    this.assignKeys();
    if (!this.stopped && this.host.running()) this.fillToDesired();
  }

  /**
   * A send a dead thread counted as enqueued (and keyed: gave a seq) and never
   * made (its reservation a hole, or its delayed hand-over never posted): it was
   * never accepted, ctx.send() did not return. Out of the count and of its key's order.
   */
  private unaccept(keySlot: number, seq: number): void {
    Atomics.sub(this.ring.i32, ENQUEUED, 1);
    if (keySlot >= 0) this.voidSeq(keySlot, seq);
  }

  /** Pass key `slot`'s turn over `seq` when it comes (a seq no message will ever carry). */
  private voidSeq(slot: number, seq: number): void {
    let v = this.voids.get(slot);
    if (v === undefined) this.voids.set(slot, (v = []));
    v.push(seq);
    this.releaseTurns(slot);
  }

  /** Whether a live loop of this mailbox is inside its guard now. */
  guardHeld(): boolean {
    const i32 = this.ring.i32;
    for (const c of this.consumers.values()) {
      if (c.state !== 'dead' && Atomics.load(i32, this.ring.slotWord(c.slot, S_GUARD)) === GUARD_SENDING) return true;
    }
    return false;
  }

  /**
   * Run `then` once no other live loop is inside its guard. Guards cover a
   * few instructions, so this is nearly always at once (a short spin, on the
   * first look only); a loop descheduled inside one is waited for off the
   * main thread's back (a timer, one plain look a millisecond), never given
   * up on, or its push could land in the slot after its recovery. A guard
   * held by a thread that died inside it (an OOM) stays SENDING: that
   * thread's own retire marks it dead, and it is skipped from then on;
   * GUARD_GIVE_UP_MS is only the last resort against a hang. Once the
   * mailbox is stopping, its threads are being terminated: no waiting then.
   * `since` is -1 on the first look.
   */
  private whenGuardsFree(except: number, since: number, then: () => void): void {
    const ring = this.ring;
    const now = performance.now();
    const first = since < 0;
    if (first) since = now;
    const spinUntil = first ? now + 0.5 : 0;
    for (let s = 0; s < MAX_CONSUMERS && !this.stopped; s++) {
      if (s === except || this.slotBusy[s] === 0 || this.consumers.get(s)?.state === 'dead') continue;
      const w = ring.slotWord(s, S_GUARD);
      while (Atomics.load(ring.i32, w) === GUARD_SENDING) {
        if (performance.now() < spinUntil) continue;
        if (performance.now() - since > GUARD_GIVE_UP_MS) {
          this.host.emitError(
            new RingpoolError(ErrorCodes.RING_STALLED, `mailbox '${this.name}': consumer slot ${s} held its send guard for ${GUARD_GIVE_UP_MS} ms; retiring slot ${except} anyway`, {
              mailbox: this.name,
            }),
          );
          break;
        }
        setTimeout(() => this.whenGuardsFree(except, since, then), 1).unref();
        return;
      }
    }
    then();
  }

  /** An empty hand-off queue for a slot whose loop is over (a kill may have cut a pop short). */
  private resetHandoff(slot: number): void {
    const base = handoffBase(slot);
    this.keyTable.fill(0, base, base + HANDOFF_WORDS);
  }

  /** Give keys without a running owner to running loops and even the load out; then release what waited for an owner. */
  private assignKeys(): void {
    const live: number[] = [];
    const retiring = new Set<number>();
    for (const c of this.consumers.values()) {
      if (c.state === 'running' || c.state === 'starting') live.push(c.slot);
      else if (c.state !== 'dead') retiring.add(c.slot);
    }
    this.rebalance = assignKeyOwners(this.keyTable, {
      live,
      retiring,
      actor: this.actorInfo.actor,
      holds: (entry) => this.blocked.has(entry) || this.ownerWait.has(entry),
    });
    if (this.ownerWait.size === 0 || live.length === 0) return;
    for (const [entry, list] of [...this.ownerWait]) {
      const o = Atomics.load(this.keyTable, entry * KEY_WORDS + K_OWNER);
      if (!live.includes(o)) continue;
      this.ownerWait.delete(entry);
      for (const held of list) this.unhold(held);
      for (const held of list) this.block(held);
    }
  }

  /** A keyed record a consumer handed back: wait for its turn, or for its key to have a running owner. */
  private holdKeyed(held: HeldMessage): void {
    const entry = held.keySlot;
    let o = Atomics.load(this.keyTable, entry * KEY_WORDS + K_OWNER);
    let owner = o >= 0 ? this.consumers.get(o) : undefined;
    if (owner === undefined || owner.state === 'dead') {
      this.assignKeys();
      o = Atomics.load(this.keyTable, entry * KEY_WORDS + K_OWNER);
      owner = o >= 0 ? this.consumers.get(o) : undefined;
    }
    if (owner !== undefined && (owner.state === 'running' || owner.state === 'starting')) {
      this.block(held);
      return;
    }
    let q = this.ownerWait.get(entry);
    if (q === undefined) this.ownerWait.set(entry, (q = []));
    q.push(held);
    this.hold(held);
  }

  /** Count a keyed message held outside the ring (stats' delayed, and against capacity for producers). */
  private hold(held: HeldMessage): void {
    this.blockedCount++;
    this.heldUnits += held.units;
    Atomics.store(this.ring.i32, HELD_UNITS_WORD, this.heldUnits + this.pendingUnits);
  }

  private unhold(held: HeldMessage): void {
    this.blockedCount--;
    this.heldUnits -= held.units;
    Atomics.store(this.ring.i32, HELD_UNITS_WORD, this.heldUnits + this.pendingUnits);
  }

  private onEvent(c: Consumer, ev: WorkerEvent): void {
    switch (ev.type) {
      case 'ready':
        c.threadId = ev.threadId;
        if (c.state === 'starting') c.state = 'running';
        c.onReady();
        return;
      case 'load-error': {
        const err = new RingpoolError(ErrorCodes.HANDLER_LOAD, `mailbox '${this.name}': ${ev.error.message}`, {
          mailbox: this.name,
          url: this.opts.handlerUrl,
        });
        c.onReady(err);
        return;
      }
      case 'nack':
        if (c.state === 'dead') return; // its slot was recovered already: a late result of a dead thread
        this.onNack(c.slot, ev.unit, ev.error, ev.unrecoverable);
        return;
      case 'delayed-send': {
        // Accepted (counted as enqueued) on the worker: never drop it, whatever became of that thread.
        const target = this.host.mailbox(ev.mailbox);
        target?.holdDelayed(heldKeyed(new HeldMessage(ev.id, 1, ev.sentAt, ev.key, ev.payload, ev.ascii, undefined), ev.keySlot, ev.keySeq), ev.delayMs);
        return;
      }
      case 'defer': {
        if (c.state === 'dead') return; // recovered already: it went back to the ring
        const held = this.takeBack(ev.unit, ST_CLAIMED + c.slot);
        if (held === null) return;
        this.ring.reclaim();
        this.holdKeyed(held);
        return;
      }
      case 'key-turn':
        this.releaseTurns(ev.slot);
        return;
      case 'reply':
        this.replies.fromEvent(ev.id, ev.payload, ev.ascii);
        return;
    }
  }

  // ------------------------------------------------------------------ failures

  /**
   * Take the record at `unit` away from whoever holds it in state `expected`
   * (CAS to HELD, copy it out, mark it DONE) and count it as finished by the
   * dispatcher. Null when the CAS fails (acked meanwhile, or taken already).
   */
  private takeBack(unit: number, expected: number): HeldMessage | null {
    if (Atomics.compareExchange(this.ring.state, unit, expected, ST_HELD) !== expected) return null;
    const held = HeldMessage.takeFrom(this.ring, unit);
    this.finishedHere++;
    return held;
  }

  private onNack(slot: number, unit: number, error: ErrorInfo, unrecoverable: boolean): void {
    const held = this.takeBack(unit, ST_CLAIMED + slot);
    if (held === null) return;
    this.ring.reclaim();
    this.fail(held, error, unrecoverable ? 'unrecoverable' : 'error');
  }

  /**
   * One failed attempt of `held`: retry after backoff (true), or dead-letter
   * (false). The reason names the last failure: an error (`max_attempts`), a
   * crash (`poison`), a lease expiry (`timeout`).
   */
  private fail(held: HeldMessage, error: ErrorInfo, kind: 'error' | 'unrecoverable' | 'crash' | 'timeout'): boolean {
    this.failed++;
    if (held.firstError === undefined) held.firstError = error;
    held.lastError = error;
    if (kind === 'unrecoverable') {
      this.deadLetter(held, 'unrecoverable');
      return false;
    }
    if (held.attempt >= this.opts.maxAttempts) {
      this.deadLetter(held, kind === 'error' ? 'max_attempts' : kind === 'crash' ? 'poison' : 'timeout');
      return false;
    }
    this.retried++;
    const { baseMs, maxMs } = this.opts.backoff;
    held.dueAt = now() + backoffDelay(held.attempt, baseMs, maxMs);
    held.attempt++;
    this.heap.push(held);
    this.armHeapTimer();
    return true;
  }

  private deadLetter(held: HeldMessage, reason: DeadLetterReason): void {
    this.deadLettered++;
    this.deadBy[reason]++;
    const letter = this.deadLetters.add(held, reason, Date.now());
    if (this.replies.size > 0) {
      const last = held.lastError ?? { name: 'Error', message: reason };
      this.replies.fail(
        held.id,
        new RingpoolError(
          ErrorCodes.DEAD_LETTERED,
          `ask to mailbox '${this.name}' failed: message ${held.id} was dead-lettered (${reason}) after ${held.attempt} attempt(s): ${last.message}`,
          { mailbox: this.name, id: held.id, reason, attempts: held.attempt },
          { cause: fromErrorInfo(last) },
        ),
      );
    }
    if (held.keySlot >= 0) {
      // A dead letter is done with, as far as its key's order goes: the next one may run.
      Atomics.compareExchange(this.keyTable, held.keySlot * KEY_WORDS + K_DONE, held.keySeq, (held.keySeq + 1) | 0);
      const slot = held.keySlot;
      held.keySlot = -1; // a redrive takes a new place at the end of its key's order
      this.releaseTurns(slot);
    }
    this.host.emitDeadLetter(letter);
  }

  // ------------------------------------------------------------------ keyed ordering

  /**
   * A loop that died between acking a keyed record and passing its key's turn
   * on left the KEY_ACK words set. If the ack went through (the record is no
   * longer CLAIMED by that slot), pass the turn on here; if not, the record was
   * just recovered and will run again, and the turn stays where it is.
   */
  private finishKeyAck(slot: number, revokedUnit: number): void {
    const ring = this.ring;
    const i32 = ring.i32;
    const w = Atomics.load(i32, ring.slotWord(slot, S_KEY_ACK));
    if (w === 0) return;
    Atomics.store(i32, ring.slotWord(slot, S_KEY_ACK), 0);
    const keySlot = w - 1;
    const seq = Atomics.load(i32, ring.slotWord(slot, S_KEY_ACK_SEQ));
    const unit = Atomics.load(i32, ring.slotWord(slot, S_KEY_ACK_UNIT));
    // Not acked: still claimed (recovery will redeliver it), or taken back by the lease watchdog (retried).
    if (unit === revokedUnit || Atomics.load(ring.state, unit) === ST_CLAIMED + slot) return;
    if (Atomics.compareExchange(this.keyTable, keySlot * KEY_WORDS + K_DONE, seq, (seq + 1) | 0) === seq) this.releaseTurns(keySlot);
  }

  /** Hold a keyed message until its key's turn comes (a consumer claimed it too early). */
  private block(held: HeldMessage): void {
    const slot = held.keySlot;
    let q = this.blocked.get(slot);
    if (q === undefined) this.blocked.set(slot, (q = []));
    // Keep seq order (int32, compared as a difference: safe across wrap-around).
    let i = q.length;
    while (i > 0 && ((q[i - 1]!.keySeq - held.keySeq) | 0) > 0) i--;
    q.splice(i, 0, held);
    this.hold(held);
    // WAITING first, then read DONE: the consumer advances DONE, then reads WAITING, so one of us sees the other.
    Atomics.add(this.keyTable, slot * KEY_WORDS + K_WAITING, 1);
    this.releaseTurns(slot);
  }

  /**
   * Put back the held messages of `slot` whose turn has come: the one whose
   * seq is the turn, and the run of consecutive seqs behind it, in order. They
   * land next to each other in the ring, so a consumer that claims them
   * together runs them one after another; putting back one at a time would
   * leave each behind the key's newer messages and keep the key on this slow
   * path for good.
   */
  private releaseTurns(slot: number): void {
    const v = this.voids.get(slot);
    if (v !== undefined) {
      for (;;) {
        const done = Atomics.load(this.keyTable, slot * KEY_WORDS + K_DONE);
        const i = v.indexOf(done);
        if (i < 0) break;
        v.splice(i, 1);
        Atomics.compareExchange(this.keyTable, slot * KEY_WORDS + K_DONE, done, (done + 1) | 0);
      }
      if (v.length === 0) this.voids.delete(slot);
    }
    const q = this.blocked.get(slot);
    if (q === undefined) return;
    let next = Atomics.load(this.keyTable, slot * KEY_WORDS + K_DONE);
    let n = 0;
    while (n < q.length && q[n]!.keySeq === next) {
      n++;
      next = (next + 1) | 0;
    }
    if (n > 0) {
      for (const held of q.splice(0, n)) {
        this.unhold(held);
        this.pend(held);
      }
      Atomics.sub(this.keyTable, slot * KEY_WORDS + K_WAITING, n);
      this.flushPending();
    }
    if (q.length === 0) this.blocked.delete(slot);
  }

  /**
   * Take back every record consumer `slot` holds (its thread is dead or
   * revoked). The one at `current` failed (crash); the others never started
   * and go back with the same attempt. Returns how many were put back.
   */
  private recover(slot: number, current: number, crash: ErrorInfo, suspect = false): number {
    const ring = this.ring;
    const i32 = ring.i32;
    const state = ring.state;
    const mine = ST_CLAIMED + slot;
    let back = 0;
    let p = Atomics.load(i32, TAIL);
    const end = Atomics.load(i32, READ);
    let spins = 0;
    while (p !== end) {
      const at = p & ring.indexMask;
      const s = Atomics.load(state, at);
      if (s === ST_FREE || s === ST_RECLAIMING) {
        // Only the record at TAIL can read so, while a consumer reclaims it
        // (a few instructions between its CAS and its TAIL store): wait for TAIL to move.
        const t = Atomics.load(i32, TAIL);
        if (t !== p) p = t;
        else if (++spins > 1_000_000) {
          this.host.emitError(new RingpoolError(ErrorCodes.RING_STALLED, `mailbox '${this.name}': recovery stopped at a record being reclaimed`, { mailbox: this.name }));
          break;
        }
        continue;
      }
      const units = s === ST_SKIP ? ring.capacityUnits - at : ring.units(at);
      // A consumer may reclaim DONE records under us; once TAIL passed p, what we read there is stale.
      const t = Atomics.load(i32, TAIL);
      if (((t - p) | 0) > 0) {
        p = t;
        continue;
      }
      if (!(units >= 1 && units <= ring.capacityUnits - at)) break; // never follow a bad length
      if (s === mine || s === ST_READY) {
        const held = this.takeBack(at, s);
        if (held !== null) {
          if (at === current && s === mine) {
            if (this.fail(held, crash, 'crash')) this.redelivered++;
          } else {
            this.redelivered++;
            back++;
            if (suspect && s === mine) held.suspect = true;
            this.pend(held);
          }
        }
      }
      p = (p + units) | 0;
    }
    ring.reclaim();
    this.flushPending();
    return back;
  }

  /** Lease watchdog: a handler running past leaseMs loses its message and its thread. */
  private watchLeases(t: number): void {
    const ring = this.ring;
    const i32 = ring.i32;
    for (const c of this.consumers.values()) {
      if (c.state !== 'running' && c.state !== 'stopping') continue;
      const unit = Atomics.load(i32, ring.slotWord(c.slot, S_CUR_UNIT));
      if (unit < 0) continue;
      const started = ring.f64[ring.slotF64(c.slot, S_F64_CUR_START)]!;
      if (t - started <= this.opts.leaseMs) continue;
      // Read before the take: with several handlers running, the lease's
      // holder (the oldest) is not necessarily the one that blocks the thread.
      const several = Atomics.load(i32, ring.slotWord(c.slot, S_INFLIGHT)) > 1;
      const guardWord = ring.slotWord(c.slot, S_GUARD);
      // Never kill a thread between reserve and publish of a ctx.send(): try again next tick.
      if (Atomics.compareExchange(i32, guardWord, GUARD_FREE, GUARD_REVOKED) === GUARD_SENDING) continue;
      // REVOKED goes up before the record is taken: a loop whose ack then fails
      // finds it and returns at once, so the kill never lands in a reclaim.
      const statusWord = ring.slotWord(c.slot, S_STATUS);
      const before = Atomics.exchange(i32, statusWord, SLOT_REVOKED);
      const held = this.takeBack(unit, ST_CLAIMED + c.slot);
      if (held === null) {
        // acked just now: the lease did not run out after all
        Atomics.store(i32, statusWord, before);
        Atomics.store(i32, guardWord, GUARD_FREE);
        continue;
      }
      // Final: a guard the thread waits for while REVOKED is now refused (touch nothing shared any more).
      Atomics.store(i32, guardWord, GUARD_KILLED);
      c.state = 'revoked';
      c.revokedUnit = unit;
      c.revokedSeveral = several;
      this.handlerTimeouts++;
      this.host.emitHandlerTimeout({ mailbox: this.name, id: held.id, attempt: held.attempt, leaseMs: this.opts.leaseMs, threadId: c.threadId });
      if (several) {
        // Nobody can tell which handler held the thread: charge none; all of
        // the slot's records come back flagged to run alone (the rest at
        // retire), so the next expiry lands on the one that blocks.
        held.suspect = true;
        this.redelivered++;
        this.pend(held);
        this.flushPending();
      } else if (this.fail(held, { name: 'LeaseExpired', message: `handler ran past leaseMs (${this.opts.leaseMs} ms)` }, 'timeout')) {
        this.redelivered++;
      }
      const worker = this.pool?.threads.find((w) => w.threadId === c.threadId);
      if (worker !== undefined) {
        c.exited = once(worker, 'exit').catch(() => {});
        void worker.terminate();
      }
      ring.reclaim();
    }
  }

  /**
   * A record reserved and never published stops every consumer at it. Only a
   * thread that died inside ctx.send()'s reserve..publish window (an OOM there)
   * can leave one; say so loudly rather than stall in silence.
   */
  private watchStall(t: number): void {
    const i32 = this.ring.i32;
    const r = Atomics.load(i32, READ);
    if (r === Atomics.load(i32, HEAD) || Atomics.load(this.ring.state, r & this.ring.indexMask) !== ST_FREE) {
      this.stallSince = 0;
      return;
    }
    if (this.stallSince === 0 || this.stallAt !== r) {
      this.stallAt = r;
      this.stallSince = t;
      this.stallReported = false;
    } else if (!this.stallReported && t - this.stallSince > STALL_REPORT_MS) {
      this.stallReported = true;
      this.host.emitError(
        new RingpoolError(
          ErrorCodes.RING_STALLED,
          `mailbox '${this.name}': a reserved record has not been published for ${STALL_REPORT_MS} ms; consumers cannot pass it ` +
            `(a thread died inside ctx.send()). ${this.ring.depth()} messages are behind it.`,
          { mailbox: this.name },
        ),
      );
    }
  }

  // ------------------------------------------------------------------ held messages

  holdDelayed(held: HeldMessage, delayMs: number): void {
    held.dueAt = now() + delayMs;
    this.heap.push(held);
    this.armHeapTimer();
  }

  private redrive(held: HeldMessage[]): void {
    if (held.length === 0) return;
    for (const h of held) {
      if (h.key !== null) {
        h.keySlot = keySlotOf(h.key);
        h.keySeq = Atomics.add(this.keyTable, h.keySlot * KEY_WORDS + K_SENT, 1);
      }
    }
    this.ring.countEnqueued(held.length);
    for (const h of held) this.pend(h);
    this.flushPending();
  }

  private armHeapTimer(): void {
    const top = this.heap.peek();
    if (top === undefined || this.stopped) return;
    if (this.heapTimer !== null && this.heapTimerAt <= top.dueAt) return;
    if (this.heapTimer !== null) clearTimeout(this.heapTimer);
    this.heapTimerAt = top.dueAt;
    // A delay past setTimeout's limit is waited for in steps (releaseDue re-arms for what is not due yet).
    this.heapTimer = setTimeout(() => {
      this.heapTimer = null;
      this.releaseDue();
    }, timerDelay(top.dueAt, now()));
    this.heapTimer.unref();
  }

  private releaseDue(): void {
    const t = now();
    for (let top = this.heap.peek(); top !== undefined && top.dueAt <= t; top = this.heap.peek()) {
      this.pend(this.heap.pop()!);
    }
    this.flushPending();
    this.armHeapTimer();
  }

  /**
   * Put held messages back into the ring, oldest first, while there is room.
   * What is left waiting counts as used space for every producer (with the
   * held keyed messages, in HELD_UNITS_WORD): freed room goes to retries and
   * redeliveries first, never to fresh sends that would starve them.
   */
  private flushPending(): void {
    if (this.pending.length === 0) return;
    const t = now();
    let i = 0;
    let freed = 0;
    for (; i < this.pending.length; i++) {
      const h = this.pending[i]!;
      if (!h.publishTo(this.republish, t, this.keyTable)) break;
      freed += h.units;
    }
    if (i > 0) {
      this.pending.splice(0, i);
      this.pendingUnits -= freed;
      Atomics.store(this.ring.i32, HELD_UNITS_WORD, this.heldUnits + this.pendingUnits);
    }
    if (this.pending.length > 0) this.armSpaceWatch();
  }

  /** Queue a held message to go back into the ring (flushPending); its units count as used meanwhile. */
  private pend(held: HeldMessage): void {
    this.pending.push(held);
    this.pendingUnits += held.units;
    Atomics.store(this.ring.i32, HELD_UNITS_WORD, this.heldUnits + this.pendingUnits);
  }


  // ------------------------------------------------------------------ overflow: wait for room

  sendAsync(
    payload: unknown,
    opts: SendOptions | undefined,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    flags = 0,
    onSent?: (id: number) => void,
  ): Promise<number> {
    // Aborted before it began: nothing is sent, even if there is room.
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.waiters.length === 0) {
      const id = this.producer.trySend(payload, opts, flags);
      if (id >= 0) {
        onSent?.(id);
        return Promise.resolve(id);
      }
    }
    if (this.opts.overflow === 'reject') {
      this.ring.countRejected('queue_full');
      return Promise.reject(this.producer.fullError());
    }
    return new Promise<number>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => {
        remove();
        reject(signal!.reason);
      };
      const remove = (): void => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        w.cleanup();
      };
      const w: SendWaiter = {
        payload,
        opts,
        flags,
        onSent,
        resolve,
        reject,
        cleanup: () => {
          if (timer) clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        },
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          remove();
          this.ring.countRejected('queue_full');
          reject(
            new RingpoolError(ErrorCodes.TIMEOUT, `sendAsync to '${this.name}' found no room within ${timeoutMs} ms`, {
              mailbox: this.name,
              timeoutMs,
            }),
          );
        }, timeoutMs);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(w);
      this.armSpaceWatch();
    });
  }

  /**
   * Send with FLAG_ASK (and FLAG_CALL for actor methods) and wait for the
   * handler's result. The ask opens in the same step as the send, so its reply
   * cannot come before it is waited for.
   */
  ask(payload: unknown, key: string | undefined, flags: number, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<unknown> {
    if (key === undefined && this.actorInfo.actor) {
      return Promise.reject(
        new RingpoolError(ErrorCodes.KEY_REQUIRED, `mailbox '${this.name}' runs an actor: ask with { key }`, { mailbox: this.name, option: 'key' }),
      );
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<unknown>((resolve, reject) => {
      let id = -1;
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        settled = true;
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const giveUp = (err: unknown): void => {
        if (settled) return;
        if (id >= 0) this.replies.drop(id);
        done();
        reject(err);
      };
      const onAbort = (): void => giveUp(signal!.reason);
      if (timeoutMs !== undefined) {
        timer = setTimeout(
          () => giveUp(new RingpoolError(ErrorCodes.TIMEOUT, `ask to mailbox '${this.name}' got no reply within ${timeoutMs} ms`, { mailbox: this.name, timeoutMs })),
          timeoutMs,
        );
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      const open = {
        resolve: (v: unknown): void => {
          done();
          resolve(v);
        },
        reject: (e: unknown): void => {
          done();
          reject(e);
        },
      };
      try {
        this.sendAsync(payload, key === undefined ? undefined : { key }, signal, timeoutMs, flags, (sent) => {
          id = sent;
          if (!settled) this.replies.add(sent, open);
        }).catch(giveUp);
      } catch (err) {
        giveUp(err); // refused at once (too large, unserializable, ...): no timer or listener left behind
      }
    });
  }

  private serveWaiters(): void {
    // (Retries and redeliveries waiting for room go first: their units count as used in every producer's reserve, see pend.)
    while (this.waiters.length > 0) {
      const w = this.waiters[0]!;
      let id: number;
      try {
        id = this.producer.trySend(w.payload, w.opts, w.flags);
      } catch (err) {
        this.waiters.shift();
        w.cleanup();
        w.reject(err);
        continue;
      }
      if (id < 0) return;
      this.waiters.shift();
      w.cleanup();
      w.onSent?.(id);
      w.resolve(id);
    }
  }

  private rejectWaiters(err: RingpoolError): void {
    for (const w of this.waiters.splice(0)) {
      w.cleanup();
      w.reject(err);
    }
  }

  /** Wait (without blocking the main thread) until a consumer frees space, then retry what waits. */
  private armSpaceWatch(): void {
    if (this.spaceWatch || this.stopped) return;
    this.spaceWatch = true;
    const i32 = this.ring.i32;
    Atomics.add(i32, SPACE_WAITERS, 1);
    const seq = Atomics.load(i32, SPACE_SEQ);
    const after = (): void => {
      Atomics.sub(i32, SPACE_WAITERS, 1);
      this.spaceWatch = false;
      this.onSpace();
    };
    // The timeout bounds the wait if a reclaim raced our SPACE_WAITERS increment.
    const r = Atomics.waitAsync(i32, SPACE_SEQ, seq, 20);
    if (r.async) void r.value.then(after);
    else queueMicrotask(after);
  }

  private onSpace(): void {
    if (this.stopped) return;
    this.ring.reclaim();
    this.flushPending();
    this.serveWaiters();
    if (this.waiters.length > 0 || this.pending.length > 0) this.armSpaceWatch();
  }

  // ------------------------------------------------------------------ tick, scaling, stats

  tick(t: number): void {
    if (this.stopped) return;
    this.foldCounters();
    this.measureDrain(t);
    this.measureArrivals(t, this.published.total);
    this.watchLeases(t);
    this.watchStall(t);
    // Safety net for a missed key-turn event.
    for (const slot of this.blocked.keys()) this.releaseTurns(slot);
    for (const slot of [...this.voids.keys()]) this.releaseTurns(slot);
    this.holes.run();
    if (this.rebalance) this.assignKeys();
    if (this.pending.length > 0) this.flushPending();
    if (this.heap.size > 0 && this.heapTimer === null) this.armHeapTimer();
    this.scale(t);
  }

  /**
   * The autoscaler (runtime/autoscale-policy.ts): observe and decide every
   * dispatcher tick, apply a scale-up at once and anything else every
   * `autoscale.tickMs`; start or stop loops to match. With autoscale off (option or
   * `rt.resize()`), keep the pinned size (minThreads by default).
   */
  private scale(t: number): void {
    const cfg = this.autoscaleCfg;
    if (cfg === null) {
      this.setDesired(this.pinned ?? this.opts.minThreads, this.concurrency, this.pinned === null ? 'autoscale off: minThreads' : 'pinned by resize()', false);
      return;
    }
    const ring = this.ring;
    let handlerMs = 0;
    let n = 0;
    let elu = 0;
    let ne = 0;
    for (const c of this.consumers.values()) {
      if (c.state !== 'running') continue;
      const h = ring.f64[ring.slotF64(c.slot, S_F64_HANDLER_MS)]!;
      if (h > 0) {
        handlerMs += h;
        n++;
      }
      const e = ring.f64[ring.slotF64(c.slot, S_F64_ELU)]!;
      if (!Number.isNaN(e)) {
        elu += e;
        ne++;
      }
    }
    if (n > 0) this.handlerSeconds = handlerMs / n / 1000;
    const s = this.stats();
    const d = decide(
      {
        ...cfg,
        min: this.opts.minThreads,
        max: this.opts.maxThreads,
        minConcurrency: this.opts.concurrency,
      },
      {
        now: t,
        ready: s.depth,
        inFlight: s.inFlight,
        arrivalRate: this.arrivalKnown ? this.arrivalRate : undefined,
        processingSeconds: this.handlerSeconds,
        elu: ne > 0 ? elu / ne : undefined,
        threads: this.desired,
        concurrency: this.concurrency,
      },
      this.history,
    );
    // Up at once (checked every dispatcher tick, so a spike is answered
    // within one autoscale tick); anything else only every autoscale.tickMs.
    // Concurrency moves only at the autoscale cadence: one utilisation reading must not double it several times.
    const up = d.threads > this.desired && d.concurrency === this.concurrency;
    if (!up && t - this.lastDecisionAt < cfg.tickMs) {
      this.fillToDesired();
      return;
    }
    this.lastDecisionAt = t;
    this.history = d.history;
    this.setDesired(d.threads, d.concurrency, d.reason);
  }

  /** Apply a size: emit 'scale' when it changes, count the decision, start or stop loops. */
  private setDesired(threads: number, concurrency: number, reason: string, byAutoscaler = true): void {
    const from = this.desired;
    const fromC = this.concurrency;
    this.lastReason = reason;
    if (concurrency !== fromC) {
      this.concurrency = concurrency;
      Atomics.store(this.ring.i32, CONCURRENCY_WORD, concurrency);
    }
    if (threads !== from) {
      this.desired = threads;
      if (byAutoscaler) {
        if (threads > from) this.decisions.up++;
        else this.decisions.down++;
      }
    }
    if (threads !== from || concurrency !== fromC) {
      this.host.emitScale({ mailbox: this.name, from, to: threads, concurrency, reason });
    }
    this.fillToDesired();
  }

  /** Pin the thread count (autoscale off) or hand it back to the autoscaler. */
  resize(threads: number): void {
    this.pinned = threads;
    this.autoscaleCfg = null;
    this.setDesired(threads, this.concurrency, 'pinned by resize()', false);
  }

  setAutoscale(on: boolean): void {
    if (!on) {
      this.pinned ??= this.desired;
      this.autoscaleCfg = null;
      return;
    }
    this.pinned = null;
    this.autoscaleCfg = this.opts.autoscale === false ? { ...autoscaleDefaults } : this.opts.autoscale;
    this.lastDecisionAt = 0;
    // The size it had counts as a recommendation: no scale-down before the window has passed.
    this.history = [{ at: now(), threads: this.desired }];
  }

  /** Arrivals per second (publishes, retries included), EWMA over ~5 s. */
  private measureArrivals(t: number, published: number): void {
    if (this.lastArrivalAt !== 0 && t > this.lastArrivalAt) {
      const dt = (t - this.lastArrivalAt) / 1000;
      const rate = (published - this.lastPublished) / dt;
      const a = 1 - Math.exp(-dt / 5);
      // The first full interval seeds the average: a step shows at once, not over 5 s.
      this.arrivalRate = this.arrivalKnown ? this.arrivalRate + a * (rate - this.arrivalRate) : rate;
      this.arrivalKnown = true;
    }
    this.lastArrivalAt = t;
    this.lastPublished = published;
  }

  /** EWMA of acks per second with a ~5 s time constant. */
  private measureDrain(t: number): void {
    const processed = this.processed();
    if (this.lastRateAt !== 0 && t > this.lastRateAt) {
      const dt = (t - this.lastRateAt) / 1000;
      const rate = (processed - this.lastProcessed) / dt;
      const a = 1 - Math.exp(-dt / 5);
      this.drainRate = this.drainRate + a * (rate - this.drainRate);
    }
    this.lastRateAt = t;
    this.lastProcessed = processed;
  }

  /** Age of the oldest ready message, seconds: the record at READ, or the oldest held message waiting for room. */
  oldestAgeSeconds(t: number = now()): number {
    const ring = this.ring;
    const i32 = ring.i32;
    let oldest = Infinity;
    for (let tries = 0; tries < 4; tries++) {
      const r0 = Atomics.load(i32, READ);
      let r = r0;
      const h = Atomics.load(i32, HEAD);
      if (r === h) break;
      let at = r & ring.indexMask;
      let s = Atomics.load(ring.state, at);
      if (s === ST_SKIP) {
        r = (r + ring.capacityUnits - at) | 0;
        if (r === h) break;
        at = 0;
        s = Atomics.load(ring.state, 0);
      }
      if (s !== ST_READY) break; // reserved, not yet published: no age to tell
      const readyAt = ring.readyAt(at);
      // Still unclaimed after the read, so the header was that record's.
      const r2 = Atomics.load(i32, READ);
      if (r2 === r0 || r2 === r) {
        oldest = readyAt;
        break;
      }
    }
    if (this.pending.length > 0) oldest = Math.min(oldest, this.pending[0]!.dueAt || t);
    return oldest === Infinity ? 0 : Math.max(0, (t - oldest) / 1000);
  }

  private runningCount(): number {
    let n = 0;
    for (const c of this.consumers.values()) if (c.state === 'running' || c.state === 'starting') n++;
    return n;
  }

  private fillToDesired(): void {
    let running = this.runningCount();
    while (running < this.desired && this.startConsumer() !== null) running++;
    if (running > this.desired) {
      for (const c of [...this.consumers.values()].reverse()) {
        if (running <= this.desired) break;
        if (c.state === 'running') {
          this.stopConsumer(c);
          running--;
        }
      }
    }
  }

  /**
   * Read the shared counters in the reverse of the order a message moves
   * through them (acked, claimed, published, enqueued): a message seen at a
   * later stage is then always seen at the earlier ones, so a snapshot never
   * shows a live message as accounted for.
   */
  private foldCounters(): void {
    const ring = this.ring;
    const i32 = ring.i32;
    for (let s = 0; s < MAX_CONSUMERS; s++) this.acked[s]!.fold(Atomics.load(i32, ring.slotWord(s, S_ACKED)));
    const claimed = Atomics.load(i32, CLAIMED);
    this.claimed.fold(claimed);
    const published = Atomics.load(i32, PUBLISHED);
    this.published.fold(published);
    const d = (published - claimed) | 0;
    this.readyInRing = d > 0 ? d : 0;
    for (let r = 0; r < REJECT_REASONS.length; r++) this.rejected[r]!.fold(Atomics.load(i32, REJECTED_BASE + r));
    this.enqueued.fold(Atomics.load(i32, ENQUEUED));
  }

  private processed(): number {
    let n = 0;
    for (const f of this.acked) n += f.total;
    return n;
  }

  stats(): MailboxStats {
    this.foldCounters();
    const processed = this.processed();
    const rejectedBy = Object.fromEntries(REJECT_REASONS.map((r, i) => [r, this.rejected[i]!.total])) as Record<RejectReason, number>;
    const depth = this.readyInRing + this.pending.length;
    const oldest = depth === 0 ? 0 : this.oldestAgeSeconds();
    return {
      depth,
      inFlight: Math.max(0, this.claimed.total - processed - this.finishedHere),
      delayed: this.heap.size + this.blockedCount,
      enqueued: this.enqueued.total + this.producer.enqueuedHere,
      processed,
      failed: this.failed,
      retried: this.retried,
      redelivered: this.redelivered,
      deadLettered: this.deadLettered,
      deadLetteredBy: { ...this.deadBy },
      rejected: Object.values(rejectedBy).reduce((a, b) => a + b, 0),
      rejectedBy,
      threads: this.runningCount(),
      desiredThreads: this.desired,
      minThreads: this.opts.minThreads,
      maxThreads: this.opts.maxThreads,
      oldestAgeSeconds: oldest,
      estimatedLagSeconds: depth === 0 ? 0 : this.drainRate > 1e-9 ? depth / this.drainRate : oldest,
      drainRate: this.drainRate,
      scaleDecisions: { ...this.decisions },
      concurrency: this.concurrency,
      arrivalRate: this.arrivalRate,
      autoscale: this.autoscaleCfg !== null,
      scaleReason: this.lastReason,
      workerCrashes: this.workerCrashes,
      handlerTimeouts: this.handlerTimeouts,
      deadLetterSize: this.deadLetters.size,
      deadLettersDropped: this.deadLetters.dropped,
      capacityBytes: this.ring.capacityBytes,
      usedBytes: this.ring.usedUnits() * 16,
    };
  }

  /** Start recording histograms (metrics attached): consumer loops pick the bounds up at their next batch. */
  enableMetrics(bounds: readonly number[]): void {
    this.bounds = bounds;
    enableRecording(this.metricsSab, bounds);
    this.producer.timing = new LocalHistogram(bounds);
  }

  /** Histogram snapshots (cumulative buckets), or null while metrics are off. */
  histograms(): { bounds: readonly number[]; enqueue: HistogramSnapshot; queueWait: HistogramSnapshot; processing: HistogramSnapshot; endToEnd: HistogramSnapshot } | null {
    const b = this.bounds;
    if (b === null || this.producer.timing === null) return null;
    return {
      bounds: b,
      enqueue: this.producer.timing.snapshot(),
      queueWait: readHistogram(this.metricsSab, H_QUEUE_WAIT, b.length),
      processing: readHistogram(this.metricsSab, H_PROCESSING, b.length),
      endToEnd: readHistogram(this.metricsSab, H_END_TO_END, b.length),
    };
  }

  /** Every accepted message is accounted for: processed or dead-lettered, nothing ready, in flight or delayed. */
  idle(): boolean {
    const s = this.stats();
    return s.depth === 0 && s.inFlight === 0 && s.delayed === 0 && s.enqueued === s.processed + s.deadLettered;
  }

  /** Stop intake: sends throw RINGPOOL_CLOSED; waiting sendAsync calls reject with it. */
  closeIntake(): void {
    this.producer.closed = true;
    this.rejectWaiters(new RingpoolError(ErrorCodes.CLOSED, `mailbox '${this.name}' closed while waiting for room`, { mailbox: this.name }));
  }

  /** Ask every loop to return after its batch; wait up to `graceMs`, then terminate the threads. */
  async stop(graceMs: number): Promise<void> {
    this.stopped = true;
    if (this.heapTimer !== null) clearTimeout(this.heapTimer);
    this.heapTimer = null;
    for (const c of this.consumers.values()) this.stopConsumer(c);
    const all = Promise.all([...this.consumers.values()].map((c) => c.done));
    await Promise.race([all, new Promise((r) => setTimeout(r, graceMs).unref())]);
    await this.destroyPool();
  }

  private rejectAsks(): void {
    this.replies.rejectAll(
      () => new RingpoolError(ErrorCodes.CLOSED, `mailbox '${this.name}' closed before the asked message was processed`, { mailbox: this.name }),
    );
  }

  async destroyPool(): Promise<void> {
    this.stopped = true;
    if (this.heapTimer !== null) clearTimeout(this.heapTimer);
    this.heapTimer = null;
    const pool = this.pool;
    this.pool = null;
    this.rejectWaiters(new RingpoolError(ErrorCodes.CLOSED, `mailbox '${this.name}' was destroyed`, { mailbox: this.name }));
    if (pool !== null) await pool.destroy();
    this.rejectAsks();
  }

  /** What is left, for close()/destroy() reports. */
  leftovers(): { ready: number; inFlight: number; delayed: number } {
    const s = this.stats();
    return { ready: s.depth, inFlight: s.inFlight, delayed: s.delayed };
  }
}

function heldKeyed(held: HeldMessage, keySlot: number, keySeq: number): HeldMessage {
  held.keySlot = keySlot;
  held.keySeq = keySeq;
  return held;
}

function handlerLoadError(mailbox: string, url: string, cause: unknown): RingpoolError {
  const msg = cause instanceof Error ? cause.message : safeString(cause);
  return new RingpoolError(ErrorCodes.HANDLER_LOAD, `mailbox '${mailbox}': handler ${url} cannot be used: ${msg}`, { mailbox, url }, { cause });
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(onTimeout()), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}
