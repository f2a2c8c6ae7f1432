/**
 * The dispatcher of one mailbox (main thread): the façade the runtime talks
 * to. It builds the ring and the parts that work on it, routes what the
 * consumer loops report to them, and runs them every tick. The parts, one
 * concept a file in this folder:
 *
 *   consumers.ts  threads: start, stop, retire, recover a slot
 *   leases.ts     the lease watchdog and the stall watch
 *   failures.ts   a failed attempt: retry after backoff, or dead letter (retry.ts decides)
 *   backlog.ts    what waits outside the ring: the timer heap, messages waiting for room, held keyed units
 *   key-turns.ts  keyed messages held for their key's turn, seqs passed over
 *   owners.ts     which loop owns which key
 *   intake.ts     sendAsync and ask waiting for room
 *   counters.ts   counts, rates, stats()
 *   scaling.ts    the autoscaler and resize()
 *   outcomes.ts   the outcome feed for a store and a source (only when attached)
 *   attached.ts   the store and the source through their seams: open, start, stop reading, close
 *   replay.ts     what a store (the journal) gave back at start()
 *   histograms.ts the latency histograms the loops write
 */
import { BREAKER_CLOSED, BREAKER_HALF_OPEN, BREAKER_OPEN, expirePause, now32, setBreaker, setLimit } from '../shared/limit.js';
import { Breaker } from './breaker.js';
import { Adaptive } from './adaptive.js';
import { codecOf, codecSpec, type PayloadCodec } from '../shared/codec.js';
import { StructureTable } from '../shared/structures.js';
import { ErrorCodes, RingpoolError } from '../shared/errors.js';
import { allocateKeyTable, FLAG_CALL } from '../shared/layout.js';
import { now } from '../shared/clock.js';
import { Producer, type BatchOptions, type SendOptions } from '../shared/producer.js';
import type { ProbeResult, RingRef, StreamItem, WorkerStats } from '../shared/protocol.js';
import { Ring } from '../shared/ring.js';
import { DeadLetterStore, type DeadLetter, type DeadLetterSink } from '../dead-letters.js';
import { HeldMessage, withHeaders } from '../held.js';
import { HoleRepairs } from '../holes.js';
import type { ResolvedMailbox } from '../mailbox-options.js';
import { REPLY_RING_BYTES, Replies } from '../replies.js';
import { buildStore, storeGates } from '../store/index.js';
import { replay, restoreDead } from './replay.js';
import type { MailboxCall } from '../source/source.js';
import { buildSource, hasSource, sourceIsRemote } from '../source/index.js';
import { Consumers } from './consumers.js';
import { Counters } from './counters.js';
import { Attached } from './attached.js';
import { heldKeyed, routeEvent, type EventRoutes } from './events.js';
import { Backlog } from './backlog.js';
import { Histograms, type HistogramSnapshots } from './histograms.js';
import { Failures } from './failures.js';
import { Intake } from './intake.js';
import { KeyTurns } from './key-turns.js';
import { Owners } from './owners.js';
import { Leases } from './leases.js';
import { OutcomeFeed } from './outcomes.js';
import { Scaling } from './scaling.js';
import { Inspector } from './inspect.js';
import { ChainedSends } from './chained.js';
import { Sending } from './sending.js';
import type { MailboxHost, MailboxStats } from './types.js';

export type { HandlerTimeoutEvent, MailboxHost, MailboxStats, ScaleEvent, WorkerCrashEvent } from './types.js';

export class Mailbox {
  readonly name: string;
  readonly ring: Ring;
  /** The same ring, for putting held messages back: it does not count the held units (they are the ones going in). */
  private readonly republish: Ring;
  readonly producer: Producer;
  readonly codec: PayloadCodec;
  /** The msgpack codec's shared record structures (null for other codecs and Redis mailboxes). */
  readonly structures: StructureTable | null;
  /** Where dead letters go: the in-memory store, or what the source puts in front of it. */
  readonly deadLetters: DeadLetterSink;
  /** ask(): open asks and the reply ring. */
  readonly replies: Replies;
  /** Holes left by threads that died inside a guard, repaired once consumers reach them (holes.ts). */
  readonly holes: HoleRepairs;
  /** The key table (layout.ts): per key entry its turn words and owner, then the hand-off queues. */
  private readonly keysSab = allocateKeyTable();
  private readonly keys = new Int32Array(this.keysSab);
  private readonly counters: Counters;
  private readonly backlog: Backlog;
  private readonly turns: KeyTurns;
  private readonly owners: Owners;
  private readonly failures: Failures;
  private readonly leases: Leases;
  private readonly consumers: Consumers;
  private readonly intake: Intake;
  private readonly scaling: Scaling;
  /** The outcome feed, when a store or a source is attached (null: the in-memory mailbox, which pays nothing for it). */
  readonly outcomes: OutcomeFeed | null;
  /** The store and the source, through their seams (runtime/store/, runtime/source/). */
  private readonly attached: Attached;
  /** The circuit breaker (breaker.ts), or null; the processed count it last saw. */
  readonly breaker: Breaker | null;
  private breakerSeen = 0;
  /** Adaptive concurrency (adaptive.ts), or null. */
  readonly adaptive: Adaptive | null;
  /** What the runtime sends to it, its asks, its pause (sending.ts). */
  readonly sends: Sending;
  /** Its messages looked at without taking them (rt.inspect, the console). */
  readonly inspector: Inspector;
  private readonly histogramBlocks = new Histograms();
  /** Where a loop's events go (events.ts). */
  private readonly routes: EventRoutes;
  /** What the start() probe found: an actor module (a key is required) and its methods. */
  actorInfo: ProbeResult = { actor: false, methods: [] };
  stopped = false;

  constructor(
    readonly host: MailboxHost,
    readonly opts: ResolvedMailbox,
  ) {
    this.name = opts.name;
    const emitError = (err: Error): void => host.emitError(err);
    const emitDeadLetter = (letter: DeadLetter): void => host.emitDeadLetter(letter);
    const journaled = storeGates(opts);
    const followed = opts.store !== null || hasSource(opts) || journaled;
    const sab = Ring.allocate({ capacityBytes: opts.capacityBytes, maxPayloadBytes: opts.maxMessageBytes, followed, journaled });
    this.ring = new Ring(sab);
    if (opts.rateLimit !== null) setLimit(this.ring.i32, opts.rateLimit.max, opts.rateLimit.perMs);
    this.breaker = opts.breaker === null ? null : new Breaker(opts.breaker, Date.now, (state, failureRatio, calls) => {
      setBreaker(this.ring.i32, state === 'open' ? BREAKER_OPEN : state === 'half-open' ? BREAKER_HALF_OPEN : BREAKER_CLOSED);
      if (state !== 'open') this.ring.wakeAll();
      host.emitBreaker({ mailbox: this.name, state, failureRatio, calls });
    });
    this.adaptive = opts.adaptive === null ? null : new Adaptive(this.ring.i32, opts.adaptive, now());
    // Before any other view of the ring is made: a ring served by the shared pool wakes it through the pool's board.
    const threads = host.threadsOf(this.name, this.ring, opts);
    // msgpack's record shapes, shared by every thread of the process (none when other processes decode the messages too).
    this.structures = opts.codec === 'msgpack' && !sourceIsRemote(opts) ? new StructureTable(StructureTable.allocate()) : null;
    const store = buildStore(opts, { mailbox: this.name, ring: this.ring, structures: this.structures, emitError });
    this.republish = new Ring(sab);
    if (this.ring.boardSab !== null) this.republish.attachBoard(this.ring.boardSab);
    this.republish.countHeld = false;
    this.codec = codecOf(opts.codec, this.structures?.sab ?? null);
    this.backlog = new Backlog({ ring: this.ring, republish: this.republish, keys: this.keys, clock: now, onNeedsRoom: () => this.intake.armSpaceWatch() });
    this.counters = new Counters({ ring: this.ring, backlog: this.backlog, clock: now, slotsUsed: () => this.consumers.slotsUsed });
    this.turns = new KeyTurns({ table: this.keys, ring: this.ring, backlog: this.backlog });
    const actor = (): boolean => this.actorInfo.actor;
    const loops = () => this.consumers.all();
    this.owners = new Owners({ table: this.keys, slots: loops, stateOf: (slot) => this.consumers.get(slot)?.state, actor, turns: this.turns, backlog: this.backlog });
    this.consumers = new Consumers({
      mailbox: this.name,
      opts,
      ring: this.ring,
      keys: this.keys,
      metricsSab: this.histogramBlocks.sab,
      ringRefs: () => host.ringRefs(),
      threads,
      desired: () => this.scaling.desired,
      stopped: () => this.stopped,
      running: () => host.running(),
      turns: this.turns,
      failures: { recover: (slot, current, crash, suspect) => this.failures.recover(slot, current, crash, suspect) },
      tally: this.counters,
      onEvent: (c, ev) => routeEvent(this.routes, c, ev),
      onProbe: (info) => (this.actorInfo = info),
      onSlotsChanged: () => this.owners.assignKeys(),
      onDeathInGuard: (slot, threadId) => {
        this.holes.afterDeath(slot);
        host.releaseStructures(threadId);
      },
      onLoopGone: (slot) => this.adaptive?.release(slot),
      emitWorkerCrash: (ev) => host.emitWorkerCrash(ev),
      emitError,
    });
    this.scaling = new Scaling({
      mailbox: this.name, ring: this.ring, opts, clock: now, loops,
      load: () => this.counters.load(),
      limit: () => this.adaptive?.limit,
      arrivalRate: () => (this.counters.arrivalKnown ? this.counters.arrivalRate : undefined),
      onDesired: () => this.consumers.fillToDesired(),
      emitScale: (ev) => host.emitScale(ev),
    });
    const source = buildSource(opts, {
      mailbox: this.name, codec: this.codec, maxMessageBytes: opts.maxMessageBytes, maxAttempts: opts.maxAttempts, emitError, emitDeadLetter,
      countFull: () => this.ring.countRejected('queue_full'),
      openAsk: (id, ask) => this.replies.add(id, ask),
      dropAsk: (id) => this.replies.drop(id),
      gate: { i32: this.ring.i32, rateLimit: opts.rateLimit, depth: () => this.counters.load().depth },
    });
    const listeners = [store, source].filter((l) => l !== null);
    // A journal reads the records from the ring itself, and a Redis source needs only what finishes them:
    // the feed reports the ring's ACCEPTED and CLAIMED entries only for a listener that wants them.
    const ringEntries = listeners.some((l) => l.ringEntries !== false);
    this.outcomes = followed ? new OutcomeFeed(this.name, this.ring, listeners, (err) => emitError(err as Error), ringEntries) : null;
    this.replies = new Replies(new Ring(Ring.allocate({ capacityBytes: REPLY_RING_BYTES, maxPayloadBytes: opts.maxMessageBytes, prefault: false })), this.codec);
    this.failures = new Failures({
      mailbox: this.name, ring: this.ring, policy: { maxAttempts: opts.maxAttempts, backoff: opts.backoff }, clock: now, wallClock: Date.now, tally: this.counters,
      backlog: this.backlog, turns: this.turns, sink: () => this.deadLetters, outcomes: this.outcomes, replies: this.replies, emitDeadLetter, emitError,
      fenced: (id) => this.attached.fenced(id),
      breaker: this.breaker,
    });
    this.leases = new Leases({
      mailbox: this.name, ring: this.ring, leaseMs: opts.leaseMs, loops, terminate: (c) => this.consumers.terminate(c), blockedByOther: (c) => this.consumers.blockedByOther(c), failures: this.failures,
      tally: this.counters, backlog: this.backlog, emitHandlerTimeout: (ev) => host.emitHandlerTimeout(ev), emitError,
    });
    this.producer = new Producer(
      this.name,
      this.ring,
      this.codec,
      opts.maxMessageBytes,
      (_p, bytes, ascii, key, delayMs, id, sentAt, keySlot, keySeq, headers) => this.acceptDelayed(heldKeyed(withHeaders(new HeldMessage(id, 1, sentAt, key, bytes, ascii, undefined), headers), keySlot, keySeq), delayMs),
      this.keys,
    );
    this.producer.countLocally = true;
    this.intake = new Intake({
      mailbox: this.name, ring: this.ring, producer: this.producer, overflow: opts.overflow, outcomes: this.outcomes, backlog: this.backlog,
      replies: this.replies, actor, stopped: () => this.stopped,
    });
    this.holes = new HoleRepairs({
      ring: this.ring,
      replyRing: this.replies.ring,
      keys: this.keys,
      stopped: () => this.stopped,
      othersInside: () => this.host.guardsHeld(),
      takeBack: (unit, expected) => {
        const held = this.failures.takeBack(unit, expected);
        if (held === null) return;
        this.counters.redelivered++;
        this.backlog.pend(held);
        this.backlog.flush();
      },
      unaccept: (keySlot, seq) => this.turns.unaccept(keySlot, seq),
      holesAt: (index) => this.host.mailboxAt(index)?.holes,
    });
    const local = new DeadLetterStore(
      this.name,
      opts.deadLetterLimit,
      (held) => this.codec.decode(Buffer.from(held.payload.buffer, held.payload.byteOffset, held.payload.byteLength), held.payload, 0, held.payload.byteLength, held.ascii),
      (held) => {
        this.outcomes?.redriven(held);
        this.backlog.redrive(held);
      },
      this.outcomes === null ? null : (held) => this.outcomes!.purged(held),
    );
    this.deadLetters = source?.deadLetters?.(local) ?? local;
    this.routes = {
      mailbox: this.name, handlerUrl: opts.handlerUrl, ring: this.ring, failures: this.failures, owners: this.owners, turns: this.turns,
      replies: this.replies, peer: (name: string) => host.mailbox(name),
      chained: new ChainedSends((c) => this.ring.slot(c), (name) => host.mailbox(name), emitError),
    };
    this.attached = new Attached({
      mailbox: this.name, store, source, outcomes: this.outcomes, emitError,
      waiting: () => this.counters.load().depth,
      capacity: () => this.scaling.capacity(),
    });
    this.inspector = new Inspector({
      ring: this.ring, codec: this.codec,
      threadOf: (slot) => this.consumers.get(slot)?.threadId ?? null,
      waiting: () => this.backlog.waitingMessages(),
      delayed: () => this.backlog.delayedMessages(),
      promote: (id) => this.backlog.promote(id),
    });
    this.sends = new Sending({ ring: this.ring, producer: this.producer, intake: this.intake, attached: this.attached, actor: () => this.actorInfo.actor, tracing: opts.tracing !== null });
  }

  ringRef(): RingRef {
    return {
      sab: this.ring.sab,
      keys: this.keysSab,
      replies: this.replies.ring.sab,
      codec: codecSpec(this.opts.codec, this.structures?.sab ?? null),
      maxMessageBytes: this.opts.maxMessageBytes,
      board: this.ring.boardSab,
      fence: this.attached.fence,
      stream: this.attached.stream,
    };
  }

  // ------------------------------------------------------------------ lifecycle

  /** Replay what the store kept, start the threads, then the outcome feed and the source. */
  async start(timeoutMs: number): Promise<void> {
    const kept = await this.attached.open();
    if (kept !== null) {
      if (this.stopped) return; // destroyed while the store opened (another mailbox's start failed)
      replay({ ring: this.ring, keys: this.keys, backlog: this.backlog, clock: now }, kept.stored);
      restoreDead(this.deadLetters, kept.dead);
    }
    await this.consumers.start(timeoutMs);
    if (this.actorInfo.actor) {
      const refused = this.refusal('actor');
      if (refused !== null) throw refused;
    }
    const { producer, intake } = this;
    const stopped = (): boolean => this.stopped;
    await this.attached.start(
      {
        mailbox: this.name,
        offer: (payload, opts) => producer.trySend(payload, opts, 0),
        offerBytes: (bytes, attempt, sentAt, key, flags, headers) => producer.offerBytes(bytes, attempt, sentAt, key ?? null, flags ?? 0, headers ?? null),
        whenRoom: () => intake.whenRoom(),
        get open() {
          return !stopped() && !producer.closed;
        },
      },
      timeoutMs,
    );
  }

  /** A delayed send (from any thread) was accepted: hold it until it is due. */
  acceptDelayed(held: HeldMessage, delayMs: number): void {
    this.backlog.holdDelayed(held, delayMs);
    this.outcomes?.acceptedHeld(held);
  }

  /** Every dispatcher tick (runtime tickMs). */
  tick(t: number): void {
    if (this.stopped) return;
    this.counters.tick(t);
    this.leases.watch(t);
    this.leases.watchStall(t);
    this.turns.tick();
    this.holes.run();
    this.owners.rebalanceIfDue();
    this.backlog.tick();
    this.outcomes?.follow();
    this.adaptive?.tick(t, this.scaling.elu());
    this.scaling.tick(t);
    this.attached.tick(t);
    expirePause(this.ring.i32, now32(t));
    if (this.breaker !== null) {
      // Successes since the last tick (the breaker counts them; a half-open one closes on its probe's).
      const p = this.counters.processed();
      this.breaker.success(p - this.breakerSeen);
      this.breakerSeen = p;
      this.breaker.tick();
    }
  }

  // ------------------------------------------------------------------ what the runtime asks

  /** The error a call is refused with on this mailbox (its source cannot keep it), or null. */
  refusal(call: MailboxCall): RingpoolError | null {
    return this.attached.refusal(call);
  }

  stats(): MailboxStats {
    const s = this.counters.stats({
      enqueuedHere: this.producer.enqueuedHere,
      threads: this.consumers.runningCount(),
      minThreads: this.opts.minThreads,
      maxThreads: this.opts.maxThreads,
      scaling: this.scaling,
      deadLetters: this.deadLetters,
      rateLimit: this.opts.rateLimit,
      breaker: this.breaker === null ? null : { state: this.breaker.state, opens: this.breaker.opens },
      adaptive: this.adaptive?.stats() ?? null,
    });
    this.attached.addStats(s);
    return s;
  }

  resize(threads: number): void {
    this.scaling.resize(threads);
  }

  setAutoscale(on: boolean): void {
    this.scaling.setAutoscale(on);
  }

  workerStats(): Promise<WorkerStats[]> {
    return this.consumers.workerStats();
  }

  /** Whether a live loop of this mailbox is inside its guard now. */
  guardHeld(): boolean {
    return this.consumers.guardHeld();
  }

  /** Start recording histograms (metrics attached): consumer loops pick the bounds up at their next batch. */
  enableMetrics(bounds: readonly number[]): void {
    this.histogramBlocks.enable(bounds, this.producer);
  }

  /** Histogram snapshots (cumulative buckets), or null while metrics are off. */
  histograms(): HistogramSnapshots | null {
    return this.histogramBlocks.snapshot(this.producer);
  }

  /** Every accepted message is accounted for: processed or dead-lettered, nothing ready, in flight or delayed. */
  idle(): boolean {
    const s = this.stats();
    return s.depth === 0 && s.inFlight === 0 && s.delayed === 0 && s.enqueued === s.processed + s.deadLettered;
  }

  /** Stop intake: sends throw RINGPOOL_CLOSED; waiting sendAsync calls reject with it; a source stops reading. */
  closeIntake(): void {
    this.producer.closed = true;
    this.intake.rejectWaiters(new RingpoolError(ErrorCodes.CLOSED, `mailbox '${this.name}' closed while waiting for room`, { mailbox: this.name }));
    this.attached.stopReading();
  }

  /** The source has stopped reading (at most `ms`): what its last read brought back is counted in the leftovers. */
  readingStopped(ms: number): Promise<void> {
    return this.attached.readingStopped(ms);
  }

  /** Ask the loops to return after their batch; wait up to `graceMs`. Then destroyPool() (after the shared pool, if any, is gone). */
  async stopLoops(graceMs: number): Promise<void> {
    this.stopped = true;
    this.backlog.stop();
    await this.consumers.stopAll(graceMs);
  }

  async destroyPool(): Promise<void> {
    this.stopped = true;
    this.backlog.stop();
    this.intake.rejectWaiters(new RingpoolError(ErrorCodes.CLOSED, `mailbox '${this.name}' was destroyed`, { mailbox: this.name }));
    await this.consumers.destroy();
    this.replies.rejectAll(() => new RingpoolError(ErrorCodes.CLOSED, `mailbox '${this.name}' closed before the asked message was processed`, { mailbox: this.name }));
    await this.attached.close();
  }

  /** What is left, for close()/destroy() reports. */
  leftovers(): { ready: number; inFlight: number; delayed: number } {
    const s = this.stats();
    return { ready: s.depth + (s.source?.leftPending ?? 0), inFlight: s.inFlight, delayed: s.delayed };
  }
}
