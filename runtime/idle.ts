/**
 * `rt.onIdle()`'s waiting (main thread): resolves once every mailbox looked
 * idle twice in a row, a millisecond apart (empty, nothing in flight or
 * delayed), and the stores and sources were told every outcome; or at once
 * when the runtime has finished. A forgotten wait keeps no process alive.
 */
export class IdleWaiters {
  private waiters: Array<() => void> = [];
  private poll: NodeJS.Timeout | null = null;
  private streak = 0;

  constructor(
    /** Every mailbox is idle now. */
    private readonly idle: () => boolean,
    /** Tell the stores and sources every outcome now (not at their next timer). */
    private readonly tellFeeds: () => void,
  ) {}

  wait(finished: boolean): Promise<void> {
    // Once closed nothing will move any more: what was left is in close()'s report.
    if (finished) return Promise.resolve();
    if (this.idle()) {
      this.tellFeeds();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.arm();
    });
  }

  /** The runtime finished: nothing more will happen, every waiter goes. */
  release(): void {
    if (this.poll !== null) clearTimeout(this.poll);
    this.poll = null;
    for (const w of this.waiters.splice(0)) w();
  }

  private arm(): void {
    if (this.poll !== null) return;
    this.poll = setTimeout(() => {
      this.poll = null;
      if (this.waiters.length === 0) return;
      // Two idle looks in a row, a poll apart, before anyone is told.
      if (this.idle()) {
        if (++this.streak >= 2) {
          this.streak = 0;
          this.tellFeeds();
          for (const w of this.waiters.splice(0)) w();
          return;
        }
      } else {
        this.streak = 0;
      }
      this.arm();
    }, 1);
    this.poll.unref();
  }
}
