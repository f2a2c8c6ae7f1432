/**
 * The runtime's pool of consumer threads, shared by its mailboxes (issue #28;
 * main thread). Each thread is one long Piscina task (workers/pool/thread.ts)
 * that runs loops the pool gives it: a lane, one mailbox's consumer loop in
 * one of its slots. A mailbox's lanes go on different threads (its maxThreads
 * then means what it meant); a new lane goes to the thread with the fewest,
 * and a thread is added only for a mailbox that runs on every thread already
 * (decide.ts); a thread with no lane ends after idleTimeoutMs.
 *
 * Faults: a thread that dies ends all its lanes. Only what the fault blames
 * is charged: with one lane busy (a handler running) that lane is the crash's,
 * as on a thread of its own; with several busy, each goes back as after a
 * crash with several handlers running (none charged, all to run alone); the
 * idle ones, and every lane of a thread killed for another's lease, go back
 * uncharged and report no crash (LaneLost.collateral). With none busy (it
 * died between handlers) every lane reports the crash, and nothing is charged.
 */
import { MessageChannel, receiveMessageOnPort, type MessagePort, type Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { Piscina } from 'piscina';
import { GUARD_KILLED, GUARD_SENDING, POOL_HOSTS, POOL_LANE } from '../shared/layout.js';
import { PoolBoard } from '../shared/pool-board.js';
import type { ConsumerTask, FromPoolThread, LoopResult, PoolThreadTask, ProbeResult, ProbeTask, RingRef, ToPoolThread } from '../shared/protocol.js';
import type { Ring } from '../shared/ring.js';
import { blame, placeLane } from './decide.js';
import type { ResolvedPool } from './options.js';
import type { ResolvedMailbox } from '../mailbox-options.js';
import type { ResolvedRuntime } from '../options.js';
import { CONSUMER_ENTRY, DedicatedThreads, type LaneHost } from './threads.js';

/** A lane ended because its thread did: `collateral`, nothing of it is to blame; `several`, it was one of several busy lanes. */
export class LaneLost extends Error {
  constructor(
    message: string,
    readonly collateral: boolean,
    readonly several: boolean,
  ) {
    super(message);
    this.name = 'LaneLost';
  }
}

/** `rt.poolStats()`: the shared pool now. */
export interface PoolStats {
  /** Threads running. */
  threads: number;
  /** Threads it grows to at most (`pool.maxThreads`). */
  maxThreads: number;
  /** Consumer loops on them (a mailbox has one per thread it runs on). */
  lanes: number;
}

interface Lane {
  key: number;
  ring: Ring;
  slot: number;
  resolve: (r: LoopResult) => void;
  reject: (e: Error) => void;
  doomed: (exit: Promise<unknown>) => void;
}

interface PoolThread {
  t: number;
  port: MessagePort;
  lanes: Map<number, Lane>;
  threadId: number;
  /** Being terminated (a lease kill): it takes no lane. */
  killed: boolean;
  quitting: boolean;
  exited: Promise<void>;
  onExit: () => void;
  idle: NodeJS.Timeout | null;
}

/** A loop inside its send guard is waited for this long at most before its thread is killed anyway (as consumers.ts). */
const GUARD_GIVE_UP_MS = 10_000;

export class SharedPool {
  readonly board: SharedArrayBuffer;
  private readonly view: PoolBoard;
  private piscina: Piscina | null = null;
  private readonly threads: (PoolThread | null)[] = [];
  private nextKey = 0;
  private readonly probes = new Map<number, { resolve: (r: ProbeResult) => void; reject: (e: Error) => void; t: number }>();
  private closed = false;

  constructor(
    private readonly o: ResolvedPool,
    lanes: number,
    private readonly rings: () => Record<string, RingRef>,
    private readonly emitError: (err: Error) => void,
  ) {
    this.board = PoolBoard.allocate(lanes);
    this.view = new PoolBoard(this.board);
  }

  /** Mailbox `ring` is served by this pool as lane `lane`: its publishes wake the pool's threads (before any other view of it is made). */
  serve(ring: Ring, lane: number): void {
    Atomics.store(ring.i32, POOL_LANE, lane);
    ring.attachBoard(this.board);
  }

  /** A view for one mailbox. */
  host(ring: Ring): LaneHost {
    return {
      runsOther: (slot) => this.runsOther(ring, slot),
      probe: (task) => this.probe(task),
      run: (task, transfer, doomed) => this.run(ring, task, transfer, doomed),
      terminate: (threadId, slot) => this.kill(threadId, ring, slot),
      destroy: async () => {},
    };
  }

  /**
   * Whether the thread running `ring`'s loop in `slot` is running another
   * mailbox's handler now (a lease that runs out there is not this handler's
   * doing: the other one holds the thread).
   */
  private runsOther(ring: Ring, slot: number): boolean {
    const t = ring.slot(slot).poolThread();
    if (t < 0) return false;
    const named = Atomics.load(this.view.i32, this.view.runningWord(t));
    return named >= 0 && named !== Atomics.load(ring.i32, POOL_LANE);
  }

  /** Threads running now, and the loops (lanes) they run. */
  stats(): PoolStats {
    let threads = 0;
    let lanes = 0;
    for (const th of this.threads) {
      if (th === null) continue;
      threads++;
      lanes += th.lanes.size;
    }
    return { threads, maxThreads: this.o.maxThreads, lanes };
  }

  private live(): PoolThread[] {
    return this.threads.filter((th): th is PoolThread => th !== null && !th.killed && !th.quitting);
  }

  private spawn(): PoolThread | null {
    if (this.closed) return null;
    let t = this.threads.findIndex((th) => th === null);
    if (t < 0) t = this.threads.length;
    if (t >= this.o.maxThreads) return null;
    this.piscina ??= this.makePiscina();
    const { port1, port2 } = new MessageChannel();
    let onExit!: () => void;
    const th: PoolThread = {
      t,
      port: port1,
      lanes: new Map(),
      threadId: -1,
      killed: false,
      quitting: false,
      exited: new Promise<void>((r) => (onExit = r)),
      onExit,
      idle: null,
    };
    this.threads[t] = th;
    this.view.reset(t);
    port1.on('message', (m: FromPoolThread) => this.onMessage(th, m));
    port1.unref();
    const task: PoolThreadTask = { index: t, board: this.board, rings: this.rings(), port: port2 };
    this.piscina.run(task, { name: 'poolThread', transferList: [port2] as never }).then(
      () => this.onThreadEnd(th, null),
      (err: Error) => this.onThreadEnd(th, err),
    );
    return th;
  }

  private makePiscina(): Piscina {
    const p = new Piscina({
      filename: CONSUMER_ENTRY.href,
      minThreads: 0,
      maxThreads: this.o.maxThreads + 1, // one spare while a terminated thread exits
      idleTimeout: 1_000,
      atomics: 'disabled',
      concurrentTasksPerWorker: 1,
    });
    p.on('error', (err: Error) => this.emitError(err));
    return p;
  }


  private run(ring: Ring, task: ConsumerTask, transfer: MessagePort[], doomed: (exit: Promise<unknown>) => void): Promise<LoopResult> | null {
    const live = this.live();
    const hosts = Atomics.load(ring.i32, POOL_HOSTS);
    const loads = live.map((x) => ({ lanes: x.lanes.size, hosts: ((hosts >>> x.t) & 1) === 1 }));
    const at = placeLane(loads, this.stats().threads, this.o.maxThreads);
    const th = at === 'spawn' ? this.spawn() : (live[at] ?? null);
    if (th === null) return null;
    if (th.idle !== null) {
      clearTimeout(th.idle);
      th.idle = null;
    }
    const key = ++this.nextKey;
    const { rings: _all, ...rest } = task;
    return new Promise<LoopResult>((resolve, reject) => {
      th.lanes.set(key, { key, ring, slot: task.consumer, resolve, reject, doomed });
      Atomics.or(ring.i32, POOL_HOSTS, 1 << th.t);
      ring.slot(task.consumer).setPoolThread(th.t);
      const msg: ToPoolThread = { t: 'lane', key, task: rest };
      th.port.postMessage(msg, transfer);
      this.view.wake(th.t);
    });
  }

  probe(task: ProbeTask): Promise<ProbeResult> {
    if (this.closed) return Promise.reject(new Error('the shared pool is closed'));
    const th = this.live()[0] ?? this.spawn();
    // Every thread is quitting or being killed and the pool is at its size: again once one is gone (the caller bounds the wait).
    if (th === null) return new Promise((r) => setTimeout(r, 20)).then(() => this.probe(task));
    const id = ++this.nextKey;
    return new Promise<ProbeResult>((resolve, reject) => {
      this.probes.set(id, { resolve, reject, t: th.t });
      const msg: ToPoolThread = { t: 'probe', id, task };
      th.port.postMessage(msg);
      this.view.wake(th.t);
      this.idleLater(th);
    });
  }

  private onMessage(th: PoolThread, m: FromPoolThread): void {
    if (m.t === 'hello') {
      th.threadId = m.threadId;
    } else if (m.t === 'probe') {
      const p = this.probes.get(m.id);
      this.probes.delete(m.id);
      if (m.error !== undefined) p?.reject(Object.assign(new Error(m.error.message), m.error));
      else p?.resolve(m.result!);
      this.idleLater(th);
    } else {
      const lane = th.lanes.get(m.key);
      if (lane === undefined) return;
      this.drop(th, lane);
      if (m.error !== undefined) lane.reject(Object.assign(new Error(m.error.message), { name: m.error.name }));
      else lane.resolve(m.result!);
      this.idleLater(th);
    }
  }

  private drop(th: PoolThread, lane: Lane): void {
    th.lanes.delete(lane.key);
    Atomics.and(lane.ring.i32, POOL_HOSTS, ~(1 << th.t));
  }

  /** A thread with no lane left ends after idleTimeoutMs (unless one comes). */
  private idleLater(th: PoolThread): void {
    if (th.lanes.size > 0 || th.idle !== null || th.killed || th.quitting || this.closed) return;
    th.idle = setTimeout(() => {
      th.idle = null;
      if (this.threads[th.t] !== th || th.lanes.size > 0 || th.killed || [...this.probes.values()].some((p) => p.t === th.t)) return;
      th.quitting = true;
      const msg: ToPoolThread = { t: 'quit' };
      th.port.postMessage(msg);
      this.view.wake(th.t);
    }, this.o.idleTimeoutMs);
    th.idle.unref();
  }

  private onThreadEnd(th: PoolThread, err: Error | null): void {
    // What it posted before it ended first (a lane that returned just before the thread died is not a crash of it).
    for (let m = receiveMessageOnPort(th.port); m !== undefined; m = receiveMessageOnPort(th.port)) this.onMessage(th, m.message as FromPoolThread);
    if (this.threads[th.t] === th) this.threads[th.t] = null;
    if (th.idle !== null) clearTimeout(th.idle);
    // A killed thread is gone at its 'exit' (killWhenGuardsFree), which may come after its task fails;
    // one that died by itself while being killed has no worker left to wait for.
    if (!th.killed || this.workerOf(th) === undefined) th.onExit();
    const lanes = [...th.lanes.values()];
    for (const lane of lanes) this.drop(th, lane);
    // Whose handler was running when it died (decide.ts): the lane the thread named, else the busy ones.
    const named = Atomics.load(this.view.i32, this.view.runningWord(th.t));
    const culprit = lanes.filter((l) => Atomics.load(l.ring.i32, POOL_LANE) === named);
    const { blamed, several } = blame(lanes, culprit, isBusy, this.closed ? 'close' : th.killed ? 'kill' : 'crash');
    const why = err?.message ?? 'the thread ended';
    for (const lane of lanes) {
      lane.reject(new LaneLost(`shared pool thread ${th.threadId} died: ${why}`, !blamed.has(lane), several));
    }
    for (const [id, p] of this.probes) {
      if (p.t !== th.t) continue;
      this.probes.delete(id);
      p.reject(new Error(`the thread probing the handler died: ${why}`));
    }
    th.port.close();
  }

  /**
   * After a lease kill: terminate the thread `threadId`. Its other
   * lanes are refused their guards first (a kill never lands inside a send
   * of theirs: the guard is waited for, a few instructions), and each is told
   * when the thread is gone (its slot is not reused before).
   */
  private kill(threadId: number, ring: Ring, slot: number): Promise<unknown> | null {
    // The thread the dispatcher placed the loop on (its id may not be in yet: its 'hello' comes on another port).
    const th = this.threads[ring.slot(slot).poolThread()];
    if (th === undefined || th === null) return null;
    if (th.threadId < 0) th.threadId = threadId;
    if (!th.killed) {
      th.killed = true;
      for (const lane of th.lanes.values()) lane.doomed(th.exited);
      this.killWhenGuardsFree(th);
    }
    return th.exited;
  }

  private workerOf(th: PoolThread): Worker | undefined {
    return this.piscina?.threads.find((w: Worker) => w.threadId === th.threadId);
  }

  private killWhenGuardsFree(th: PoolThread, since = performance.now()): void {
    // Died meanwhile (it may have been inside a guard for good: an OOM there): nothing left to kill.
    if (this.threads[th.t] !== th) {
      th.onExit();
      return;
    }
    for (const lane of th.lanes.values()) {
      const slot = lane.ring.slot(lane.slot);
      if (slot.guard() === GUARD_KILLED) continue;
      if (slot.revokeGuard() === GUARD_SENDING) {
        // A guard covers a few instructions; one held this long belongs to a thread that is stuck: kill it anyway (holes.ts repairs).
        if (performance.now() - since < GUARD_GIVE_UP_MS) {
          setTimeout(() => this.killWhenGuardsFree(th, since), 1).unref();
          return;
        }
        this.emitError(new Error(`shared pool thread ${th.threadId}: a loop held its send guard for ${GUARD_GIVE_UP_MS} ms; terminating the thread anyway`));
        continue;
      }
      slot.setGuard(GUARD_KILLED);
    }
    const worker = this.workerOf(th);
    if (worker === undefined) {
      th.onExit();
      return;
    }
    void once(worker, 'exit').then(th.onExit, th.onExit);
    void worker.terminate();
  }

  async destroy(): Promise<void> {
    this.closed = true;
    const p = this.piscina;
    this.piscina = null;
    if (p !== null) await p.destroy();
  }
}

/** A handler of the lane was running when its thread died. */
function isBusy(l: Lane): boolean {
  const s = l.ring.slot(l.slot);
  return s.currentUnit() >= 0 || s.inflight() > 0;
}

/** The runtime's shared pool, when one of its mailboxes runs on it (null when every mailbox has threads of its own). */
export function sharedPool(o: ResolvedRuntime, rings: () => Record<string, RingRef>, emitError: (err: Error) => void): SharedPool | null {
  return o.mailboxes.some((m) => m.threads === 'shared') ? new SharedPool(o.pool, o.mailboxes.length, rings, emitError) : null;
}

/** Where mailbox `name`'s loops run: the shared pool (its ring is served by it from now on, as lane = its index), or threads of its own. */
export function threadsOf(pool: SharedPool | null, o: ResolvedRuntime, name: string, ring: Ring, m: ResolvedMailbox, emitError: (err: Error) => void): () => LaneHost {
  if (m.threads === 'dedicated' || pool === null) return () => new DedicatedThreads(m, emitError);
  pool.serve(ring, o.mailboxes.findIndex((x) => x.name === name));
  return () => pool.host(ring);
}
