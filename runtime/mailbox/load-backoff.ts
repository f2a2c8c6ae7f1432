/**
 * When a mailbox may start a consumer loop again after loops failed to load
 * its handler mid-run (a replacement thread, files replaced under the running
 * process): not at once, or a respawn storm takes the CPU; after 100 ms,
 * doubling to 5 s while they keep failing, and at once again after one loads.
 * Pure: the caller gives the clock (performance.now()).
 */

/** The first wait after a failed load, and the longest. */
export const LOAD_RETRY_MS = 100;
export const LOAD_RETRY_MAX_MS = 5_000;

export class LoadBackoff {
  /** Loads in a row that failed. */
  private failures = 0;
  /** No new loop before this. */
  private retryAt = 0;

  /** A loop failed to load at `now`: the wait (ms) before the next may start. */
  failed(now: number): number {
    const ms = Math.min(LOAD_RETRY_MAX_MS, LOAD_RETRY_MS * 2 ** this.failures++);
    this.retryAt = now + ms;
    return ms;
  }

  /** A loop loaded its handler: the next failure waits the shortest time again. */
  loaded(): void {
    this.failures = 0;
    this.retryAt = 0;
  }

  /** Whether a new loop may start at `now`. */
  mayStart(now: number): boolean {
    return now >= this.retryAt;
  }
}
