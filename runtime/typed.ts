/**
 * Typed mailboxes (issue #32): each mailbox's payload and result types, so
 * that `rt.send('ordrs', ...)` or a payload of the wrong shape fails to
 * compile. Types only: `mailbox()` hands back the URL it was given, and an
 * untyped runtime (`Runtime`, every handler a plain URL) takes any name and
 * any payload as before.
 *
 *   handler: mailbox<typeof import('./orders.js')>(new URL('./orders.js', import.meta.url))
 *
 * types the mailbox from the module's default export, `(payload: P, ctx) =>
 * R`: sends take a P, asks resolve to R. Or a type map:
 *
 *   const rt: Runtime<{ orders: { payload: Order; result: Receipt } }> = createRuntime({ ... });
 */

declare const moduleType: unique symbol;

/** A handler module's URL that carries the module's type `M` (made by `mailbox<M>()`). */
export type TypedHandler<M> = URL & { readonly [moduleType]?: M };

/** What a mailbox takes and what its handler gives back. */
export interface MailboxType {
  payload: unknown;
  result: unknown;
}

/** Mailbox names to their types. */
export type MailboxTypes = Record<string, MailboxType>;

/** Any name, any payload: an untyped runtime. */
export type AnyMailboxes = MailboxTypes;

/** The payload and result of a handler module's default export (unknown for anything else, an actor module included). */
export type ModuleTypes<M> = M extends HandlerModule<infer P, infer R> ? { payload: P; result: Awaited<R> } : MailboxType;

/** A module whose default export is a handler. */
export interface HandlerModule<P, R> {
  /** The handler: `(payload, ctx) => result`. */
  default: (payload: P, ...rest: never[]) => R;
}

/**
 * The mailbox types of runtime options: each mailbox's from its handler
 * (`mailbox<M>()`), unknown for a plain URL. With no typed handler at all,
 * AnyMailboxes: names are not checked either, as before.
 */
export type TypesOf<O> = O extends { mailboxes: infer B }
  ? true extends { [K in keyof B]: IsTyped<B[K]> }[keyof B]
    ? { [K in keyof B & string]: B[K] extends { handler: TypedHandler<infer M> } ? (unknown extends M ? MailboxType : ModuleTypes<M>) : MailboxType }
    : AnyMailboxes
  : AnyMailboxes;

type IsTyped<B> = B extends { handler: TypedHandler<infer M> } ? (unknown extends M ? false : true) : false;

/** Names of a runtime's mailboxes (any string when untyped). */
export type MailboxName<T extends MailboxTypes> = keyof T & string;

/**
 * A handler module's URL typed with the module's type, for createRuntime's
 * mailbox types: `mailbox<typeof import('./orders.js')>(new URL('./orders.js', import.meta.url))`.
 * The URL itself is returned as it is.
 */
export function mailbox<M>(url: URL): TypedHandler<M> {
  return url as TypedHandler<M>;
}
