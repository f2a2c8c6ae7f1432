/**
 * The runtime: a set of mailboxes, the public API, events and lifecycle.
 * Main thread only.
 */
import { IdleWaiters } from './idle.js';
import { EventEmitter } from 'node:events';
import { now } from './shared/clock.js';
import { ErrorCodes, RingpoolError, describeValue, optionThrew } from './shared/errors.js';
import type { BatchOptions, SendOptions } from './shared/producer.js';
import type { RingRef, WorkerStats } from './shared/protocol.js';
import type { DeadLetters } from './dead-letters.js';
import { Mailbox, type MailboxStats } from './mailbox/index.js';
import type { InspectPage, InspectedMessage, MessageState } from './mailbox/inspect.js';
import type { CloseOptions, CloseReport, RuntimeEvents, SendAsyncOptions, SendBatchAsyncOptions } from './api.js';
import { resolveRuntime, type ResolvedRuntime, type RuntimeOptions } from './options.js';
import type { RateLimitOptions } from './rate-limit.js';
import * as controls from './controls.js';
import { sharedPool, type SharedPool, type PoolStats } from './pool/shared.js';
import { RuntimeHost } from './host.js';
import { checkAsk, closeTimeout, splitWait } from './call-options.js';
import { FLAG_ASK } from './shared/layout.js';
import { actorRef, type ActorRef, type ActorRefOptions, type AskOptions } from './actor-ref.js';
import type { StreamDeadLetters } from './source/stream.js';
import type { ActorDefinition } from '../workers/actor.js';
import type { AnyMailboxes, MailboxName, MailboxTypes, TypesOf } from './typed.js';

export type { ActorRef, ActorRefOptions, AskOptions } from './actor-ref.js';

export type { CloseOptions, CloseReport, DeadLetterEvent, RuntimeEvents, SendAsyncOptions, SendBatchAsyncOptions } from './api.js';

type State = 'created' | 'starting' | 'running' | 'closing' | 'closed';

/**
 * `T`: the mailboxes' names and types (runtime/typed.ts). Untyped (the default), any name and any payload; from
 * `createRuntime` with `mailbox<M>()` handlers, or annotated `Runtime<{ orders: { payload; result } }>`, a wrong
 * name or payload fails to compile.
 */
export class Runtime<T extends MailboxTypes = AnyMailboxes> extends EventEmitter<RuntimeEvents> {
  private state_: State = 'created';
  private readonly boxes = new Map<string, Mailbox>();
  private readonly refs: Record<string, RingRef> = Object.create(null);
  private ticker: NodeJS.Timeout | null = null;
  private readonly idle = new IdleWaiters(
    () => this.isIdle(),
    () => {
      for (const b of this.boxes.values()) b.outcomes?.follow();
    },
  );
  private closing: Promise<CloseReport> | null = null;
  private finished = false;
  readonly options: ResolvedRuntime;
  /** The threads mailboxes share (null when every mailbox has its own). */
  private readonly pool: SharedPool | null;

  constructor(options: RuntimeOptions) {
    super();
    try {
      this.options = resolveRuntime(options);
    } catch (err) {
      // A getter or Proxy trap in the options that throws: RINGPOOL_INVALID_OPTION, the thrown value as `cause`.
      throw optionThrew('createRuntime options', err);
    }
    this.pool = sharedPool(this.options, () => this.refs, (err) => this.emitError(err));
    const host = new RuntimeHost({
      boxes: this.boxes,
      refs: this.refs,
      pool: () => this.pool,
      options: this.options,
      running: () => this.state_ === 'running' || this.state_ === 'closing',
      emit: (event, ...args) => void (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args),
      emitError: (err) => this.emitError(err),
    });
    for (const m of this.options.mailboxes) {
      const box = new Mailbox(host, m);
      this.boxes.set(m.name, box);
      this.refs[m.name] = box.ringRef();
    }
  }

  /** @internal A mailbox by name (the metrics read its histograms): not for users. */
  mailbox(name: string): Mailbox | undefined {
    return this.boxes.get(name);
  }

  /** Something went wrong inside ringpool itself: the 'error' event when listened to, else a process warning. */
  private emitError(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else process.emitWarning(err);
  }

  /** Mailbox names. */
  get mailboxes(): string[] {
    return [...this.boxes.keys()];
  }

  /** Lifecycle state: created, starting, running, closing (draining), closed. */
  get state(): State {
    return this.state_;
  }

  /**
   * Start the threads: loads every handler (rejects with RINGPOOL_HANDLER_LOAD
   * when one cannot load, within startTimeoutMs) and starts minThreads loops
   * per mailbox. Messages sent before start() wait in their rings.
   */
  async start(): Promise<void> {
    if (this.state_ !== 'created') {
      throw new RingpoolError(ErrorCodes.INVALID_STATE, `start() called on a runtime that is ${this.state_}`, { state: this.state_ });
    }
    this.state_ = 'starting';
    try {
      await Promise.all([...this.boxes.values()].map((b) => b.start(this.options.startTimeoutMs)));
    } catch (err) {
      this.state_ = 'closed';
      for (const b of this.boxes.values()) b.closeIntake();
      const left = this.leftovers();
      await this.stopThreads().catch(() => {});
      // Finished: nothing will move any more, so onIdle() waiters are released
      // and 'close' reports what was sent before start() and is now lost.
      this.finish({ drained: this.isIdle(), left });
      throw err;
    }
    if ((this.state_ as State) !== 'starting') return; // destroyed meanwhile
    this.state_ = 'running';
    this.ticker = setInterval(() => this.tick(), this.options.tickMs);
    this.ticker.unref();
  }

  private tick(): void {
    const t = now();
    for (const b of this.boxes.values()) b.tick(t);
  }

  private box(name: string): Mailbox {
    if (typeof name !== 'string') {
      throw new RingpoolError(ErrorCodes.INVALID_OPTION, `the mailbox name must be a string, got ${describeValue(name)}`, { option: 'mailbox' });
    }
    const b = this.boxes.get(name);
    if (b === undefined) {
      const shown = name.length > 80 ? `${name.slice(0, 77)}...` : name;
      throw new RingpoolError(ErrorCodes.UNKNOWN_MAILBOX, `no mailbox named '${shown}' (have: ${this.mailboxes.join(', ')})`, {
        mailbox: shown,
      });
    }
    return b;
  }

  /**
   * Enqueue a message; returns its id. Synchronous: throws RingpoolError
   * (RINGPOOL_QUEUE_FULL at once when the ring is full, whatever the overflow
   * policy; RINGPOOL_MESSAGE_TOO_LARGE, RINGPOOL_UNSERIALIZABLE,
   * RINGPOOL_UNKNOWN_MAILBOX, RINGPOOL_CLOSED).
   */
  send<K extends MailboxName<T>>(mailbox: K, payload: T[K]['payload'], opts?: SendOptions): number {
    // A Redis mailbox: XADD (pipelined); the number is this process's count of sends to it.
    return this.box(mailbox).sends.send(payload, opts);
  }

  /**
   * Send a message and wait for what its handler returns. Rejects with
   * RINGPOOL_DEAD_LETTERED (the last error as `cause`) when the message is
   * dead-lettered after its attempts, RINGPOOL_TIMEOUT after timeoutMs, the
   * signal's reason on abort, RINGPOOL_CLOSED when the runtime closes first,
   * and the send errors (RINGPOOL_QUEUE_FULL under overflow 'reject', ...).
   * The reply comes back through shared memory (the mailbox's reply ring).
   */
  ask<R = never, K extends MailboxName<T> = MailboxName<T>>(mailbox: K, payload: T[K]['payload'], opts?: AskOptions): Promise<[R] extends [never] ? T[K]['result'] : R> {
    let b: Mailbox;
    let o: AskOptions;
    try {
      b = this.box(mailbox);
      o = checkAsk(opts);
    } catch (err) {
      return Promise.reject(err);
    }
    return b.sends.ask(payload, o.key, FLAG_ASK, o.signal, o.timeoutMs) as Promise<[R] extends [never] ? T[K]['result'] : R>;
  }

  /**
   * A typed reference to an actor mailbox: `rt.actor<typeof def>('orders').ask.reserve(key, sku, qty)`.
   * `T` is the type of the handler module's default export (`actor({...})`).
   */
  actor<A extends ActorDefinition = ActorDefinition>(mailbox: MailboxName<T>, defaults: ActorRefOptions = {}): ActorRef<A> {
    return actorRef<A>(this.box(mailbox), defaults, () => this.state_ !== 'created' && this.state_ !== 'starting');
  }

  /**
   * Enqueue a message, waiting for room when the mailbox's overflow is 'wait'
   * (FIFO among waiters). Rejects with RINGPOOL_TIMEOUT after timeoutMs, with
   * the signal's reason on abort, and with RINGPOOL_QUEUE_FULL at once under
   * overflow 'reject'.
   */
  async sendAsync<Id = number, K extends MailboxName<T> = MailboxName<T>>(mailbox: K, payload: T[K]['payload'], opts?: SendAsyncOptions): Promise<Id> {
    const b = this.box(mailbox);
    const [sendOpts, signal, timeoutMs] = splitWait<SendOptions>('sendAsync', opts);
    // A Redis mailbox: resolves with the stream entry id (a string) once Redis has it.
    return b.sends.sendAsyncOut(payload, sendOpts, signal, timeoutMs) as Promise<Id>;
  }

  /**
   * Enqueue every payload, or none: one reservation and one publish pass.
   * Returns the ids in order. Throws RINGPOOL_QUEUE_FULL (nothing written)
   * when the batch does not fit now, RINGPOOL_INVALID_OPTION naming
   * capacityBytes for a batch that never could (over half the ring), and
   * what send() throws for a bad payload (its index in `details.index`).
   * `opts.key`: one key for every message, or `(payload, index) => key`;
   * per-key order is the batch's order.
   */
  sendBatch<K extends MailboxName<T>>(mailbox: K, payloads: readonly T[K]['payload'][], opts?: BatchOptions): number[] {
    return this.box(mailbox).sends.sendBatch(payloads, opts);
  }

  /** sendBatch, waiting for room for the whole batch when the overflow is 'wait' (FIFO with sendAsync). */
  async sendBatchAsync<Ids extends unknown[] = number[], K extends MailboxName<T> = MailboxName<T>>(mailbox: K, payloads: readonly T[K]['payload'][], opts?: SendBatchAsyncOptions): Promise<Ids> {
    const b = this.box(mailbox);
    const refused = b.refusal('sendBatchAsync');
    if (refused !== null) throw refused;
    const [batchOpts, signal, timeoutMs] = splitWait<BatchOptions>('sendBatchAsync', opts);
    // A Redis mailbox resolves with the stream entry ids (sendBatchAsync<string[]>), as sendAsync does.
    return b.sends.sendBatchAsync(payloads, batchOpts, signal, timeoutMs) as Promise<Ids>;
  }

  /** The threads shared mailboxes run on: how many run, at most, and the loops they run. */
  poolStats(): PoolStats {
    return this.pool?.stats() ?? { threads: 0, maxThreads: this.options.pool.maxThreads, lanes: 0 };
  }

  /** A snapshot of one mailbox's counters and gauges. */
  stats(mailbox: MailboxName<T>): MailboxStats {
    return this.box(mailbox).stats();
  }

  /**
   * Pin a mailbox's thread count (0..maxThreads): the autoscaler leaves it
   * alone until `rt.autoscale(mailbox, true)`.
   */
  resize(mailbox: MailboxName<T>, threads: number): void {
    controls.resize(this.box(mailbox), threads);
  }


  /**
   * Start nothing new on a mailbox for `ms` (or until resume()): its messages
   * wait in the ring, uncharged; what runs finishes (issue #31).
   */
  pause(mailbox: MailboxName<T>, opts?: { ms?: number }): void {
    this.box(mailbox).sends.pause(opts?.ms);
  }

  /** End a pause (rt.pause(), or a handler's ctx.retryAfter()): the mailbox starts messages again at once. */
  resume(mailbox: MailboxName<T>): void {
    this.box(mailbox).sends.resume();
  }

  /**
   * Change a mailbox's `rateLimit` while it runs, or lift it (`null`): its
   * threads keep to the new one from their next claim. A Redis group's
   * limit (`scope: 'group'`) is each process's option, not changed here.
   */
  setRateLimit(mailbox: MailboxName<T>, limit: RateLimitOptions | null): void {
    controls.setRateLimit(this.box(mailbox), mailbox, limit);
  }


  /** Turn the autoscaler on or off for a mailbox (on also undoes a resize()). */
  autoscale(mailbox: MailboxName<T>, on: boolean): void {
    controls.autoscale(this.box(mailbox), on);
  }


  /**
   * Look into a mailbox without taking anything: its messages `ready` (in
   * the ring, or waiting for room), `in-flight` (claimed by a thread: which,
   * and since when) or `delayed` (delayMs or a retry's backoff), oldest
   * first, at most `limit` (default 50), and how many there are. A snapshot
   * of a moving queue, for operators; a Redis mailbox shows what this process holds.
   */
  inspect(mailbox: MailboxName<T>, opts: { state: MessageState; limit?: number }): InspectPage {
    return controls.inspect(this.box(mailbox), mailbox, opts);
  }


  /** One message a mailbox holds, by id, with its payload decoded when it can be; null when it holds none with that id. */
  message(mailbox: MailboxName<T>, id: number): (InspectedMessage & { payload?: unknown }) | null {
    return this.box(mailbox).inspector.find(id);
  }

  /** A delayed or retrying message runs now instead of at its due time; false when the mailbox holds none with that id here. */
  promote(mailbox: MailboxName<T>, id: number): boolean {
    return this.box(mailbox).inspector.promote(id);
  }

  /** Per-thread figures of a mailbox's consumer loops (a comlink call to each thread; not for the hot path). */
  workerStats(mailbox: MailboxName<T>): Promise<WorkerStats[]> {
    return this.box(mailbox).workerStats();
  }

  /**
   * The dead-letter store of a mailbox: list(), redrive(), purge(). A Redis
   * mailbox's is `<stream>:dead`, and its methods return promises:
   * `rt.deadLetters<StreamDeadLetters>('orders')`.
   */
  deadLetters<D extends DeadLetters | StreamDeadLetters = DeadLetters>(mailbox: MailboxName<T>): D {
    return this.box(mailbox).deadLetters.view as D;
  }

  /** True when every mailbox is empty, nothing is in flight and nothing is delayed. */
  isIdle(): boolean {
    for (const b of this.boxes.values()) if (!b.idle()) return false;
    return true;
  }

  /** Resolves when every mailbox is empty, nothing is in flight and nothing is delayed (idle.ts). */
  onIdle(): Promise<void> {
    return this.idle.wait(this.finished);
  }

  /**
   * Stop intake (sends throw RINGPOOL_CLOSED), drain queued, in-flight and
   * delayed messages for up to timeoutMs, then stop the threads. Reports what
   * was left. Calling it again returns the same report.
   */
  close(opts: CloseOptions = {}): Promise<CloseReport> {
    if (this.closing !== null) return this.closing;
    let timeoutMs: number;
    try {
      timeoutMs = closeTimeout(opts);
    } catch (err) {
      return Promise.reject(err);
    }
    this.closing = this.doClose(timeoutMs);
    return this.closing;
  }

  private async doClose(timeoutMs: number): Promise<CloseReport> {
    const wasRunning = this.state_ === 'running';
    this.state_ = 'closing';
    for (const b of this.boxes.values()) b.closeIntake();
    let drained = this.isIdle();
    if (!drained && wasRunning) {
      let timer: NodeJS.Timeout | undefined;
      drained = await Promise.race([
        this.onIdle().then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs))),
      ]);
      clearTimeout(timer);
    }
    // A Redis mailbox's last read may come back after intake closed: its entries stay pending; count them (1 s at most).
    await Promise.all([...this.boxes.values()].map((b) => b.readingStopped(1_000)));
    const left = this.leftovers();
    // Drained: loops return at once, unless actor passivate hooks run (a loop
    // waits up to leaseMs for them): give them that long. Not drained: the
    // deadline has passed, 1 s for the threads to return, then terminate.
    await Promise.all([...this.boxes.values()].map((b) => b.stopLoops(drained ? Math.max(5_000, b.opts.leaseMs + 1_000) : 1_000)));
    await this.stopThreads();
    const report = { drained, left };
    this.finish(report);
    return report;
  }

  /** Stop now: threads terminated, nothing drained. Reports what was left. */
  async destroy(): Promise<CloseReport> {
    const drained = this.isIdle();
    for (const b of this.boxes.values()) b.closeIntake();
    const left = this.leftovers();
    this.state_ = 'closed';
    await this.stopThreads();
    const report = { drained, left };
    this.finish(report);
    return report;
  }

  /** The shared pool first (its loops of every mailbox end), then each mailbox's own threads, store and source. */
  private async stopThreads(): Promise<void> {
    await this.pool?.destroy();
    await Promise.all([...this.boxes.values()].map((b) => b.destroyPool()));
  }

  private leftovers(): CloseReport['left'] {
    const left: CloseReport['left'] = {};
    for (const [name, b] of this.boxes) left[name] = b.leftovers();
    return left;
  }

  private finish(report: CloseReport): void {
    const first = !this.finished;
    this.finished = true;
    this.state_ = 'closed';
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
    // Nothing more will happen: release onIdle() waiters.
    this.idle.release();
    if (first) this.emit('close', report);
  }

  /** `await using rt = createRuntime(...)`: close() when the scope ends. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Build a runtime. Throws RINGPOOL_INVALID_OPTION naming the option path. */
export function createRuntime<O extends RuntimeOptions>(options: O): Runtime<TypesOf<O>> {
  return new Runtime<TypesOf<O>>(options);
}
