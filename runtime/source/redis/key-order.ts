/**
 * Per-key order of a partitioned mailbox's final writes (main thread): an
 * entry's XACK or dead letter reaches Redis only after those of the earlier
 * entries of its key held here.
 *
 * A key's messages run one at a time, in stream order, but the ring reports
 * them finished in ring order, and a keyed record that waited for its turn
 * outside the ring comes back into it behind later ones of its key. Without
 * this, the XACK of message 45 could go out before that of 44 (which ran
 * first); a process killed between the two leaves 44 pending, and the
 * partition's next owner runs 44 again after 45 had run, and not 45: the
 * key's effects go back a step and do not come forward again.
 *
 * Each key's held entries form a queue in the order they went into the ring
 * (stream order: a partition is read, and claimed at acquisition, in id
 * order). A finished entry's write is queued only when every one before it
 * is queued; an XACK queued after another is written after it (one
 * connection, one pipeline, a failed write put back in front). A dead letter
 * is its own script, written beside the XACKs of its pipeline: it waits for
 * the writes before it to be confirmed, and the entries after it wait for
 * its own confirmation. An entry that ends here without a write (its
 * partition moved, an ask whose reply was lost) leaves its queue.
 */

const HELD = 0;
const FINISHED = 1;
const QUEUED = 2;

interface Rec {
  q: string;
  key: string;
  state: number;
  dead: boolean;
  write: (() => void) | null;
}

export class KeyOrder {
  private readonly byKey = new Map<string, Rec[]>();
  private readonly byQ = new Map<string, Rec>();

  /** Entries followed (held, or finished and not yet confirmed). */
  get size(): number {
    return this.byQ.size;
  }

  /** Entry `q` (a qualified id) went into the ring; `key`: its key and partition, e.g. `k1@3`. */
  add(q: string, key: string): void {
    if (this.byQ.has(q)) return;
    const r: Rec = { q, key, state: HELD, dead: false, write: null };
    this.byQ.set(q, r);
    const list = this.byKey.get(key);
    if (list === undefined) this.byKey.set(key, [r]);
    else list.push(r);
  }

  /**
   * Entry `q` finished here: `write` queues its XACK (or, `dead`, its dead
   * letter) now or once its turn comes. False when `q` is not followed (the
   * caller writes at once).
   */
  finish(q: string, dead: boolean, write: () => void): boolean {
    const r = this.byQ.get(q);
    if (r === undefined || r.state !== HELD) return false;
    r.state = FINISHED;
    r.dead = dead;
    r.write = write;
    this.drain(r.key);
    return true;
  }

  /** Redis answered `q`'s write (done, or refused by the fence): the entries after it may go. */
  confirmed(q: string): void {
    this.remove(q);
  }

  /** Entry `q` ends here without a write of ours (its partition moved, its reply was lost): the entries after it may go. */
  drop(q: string): void {
    this.remove(q);
  }

  private remove(q: string): void {
    const r = this.byQ.get(q);
    if (r === undefined) return;
    this.byQ.delete(q);
    const list = this.byKey.get(r.key)!;
    const i = list.indexOf(r);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.byKey.delete(r.key);
    else this.drain(r.key);
  }

  private drain(key: string): void {
    const list = this.byKey.get(key);
    if (list === undefined) return;
    for (let i = 0; i < list.length; i++) {
      const r = list[i]!;
      if (r.state === HELD) return;
      if (r.state === QUEUED) {
        if (r.dead) return;
        continue;
      }
      // FINISHED: a letter goes only once everything before it is confirmed.
      if (r.dead && i > 0) return;
      r.state = QUEUED;
      const write = r.write!;
      r.write = null;
      write();
      if (r.dead) return;
    }
  }
}
