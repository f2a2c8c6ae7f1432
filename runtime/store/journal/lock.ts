/**
 * One runtime per journal directory (journal thread): a `LOCK` file holding
 * the owner's pid, created exclusively. A lock whose pid is no longer alive is
 * taken over (a crash leaves it behind); a live one is RINGPOOL_JOURNAL_LOCKED.
 */
import { join } from 'node:path';
import { ErrorCodes, RingpoolError } from '../../shared/errors.js';
import type { JournalFiles } from './files.js';

export const LOCK_NAME = 'LOCK';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Take the lock of `dir` for this process; returns the function that lets it go. */
export function lockDir(files: JournalFiles, dir: string, mailbox: string): () => void {
  const path = join(dir, LOCK_NAME);
  const mine = String(process.pid);
  for (let tries = 0; tries < 3; tries++) {
    if (files.createExclusive(path, mine)) {
      files.syncDir(dir);
      return () => files.unlink(path);
    }
    let held: string;
    try {
      held = files.read(path).toString('utf8').trim();
    } catch {
      continue; // let go meanwhile: try again
    }
    const pid = Number(held);
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
      throw new RingpoolError(
        ErrorCodes.JOURNAL_LOCKED,
        `mailbox '${mailbox}': journal directory ${dir} is in use by process ${pid}${pid === process.pid ? ' (this one: another runtime)' : ''}`,
        { mailbox, dir, pid },
      );
    }
    // A dead owner's lock: replace it atomically (rename over it), then read it back. Two processes
    // taking over the same dead lock at the same instant can both read their own pid back: not guarded.
    const tmp = `${path}.${mine}`;
    if (!files.createExclusive(tmp, mine)) {
      files.unlink(tmp);
      files.createExclusive(tmp, mine);
    }
    files.rename(tmp, path);
    files.syncDir(dir);
    if (files.read(path).toString('utf8').trim() === mine) return () => files.unlink(path);
  }
  throw new RingpoolError(ErrorCodes.JOURNAL_LOCKED, `mailbox '${mailbox}': could not take the lock of journal directory ${dir}`, { mailbox, dir });
}
