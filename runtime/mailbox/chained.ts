/**
 * Chained sends to Redis mailboxes (main thread; issue #30): a handler's
 * ctx.send() / ctx.sendBatch() to a mailbox whose sends go to a Redis
 * stream reach the dispatcher as one group a handler ('stream-sends', in
 * the loop's order, numbered from 1). Each target mailbox's part of a group
 * is one transaction there; the group is answered once every part is, and
 * the loop's slot says so (CHAIN_DONE: every group up to it answered;
 * CHAIN_FAILED: the highest that failed). The loop acknowledges the
 * handler's message only after its group is answered without a failure, so
 * a crash never loses a chained message: at worst its sender runs again and
 * sends it again (at least once).
 *
 * A group numbered 0 was sent after its handler had finished (a timer):
 * nobody waits for it. A group answered for an earlier incarnation of the
 * slot is dropped (its loop is gone; its message runs again).
 */
import type { StreamItem } from '../shared/protocol.js';
import type { SlotView } from '../shared/slot.js';
import type { PeerMailbox } from './types.js';

/**
 * Test hook: 'before' a group goes to its targets (true: it never goes, as if
 * the process had died there; the test kills it a little later), 'after'
 * Redis has it and before its loop is told (a test kills the process there).
 */
let hook: ((at: 'before' | 'after') => boolean | void) | null = null;
export function setChainHook(h: ((at: 'before' | 'after') => boolean | void) | null): void {
  hook = h;
}

interface Ledger {
  incarnation: number;
  /** Every group up to this one answered. */
  done: number;
  /** Answered groups past `done` (answers of different targets come in any order). */
  ahead: Set<number>;
  failed: number;
}

export class ChainedSends {
  private readonly ledgers: (Ledger | undefined)[] = [];

  constructor(
    private readonly slot: (c: number) => SlotView,
    private readonly peer: (name: string) => PeerMailbox | undefined,
    private readonly emitError: (err: Error) => void,
  ) {}

  /** A loop's group: to each target, then answered in the loop's slot. */
  post(c: number, incarnation: number, seq: number, items: StreamItem[]): void {
    const parts = new Map<string, StreamItem[]>();
    for (const it of items) {
      let p = parts.get(it.mailbox);
      if (p === undefined) parts.set(it.mailbox, (p = []));
      p.push(it);
    }
    const sent: Promise<unknown>[] = [];
    if (hook?.('before') === true) return;
    for (const [name, part] of parts) {
      const target = this.peer(name);
      try {
        sent.push(target === undefined ? Promise.reject(new Error(`no mailbox '${name}'`)) : target.sends.sendEncoded(part));
      } catch (err) {
        sent.push(Promise.reject(err));
      }
    }
    Promise.all(sent).then(
      () => {
        hook?.('after');
        this.answer(c, incarnation, seq, true);
      },
      (err: unknown) => {
        this.emitError(err instanceof Error ? err : new Error(String(err)));
        this.answer(c, incarnation, seq, false);
      },
    );
  }

  /** Group `seq` of slot `c` answered: advance the slot's words over what is contiguous. */
  answer(c: number, incarnation: number, seq: number, ok: boolean): void {
    if (seq === 0) return;
    let l = this.ledgers[c];
    if (l === undefined || l.incarnation !== incarnation) {
      if (l !== undefined && ((incarnation - l.incarnation) | 0) < 0) return; // a late answer for a loop that is gone
      l = this.ledgers[c] = { incarnation, done: 0, ahead: new Set(), failed: 0 };
    }
    if (!ok && ((seq - l.failed) | 0) > 0) l.failed = seq;
    if (seq === ((l.done + 1) | 0)) {
      l.done = seq;
      while (l.ahead.delete((l.done + 1) | 0)) l.done = (l.done + 1) | 0;
    } else l.ahead.add(seq);
    const view = this.slot(c);
    if (view.incarnation() === incarnation) view.setChain(l.done, l.failed);
  }
}
