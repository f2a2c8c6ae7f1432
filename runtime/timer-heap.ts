/**
 * A binary min-heap of held messages by `dueAt`, for retry backoffs and
 * delayed sends. One timer for the earliest entry. Main thread.
 */
import { MAX_TIMER_MS } from './shared/clock.js';
import type { HeldMessage } from './held.js';

export class TimerHeap {
  private readonly items: HeldMessage[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): HeldMessage | undefined {
    return this.items[0];
  }

  push(m: HeldMessage): void {
    const a = this.items;
    a.push(m);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]!.dueAt <= m.dueAt) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = m;
  }

  pop(): HeldMessage | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && a[r]!.dueAt < a[l]!.dueAt ? r : l;
        if (a[c]!.dueAt >= last.dueAt) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }

  /** Every entry, in no order (looked at, not taken). */
  values(): Iterable<HeldMessage> {
    return this.items;
  }

  /** Take out the entries `take` selects (rare: a console's promote); the heap is rebuilt. */
  remove(take: (m: HeldMessage) => boolean): HeldMessage[] {
    const out: HeldMessage[] = [];
    const keep: HeldMessage[] = [];
    for (const m of this.items) (take(m) ? out : keep).push(m);
    if (out.length === 0) return out;
    this.items.length = 0;
    for (const m of keep) this.push(m);
    return out;
  }

  /** Every entry, in no order (for close() reports). */
  drain(): HeldMessage[] {
    return this.items.splice(0);
  }
}

/** Exponential backoff with full jitter: a random delay in [0, min(maxMs, baseMs * 2^(attempt-1))]. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return random() * ceiling;
}

/** How long to arm a timer for `dueAt` at time `t`: never past setTimeout's limit (a longer delay is waited for in steps). */
export function timerDelay(dueAt: number, t: number): number {
  return Math.min(MAX_TIMER_MS, Math.max(0, dueAt - t));
}
