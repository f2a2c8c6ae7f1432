/**
 * The stream entries one process holds (main thread): read from the group
 * and put into the local ring, not yet acknowledged or dead-lettered. Maps
 * the ring's message id to the entry id (for XACK) and back (so an entry
 * read twice, from the pending list after a reconnect or by a takeover pass,
 * is not run twice here). Its size bounds what a process takes from Redis:
 * the backlog stays in the stream, and a process that dies leaves at most
 * this many entries to take over. Takeovers have room beyond what reads
 * may fill, so that a dead process's entries do not wait for a busy one's
 * backlog.
 */
export class HeldEntries {
  private readonly bySid = new Map<string, number>();
  private readonly byLocal = new Map<number, string>();
  private waiter: (() => void) | null = null;

  constructor(
    /** Entries reads may bring the count to. */
    readonly limit: number,
    /** Entries takeovers may bring it to (more: a busy process still takes over from a dead one). */
    readonly claimLimit: number,
  ) {}

  get size(): number {
    return this.byLocal.size;
  }

  /** Room for this many more read. */
  get room(): number {
    return this.limit - this.byLocal.size;
  }

  /** Room for this many more taken over. */
  get claimRoom(): number {
    return this.claimLimit - this.byLocal.size;
  }

  has(sid: string): boolean {
    return this.bySid.has(sid);
  }

  hold(localId: number, sid: string): void {
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
    if (this.waiter !== null) {
      const w = this.waiter;
      this.waiter = null;
      w();
    }
    return sid;
  }

  /** Every entry id held (for the pass that keeps them from looking idle). */
  sids(): IterableIterator<string> {
    return this.byLocal.values();
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

  wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
}
