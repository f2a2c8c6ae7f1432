/**
 * The shared pool's two decisions, as plain functions (main thread; unit
 * tested without threads): which thread a new loop (lane) goes on, and whom
 * a dead thread's fault is charged to.
 */

/** A live thread of the pool, as placement sees it. */
export interface ThreadLoad {
  /** Lanes it runs. */
  lanes: number;
  /** It runs a lane of the mailbox being placed already (a mailbox's lanes go on different threads). */
  hosts: boolean;
}

/**
 * Where a new lane goes: 'spawn' (a new thread), the index in `live` of the
 * thread that takes it, or -1 (none can: every thread runs this mailbox and
 * the pool is at maxThreads). A lane goes to the thread with the fewest lanes
 * that does not run its mailbox yet (the first such on a tie); a thread is
 * added only when there is none, so the pool has as many threads as the
 * mailbox that wants the most (each mailbox's autoscaler asks for more when
 * its backlog grows): a thousand quiet mailboxes share one thread rather than
 * take every core from the producers.
 */
export function placeLane(live: readonly ThreadLoad[], threads: number, maxThreads: number): number | 'spawn' {
  let best = -1;
  for (let i = 0; i < live.length; i++) {
    if (!live[i]!.hosts && (best < 0 || live[i]!.lanes < live[best]!.lanes)) best = i;
  }
  return best < 0 && threads < maxThreads ? 'spawn' : best;
}

/**
 * Whom a dead thread's fault is charged to. `named`: the lanes whose handler
 * the thread said it was running (its synchronous part). A crash: the named
 * lane; else the lanes with a handler in flight (`busy`); with none of either,
 * every lane (each reports the crash, and nothing is charged). A lease kill:
 * the named lane only, when it is not the one whose lease ran out (its handler
 * held the thread; the expired one is handled by its own mailbox). At close:
 * no one. `several`: more than one lane is blamed (each goes back as after a
 * crash with several handlers running).
 */
export function blame<L>(lanes: readonly L[], named: readonly L[], busy: (l: L) => boolean, end: 'crash' | 'kill' | 'close'): { blamed: Set<L>; several: boolean } {
  if (end === 'close') return { blamed: new Set(), several: false };
  if (end === 'kill') return { blamed: new Set(named), several: false };
  const culprits = named.length > 0 ? named : lanes.filter(busy);
  return culprits.length > 0 ? { blamed: new Set(culprits), several: culprits.length > 1 } : { blamed: new Set(lanes), several: false };
}
