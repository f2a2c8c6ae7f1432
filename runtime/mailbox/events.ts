/**
 * What a consumer loop reports on its event port (main thread; the events
 * are shared/protocol.ts's), each handed to the part it concerns: a loop
 * ready or failing to load (consumers.ts's own), a nack (failures.ts), a
 * delayed ctx.send() (the target mailbox's backlog), a keyed record handed
 * back early (owners.ts), a key's turn passed (key-turns.ts), an ask's reply
 * too large for the reply ring (replies.ts).
 */
import { ErrorCodes, RingpoolError } from '../shared/errors.js';
import { ST_CLAIMED } from '../shared/layout.js';
import type { WorkerEvent } from '../shared/protocol.js';
import type { Ring } from '../shared/ring.js';
import { HeldMessage, withHeaders } from '../held.js';
import type { Replies } from '../replies.js';
import type { Consumer } from './consumers.js';
import type { Failures } from './failures.js';
import type { KeyTurns } from './key-turns.js';
import type { Owners } from './owners.js';
import type { PeerMailbox } from './types.js';
import type { ChainedSends } from './chained.js';

export interface EventRoutes {
  mailbox: string;
  handlerUrl: string;
  ring: Ring;
  failures: Pick<Failures, 'onNack' | 'takeBack'>;
  owners: Pick<Owners, 'holdKeyed'>;
  turns: Pick<KeyTurns, 'releaseTurns'>;
  replies: Pick<Replies, 'fromEvent'>;
  chained: Pick<ChainedSends, 'post'>;
  /** A mailbox of the runtime by name (a delayed ctx.send() may target any). */
  peer: (name: string) => PeerMailbox | undefined;
}

/** A held message with its place in its key's order (a delayed keyed send took its seq when it was counted). */
export function heldKeyed(held: HeldMessage, keySlot: number, keySeq: number): HeldMessage {
  held.keySlot = keySlot;
  held.keySeq = keySeq;
  return held;
}

/** Route one event of loop `c`. */
export function routeEvent(r: EventRoutes, c: Consumer, ev: WorkerEvent): void {
  switch (ev.type) {
    case 'ready':
      c.threadId = ev.threadId;
      if (c.state === 'starting') c.state = 'running';
      c.onReady();
      return;
    case 'load-error':
      c.onReady(new RingpoolError(ErrorCodes.HANDLER_LOAD, `mailbox '${r.mailbox}': ${ev.error.message}`, { mailbox: r.mailbox, url: r.handlerUrl }));
      return;
    case 'nack':
      if (c.state === 'dead') return; // its slot was recovered already: a late result of a dead thread
      r.failures.onNack(c.slot, ev.unit, ev.error, ev.unrecoverable);
      return;
    case 'stream-sends':
      // Sent by the handler (never dropped, whatever became of its thread); answered only to the loop that sent it.
      r.chained.post(c.slot, c.incarnation, ev.seq, ev.items);
      return;
    case 'delayed-send': {
      // Accepted (counted as enqueued) on the worker: never drop it, whatever became of that thread.
      const target = r.peer(ev.mailbox);
      target?.acceptDelayed(heldKeyed(withHeaders(new HeldMessage(ev.id, 1, ev.sentAt, ev.key, ev.payload, ev.ascii, undefined), ev.headers), ev.keySlot, ev.keySeq), ev.delayMs);
      return;
    }
    case 'defer': {
      if (c.state === 'dead') return; // recovered already: it went back to the ring
      const held = r.failures.takeBack(ev.unit, ST_CLAIMED + c.slot);
      if (held === null) return;
      r.ring.reclaim();
      r.owners.holdKeyed(held);
      return;
    }
    case 'key-turn':
      r.turns.releaseTurns(ev.slot);
      return;
    case 'reply':
      r.replies.fromEvent(ev.id, ev.payload, ev.ascii);
      return;
  }
}
