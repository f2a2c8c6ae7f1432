/**
 * `ringpool/worker`: what handler modules import. Runs on worker threads.
 *
 * ```js
 * import { UnrecoverableError } from 'ringpool/worker';
 * export default async function handle(payload, ctx) {
 *   if (!payload.sku) throw new UnrecoverableError('no sku'); // dead-lettered at once
 *   await ctx.send('payments', { order: ctx.id });
 * }
 * ```
 */
export { UnrecoverableError } from './unrecoverable.js';
export { RetryAfterError } from './retry-after.js';
export { actor, isActor } from './actor.js';
export type { ActorDefinition, ActorMethod, ActorSpec } from './actor.js';
export type { Handler, HandlerContext, SendOptions } from './context.js';
export type { MailboxTypes } from '../runtime/typed.js';
export { RingpoolError, ErrorCodes } from '../runtime/shared/errors.js';
export type { Codec } from '../runtime/shared/codec.js';
