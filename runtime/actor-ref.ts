/**
 * Asks from the main thread: the options an ask or an actor call takes
 * (checked here), and the typed actor reference rt.actor() returns, whose
 * methods send `[method, ...args]` calls to the actor's key.
 */
import { ErrorCodes, RingpoolError, describeValue } from './shared/errors.js';
import { FLAG_ASK, FLAG_CALL } from './shared/layout.js';
import type { ActorDefinition, ActorMessage, ActorMethods, ActorReply, KeyedMethods, MethodArgs } from '../workers/actor.js';
import type { Mailbox } from './mailbox/index.js';
import { checkAsk, type ActorRefOptions, type AskOptions } from './call-options.js';

export type { ActorRefOptions, AskOptions } from './call-options.js';

/**
 * A typed reference to an actor mailbox, in comlink's `Remote` shape:
 * `ask.method(key, ...args)` returns a Promise of the method's result;
 * `tell.method(key, ...args)` sends and returns the message id.
 */
export interface ActorRef<T extends ActorDefinition> {
  readonly mailbox: string;
  /** Call a method and wait for its result. */
  readonly ask: KeyedMethods<T>;
  /** Call a method, fire and forget (the message id; throws RINGPOOL_QUEUE_FULL when the ring is full). */
  readonly tell: { [K in keyof ActorMethods<T>]: (key: string, ...args: MethodArgs<ActorMethods<T>[K]>) => number };
  /** Send `msg` to the actor's handle() for `key` and wait for its result. */
  request(key: string, msg: ActorMessage<T>, opts?: ActorRefOptions): Promise<ActorReply<T>>;
  /** Send `msg` to the actor's handle() for `key` (the message id). */
  send(key: string, msg: ActorMessage<T>): number;
}

/**
 * A typed reference to an actor mailbox (rt.actor()): `T` is the type of the
 * handler module's default export (`actor({...})`).
 */
export function actorRef<T extends ActorDefinition>(b: Mailbox, defaults: ActorRefOptions, started: () => boolean): ActorRef<T> {
  const mailbox = b.name;
  const d = checkAsk(defaults);
  /** Once started, a method the actor does not have (or any, on a plain handler) is refused here, not dead-lettered. */
  const noMethod = (name: string): RingpoolError | null => {
    const info = b.actorInfo;
    if (!started() || info.methods.includes(name)) return null;
    const shown = name.length > 60 ? `${name.slice(0, 57)}...` : name;
    return new RingpoolError(ErrorCodes.INVALID_OPTION, `the actor of mailbox '${mailbox}' has no method '${shown}' (has: ${info.methods.join(', ') || 'none'})`, {
      mailbox,
      option: 'method',
    });
  };
  const call = (name: string, key: unknown, args: unknown[]): Promise<unknown> => {
    if (typeof key !== 'string') return Promise.reject(keyArgError(mailbox, name, key));
    const refused = noMethod(name);
    if (refused !== null) return Promise.reject(refused);
    return b.sends.ask([name, ...args], key, FLAG_ASK | FLAG_CALL, d.signal, d.timeoutMs);
  };
  const tell = (name: string, key: unknown, args: unknown[]): number => {
    if (typeof key !== 'string') throw keyArgError(mailbox, name, key);
    const refused = noMethod(name);
    if (refused !== null) throw refused;
    return b.sends.sendCall([name, ...args], key);
  };
  const methods = <F>(make: (name: string) => F): Record<string, F> => {
    const cache = new Map<string, F>();
    return new Proxy(Object.create(null) as Record<string, F>, {
      get(_t, name) {
        // Not a method: symbols, and 'then' (so that awaiting the proxy itself does not send anything).
        if (typeof name !== 'string' || name === 'then') return undefined;
        let f = cache.get(name);
        if (f === undefined) cache.set(name, (f = make(name)));
        return f;
      },
    });
  };
  return {
    mailbox,
    ask: methods((name) => (key: unknown, ...args: unknown[]) => call(name, key, args)) as unknown as ActorRef<T>['ask'],
    tell: methods((name) => (key: unknown, ...args: unknown[]) => tell(name, key, args)) as unknown as ActorRef<T>['tell'],
    request: (key, msg, opts) => {
      if (typeof key !== 'string') return Promise.reject(keyArgError(mailbox, 'request', key));
      let o: AskOptions;
      try {
        o = checkAsk(opts);
      } catch (err) {
        return Promise.reject(err);
      }
      return b.sends.ask(msg, key, FLAG_ASK, o.signal ?? d.signal, o.timeoutMs ?? d.timeoutMs) as Promise<ActorReply<T>>;
    },
    send: (key, msg) => {
      if (typeof key !== 'string') throw keyArgError(mailbox, 'send', key);
      return b.sends.send(msg, { key }); // the ring, or the stream of a Redis mailbox
    },
  };
}

function keyArgError(mailbox: string, method: string, key: unknown): RingpoolError {
  return new RingpoolError(ErrorCodes.INVALID_OPTION, `actor '${mailbox}'.${method}(key, ...): key must be a string, got ${describeValue(key)}`, {
    mailbox,
    option: 'key',
  });
}
