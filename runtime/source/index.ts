/**
 * Which source a mailbox has, built from its options (main thread): the
 * user's (`source: aMessageSource`), the built-in Redis Streams source
 * (`source: { redis }`), or none. The Redis source, and the checks of its
 * options, are loaded only when a mailbox names it (runtime/lazy.ts):
 * nothing here, nor in the mailbox, imports runtime/source/redis/.
 */
import type { DeadLetter } from '../dead-letters.js';
import { loadBuiltIn } from '../lazy.js';
import type { PayloadCodec } from '../shared/codec.js';
import type { MessageSource } from './source.js';
import type { OpenAsk } from '../replies.js';

/** What the builders read of a mailbox's resolved options. */
export interface SourceOptions {
  /** The user's source, or null. */
  source: MessageSource | null;
  /** A built-in one named by the options, or null. */
  builtInSource: BuiltInSource | null;
}

/** A built-in source named by the options, its options checked (their resolved shape is the source's own). */
export interface BuiltInSource {
  kind: 'redis';
  options: unknown;
}

/** What a built-in source is given by its mailbox. */
export interface SourceContext {
  mailbox: string;
  codec: PayloadCodec;
  maxMessageBytes: number;
  maxAttempts: number;
  emitError(err: Error): void;
  emitDeadLetter(letter: DeadLetter): void;
  /** A send refused for lack of room upstream (counted as rejected, queue_full). */
  countFull(): void;
  /** Open an ask for message `id` in the mailbox's reply table (an ask from another process: its reply goes back there). */
  openAsk(id: number, ask: OpenAsk): void;
  /** Forget the ask of message `id` (it will not run here). */
  dropAsk(id: number): void;
  /** The mailbox's start gate (runtime/shared/limit.ts): its ring header, its rate limit, and how many messages wait in its ring. */
  gate: { i32: Int32Array; rateLimit: { max: number; perMs: number; scope: 'process' | 'group' } | null; depth(): number };
}

/** runtime/source/redis/options.ts and source.ts, as the builder sees them. */
interface RedisOptionsModule {
  resolveRedisSource(path: string, v: unknown, leaseMs: number): unknown;
}
interface RedisSourceModule {
  createRedisSource(ctx: SourceContext, options: unknown): MessageSource;
}

/** `source: { redis: {...} }` (an object whose one key is `redis`), as opposed to a MessageSource. */
export function isBuiltInSource(v: unknown): v is { redis: unknown } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && 'redis' in v;
}

/** The built-in source `source` names, its options checked (RINGPOOL_INVALID_OPTION naming `path`), or null. */
export function resolveBuiltInSource(path: string, source: unknown, leaseMs: number): BuiltInSource | null {
  if (!isBuiltInSource(source)) return null;
  const options = loadBuiltIn<RedisOptionsModule>('./source/redis/options.js').resolveRedisSource(`${path}.redis`, source.redis, leaseMs);
  return { kind: 'redis', options };
}

/** Whether other processes encode and decode the mailbox's messages too: its codecs then share no state between threads. */
export function sourceIsRemote(opts: SourceOptions): boolean {
  return opts.builtInSource !== null || opts.source?.remote === true;
}

/** Whether the mailbox has a source (its ring is followed by the outcome feed). */
export function hasSource(opts: SourceOptions): boolean {
  return opts.builtInSource !== null || opts.source !== null;
}

/** The mailbox's source, or null. */
export function buildSource(opts: SourceOptions, ctx: SourceContext): MessageSource | null {
  if (opts.builtInSource === null) return opts.source;
  return loadBuiltIn<RedisSourceModule>('./source/redis/source.js').createRedisSource(ctx, opts.builtInSource.options);
}
