/**
 * The fleet policy: how many consumer processes a Redis group needs, the
 * autoscaler's law (autoscale-policy.ts) applied to the whole group. Pure:
 * no Redis, no timers, `now` is an input, so it is tested with a fake clock.
 *
 *   B = lag + pending (not yet delivered, and delivered but not acknowledged:
 *       ringpool consumers read ahead into their rings, so the group's lag
 *       alone understates the backlog),
 *   λ = the group's arrival rate (msg/s), μ = one consumer's drain rate (msg/s),
 *   raw = max(B / (μ · targetLag), λ / (μ · 0.8))
 *
 * (Clear the backlog within targetLag, and keep up with arrivals at 80 %
 * utilisation: the larger wins, as for threads.)
 *
 * - Up at once; down only to the highest recommendation of the last
 *   scaleDownWindowMs (the HPA's stabilisation window, default 5 min: pods
 *   cost seconds to start, threads milliseconds), never on missing data.
 * - Within 1 ± tolerance of the consumers the group has: unchanged.
 * - At least `min` (1: someone must notice the next arrival; KEDA's
 *   activation scales to zero), at most `max` (a partitioned mailbox cannot
 *   use more processes than partitions).
 */

/** The fleet policy's settings (`source.redis.fleet`, plus what the mailbox knows). */
export interface FleetConfig {
  /** Clear the group's backlog within this many seconds. */
  targetLagSeconds: number;
  /** Scale down only to the highest recommendation of this window (ms). */
  scaleDownWindowMs: number;
  /** Relative change ignored, e.g. 0.1. */
  tolerance: number;
  min: number;
  max: number;
}

/** What the fleet policy sees of the group at one poll. */
export interface FleetObservation {
  now: number;
  /** Entries not yet delivered to the group (-1 or undefined: unknown). */
  lag: number | undefined;
  /** Entries delivered and not yet acknowledged, all consumers. */
  pending: number | undefined;
  /** Entries added to the stream per second (EWMA); undefined when unknown. */
  arrivalRate: number | undefined;
  /** Messages one consumer process acknowledges per second when it has work waiting; undefined when unknown. */
  drainRate: number | undefined;
  /** Consumers the group has now (XINFO GROUPS); undefined when unknown. */
  consumers: number | undefined;
}

/** A past recommendation, kept for the scale-down window. */
export interface FleetRecommendation {
  at: number;
  consumers: number;
}

/** What `decideFleet` answers. */
export interface FleetDecision {
  /** Consumer processes the group should have. */
  consumers: number;
  /** Unclamped (NaN when data is missing). */
  raw: number;
  /** Why, in words an operator can read. */
  reason: string;
  history: FleetRecommendation[];
}

/** The defaults of `source.redis.fleet`. */
export const fleetDefaults = Object.freeze({ targetLagSeconds: 10, scaleDownWindowMs: 300_000, tolerance: 0.1 });

const known = (v: number | undefined): v is number => v !== undefined && Number.isFinite(v) && v >= 0;

/** How many consumer processes the group needs now, and why (pure). */
export function decideFleet(cfg: FleetConfig, o: FleetObservation, past: readonly FleetRecommendation[]): FleetDecision {
  const window = past.filter((h) => o.now - h.at < cfg.scaleDownWindowMs);
  const current = known(o.consumers) ? o.consumers : undefined;
  const clamp = (v: number): number => Math.min(cfg.max, Math.max(cfg.min, v));
  const hold = (reason: string): FleetDecision => ({ consumers: clamp(current ?? cfg.min), raw: NaN, reason, history: window });
  if (!known(o.lag) || !known(o.pending)) return hold('group figures unknown: hold');
  const backlog = o.lag + o.pending;
  const lambda = known(o.arrivalRate) ? o.arrivalRate : undefined;
  if (backlog === 0 && lambda !== undefined && lambda < 0.5) {
    // Idle: down to min, through the window.
    const history = [...window, { at: o.now, consumers: cfg.min }];
    const ceiling = Math.max(...history.map((h) => h.consumers));
    const to = clamp(Math.min(current ?? ceiling, ceiling));
    return { consumers: to, raw: 0, reason: to > cfg.min ? `idle: holding the highest recommendation of ${cfg.scaleDownWindowMs} ms (${ceiling})` : 'idle', history };
  }
  const mu = o.drainRate;
  if (mu === undefined || !(mu > 0) || !Number.isFinite(mu)) return hold('drain rate not known yet: hold');
  const forBacklog = backlog / (mu * cfg.targetLagSeconds);
  const forArrivals = (lambda ?? 0) / (mu * 0.8);
  const raw = Math.max(forBacklog, forArrivals);
  const wanted = clamp(Math.ceil(raw - 1e-9));
  const why =
    forBacklog >= forArrivals
      ? `backlog ${backlog} / (${fmt(mu)} msg/s x ${cfg.targetLagSeconds} s)`
      : `arrivals ${fmt(lambda ?? 0)}/s / (${fmt(mu)} msg/s x 0.8)`;
  const history = [...window, { at: o.now, consumers: wanted }];
  if (current !== undefined && current > 0 && Math.abs(raw / current - 1) <= cfg.tolerance) {
    return { consumers: clamp(current), raw, reason: `within tolerance (${why} = ${fmt(raw)})`, history };
  }
  if (current === undefined || wanted >= current) return { consumers: wanted, raw, reason: `${wanted > (current ?? 0) ? 'up' : 'steady'}: ${why} = ${fmt(raw)}`, history };
  if (lambda === undefined) return { consumers: clamp(current), raw, reason: `arrival rate unknown: no scale-down (${why} = ${fmt(raw)})`, history };
  const ceiling = Math.max(...history.map((h) => h.consumers));
  const to = clamp(Math.min(current, Math.max(wanted, ceiling)));
  return {
    consumers: to,
    raw,
    reason: to < current ? `down: highest recommendation in ${cfg.scaleDownWindowMs} ms is ${ceiling} (${why} = ${fmt(raw)})` : `hold: waiting out the scale-down window (highest ${ceiling}; ${why} = ${fmt(raw)})`,
    history,
  };
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toPrecision(3);
}
