/**
 * A consumer loop's view of its mailbox's start gate (issue #31; the words
 * and their rules: runtime/shared/limit.ts): before it claims, a loop asks
 * how many it may start now, claims at most that many, and gives back what
 * it could not claim. Held back (the rate limit, or a pause), messages stay
 * in the ring: not claimed, not an attempt. Adaptive concurrency
 * (runtime/shared/adaptive.ts) is a gate too: a start is reserved under the
 * mailbox's learned limit before it is claimed, and released as its handler
 * ends (done()). Four loads a claim when the mailbox has none of these.
 */
import { ADAPT_LIMIT, ADAPT_WAITS, release, reserve, sample } from '../../runtime/shared/adaptive.js';
import { BREAKER, BREAKER_HALF_OPEN, PROBE, LIMIT_T, LIMIT_WAITS, PAUSE, PAUSE_WAITS, breakerAllows, limitWait, now32, pausedFor, refund, takeStarts } from '../../runtime/shared/limit.js';

/** A held pause (until rt.resume()) is looked at again this often. */
const HELD_LOOK_MS = 50;
/** An adaptive limit reached with no handler of this loop running: looked at again this often (a handler of another thread ends meanwhile). */
const ADAPT_LOOK_MS = 1;

export class Gate {
  /** After take() gave 0: how long to wait before asking again (ms; may be under 1). */
  waitMs = 0;
  /** The last take() was a half-open breaker's probe. */
  private probe = false;
  /** Whether the mailbox's concurrency is adaptive (set when it is made, never changed). */
  readonly adaptive: boolean;

  constructor(
    private readonly i32: Int32Array,
    /** The loop's slot: what it holds of an adaptive limit is kept there. */
    private readonly slot: number,
  ) {
    this.adaptive = Atomics.load(i32, ADAPT_LIMIT) !== 0;
  }

  /** How many of `want` may start now (0: none, see waitMs); the starts are taken. */
  take(want: number): number {
    const i32 = this.i32;
    this.probe = false;
    if (Atomics.load(i32, PAUSE) === 0 && Atomics.load(i32, LIMIT_T) === 0 && Atomics.load(i32, BREAKER) === 0 && !this.adaptive) return want;
    const t = now32(performance.timeOrigin + performance.now());
    const p = pausedFor(i32, t);
    if (p !== 0) {
      Atomics.add(i32, PAUSE_WAITS, 1);
      this.waitMs = p < 0 ? HELD_LOOK_MS : Math.min(HELD_LOOK_MS, p / 1000);
      return 0;
    }
    // An open breaker starts nothing; a half-open one, its one probe.
    if (Atomics.load(i32, BREAKER) !== 0) {
      if (!breakerAllows(i32)) {
        Atomics.add(i32, PAUSE_WAITS, 1);
        this.waitMs = HELD_LOOK_MS;
        return 0;
      }
      want = 1;
      this.probe = true;
    }
    if (this.adaptive) {
      // Handlers running across the mailbox, under its learned limit: reserved before the rate limit is asked.
      const r = reserve(i32, this.slot, want);
      if (r === 0) {
        if (this.probe) this.giveProbeBack();
        Atomics.add(i32, ADAPT_WAITS, 1);
        this.waitMs = ADAPT_LOOK_MS;
        return 0;
      }
      want = r;
    }
    const k = takeStarts(i32, want, t);
    if (this.adaptive) release(i32, this.slot, want - k);
    if (k === 0 && this.probe) this.giveProbeBack();
    if (k === 0) {
      Atomics.add(i32, LIMIT_WAITS, 1);
      this.waitMs = Math.min(HELD_LOOK_MS, limitWait(i32, t) / 1000);
    }
    return k;
  }

  /** `n` starts taken and not used: back to the gate (a half-open breaker's probe too). */
  refund(n: number): void {
    if (n <= 0) return;
    refund(this.i32, n);
    if (this.adaptive) release(this.i32, this.slot, n);
    if (this.probe) this.giveProbeBack();
  }

  /** A started handler ended after `ms` (`ok`: it succeeded): its place under an adaptive limit goes back, its time is a sample. */
  done(ms: number, ok: boolean): void {
    if (!this.adaptive) return;
    release(this.i32, this.slot, 1);
    if (ok) sample(this.i32, ms);
  }

  /** A claimed record that did not start (not its key's turn): its place under an adaptive limit goes back. */
  unstarted(): void {
    if (this.adaptive) release(this.i32, this.slot, 1);
  }

  /** The probe this loop took did not start: another may take it. */
  private giveProbeBack(): void {
    this.probe = false;
    if (Atomics.load(this.i32, BREAKER) === BREAKER_HALF_OPEN) Atomics.store(this.i32, PROBE, 1);
  }

  /** Wait waitMs: a timer from a millisecond up (the event loop runs meanwhile), a blocking wait below it (no handler runs then). */
  async wait(busy: boolean): Promise<void> {
    const ms = this.waitMs;
    if (ms >= 1 || busy) await new Promise((r) => setTimeout(r, Math.max(1, Math.floor(ms))));
    else Atomics.wait(this.i32, LIMIT_WAITS, Atomics.load(this.i32, LIMIT_WAITS) + 1, ms);
  }
}
