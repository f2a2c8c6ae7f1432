/**
 * Which store a mailbox has, built from its options (main thread): the
 * user's (`store`), the built-in journal (`durability`), or none. The journal
 * is loaded only when a mailbox is durable (runtime/lazy.ts): nothing here,
 * nor in the mailbox, imports runtime/store/journal/.
 */
import type { ResolvedDurability, ResolvedMailbox } from '../mailbox-options.js';
import type { Ring } from '../shared/ring.js';
import type { StructureTable } from '../shared/structures.js';
import { loadBuiltIn } from '../lazy.js';
import type { MessageStore } from './store.js';

/** What a built-in store is given. */
export interface StoreContext {
  mailbox: string;
  /** The mailbox's ring: a store that writes the records follows it (allocated with the barrier, storeGates()). */
  ring: Ring;
  /** msgpack's shared record shapes, or null: a store that writes records keeps them too. */
  structures: StructureTable | null;
  emitError: (err: Error) => void;
}

/** runtime/store/journal/index.ts, as the builder sees it. */
interface JournalModule {
  createJournal(ctx: StoreContext, durability: ResolvedDurability): MessageStore;
}

/** Whether the mailbox's store writes the ring's records before consumers may claim them: its ring needs the barrier. */
export function storeGates(opts: ResolvedMailbox): boolean {
  return opts.durability !== null;
}

/** The mailbox's store, or null for the in-memory mailbox. */
export function buildStore(opts: ResolvedMailbox, ctx: StoreContext): MessageStore | null {
  if (opts.store !== null) return opts.store;
  if (opts.durability === null) return null;
  return loadBuiltIn<JournalModule>('./store/journal/index.js').createJournal(ctx, opts.durability);
}
