/**
 * The journal's file calls, behind one small interface (journal thread).
 * The real one is node:fs, synchronous (the journal runs on a thread of its
 * own). Tests give a recording or failing one: every write and fsync is seen,
 * so a crash can be cut at any point of the sequence (ALICE, CrashMonkey) and
 * EIO or ENOSPC injected where they hurt.
 */
import * as fs from 'node:fs';
import { dirname } from 'node:path';

export interface JournalFiles {
  /** Create `dir` and its parents if missing. */
  mkdirp(dir: string): void;
  /** File names in `dir` (not paths), any order. */
  list(dir: string): string[];
  /** The whole file. */
  read(path: string): Buffer;
  /** Open for appending, creating it if missing: a file descriptor. */
  openAppend(path: string): number;
  /** Write these buffers at the end of `fd`, in order; the bytes written. */
  append(fd: number, bufs: readonly Uint8Array[]): number;
  /** fdatasync(2): the file's data (and its size) on stable storage. */
  datasync(fd: number): void;
  close(fd: number): void;
  /** fsync(2) of a directory: its entries (a created, renamed or deleted file) on stable storage. */
  syncDir(dir: string): void;
  /** Cut the file to `bytes` (a torn tail). */
  truncate(path: string, bytes: number): void;
  rename(from: string, to: string): void;
  /** Delete `path`; with `missingOk`, a file already gone is no error. */
  unlink(path: string, missingOk?: boolean): void;
  /** Hard-link `to` to the file `from`, in one step: false if `to` exists. */
  link(from: string, to: string): boolean;
  /** Open `path` and keep it open: the descriptor, which `close()` lets go (how a process shows it holds a lock). */
  hold(path: string): number;
  /** Whether some thread of this process has `path` open; null where that cannot be known (no /proc/self/fd). */
  heldHere(path: string): boolean | null;
  /** Create `path` with `data` only if it does not exist; false if it does. */
  createExclusive(path: string, data: string): boolean;
  /** Replace `path` by `data` as one step: a temporary file (fdatasynced when `sync`), renamed over it, the directory synced. */
  replace(path: string, data: Uint8Array, sync: boolean): void;
}

export const nodeFiles: JournalFiles = {
  mkdirp: (dir) => void fs.mkdirSync(dir, { recursive: true }),
  list: (dir) => fs.readdirSync(dir),
  read: (path) => fs.readFileSync(path),
  openAppend: (path) => fs.openSync(path, 'a'),
  append: (fd, bufs) => {
    let total = 0;
    for (const b of bufs) total += b.byteLength;
    const done = fs.writevSync(fd, bufs as Uint8Array[]);
    if (done === total) return done;
    // A short write (a signal, a nearly full disk): finish it buffer by buffer, or throw trying.
    let skip = done;
    for (const b of bufs) {
      if (skip >= b.byteLength) {
        skip -= b.byteLength;
        continue;
      }
      let off = skip;
      skip = 0;
      while (off < b.byteLength) off += fs.writeSync(fd, b, off, b.byteLength - off);
    }
    return total;
  },
  datasync: (fd) => fs.fdatasyncSync(fd),
  close: (fd) => fs.closeSync(fd),
  syncDir: (dir) => {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  },
  truncate: (path, bytes) => fs.truncateSync(path, bytes),
  rename: (from, to) => fs.renameSync(from, to),
  unlink: (path, missingOk = false) => {
    try {
      fs.unlinkSync(path);
    } catch (err) {
      if (!missingOk || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  },
  link: (from, to) => {
    try {
      fs.linkSync(from, to);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
  },
  hold: (path) => fs.openSync(path, 'r'),
  heldHere: (path) => {
    let fds: string[];
    let target: fs.Stats;
    try {
      fds = fs.readdirSync('/proc/self/fd');
    } catch {
      return null;
    }
    try {
      target = fs.statSync(path);
    } catch {
      return false;
    }
    for (const fd of fds) {
      try {
        const st = fs.statSync(`/proc/self/fd/${fd}`);
        if (st.ino === target.ino && st.dev === target.dev) return true;
      } catch {
        // closed meanwhile, or not a file
      }
    }
    return false;
  },
  replace: (path, data, sync) => {
    const tmp = `${path}.tmp`;
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, data);
      if (sync) fs.fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, path);
    if (sync) nodeFiles.syncDir(dirname(path));
  },
  createExclusive: (path, data) => {
    try {
      fs.writeFileSync(path, data, { flag: 'wx' });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
  },
};

