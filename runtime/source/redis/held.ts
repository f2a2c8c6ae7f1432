/**
 * The stream entries one process holds (main thread): read from the group
 * and not yet acknowledged or dead-lettered here. An entry is held from the
 * moment it is read (or taken over), first as waiting (for ring room), then
 * in the ring (running, or waiting to retry). Maps the ring's message id to
 * the entry id (for XACK) and back (so an entry read twice, from the pending
 * list after a reconnect or by a takeover pass, is not run twice here).
 * Every held entry is touched (claims.ts), waiting ones too: an entry that
 * waits for ring room longer than claimIdleMs must not look abandoned.
 * Its size bounds what a process takes from Redis: the backlog stays in the
 * stream, and a process that dies leaves at most this many entries to take
 * over. Takeovers have room beyond what reads may fill, so that a dead
 * process's entries do not wait for a busy one's backlog.
 *
 * Entries are named by qualified ids (qualify()): the entry id alone for the
 * mailbox's own stream, `<id>@<partition>.<epoch>` for a partition's, so
 * that ids of different streams never meet, and an entry held under an
 * epoch this process lost is not taken for one it reads under its new one.
 * Counts per partition say when one has nothing left here (a clean point).
 */
export class HeldEntries {
  /** Entries held per partition (partitioned mailboxes). */
  readonly perPartition: Int32Array;
  private readonly bySid = new Map<string, number>();
  private readonly byLocal = new Map<number, string>();
  /** Read or taken over, not yet in the ring (waiting for room). */
  private readonly waiting = new Set<string>();
  private waiter: (() => void) | null = null;

  constructor(
    /** Entries reads may bring the count to. */
    readonly limit: number,
    /** Entries takeovers may bring it to (more: a busy process still takes over from a dead one). */
    readonly claimLimit: number,
    partitions = 0,
  ) {
    this.perPartition = new Int32Array(partitions);
  }

  /** Entries held: in the ring and waiting for room. */
  get size(): number {
    return this.byLocal.size + this.waiting.size;
  }

  /** Room for this many more read. */
  get room(): number {
    return this.limit - this.size;
  }

  /** Room for this many more taken over. */
  get claimRoom(): number {
    return this.claimLimit - this.size;
  }

  has(sid: string): boolean {
    return this.bySid.has(sid) || this.waiting.has(sid);
  }

  /** Read or taken over: held (and touched) from now on, until hold() or unreserve(). */
  reserve(sid: string): void {
    if (this.waiting.has(sid)) return;
    this.waiting.add(sid);
    this.count(sid, 1);
  }

  /** Not put into the ring after all (stopping, dead-lettered unrun, no longer pending): no longer ours. */
  unreserve(sid: string): void {
    if (!this.waiting.delete(sid)) return;
    this.count(sid, -1);
    this.wakeOne();
  }

  /** Put into the ring as message `localId`. */
  hold(localId: number, sid: string): void {
    this.waiting.delete(sid);
    this.bySid.set(sid, localId);
    this.byLocal.set(localId, sid);
  }

  /** The entry of a local message (undefined: a local send, not from the stream). */
  sid(localId: number): string | undefined {
    return this.byLocal.get(localId);
  }

  /** Its outcome is final here: forget it; returns its entry id. */
  release(localId: number): string | undefined {
    const sid = this.byLocal.get(localId);
    if (sid === undefined) return undefined;
    this.byLocal.delete(localId);
    this.bySid.delete(sid);
    this.count(sid, -1);
    this.wakeOne();
    return sid;
  }

  /** A partition's count (nothing to parse for a mailbox without partitions: its ids are plain). */
  private count(sid: string, d: number): void {
    if (this.perPartition.length === 0) return;
    const p = partOf(sid);
    if (p >= 0) this.perPartition[p]! += d;
  }

  /** Every entry id of the mailbox's own stream held, waiting ones too (for the pass that keeps them from looking idle; a partition's owner needs none). */
  sids(): string[] {
    const out: string[] = [];
    const all = this.perPartition.length === 0;
    for (const sid of this.byLocal.values()) if (all || partOf(sid) < 0) out.push(sid);
    for (const sid of this.waiting) if (all || partOf(sid) < 0) out.push(sid);
    return out;
  }

  /** Resolves when one is released (or `wake()` is called: stopping). */
  whenReleased(): Promise<void> {
    return new Promise((resolve) => {
      const prev = this.waiter;
      this.waiter = () => {
        prev?.();
        resolve();
      };
    });
  }

  private wakeOne(): void {
    if (this.waiter !== null) this.wake();
  }

  wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
}

/** The qualified id of entry `sid` of partition `p` read under `epoch` (p < 0: the mailbox's own stream). */
export function qualify(sid: string, p: number, epoch: number): string {
  return p < 0 ? sid : `${sid}@${p}.${epoch}`;
}

/** The partition of a qualified id (-1: the mailbox's own stream). */
export function partOf(q: string): number {
  const at = q.indexOf('@');
  return at < 0 ? -1 : Number(q.slice(at + 1, q.indexOf('.', at)));
}

/** A qualified id's parts. */
export function unqualify(q: string): { sid: string; p: number; epoch: number } {
  const at = q.indexOf('@');
  if (at < 0) return { sid: q, p: -1, epoch: 0 };
  const dot = q.indexOf('.', at);
  return { sid: q.slice(0, at), p: Number(q.slice(at + 1, dot)), epoch: Number(q.slice(dot + 1)) };
}
