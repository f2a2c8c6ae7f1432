/**
 * Actor state in a consumer thread: per key, created by init() on the key's
 * first message, handed to handle() or a method, passivated when idle or
 * when the loop retires. Counted in the key table, so the dispatcher moves a
 * key to another thread only when no state of it lives here.
 */
import type { ActorDefinition } from '../actor.js';
import { ErrorCodes } from '../../runtime/shared/errors.js';
import { FLAG_CALL, KEY_WORDS, K_STATES } from '../../runtime/shared/layout.js';
import type { FenceView } from '../../runtime/shared/partition.js';
import type { MessageContext } from '../context.js';

/** How often a partitioned mailbox's states are looked at for partitions given back or lost. */
const PARTITION_SWEEP_MS = 50;
import { UnrecoverableError } from '../unrecoverable.js';

/** One key's actor state in this thread. */
interface StateEntry {
  state: unknown;
  keySlot: number;
  lastUsed: number;
  /** Handlers of this key running now (0 or 1: a key runs one message at a time). */
  busy: number;
  /** Its key's partition (a partitioned Redis mailbox), else -1, and the fence's STATES generation it was counted in. */
  part: number;
  gen: number;
}

export const isThenable = (x: unknown): x is PromiseLike<unknown> =>
  x !== null && (typeof x === 'object' || typeof x === 'function') && typeof (x as PromiseLike<unknown>).then === 'function';

export class ActorStates {
  private readonly states = new Map<string, StateEntry>();
  private sweepTimer: NodeJS.Timeout | null = null;
  /** Keys whose passivate hook is running: a message for one waits for it before init() runs again. */
  private readonly passivating = new Map<string, Promise<void>>();
  /** Set when the loop has ended: a passivation finishing later no longer touches the key table. */
  private released = false;

  constructor(
    private readonly def: ActorDefinition,
    private readonly mailbox: string,
    /** The mailbox's key table: live states are counted in each key's STATES word. */
    private readonly keys: Int32Array,
    /** How long a retiring loop waits for passivate hooks. */
    private readonly leaseMs: number,
    /** A partitioned Redis mailbox's fence table: states of a partition given back are passivated, of one lost dropped. */
    private readonly fence: FenceView | null = null,
  ) {
    if (fence !== null) {
      this.partTimer = setInterval(() => this.sweepPartitions(), PARTITION_SWEEP_MS);
      this.partTimer.unref();
    }
  }

  private partTimer: NodeJS.Timeout | null = null;

  /** States of partitions given back are passivated (hook), of partitions lost dropped (no hook: their changes were not acknowledged); a lease that only lapsed here drops nothing. */
  private sweepPartitions(): void {
    const f = this.fence!;
    for (const [key, e] of this.states) {
      if (e.part < 0 || e.busy > 0) continue;
      if (f.lost(e.part)) this.drop(key, e);
      else if (f.giving(e.part)) void this.passivate(key, e);
    }
  }

  private drop(key: string, e: StateEntry): void {
    this.states.delete(key);
    Atomics.sub(this.keys, e.keySlot * KEY_WORDS + K_STATES, 1);
    this.fence!.dropState(e.part, e.gen);
  }

  /** Run one message of `ctx.key` against its state (made first if the key has none here). */
  invoke(payload: unknown, flags: number, ctx: MessageContext, keySlot: number): unknown {
    const def = this.def;
    const mailbox = this.mailbox;
    const key = ctx.key;
    if (key === undefined || keySlot < 0) {
      throw Object.assign(new UnrecoverableError(`mailbox '${mailbox}' runs an actor: send with { key } (${ErrorCodes.KEY_REQUIRED})`), {
        code: ErrorCodes.KEY_REQUIRED,
      });
    }
    let method: ((...a: unknown[]) => unknown) | undefined;
    if ((flags & FLAG_CALL) !== 0) {
      const name = Array.isArray(payload) ? payload[0] : undefined;
      const methods = def.methods;
      if (typeof name !== 'string' || methods === undefined || !Object.hasOwn(methods, name)) {
        throw new UnrecoverableError(`the actor of mailbox '${mailbox}' has no method ${JSON.stringify(name)}`);
      }
      method = methods[name] as (...a: unknown[]) => unknown;
    } else if (def.handle === undefined) {
      throw new UnrecoverableError(`the actor of mailbox '${mailbox}' has no handle(): call its methods through rt.actor()`);
    }
    const e = this.states.get(key);
    if (e !== undefined) return this.run(e, payload, method, ctx);
    // The key's passivate hook is still running (it may be saving the state init() will load): wait for it.
    const pending = this.passivating.get(key);
    if (pending !== undefined) return pending.then(() => this.invoke(payload, flags, ctx, keySlot));
    const made = def.init === undefined ? undefined : def.init(key);
    if (isThenable(made)) return Promise.resolve(made).then((st) => this.run(this.add(key, st, keySlot), payload, method, ctx));
    return this.run(this.add(key, made, keySlot), payload, method, ctx);
  }

  private add(key: string, state: unknown, keySlot: number): StateEntry {
    const part = this.fence === null ? -1 : this.fence.partition(key);
    const gen = part >= 0 ? this.fence!.addState(part) : 0;
    const e: StateEntry = { state, keySlot, lastUsed: performance.now(), busy: 0, part, gen };
    this.states.set(key, e);
    // Counted in the key table: the dispatcher moves a key entry to another thread only when no state of it lives here.
    Atomics.add(this.keys, keySlot * KEY_WORDS + K_STATES, 1);
    this.armSweep();
    return e;
  }

  private run(e: StateEntry, payload: unknown, method: ((...a: unknown[]) => unknown) | undefined, ctx: MessageContext): unknown {
    e.busy++;
    let r: unknown;
    try {
      if (method !== undefined) {
        // [name, ...args] -> (state, ...args): the decoded array is ours to reuse.
        (payload as unknown[])[0] = e.state;
        r = method.apply(ctx, payload as unknown[]);
      } else {
        r = this.def.handle!(e.state, payload, ctx);
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
    const idleMs = this.def.idleMs ?? 60_000;
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
    // entry exists, leaving a settled promise that invoke() waits on forever.
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    this.passivating.set(key, done);
    void (async () => {
      try {
        const hook = this.def.passivate;
        if (hook !== undefined) await hook(e.state, key);
      } catch (err) {
        process.emitWarning(`ringpool: passivate() of key ${JSON.stringify(key)} in mailbox '${this.mailbox}' threw: ${(err as Error)?.message ?? err}`);
      } finally {
        if (this.passivating.get(key) === done) this.passivating.delete(key);
        if (!this.released) Atomics.sub(this.keys, e.keySlot * KEY_WORDS + K_STATES, 1);
        if (e.part >= 0) this.fence!.dropState(e.part, e.gen);
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
  async passivateAll(): Promise<void> {
    const leaseMs = this.leaseMs;
    for (const [key, e] of [...this.states]) void this.passivate(key, e);
    const all = Promise.all([...this.passivating.values()]);
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([all.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), leaseMs)))]);
    clearTimeout(timer);
    if (late) {
      process.emitWarning(
        `ringpool: ${this.passivating.size} passivate() hook(s) in mailbox '${this.mailbox}' still running after leaseMs (${leaseMs} ms); their keys move on without them`,
      );
    }
    this.released = true;
  }

  /** The loop is over: stop sweeping; the dispatcher resets this slot's key counts, so a hook finishing later must not touch them. */
  end(): void {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    if (this.partTimer !== null) clearInterval(this.partTimer);
    this.released = true;
  }
}
