/**
 * One runtime per journal directory (journal thread): a `LOCK` file naming
 * its owner uniquely, and held open by it.
 *
 * An owner is a process at one moment of one boot: its pid, its start time
 * (Linux `/proc/<pid>/stat` field 22, clock ticks since boot) and the boot id
 * (`/proc/sys/kernel/random/boot_id`). A pid alone is not a name: in a
 * container the process is pid 1 after every restart, and after a reboot any
 * process may get the pid a dead owner had. A `LOCK` is stale when its owner
 * is gone: another boot, no process with that pid, or a process with that pid
 * that started at another time. A `LOCK` naming this very process is held
 * only while some thread of the process has it open (the owner keeps a file
 * descriptor on it; `/proc/self/fd` tells): a journal thread that died
 * without letting go leaves a lock this process may take again.
 *
 * Where `/proc` is missing (macOS, the BSDs) the start time and boot id are
 * unknown and the check is the pid's alone, as before: a live pid holds the
 * lock, this process's own pid included.
 *
 * Taking it: the content is written to a file of our own, which is then
 * hard-linked to `LOCK` (atomic, and fails if `LOCK` exists), so `LOCK` is
 * never seen empty or half written. Taking over a stale one: it is renamed
 * aside to a name of our own (of several takers, one rename succeeds), read
 * back, and only if it is the lock judged stale is it deleted; a fresh lock
 * someone else made meanwhile is linked back. Then the exclusive link again.
 * Left unguarded: a third process making a lock in the instant between a
 * wrong rename and its link back (the link back then fails, and the displaced
 * owner no longer has a `LOCK`).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, RingpoolError } from '../../shared/errors.js';
import type { JournalFiles } from './files.js';

export const LOCK_NAME = 'LOCK';

/** Who holds a lock: what `LOCK` says (start and boot null where unknown, or in a lock written by an older version). */
export interface LockOwner {
  pid: number;
  /** Start time in clock ticks since boot (`/proc/<pid>/stat` field 22), as written there. */
  start: string | null;
  boot: string | null;
  host?: string;
  /** Random per taking: two takings by one process are two locks. */
  nonce?: string;
}

/** What the lock asks the operating system (a fake in the unit tests). */
export interface ProcessProbe {
  /** This process. */
  self(): LockOwner;
  /** Whether a process with this pid exists. */
  alive(pid: number): boolean;
  /** That process's start time; null when it cannot be read (no /proc, or it just exited). */
  startOf(pid: number): string | null;
}

/** `/proc/<pid>/stat` field 22 (the fields after the command name, which may hold spaces and parentheses). */
function procStart(pid: number | 'self'): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return f[19] ?? null; // field 3 (state) is f[0]
  } catch {
    return null;
  }
}

let bootId: string | null | undefined;

export const procProbe: ProcessProbe = {
  self() {
    if (bootId === undefined) {
      try {
        bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim() || null;
      } catch {
        bootId = null;
      }
    }
    return { pid: process.pid, start: procStart('self'), boot: bootId, host: hostname() };
  },
  alive(pid) {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      // EPERM: it exists, owned by someone else.
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  },
  startOf: (pid) => procStart(pid),
};

/** The owner a `LOCK` names: JSON, or an older version's bare pid; null when it names nobody (damaged, empty). */
export function parseOwner(text: string): LockOwner | null {
  const t = text.trim();
  if (/^\d+$/.test(t)) {
    const pid = Number(t);
    return pid > 0 && Number.isSafeInteger(pid) ? { pid, start: null, boot: null } : null;
  }
  try {
    const o = JSON.parse(t) as Record<string, unknown>;
    if (typeof o !== 'object' || o === null || !Number.isSafeInteger(o.pid) || (o.pid as number) <= 0) return null;
    const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
    return { pid: o.pid as number, start: str(o.start), boot: str(o.boot), host: str(o.host) ?? undefined, nonce: str(o.nonce) ?? undefined };
  } catch {
    return null;
  }
}

/** Held by someone (`live`: another process; `here`: a thread of this process holds it open), or stale and why. */
export type Verdict = { held: true; by: 'live' | 'here' } | { held: false; why: string };

/**
 * Whether the lock `owner` names is held. `heldHere` answers for this
 * process: whether a thread of it has the lock open (null: cannot tell, so
 * held, the safe answer).
 */
export function judge(owner: LockOwner | null, probe: ProcessProbe, heldHere: () => boolean | null): Verdict {
  if (owner === null) return { held: false, why: 'it names no owner (empty or damaged)' };
  const me = probe.self();
  if (owner.boot !== null && me.boot !== null && owner.boot !== me.boot) return { held: false, why: `its owner, pid ${owner.pid}, ran in an earlier boot` };
  if (owner.pid === me.pid) {
    if (owner.start !== null && me.start !== null && owner.start !== me.start) return { held: false, why: `its owner was an earlier process with this pid (${owner.pid})` };
    return heldHere() === false ? { held: false, why: 'this process wrote it and no longer holds it' } : { held: true, by: 'here' };
  }
  if (!probe.alive(owner.pid)) return { held: false, why: `its owner, pid ${owner.pid}, is gone` };
  if (owner.start !== null) {
    const start = probe.startOf(owner.pid);
    if (start !== null && start !== owner.start) return { held: false, why: `pid ${owner.pid} is another process now (started at ${start}, not ${owner.start})` };
  }
  return { held: true, by: 'live' };
}

/** A lock taken: `release()` deletes `LOCK` and closes the descriptor that held it open. */
export interface HeldLock {
  release(): void;
}

/** Take the lock of `dir` for this process, or throw RINGPOOL_JOURNAL_LOCKED. */
export function lockDir(files: JournalFiles, dir: string, mailbox: string, probe: ProcessProbe = procProbe): HeldLock {
  const path = join(dir, LOCK_NAME);
  const nonce = randomBytes(8).toString('hex');
  const mine = `${JSON.stringify({ ...probe.self(), nonce })}\n`;
  const mineTmp = `${path}.${nonce}.new`;
  const aside = `${path}.${nonce}.stale`;
  for (let tries = 0; tries < 5; tries++) {
    // Ours, complete, under a name of our own, held open; then linked to LOCK in one step.
    files.unlink(mineTmp, true);
    if (!files.createExclusive(mineTmp, mine)) continue;
    const fd = files.hold(mineTmp);
    const linked = files.link(mineTmp, path);
    files.unlink(mineTmp, true);
    if (linked) {
      files.syncDir(dir);
      return {
        release: () => {
          files.unlink(path, true);
          files.close(fd);
        },
      };
    }
    files.close(fd);
    let text: string;
    try {
      text = files.read(path).toString('utf8');
    } catch {
      continue; // let go meanwhile: try again
    }
    const owner = parseOwner(text);
    const v = judge(owner, probe, () => files.heldHere(path));
    if (v.held) {
      const pid = owner!.pid;
      throw new RingpoolError(
        ErrorCodes.JOURNAL_LOCKED,
        `mailbox '${mailbox}': journal directory ${dir} is in use by process ${pid}${v.by === 'here' ? ' (this one: another runtime)' : ''}${owner!.host !== undefined && owner!.host !== probe.self().host ? ` on ${owner!.host}` : ''}`,
        { mailbox, dir, pid },
      );
    }
    // Stale: move it aside (one of several takers wins this rename), and delete it only if it is the one judged.
    try {
      files.rename(path, aside);
    } catch {
      continue; // someone else moved it first
    }
    // A fresh lock moved by mistake goes back (if a third lock was made meanwhile, the link fails: see the top).
    if (files.read(aside).toString('utf8') !== text) files.link(aside, path);
    files.unlink(aside, true);
    files.syncDir(dir);
  }
  throw new RingpoolError(ErrorCodes.JOURNAL_LOCKED, `mailbox '${mailbox}': could not take the lock of journal directory ${dir}`, { mailbox, dir });
}
