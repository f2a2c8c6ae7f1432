/**
 * Actors: per-key state in the thread that owns the key.
 *
 * ```ts
 * import { actor } from 'ringpool/worker';
 * export default actor({
 *   init: (key) => ({ total: 0 }),
 *   handle(state, msg: { add: number }) { state.total += msg.add; return state.total; },
 *   methods: {
 *     reserve(state, sku: string, qty: number) { ...; return { ok: true }; },
 *   },
 *   idleMs: 60_000,
 *   passivate(state, key) { ... },
 * });
 * ```
 *
 * The main thread calls it with `rt.ask('orders', msg, { key })` (runs
 * `handle`) or through a typed proxy, `rt.actor<typeof def>('orders').ask.reserve(key, sku, qty)`
 * (runs `methods.reserve`). What `handle` or a method returns is the reply.
 */
import type { HandlerContext } from './context.js';

/** Brand of an actor definition (a registry symbol, so copies of this module agree). */
export const ACTOR = Symbol.for('ringpool.actor');

/** An actor method: called with the key's state, then the caller's arguments; `this` is the message context. */
export type ActorMethod<S> = (this: HandlerContext, state: S, ...args: any[]) => unknown;

/** What `actor()` takes: `init` (state for a key), `handle` (a message), `methods` (typed calls), optional `passivate`. */
export interface ActorSpec<S, M, R, Methods extends Record<string, ActorMethod<S>>> {
  /** Makes the state of a key, on the first message of that key in its owning thread (and again after passivation or a crash). */
  init?: (key: string) => S | Promise<S>;
  /** Runs a message sent with send()/ask(): mutate `state` in place; the return value is ask()'s reply. */
  handle?: (state: S, msg: M, ctx: HandlerContext) => R | Promise<R>;
  /** Named operations for typed proxies: `rt.actor<typeof def>(mailbox).ask.name(key, ...args)`. `this` is the message context. */
  methods?: Methods & { [K in keyof Methods]: (this: HandlerContext, state: S, ...args: any[]) => unknown } & ThisType<HandlerContext>;
  /** Drop a key's state after this long without a message (the passivate hook runs first). @default 60000; Infinity keeps it. */
  idleMs?: number;
  /** Called when a key's state is dropped: after idleMs, and when the thread is retired (not on a crash). */
  passivate?: (state: S, key: string) => void | Promise<void>;
}

/** An actor module's default export, as `actor()` makes it. */
export interface ActorDefinition<S = any, M = any, R = any, Methods extends Record<string, ActorMethod<S>> = Record<string, ActorMethod<S>>>
  extends ActorSpec<S, M, R, Methods> {
  readonly [ACTOR]: true;
}

/** Define an actor: the default export of a handler module. */
export function actor<S, M = unknown, R = unknown, Methods extends Record<string, ActorMethod<S>> = {}>(
  spec: ActorSpec<S, M, R, Methods>,
): ActorDefinition<S, M, R, Methods> {
  if (spec === null || typeof spec !== 'object') throw new TypeError('actor(spec): spec must be an object');
  for (const name of ['init', 'handle', 'passivate'] as const) {
    if (spec[name] !== undefined && typeof spec[name] !== 'function') throw new TypeError(`actor(spec): spec.${name} must be a function`);
  }
  if (spec.methods !== undefined) {
    if (spec.methods === null || typeof spec.methods !== 'object') throw new TypeError('actor(spec): spec.methods must be an object of functions');
    for (const [k, f] of Object.entries(spec.methods)) {
      if (typeof f !== 'function') throw new TypeError(`actor(spec): spec.methods.${k} must be a function`);
    }
  }
  const idleMs = spec.idleMs ?? 60_000;
  if (typeof idleMs !== 'number' || !(idleMs > 0)) throw new TypeError(`actor(spec): spec.idleMs must be a number > 0 (Infinity keeps state), got ${String(spec.idleMs)}`);
  if (spec.handle === undefined && (spec.methods === undefined || Object.keys(spec.methods).length === 0)) {
    throw new TypeError('actor(spec): give spec.handle, spec.methods, or both');
  }
  return Object.freeze({ ...spec, idleMs, [ACTOR]: true as const });
}

/** Whether a module's default export is an actor definition (made by `actor()`). */
export function isActor(x: unknown): x is ActorDefinition {
  return typeof x === 'object' && x !== null && (x as { [ACTOR]?: unknown })[ACTOR] === true;
}

// ---- types for the main thread's proxies ----

/** A method's arguments after the state. */
export type MethodArgs<F> = F extends (state: any, ...args: infer A) => any ? A : never;
/** The methods of an actor definition. */
export type ActorMethods<T> = T extends ActorDefinition<any, any, any, infer Methods> ? Methods : never;
/** The message type `handle` takes. */
export type ActorMessage<T> = T extends ActorDefinition<any, infer M, any, any> ? M : never;
/** The reply type of `handle`. */
export type ActorReply<T> = T extends ActorDefinition<any, any, infer R, any> ? Awaited<R> : never;
/**
 * The ask proxy's type, in comlink's `Remote` shape: each method bound to a key,
 * returning a promise of its (awaited) result: `(key, ...args) => Promise<R>`.
 */
export type KeyedMethods<T> = {
  [K in keyof ActorMethods<T>]: (key: string, ...args: MethodArgs<ActorMethods<T>[K]>) => Promise<Awaited<ReturnType<ActorMethods<T>[K]>>>;
};
