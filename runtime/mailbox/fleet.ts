/**
 * The fleet recommendation of a Redis mailbox (main thread): reads the
 * group's figures its source polls once a second, turns them into the
 * group's arrival rate and this process's drain rate, and asks the fleet
 * policy (runtime/fleet-policy.ts) how many consumer processes the group
 * needs. Built only for a source that reports a stream; its clock is passed
 * in, so it is tested with a fake one.
 */
import { decideFleet, type FleetRecommendation } from '../fleet-policy.js';
import type { FleetStats, StreamStats } from '../source/stream.js';

export interface FleetDeps {
  /** The source's figures now (lag, pending, consumers, entriesAdded, acked, connected). */
  figures: () => StreamStats | undefined;
  /** Messages waiting in this process's ring now (work waiting: its acks measure what it can drain). */
  waiting: () => number;
  /** What this process could drain per second from its handler time (threads x concurrency / seconds per message), or undefined. */
  capacity: () => number | undefined;
  targetLagSeconds: number;
  scaleDownWindowMs: number;
  /** A partitioned mailbox: no more consumers than partitions. */
  max: number;
}

/** EWMA weight of a new one-second sample. */
const ALPHA = 0.3;
/** With no change in the group's figures for this long, a sample is taken anyway (nothing arrived). */
const QUIET_MS = 3_000;
/** How often the figures are looked at (the dispatcher ticks more often). */
const LOOK_MS = 200;

interface Sample {
  at: number;
  added: number;
  acked: number;
  lag: number;
  pending: number;
  consumers: number;
  busy: boolean;
}

export class Fleet {
  private last: Sample | null = null;
  private lookedAt = -Infinity;
  private arrival: number | undefined;
  private drain: number | undefined;
  private history: FleetRecommendation[] = [];
  private answer: FleetStats | null = null;

  constructor(private readonly d: FleetDeps) {}

  /** Every dispatcher tick: a new sample when the source polled the group again. */
  tick(t: number): void {
    if (t - this.lookedAt < LOOK_MS) return;
    this.lookedAt = t;
    const f = this.d.figures();
    if (f === undefined || !f.connected || f.lag < 0) return;
    const prev = this.last;
    if (prev !== null && f.entriesAdded === prev.added && f.lag === prev.lag && f.pending === prev.pending && f.consumers === prev.consumers && t - prev.at < QUIET_MS) return;
    const s: Sample = { at: t, added: f.entriesAdded, acked: f.acked, lag: f.lag, pending: f.pending, consumers: f.consumers, busy: f.lag > 0 || this.d.waiting() > 0 };
    if (prev !== null && t > prev.at) {
      const dt = (t - prev.at) / 1000;
      if (s.added >= 0 && prev.added >= 0 && s.added >= prev.added) this.arrival = ewma(this.arrival, (s.added - prev.added) / dt);
      // Acks measure a drain rate only while work waited, at both ends: otherwise they measure the arrivals.
      if (prev.busy && s.busy && s.acked > prev.acked) this.drain = ewma(this.drain, (s.acked - prev.acked) / dt);
    }
    this.last = s;
    const drainRate = this.drain ?? this.d.capacity();
    const d = decideFleet(
      { targetLagSeconds: this.d.targetLagSeconds, scaleDownWindowMs: this.d.scaleDownWindowMs, tolerance: 0.1, min: 1, max: this.d.max },
      { now: t, lag: s.lag, pending: s.pending, arrivalRate: this.arrival, drainRate, consumers: s.consumers < 0 ? undefined : s.consumers },
      this.history,
    );
    this.history = d.history;
    this.answer = { desired: d.consumers, reason: d.reason, arrivalRate: this.arrival ?? null, drainRate: drainRate ?? null };
  }

  /** The last answer, or null before the group was polled. */
  stats(): FleetStats | null {
    return this.answer;
  }
}

function ewma(prev: number | undefined, sample: number): number {
  return prev === undefined ? sample : prev + ALPHA * (sample - prev);
}
