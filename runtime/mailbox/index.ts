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
 *   replay.ts     what a store (the journal) gave back at start()
 */
import { codecOf, codecSpec, type PayloadCodec } from '../shared/codec.js';
import { StructureTable } from '../shared/structures.js';
import { ErrorCodes, RingpoolError } from '../shared/errors.js';
import { ST_CLAIMED, allocateKeyTable } from '../shared/layout.js';
import { now } from '../shared/clock.js';
import { Producer, type BatchOptions, type SendOptions } from '../shared/producer.js';
import type { ProbeResult, RingRef, WorkerEvent, WorkerStats } from '../shared/protocol.js';
import { Ring } from '../shared/ring.js';
import { allocateMetricsBuffer, enableRecording, H_END_TO_END, H_PROCESSING, H_QUEUE_WAIT, LocalHistogram, readHistogram, type HistogramSnapshot } from '../shared/histogram.js';
import { DeadLetterStore, type DeadLetterSink } from '../dead-letters.js';
import { HeldMessage } from '../held.js';
import { HoleRepairs } from '../holes.js';
import type { ResolvedMailbox } from '../options.js';
import { REPLY_RING_BYTES, Replies } from '../replies.js';
import type { MessageStore } from '../store/store.js';
import { buildStore, storeGates } from '../store/index.js';
import { replay, restoreDead } from './replay.js';
import type { MailboxCall, MessageSource, SourceIntake } from '../source/source.js';
import { buildSource, hasSource, sourceIsRemote } from '../source/index.js';
import { Consumers, type Consumer } from './consumers.js';
import { Counters } from './counters.js';
import { Backlog } from './backlog.js';
import { Failures } from './failures.js';
import { Intake } from './intake.js';
import { KeyTurns } from './key-turns.js';
import { Owners } from './owners.js';
import { Leases } from './leases.js';
import { OutcomeFeed } from './outcomes.js';
import { Scaling } from './scaling.js';
import type { MailboxHost, MailboxStats } from './types.js';

export type { HandlerTimeoutEvent, MailboxHost, MailboxStats, ScaleEvent, WorkerCrashEvent } from './types.js';

export class Mailbox {
  readonly name: string;
  readonly ring: Ring;
  /** The same ring, for putting held messages back: it does not count the held units (they are the ones going in). */
  readonly republish: Ring;
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
  /** Histogram blocks written by the consumer loops (see shared/histogram.ts). */
  readonly metricsSab = allocateMetricsBuffer();
  /** The key table (layout.ts): per key entry its turn words and owner, then the hand-off queues. */
  readonly keysSab = allocateKeyTable();
  readonly keys = new Int32Array(this.keysSab);
  readonly counters: Counters;
  readonly backlog: Backlog;
  readonly turns: KeyTurns;
  readonly owners: Owners;
  readonly failures: Failures;
  readonly leases: Leases;
  readonly consumers: Consumers;
  readonly intake: Intake;
  readonly scaling: Scaling;
  /** The outcome feed, when a store or a source is attached (null: the in-memory mailbox, which pays nothing for it). */
  readonly outcomes: OutcomeFeed | null;
  /** The store (runtime/store/): the user's, a durable mailbox's journal, or null in memory. */
  private readonly store: MessageStore | null;
  /** The source (runtime/source/): the user's, a Redis Streams mailbox's, or null. */
  private readonly source: MessageSource | null;
  /** What the start() probe found: an actor module (a key is required) and its methods. */
  actorInfo: ProbeResult = { actor: false, methods: [] };
  stopped = false;
  private bounds: readonly number[] | null = null;
  /** The source's send(), when sends to this mailbox go to its engine instead of the ring (once, not looked up a send). */
  private readonly sendOut: NonNullable<MessageSource['send']> | null;
  private sourceStopped: Promise<void> | null = null;
  private storeClosed = false;

  constructor(
    readonly host: MailboxHost,
    readonly opts: ResolvedMailbox,
  ) {
    this.name = opts.name;
    const journaled = storeGates(opts);
    const followed = opts.store !== null || hasSource(opts) || journaled;
    const sab = Ring.allocate({ capacityBytes: opts.capacityBytes, maxPayloadBytes: opts.maxMessageBytes, followed, journaled });
    this.ring = new Ring(sab);
    // msgpack's record shapes, shared by every thread of the process (none when other processes decode the messages too).
    this.structures = opts.codec === 'msgpack' && !sourceIsRemote(opts) ? new StructureTable(StructureTable.allocate()) : null;
    this.store = buildStore(opts, { mailbox: this.name, ring: this.ring, structures: this.structures, emitError: (err) => host.emitError(err) });
    this.republish = new Ring(sab);
    this.republish.countHeld = false;
    this.codec = codecOf(opts.codec, this.structures?.sab ?? null);
    this.backlog = new Backlog({
      ring: this.ring,
      republish: this.republish,
      keys: this.keys,
      clock: now,
      onNeedsRoom: () => this.intake.armSpaceWatch(),
    });
    this.counters = new Counters({ ring: this.ring, backlog: this.backlog, clock: now });
    this.turns = new KeyTurns({ table: this.keys, ring: this.ring, backlog: this.backlog });
    this.owners = new Owners({
      table: this.keys,
      slots: () => this.consumers.all(),
      stateOf: (slot) => this.consumers.get(slot)?.state,
      actor: () => this.actorInfo.actor,
      turns: this.turns,
      backlog: this.backlog,
    });
    this.consumers = new Consumers({
      mailbox: this.name,
      opts,
      ring: this.ring,
      keys: this.keys,
      metricsSab: this.metricsSab,
      ringRefs: () => host.ringRefs(),
      desired: () => this.scaling.desired,
      stopped: () => this.stopped,
      running: () => host.running(),
      turns: this.turns,
      failures: { recover: (slot, current, crash, suspect) => this.failures.recover(slot, current, crash, suspect) },
      tally: this.counters,
      onEvent: (c, ev) => this.onEvent(c, ev),
      onProbe: (info) => (this.actorInfo = info),
      onSlotsChanged: () => this.owners.assignKeys(),
      onDeathInGuard: (slot, threadId) => {
        this.holes.afterDeath(slot);
        host.releaseStructures(threadId);
      },
      emitWorkerCrash: (ev) => host.emitWorkerCrash(ev),
      emitError: (err) => host.emitError(err),
    });
    this.scaling = new Scaling({
      mailbox: this.name,
      ring: this.ring,
      opts,
      clock: now,
      loops: () => this.consumers.all(),
      load: () => this.stats(),
      arrivalRate: () => (this.counters.arrivalKnown ? this.counters.arrivalRate : undefined),
      onDesired: () => this.consumers.fillToDesired(),
      emitScale: (ev) => host.emitScale(ev),
    });
    this.source = buildSource(opts, {
      mailbox: this.name,
      codec: this.codec,
      maxMessageBytes: opts.maxMessageBytes,
      maxAttempts: opts.maxAttempts,
      emitError: (err) => host.emitError(err),
      emitDeadLetter: (letter) => host.emitDeadLetter(letter),
      countFull: () => this.ring.countRejected('queue_full'),
    });
    const listeners = [this.store, this.source].filter((l) => l !== null);
    // A journal reads the records from the ring itself, and a Redis source needs only what finishes them:
    // the feed reports the ring's ACCEPTED and CLAIMED entries only for a listener that wants them.
    const ringEntries = listeners.some((l) => l.ringEntries !== false);
    this.outcomes = followed ? new OutcomeFeed(this.name, this.ring, listeners, (err) => host.emitError(err as Error), ringEntries) : null;
    this.replies = new Replies(new Ring(Ring.allocate({ capacityBytes: REPLY_RING_BYTES, maxPayloadBytes: opts.maxMessageBytes })), this.codec);
    this.failures = new Failures({
      mailbox: this.name,
      ring: this.ring,
      policy: { maxAttempts: opts.maxAttempts, backoff: opts.backoff },
      clock: now,
      tally: this.counters,
      backlog: this.backlog,
      turns: this.turns,
      sink: () => this.deadLetters,
      outcomes: this.outcomes,
      replies: this.replies,
      emitDeadLetter: (letter) => host.emitDeadLetter(letter),
      emitError: (err) => host.emitError(err),
    });
    this.leases = new Leases({
      mailbox: this.name,
      ring: this.ring,
      leaseMs: opts.leaseMs,
      loops: () => this.consumers.all(),
      terminate: (c) => this.consumers.terminate(c),
      failures: this.failures,
      tally: this.counters,
      backlog: this.backlog,
      emitHandlerTimeout: (ev) => host.emitHandlerTimeout(ev),
      emitError: (err) => host.emitError(err),
    });
    this.producer = new Producer(
      this.name,
      this.ring,
      this.codec,
      opts.maxMessageBytes,
      (_p, bytes, ascii, key, delayMs, id, sentAt, keySlot, keySeq) => this.acceptDelayed(heldKeyed(new HeldMessage(id, 1, sentAt, key, bytes, ascii, undefined), keySlot, keySeq), delayMs),
      this.keys,
    );
    this.producer.countLocally = true;
    this.intake = new Intake({
      mailbox: this.name,
      ring: this.ring,
      producer: this.producer,
      overflow: opts.overflow,
      outcomes: this.outcomes,
      backlog: this.backlog,
      replies: this.replies,
      actor: () => this.actorInfo.actor,
      stopped: () => this.stopped,
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
    this.deadLetters = this.source?.deadLetters?.(local) ?? local;
    const send = this.source?.send;
    this.sendOut = send === undefined ? null : send.bind(this.source);
  }

  ringRef(): RingRef {
    return {
      sab: this.ring.sab,
      keys: this.keysSab,
      replies: this.replies.ring.sab,
      codec: codecSpec(this.opts.codec, this.structures?.sab ?? null),
      maxMessageBytes: this.opts.maxMessageBytes,
    };
  }

  // ------------------------------------------------------------------ lifecycle

  /** Replay what the store kept, start the threads, then the outcome feed and the source. */
  async start(timeoutMs: number): Promise<void> {
    const { source } = this;
    const store = this.store;
    if (store !== null) {
      const stored = await store.open(this.name);
      if (this.stopped) return; // destroyed while the store opened (another mailbox's start failed)
      replay({ ring: this.ring, keys: this.keys, backlog: this.backlog }, stored);
      restoreDead(this.deadLetters, store.takeDeadLetters?.() ?? []);
    }
    await this.consumers.start(timeoutMs);
    this.outcomes?.start();
    if (this.actorInfo.actor) {
      const refused = this.refusal('actor');
      if (refused !== null) throw refused;
    }
    if (source !== null) await source.start(this.sourceIntake(), timeoutMs);
  }

  private sourceIntake(): SourceIntake {
    const box = this;
    return {
      mailbox: this.name,
      offer: (payload: unknown, opts?: SendOptions) => this.producer.trySend(payload, opts, 0),
      offerBytes: (bytes: Uint8Array, attempt: number, sentAt: number) => this.producer.offerBytes(bytes, attempt, sentAt),
      whenRoom: () => this.intake.whenRoom(),
      get open() {
        return !box.stopped && !box.producer.closed;
      },
    };
  }

  /** A delayed send (from any thread) was accepted: hold it until it is due. */
  acceptDelayed(held: HeldMessage, delayMs: number): void {
    this.backlog.holdDelayed(held, delayMs);
    this.outcomes?.acceptedHeld(held);
  }

  /** What a consumer loop reports (its event port; see shared/protocol.ts). */
  onEvent(c: Consumer, ev: WorkerEvent): void {
    switch (ev.type) {
      case 'ready':
        c.threadId = ev.threadId;
        if (c.state === 'starting') c.state = 'running';
        c.onReady();
        return;
      case 'load-error':
        c.onReady(new RingpoolError(ErrorCodes.HANDLER_LOAD, `mailbox '${this.name}': ${ev.error.message}`, { mailbox: this.name, url: this.opts.handlerUrl }));
        return;
      case 'nack':
        if (c.state === 'dead') return; // its slot was recovered already: a late result of a dead thread
        this.failures.onNack(c.slot, ev.unit, ev.error, ev.unrecoverable);
        return;
      case 'delayed-send': {
        // Accepted (counted as enqueued) on the worker: never drop it, whatever became of that thread.
        const target = this.host.mailbox(ev.mailbox);
        target?.acceptDelayed(heldKeyed(new HeldMessage(ev.id, 1, ev.sentAt, ev.key, ev.payload, ev.ascii, undefined), ev.keySlot, ev.keySeq), ev.delayMs);
        return;
      }
      case 'defer': {
        if (c.state === 'dead') return; // recovered already: it went back to the ring
        const held = this.failures.takeBack(ev.unit, ST_CLAIMED + c.slot);
        if (held === null) return;
        this.ring.reclaim();
        this.owners.holdKeyed(held);
        return;
      }
      case 'key-turn':
        this.turns.releaseTurns(ev.slot);
        return;
      case 'reply':
        this.replies.fromEvent(ev.id, ev.payload, ev.ascii);
        return;
    }
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
    this.scaling.tick(t);
  }

  // ------------------------------------------------------------------ what the runtime asks

  /** The error a call is refused with on this mailbox (its source cannot keep it), or null. */
  refusal(call: MailboxCall): RingpoolError | null {
    return this.source?.refuses?.(call) ?? null;
  }

  /** rt.send(): into the ring, or to the source's engine when sends go there. */
  send(payload: unknown, opts: SendOptions | undefined): number {
    const out = this.sendOut;
    return out === null ? this.producer.send(payload, opts) : out(payload, opts, this.producer.closed);
  }

  /** rt.sendAsync(): resolves with the id once accepted (durable: written), or with the engine's name for it when sends go to the source. */
  sendAsyncOut(payload: unknown, opts: SendOptions | undefined, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<unknown> {
    const source = this.source;
    if (source?.sendAsync !== undefined) return source.sendAsync(payload, opts, this.producer.closed, signal, timeoutMs);
    return this.sendAsync(payload, opts, signal, timeoutMs);
  }

  /** rt.sendBatch(): every payload or none, into the ring. */
  sendBatch(payloads: readonly unknown[], opts: BatchOptions | undefined): number[] {
    const refused = this.refusal('sendBatch');
    if (refused !== null) throw refused;
    return this.producer.sendBatch(payloads, opts);
  }

  /** Resolves with the id once the message is accepted; on a durable mailbox, once it is on disk as the fsync mode says. */
  sendAsync(payload: unknown, opts: SendOptions | undefined, signal: AbortSignal | undefined, timeoutMs: number | undefined, flags = 0, onSent?: (id: number) => void): Promise<number> {
    const writes = this.store?.writes;
    return writes === undefined ? this.intake.sendAsync(payload, opts, signal, timeoutMs, flags, onSent) : this.intake.sendAsyncDurable(writes, payload, opts, signal, timeoutMs, flags, onSent);
  }

  /** Resolves with the ids once the whole batch is accepted (on a durable mailbox: on disk, as for sendAsync). */
  sendBatchAsync(payloads: readonly unknown[], opts: BatchOptions | undefined, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<number[]> {
    const sent = this.intake.sendBatchAsync(payloads, opts, signal, timeoutMs);
    const writes = this.store?.writes;
    return writes === undefined ? sent : this.intake.durableBatch(writes, sent, opts);
  }

  ask(payload: unknown, key: string | undefined, flags: number, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<unknown> {
    const refused = this.refusal('ask');
    if (refused !== null) return Promise.reject(refused);
    return this.intake.ask(payload, key, flags, signal, timeoutMs);
  }

  stats(): MailboxStats {
    const s = this.counters.stats({
      enqueuedHere: this.producer.enqueuedHere,
      threads: this.consumers.runningCount(),
      minThreads: this.opts.minThreads,
      maxThreads: this.opts.maxThreads,
      scaling: this.scaling,
      deadLetters: this.deadLetters,
    });
    const st = this.store?.stats?.();
    if (st !== undefined) {
      s.store = st;
      if (st.kind === 'journal') s.journal = st;
    }
    const so = this.source?.stats?.();
    if (so !== undefined) {
      s.source = so;
      if (so.kind === 'stream') s.stream = so;
    }
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

  /** Stop intake: sends throw RINGPOOL_CLOSED; waiting sendAsync calls reject with it; a source stops reading. */
  closeIntake(): void {
    this.producer.closed = true;
    this.intake.rejectWaiters(new RingpoolError(ErrorCodes.CLOSED, `mailbox '${this.name}' closed while waiting for room`, { mailbox: this.name }));
    const source = this.source;
    if (source !== null && this.sourceStopped === null) {
      this.sourceStopped = Promise.resolve()
        .then(() => source.stop())
        .catch((err: unknown) => this.host.emitError(err as Error));
    }
  }

  /** Ask every loop to return after its batch; wait up to `graceMs`, then terminate the threads. */
  async stop(graceMs: number): Promise<void> {
    this.stopped = true;
    this.backlog.stop();
    await this.consumers.stopAll(graceMs);
    await this.destroyPool();
  }

  async destroyPool(): Promise<void> {
    this.stopped = true;
    this.backlog.stop();
    this.intake.rejectWaiters(new RingpoolError(ErrorCodes.CLOSED, `mailbox '${this.name}' was destroyed`, { mailbox: this.name }));
    await this.consumers.destroy();
    this.replies.rejectAll(() => new RingpoolError(ErrorCodes.CLOSED, `mailbox '${this.name}' closed before the asked message was processed`, { mailbox: this.name }));
    await this.closeSeams();
  }

  /** The feed's last walk reaches the listeners, then the source has stopped and the store closes (once). */
  private async closeSeams(): Promise<void> {
    const o = this.outcomes;
    if (o === null) return;
    o.stop();
    await this.sourceStopped;
    await this.source?.close?.().catch((err: unknown) => this.host.emitError(err as Error));
    const store = this.store;
    if (store !== null && !this.storeClosed) {
      this.storeClosed = true;
      await store.close().catch((err: unknown) => this.host.emitError(err as Error));
    }
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
