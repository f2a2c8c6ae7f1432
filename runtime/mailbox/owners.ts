/**
 * Which consumer loop owns which key (main thread): keys without a running
 * owner get one, and the load is evened out at clean points (the policy is
 * runtime/key-owners.ts); a keyed message handed back while its key's owner
 * retires waits here until the key has a new, running owner, then goes to
 * its turn (key-turns.ts). It knows no mailbox: the key table, the slots'
 * states as the wiring reads them, and the parts it hands messages to.
 */
import { KEY_WORDS, K_OWNER } from '../shared/layout.js';
import { assignKeyOwners } from '../key-owners.js';
import type { HeldMessage } from '../held.js';
import type { Backlog } from './backlog.js';
import type { KeyTurns } from './key-turns.js';
import type { ConsumerState } from './types.js';

export interface OwnersDeps {
  /** The key table (layout.ts): per key entry its owner's slot. */
  table: Int32Array;
  /** The consumer slots now, with their states (consumers.ts, through the wiring). */
  slots: () => Iterable<{ readonly slot: number; readonly state: ConsumerState }>;
  /** One slot's state, or undefined when no loop holds it. */
  stateOf: (slot: number) => ConsumerState | undefined;
  /** The handler is an actor (its keys keep state in their owner). */
  actor: () => boolean;
  turns: Pick<KeyTurns, 'block' | 'holds'>;
  backlog: Pick<Backlog, 'hold' | 'unhold'>;
}

export class Owners {
  /** Keyed messages whose key's owner is retiring: held until its loop is over and the key has a new owner. */
  private readonly ownerWait = new Map<number, HeldMessage[]>();
  /** Some key table entries wait for a clean point to move to a less loaded thread. */
  private rebalance = false;

  constructor(private readonly d: OwnersDeps) {}

  /** Give keys without a running owner to running loops and even the load out; then release what waited for an owner. */
  assignKeys(): void {
    const d = this.d;
    const live: number[] = [];
    const retiring = new Set<number>();
    for (const c of d.slots()) {
      if (c.state === 'running' || c.state === 'starting') live.push(c.slot);
      else if (c.state !== 'dead') retiring.add(c.slot);
    }
    this.rebalance = assignKeyOwners(d.table, {
      live,
      retiring,
      actor: d.actor(),
      holds: (entry) => d.turns.holds(entry) || this.ownerWait.has(entry),
    });
    if (this.ownerWait.size === 0 || live.length === 0) return;
    for (const [entry, list] of [...this.ownerWait]) {
      const o = Atomics.load(d.table, entry * KEY_WORDS + K_OWNER);
      if (!live.includes(o)) continue;
      this.ownerWait.delete(entry);
      for (const held of list) d.backlog.unhold(held);
      for (const held of list) d.turns.block(held);
    }
  }

  /** A keyed record a consumer handed back: wait for its turn, or for its key to have a running owner. */
  holdKeyed(held: HeldMessage): void {
    const d = this.d;
    const entry = held.keySlot;
    let o = Atomics.load(d.table, entry * KEY_WORDS + K_OWNER);
    let state = o >= 0 ? d.stateOf(o) : undefined;
    if (state === undefined || state === 'dead') {
      this.assignKeys();
      o = Atomics.load(d.table, entry * KEY_WORDS + K_OWNER);
      state = o >= 0 ? d.stateOf(o) : undefined;
    }
    if (state === 'running' || state === 'starting') {
      d.turns.block(held);
      return;
    }
    let q = this.ownerWait.get(entry);
    if (q === undefined) this.ownerWait.set(entry, (q = []));
    q.push(held);
    d.backlog.hold(held);
  }

  /** Keys waiting for a clean point to move: try again (every tick). */
  rebalanceIfDue(): void {
    if (this.rebalance) this.assignKeys();
  }
}
