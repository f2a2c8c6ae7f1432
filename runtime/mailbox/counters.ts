/**
 * A mailbox's numbers (main thread): the tally the dispatcher keeps (its
 * parts bump the fields they own), the shared counters folded into 64-bit
 * totals, the drain and arrival rates, the oldest ready message's age, and
 * the stats() snapshot built from them and from what the other parts report
 * (StatsInputs, gathered by index.ts). It knows no mailbox: the ring, the
 * backlog's counts, a clock.
 */
import { LIMIT_WAITS, PAUSE_WAITS, now32, pausedFor } from '../shared/limit.js';
import {
  CLAIMED,
  ENQUEUED,
  HEAD,
  MAX_CONSUMERS,
  PUBLISHED,
  READ,
  REJECTED_BASE,
  REJECT_REASONS,
  ST_READY,
  ST_SKIP,
  type RejectReason,
} from '../shared/layout.js';
import type { DeadLetterReason } from '../dead-letters.js';
import type { Ring } from '../shared/ring.js';
import type { Backlog } from './backlog.js';
import type { MailboxStats } from './types.js';

export interface CountersDeps {
  ring: Ring;
  backlog: Pick<Backlog, 'pendingCount' | 'delayedCount' | 'blockedCount' | 'oldestPendingAt'>;
  /** ms since the epoch (clock.ts's now(), or a test's). */
  clock: () => number;
  /** Consumer slots that ever ran a loop are below this (the others' ack words are 0): fold() reads only these. */
  slotsUsed?: () => number;
}

/** What stats() takes from the parts that own it. */
export interface StatsInputs {
  /** Sends the main thread's producer counted locally (not yet in the shared word). */
  enqueuedHere: number;
  threads: number;
  minThreads: number;
  maxThreads: number;
  scaling: { desired: number; decisions: { up: number; down: number }; concurrency: number; autoscaling: boolean; lastReason: string };
  deadLetters: { size: number; dropped: number };
  rateLimit: MailboxStats['rateLimit'];
  breaker: MailboxStats['breaker'];
  adaptive: MailboxStats['adaptive'];
}

/** A 64-bit count folded from a wrapping Int32 word. */
class Folded {
  private last = 0;
  total = 0;
  fold(raw: number): number {
    // Signed: a producer that counts a send and then finds the ring full takes it back.
    this.total += (raw - this.last) | 0;
    this.last = raw;
    return this.total;
  }
}

export class Counters {
  // counted here, by the dispatcher
  failed = 0;
  retried = 0;
  redelivered = 0;
  deadLettered = 0;
  workerCrashes = 0;
  handlerTimeouts = 0;
  /** Claimed records the dispatcher finished (nacked or recovered). */
  finishedHere = 0;
  readonly deadBy: Record<DeadLetterReason, number> = { max_attempts: 0, poison: 0, timeout: 0, unrecoverable: 0 };
  // folded from the ring's shared words
  private readonly enqueued = new Folded();
  private readonly acked: Folded[] = Array.from({ length: MAX_CONSUMERS }, () => new Folded());
  private readonly rejected: Folded[] = REJECT_REASONS.map(() => new Folded());
  private readonly claimed = new Folded();
  private readonly published = new Folded();
  /** PUBLISHED - CLAIMED at the last fold. */
  private readyInRing = 0;
  // rates
  arrivalRate = 0;
  arrivalKnown = false;
  private lastArrivalAt = 0;
  private lastPublished = 0;
  private drainRate = 0;
  private lastRateAt = 0;
  private lastProcessed = 0;

  constructor(private readonly d: CountersDeps) {}

  /** Every tick: fold the shared words, then move the rates on. */
  tick(t: number): void {
    this.fold();
    this.measureDrain(t);
    this.measureArrivals(t, this.published.total);
  }

  /**
   * Read the shared counters in the reverse of the order a message moves
   * through them (acked, claimed, published, enqueued): a message seen at a
   * later stage is then always seen at the earlier ones, so a snapshot never
   * shows a live message as accounted for.
   */
  fold(): void {
    const ring = this.d.ring;
    const i32 = ring.i32;
    const used = this.d.slotsUsed?.() ?? MAX_CONSUMERS;
    for (let s = 0; s < used; s++) this.acked[s]!.fold(ring.slot(s).acked());
    const claimed = Atomics.load(i32, CLAIMED);
    this.claimed.fold(claimed);
    const published = Atomics.load(i32, PUBLISHED);
    this.published.fold(published);
    const d = (published - claimed) | 0;
    this.readyInRing = d > 0 ? d : 0;
    for (let r = 0; r < REJECT_REASONS.length; r++) this.rejected[r]!.fold(Atomics.load(i32, REJECTED_BASE + r));
    this.enqueued.fold(Atomics.load(i32, ENQUEUED));
  }

  /** What the autoscaler reads each tick: depth and in flight, as stats() counts them, without the rest of stats(). */
  load(): { depth: number; inFlight: number } {
    this.fold();
    return { depth: this.depth(), inFlight: this.inFlight(this.processed()) };
  }

  /** Ready messages: in the ring, and waiting outside it for room (after fold()). */
  private depth(): number {
    return this.readyInRing + this.d.backlog.pendingCount;
  }

  /** Claimed and not yet finished (after fold()). */
  private inFlight(processed: number): number {
    return Math.max(0, this.claimed.total - processed - this.finishedHere);
  }

  processed(): number {
    let n = 0;
    for (const f of this.acked) n += f.total;
    return n;
  }

  /** Arrivals per second (publishes, retries included), EWMA over ~5 s. */
  private measureArrivals(t: number, published: number): void {
    if (this.lastArrivalAt !== 0 && t > this.lastArrivalAt) {
      const dt = (t - this.lastArrivalAt) / 1000;
      const rate = (published - this.lastPublished) / dt;
      const a = 1 - Math.exp(-dt / 5);
      // The first full interval seeds the average: a step shows at once, not over 5 s.
      this.arrivalRate = this.arrivalKnown ? this.arrivalRate + a * (rate - this.arrivalRate) : rate;
      this.arrivalKnown = true;
    }
    this.lastArrivalAt = t;
    this.lastPublished = published;
  }

  /** EWMA of acks per second with a ~5 s time constant. */
  private measureDrain(t: number): void {
    const processed = this.processed();
    if (this.lastRateAt !== 0 && t > this.lastRateAt) {
      const dt = (t - this.lastRateAt) / 1000;
      const rate = (processed - this.lastProcessed) / dt;
      const a = 1 - Math.exp(-dt / 5);
      this.drainRate = this.drainRate + a * (rate - this.drainRate);
    }
    this.lastRateAt = t;
    this.lastProcessed = processed;
  }

  /** Age of the oldest ready message, seconds: the record at READ, or the oldest held message waiting for room. */
  oldestAgeSeconds(t: number = this.d.clock()): number {
    const ring = this.d.ring;
    const i32 = ring.i32;
    let oldest = Infinity;
    for (let tries = 0; tries < 4; tries++) {
      const r0 = Atomics.load(i32, READ);
      let r = r0;
      const h = Atomics.load(i32, HEAD);
      if (r === h) break;
      let at = r & ring.indexMask;
      let s = Atomics.load(ring.state, at);
      if (s === ST_SKIP) {
        r = (r + ring.capacityUnits - at) | 0;
        if (r === h) break;
        at = 0;
        s = Atomics.load(ring.state, 0);
      }
      if (s !== ST_READY) break; // reserved, not yet published: no age to tell
      const readyAt = ring.readyAt(at);
      // Still unclaimed after the read, so the header was that record's.
      const r2 = Atomics.load(i32, READ);
      if (r2 === r0 || r2 === r) {
        oldest = readyAt;
        break;
      }
    }
    const pendingAt = this.d.backlog.oldestPendingAt(t);
    if (pendingAt !== undefined) oldest = Math.min(oldest, pendingAt);
    return oldest === Infinity ? 0 : Math.max(0, (t - oldest) / 1000);
  }

  stats(x: StatsInputs): MailboxStats {
    this.fold();
    const { ring, backlog } = this.d;
    const processed = this.processed();
    const rejectedBy = Object.fromEntries(REJECT_REASONS.map((r, i) => [r, this.rejected[i]!.total])) as Record<RejectReason, number>;
    const depth = this.depth();
    const oldest = depth === 0 ? 0 : this.oldestAgeSeconds();
    const sc = x.scaling;
    const paused = pausedFor(ring.i32, now32(Date.now()));
    return {
      depth,
      paused: paused !== 0,
      pausedForMs: paused < 0 ? -1 : Math.ceil(paused / 1000),
      rateLimit: x.rateLimit,
      breaker: x.breaker,
      adaptive: x.adaptive,
      limitWaits: Atomics.load(ring.i32, LIMIT_WAITS),
      pauseWaits: Atomics.load(ring.i32, PAUSE_WAITS),
      inFlight: this.inFlight(processed),
      delayed: backlog.delayedCount + backlog.blockedCount,
      enqueued: this.enqueued.total + x.enqueuedHere,
      processed,
      failed: this.failed,
      retried: this.retried,
      redelivered: this.redelivered,
      deadLettered: this.deadLettered,
      deadLetteredBy: { ...this.deadBy },
      rejected: Object.values(rejectedBy).reduce((a, b) => a + b, 0),
      rejectedBy,
      threads: x.threads,
      desiredThreads: sc.desired,
      minThreads: x.minThreads,
      maxThreads: x.maxThreads,
      oldestAgeSeconds: oldest,
      estimatedLagSeconds: depth === 0 ? 0 : this.drainRate > 1e-9 ? depth / this.drainRate : oldest,
      drainRate: this.drainRate,
      scaleDecisions: { ...sc.decisions },
      concurrency: sc.concurrency,
      arrivalRate: this.arrivalRate,
      autoscale: sc.autoscaling,
      scaleReason: sc.lastReason,
      workerCrashes: this.workerCrashes,
      handlerTimeouts: this.handlerTimeouts,
      deadLetterSize: x.deadLetters.size,
      deadLettersDropped: x.deadLetters.dropped,
      capacityBytes: ring.capacityBytes,
      usedBytes: ring.usedUnits() * 16,
    };
  }
}
