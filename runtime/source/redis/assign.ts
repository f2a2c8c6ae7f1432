/**
 * Which partitions a process should take and give back (a decision, no
 * state, no Redis): cooperative and sticky, as Kafka's cooperative-sticky
 * assignor, but decided by each process alone from what Redis shows it.
 *
 * - Its share: with N live members (sorted by name) and P partitions, each
 *   gets ⌊P/N⌋, and the first P mod N members one more. Every process
 *   computes the same shares from the same member list.
 * - Under its share, it takes free partitions (nobody's lease), in an order
 *   of its own (a hash of its name and the partition), so that processes
 *   starting together try different ones first.
 * - Over its share, it gives back the surplus: the partitions with the
 *   least of it in flight first (they reach a clean point soonest). The
 *   caller stops reading them and lets them go only at a clean point.
 * - A partition free for longer than `orphanMs` is taken by anyone, over
 *   share or not: members' views can disagree for a moment (one joined,
 *   one's entry has not expired), and a partition must never stay unread.
 *   The surplus goes back later, at a clean point.
 */

export interface AssignInput {
  partitions: number;
  me: string;
  /** Live members, me included (any order). */
  members: readonly string[];
  /** Partitions this process owns now, reading or giving back. */
  owned: readonly number[];
  /** Partitions already being given back (not counted again). */
  releasing: ReadonlySet<number>;
  /** Partitions nobody holds a lease on now. */
  free: readonly number[];
  /** When each free partition was first seen free (ms, the caller's clock). */
  freeSince: ReadonlyMap<number, number>;
  /** Entries of each owned partition held here (in the ring, waiting to retry): what gives back first. */
  inFlight: (p: number) => number;
  now: number;
  orphanMs: number;
}

export interface AssignDecision {
  /** This process's share. */
  share: number;
  acquire: number[];
  release: number[];
}

/** This member's share of `partitions` among `members`. */
export function shareOf(partitions: number, members: readonly string[], me: string): number {
  const sorted = [...new Set([...members, me])].sort();
  const n = sorted.length;
  const i = sorted.indexOf(me);
  return Math.floor(partitions / n) + (i < partitions % n ? 1 : 0);
}

export function assign(x: AssignInput): AssignDecision {
  const share = shareOf(x.partitions, x.members, x.me);
  const keeping = x.owned.filter((p) => !x.releasing.has(p));
  const acquire: number[] = [];
  const release: number[] = [];
  if (keeping.length > share) {
    const give = [...keeping].sort((a, b) => x.inFlight(a) - x.inFlight(b) || b - a);
    release.push(...give.slice(0, keeping.length - share));
  } else if (keeping.length < share) {
    const order = [...x.free].sort((a, b) => rank(x.me, a) - rank(x.me, b) || a - b);
    acquire.push(...order.slice(0, share - keeping.length));
  }
  for (const p of x.free) {
    const since = x.freeSince.get(p);
    if (since !== undefined && x.now - since >= x.orphanMs && !acquire.includes(p)) acquire.push(p);
  }
  return { share, acquire, release };
}

/** A member's own order over partitions: FNV-1a of its name, then mixed with the partition. */
function rank(me: string, p: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < me.length; i++) h = Math.imul(h ^ me.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ p, 0x01000193);
  h ^= h >>> 15;
  return Math.imul(h, 0x2c1b3c6d) >>> 0;
}
