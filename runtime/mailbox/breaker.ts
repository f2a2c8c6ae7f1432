/**
 * A mailbox's circuit breaker (main thread; issue #31). The decision is pure
 * (this file: outcomes in, state out, an injected clock); the mailbox acts
 * on it through the start gate (runtime/shared/limit.ts's BREAKER word).
 *
 * - closed: attempts are counted in a window of `windowMs` (ten buckets);
 *   when at least `minCalls` ended there and `failureRatio` of them failed,
 *   it opens.
 * - open: the mailbox starts nothing for `cooldownMs`; then half-open.
 * - half-open: one probe may start; its success closes the breaker (a fresh
 *   window), its failure opens it again for another cooldown.
 *
 * While it is not closed a failed attempt is not charged (failures.ts puts
 * the message back at the same attempt): an outage of the downstream leaves
 * the backlog waiting, not dead-lettered.
 */
import { invalidOption } from '../shared/errors.js';

export interface BreakerOptions {
  /** Share of the window's attempts that failed (0 < r <= 1) that opens the breaker. */
  failureRatio: number;
  /** Attempts the window must hold before it may open. */
  minCalls: number;
  /** The window (ms). */
  windowMs: number;
  /** How long it stays open before a probe (ms). */
  cooldownMs: number;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerEvent {
  mailbox: string;
  state: BreakerState;
  /** The window's failed share and attempts when it opened (the last ones seen otherwise). */
  failureRatio: number;
  calls: number;
}

const BUCKETS = 10;

export class Breaker {
  state: BreakerState = 'closed';
  /** Times it opened (from closed or from a failed probe). */
  opens = 0;
  private readonly ok = new Float64Array(BUCKETS);
  private readonly failed = new Float64Array(BUCKETS);
  /** The bucket index each slot last counted for (time / bucketMs). */
  private readonly at = new Float64Array(BUCKETS).fill(-1);
  private readonly bucketMs: number;
  private openUntil = 0;
  private lastRatio = 0;
  private lastCalls = 0;

  constructor(
    readonly o: BreakerOptions,
    private readonly clock: () => number,
    /** The state changed: the mailbox sets its gate and tells its listeners. */
    private readonly changed: (state: BreakerState, ratio: number, calls: number) => void,
  ) {
    this.bucketMs = Math.max(1, o.windowMs / BUCKETS);
  }

  /** `n` attempts succeeded. */
  success(n = 1): void {
    if (n <= 0) return;
    if (this.state === 'half-open') return this.close();
    if (this.state === 'closed') {
      const i = this.slot();
      this.ok[i] = this.ok[i]! + n;
    }
  }

  /** An attempt failed. True when it is not to be charged (the breaker is not closed, or this failure opened it). */
  failure(): boolean {
    if (this.state === 'half-open') {
      this.open();
      return true;
    }
    if (this.state === 'open') return true;
    const i = this.slot();
    this.failed[i] = this.failed[i]! + 1;
    let ok = 0;
    let bad = 0;
    const now = Math.floor(this.clock() / this.bucketMs);
    for (let i = 0; i < BUCKETS; i++) {
      if (now - this.at[i]! >= BUCKETS) continue; // older than the window
      ok += this.ok[i]!;
      bad += this.failed[i]!;
    }
    const calls = ok + bad;
    this.lastRatio = calls === 0 ? 0 : bad / calls;
    this.lastCalls = calls;
    if (calls >= this.o.minCalls && this.lastRatio >= this.o.failureRatio) {
      this.open();
      return true;
    }
    return false;
  }

  /** Each tick: an open breaker past its cooldown lets one probe through. */
  tick(): void {
    if (this.state === 'open' && this.clock() >= this.openUntil) {
      this.state = 'half-open';
      this.changed('half-open', this.lastRatio, this.lastCalls);
    }
  }

  private open(): void {
    this.state = 'open';
    this.opens++;
    this.openUntil = this.clock() + this.o.cooldownMs;
    this.changed('open', this.lastRatio, this.lastCalls);
  }

  private close(): void {
    this.state = 'closed';
    this.ok.fill(0);
    this.failed.fill(0);
    this.at.fill(-1);
    this.changed('closed', 0, 0);
  }

  /** The current bucket's slot, emptied when it last counted an older bucket. */
  private slot(): number {
    const b = Math.floor(this.clock() / this.bucketMs);
    const i = b % BUCKETS;
    if (this.at[i] !== b) {
      this.at[i] = b;
      this.ok[i] = 0;
      this.failed[i] = 0;
    }
    return i;
  }
}

const KEYS = ['failureRatio', 'minCalls', 'windowMs', 'cooldownMs'];

/** `breaker` checked (RINGPOOL_INVALID_OPTION naming `path.<option>`), or null. */
export function resolveBreaker(path: string, v: unknown): BreakerOptions | null {
  if (v === undefined || v === null || v === false) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw invalidOption(path, `an object { ${KEYS.join(', ')} }`, v);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KEYS.includes(k)) throw invalidOption(`${path}.${k}`, `one of ${KEYS.join(', ')} (unknown option)`, o[k]);
  const num = (k: string, def: number, ok: (x: number) => boolean, what: string): number => {
    const x = o[k] === undefined ? def : o[k];
    if (typeof x !== 'number' || !ok(x)) throw invalidOption(`${path}.${k}`, what, x);
    return x;
  };
  return {
    failureRatio: num('failureRatio', 0.5, (x) => x > 0 && x <= 1, 'a number above 0, at most 1'),
    minCalls: num('minCalls', 20, (x) => Number.isInteger(x) && x >= 1 && x <= 1_000_000, 'an integer from 1 to 1000000'),
    windowMs: num('windowMs', 10_000, (x) => Number.isInteger(x) && x >= 10 && x <= 3_600_000, 'an integer from 10 to 3600000 (ms)'),
    cooldownMs: num('cooldownMs', 5_000, (x) => Number.isInteger(x) && x >= 1 && x <= 1_800_000, 'an integer from 1 to 1800000 (ms)'),
  };
}
