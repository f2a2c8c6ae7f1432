import type { JournalFiles } from '../dist/runtime/store/journal/files.js';

/**
 * An in-memory file system that knows what a power cut keeps: a file's bytes
 * up to its last fdatasync, and a file at all only once a directory sync
 * followed its creation. Every call is recorded, so a run can be replayed up
 * to any call and cut there.
 */
export class MemFiles implements JournalFiles {
  files = new Map<string, { data: Buffer; synced: number; entryDurable: boolean }>();
  fds = new Map<number, string>();
  nextFd = 3;
  ops = 0;
  failOn: ((op: string) => NodeJS.ErrnoException | null) | null = null;
  private op(name: string): void {
    this.ops++;
    const e = this.failOn?.(name);
    if (e) throw e;
  }
  mkdirp(): void {}
  list(): string[] {
    return [...this.files.keys()].map((p) => p.slice(p.lastIndexOf('/') + 1));
  }
  read(path: string): Buffer {
    const f = this.files.get(path);
    if (!f) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    return Buffer.from(f.data);
  }
  openAppend(path: string): number {
    this.op('open');
    if (!this.files.has(path)) this.files.set(path, { data: Buffer.alloc(0), synced: 0, entryDurable: false });
    const fd = this.nextFd++;
    this.fds.set(fd, path);
    return fd;
  }
  append(fd: number, bufs: readonly Uint8Array[]): number {
    this.op('append');
    const f = this.files.get(this.fds.get(fd)!)!;
    f.data = Buffer.concat([f.data, ...bufs]);
    return bufs.reduce((a, b) => a + b.byteLength, 0);
  }
  datasync(fd: number): void {
    this.op('datasync');
    const f = this.files.get(this.fds.get(fd)!)!;
    f.synced = f.data.length;
  }
  close(fd: number): void {
    this.fds.delete(fd);
    this.held.delete(fd);
  }
  syncDir(): void {
    this.op('syncDir');
    for (const f of this.files.values()) f.entryDurable = true;
  }
  truncate(path: string, bytes: number): void {
    const f = this.files.get(path)!;
    f.data = f.data.subarray(0, bytes);
    f.synced = Math.min(f.synced, bytes);
  }
  rename(from: string, to: string): void {
    this.op('rename');
    const f = this.files.get(from);
    if (!f) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    this.files.delete(from);
    f.entryDurable = false;
    this.files.set(to, f);
  }
  unlink(path: string, missingOk = false): void {
    this.op('unlink');
    if (!this.files.delete(path) && !missingOk) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
  }
  link(from: string, to: string): boolean {
    this.op('link');
    const f = this.files.get(from);
    if (!f) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    if (this.files.has(to)) return false;
    // A second name for the same file (the same record: an inode).
    this.files.set(to, f);
    return true;
  }
  /** Files this "process" holds open (hold()), by their record (an inode); a power cut's MemFiles starts with none. */
  held = new Map<number, object>();
  hold(path: string): number {
    const f = this.files.get(path);
    if (!f) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    const fd = this.nextFd++;
    this.held.set(fd, f);
    return fd;
  }
  heldHere(path: string): boolean | null {
    const f = this.files.get(path);
    return f !== undefined && [...this.held.values()].includes(f);
  }
  createExclusive(path: string, data: string): boolean {
    this.op('create');
    if (this.files.has(path)) return false;
    const b = Buffer.from(data);
    this.files.set(path, { data: b, synced: b.length, entryDurable: false });
    return true;
  }
  replace(path: string, data: Uint8Array, sync: boolean): void {
    this.op('replace');
    const b = Buffer.from(data);
    this.files.set(path, { data: b, synced: sync ? b.length : 0, entryDurable: sync });
  }
  /**
   * What a power cut leaves when the disk wrote some of the pages written
   * since the last fdatasync and not others, in any order (as LazyFS and
   * ALICE model it): durable entries, each with its synced bytes, then the
   * unsynced pages `keepPage` keeps, a lost page reading as zeros when a
   * later one was kept (the file's size reaches the last kept page). A page
   * is `pageBytes` of the file, aligned; the one holding the synced end is
   * kept up to it either way.
   */
  afterPageLoss(keepPage: (path: string, page: number) => boolean, pageBytes = 4096): MemFiles {
    const m = new MemFiles();
    for (const [p, f] of this.files) {
      if (!f.entryDurable) continue;
      const data = Buffer.from(f.data);
      let end = f.synced;
      for (let page = Math.floor(f.synced / pageBytes); page * pageBytes < f.data.length; page++) {
        const from = Math.max(page * pageBytes, f.synced);
        const to = Math.min((page + 1) * pageBytes, f.data.length);
        if (keepPage(p, page)) end = to;
        else data.fill(0, from, to);
      }
      const kept = data.subarray(0, end);
      m.files.set(p, { data: Buffer.from(kept), synced: kept.length, entryDurable: true });
    }
    return m;
  }

  /** Unsynced pages of each durable file (for a test to pick subsets of). */
  unsyncedPages(pageBytes = 4096): Map<string, number[]> {
    const out = new Map<string, number[]>();
    for (const [p, f] of this.files) {
      if (!f.entryDurable || f.synced === f.data.length) continue;
      const pages: number[] = [];
      for (let page = Math.floor(f.synced / pageBytes); page * pageBytes < f.data.length; page++) pages.push(page);
      out.set(p, pages);
    }
    return out;
  }

  /** What a power cut now leaves: durable entries, each with its synced bytes plus `keep` of the unsynced ones. */
  afterPowerCut(keep: (unsynced: number) => number): MemFiles {
    const m = new MemFiles();
    for (const [p, f] of this.files) {
      if (!f.entryDurable) continue;
      const extra = Math.min(f.data.length - f.synced, keep(f.data.length - f.synced));
      const data = Buffer.from(f.data.subarray(0, f.synced + extra));
      m.files.set(p, { data, synced: data.length, entryDurable: true });
    }
    return m;
  }
}

