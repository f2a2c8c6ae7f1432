// One runtime per journal directory: a LOCK that names its owner by pid, start time and boot id, and is held open.
// Issue #26 item 2: a LOCK naming a live pid was held forever, so a container's pid 1 (or any process that got a dead
// owner's pid) could never take its own journal back after a SIGKILL.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes } from 'ringpool';
import { nodeFiles } from '../../dist/runtime/store/journal/files.js';
import { judge, lockDir, parseOwner, procProbe, type LockOwner, type ProcessProbe } from '../../dist/runtime/store/journal/lock.js';
import { expectCode, fixture, runtime } from '../helpers.js';
import { MemFiles } from '../mem-files.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ringpool-lock-'));
  dirs.push(d);
  return d;
}

const ME: LockOwner = { pid: 100, start: '5000', boot: 'boot-a' };
/** A fake machine: this process is ME; `procs` are the other live processes and their start times. */
function machine(procs: Record<number, string | null>, self: LockOwner = ME): ProcessProbe {
  return { self: () => self, alive: (pid) => pid === self.pid || pid in procs, startOf: (pid) => (pid === self.pid ? self.start : (procs[pid] ?? null)) };
}
const nobodyHere = (): boolean => false;

describe('journal lock: who holds it (the decision, on a fake machine)', () => {
  it('this process\'s pid: held only while a thread of it holds the lock open; an earlier process with the pid is gone', () => {
    const m = machine({});
    expect(judge({ ...ME }, m, () => true)).toEqual({ held: true, by: 'here' });
    expect(judge({ ...ME }, m, nobodyHere)).toMatchObject({ held: false, why: expect.stringContaining('no longer holds') });
    // A container's pid 1 after a restart: same pid, another start time.
    expect(judge({ ...ME, start: '4000' }, m, () => true)).toMatchObject({ held: false, why: expect.stringContaining('earlier process with this pid') });
    // Cannot tell who holds it open (no /proc/self/fd): held, the safe answer.
    expect(judge({ ...ME }, m, () => null)).toEqual({ held: true, by: 'here' });
  });

  it('another pid: held while that process lives and started when the lock says; a reused pid, a dead one or another boot is stale', () => {
    const m = machine({ 200: '7000' });
    expect(judge({ pid: 200, start: '7000', boot: 'boot-a' }, m, nobodyHere)).toEqual({ held: true, by: 'live' });
    expect(judge({ pid: 200, start: '6999', boot: 'boot-a' }, m, nobodyHere)).toMatchObject({ held: false, why: expect.stringContaining('another process now') });
    expect(judge({ pid: 300, start: '7000', boot: 'boot-a' }, m, nobodyHere)).toMatchObject({ held: false, why: expect.stringContaining('gone') });
    expect(judge({ pid: 200, start: '7000', boot: 'boot-b' }, m, nobodyHere)).toMatchObject({ held: false, why: expect.stringContaining('earlier boot') });
    // Its start time unreadable (it just exited, or no /proc): the pid alone decides.
    expect(judge({ pid: 200, start: '7000', boot: 'boot-a' }, machine({ 200: null }), nobodyHere)).toEqual({ held: true, by: 'live' });
  });

  it('no /proc (start and boot unknown): the pid alone, this process\'s own included, as before', () => {
    const bare = machine({ 200: null }, { pid: 100, start: null, boot: null });
    expect(judge({ pid: 200, start: '7000', boot: 'boot-a' }, bare, nobodyHere)).toEqual({ held: true, by: 'live' });
    expect(judge({ pid: 100, start: '5000', boot: 'boot-a' }, bare, () => null)).toEqual({ held: true, by: 'here' });
    expect(judge({ pid: 300, start: null, boot: null }, bare, nobodyHere)).toMatchObject({ held: false });
  });

  it('reads an older version\'s bare pid, and takes a LOCK that names nobody (empty, damaged) as stale', () => {
    expect(parseOwner('4242\n')).toEqual({ pid: 4242, start: null, boot: null });
    expect(parseOwner('')).toBeNull();
    expect(parseOwner('{"pid":-1}')).toBeNull();
    expect(parseOwner('{"pid":7,"start":"9","boot":"b","nonce":"n"}')).toMatchObject({ pid: 7, start: '9', boot: 'b', nonce: 'n' });
    expect(judge(null, machine({}), nobodyHere)).toMatchObject({ held: false, why: expect.stringContaining('names no owner') });
  });
});

describe('journal lock: on real files', () => {
  it('names this process by pid, start time and boot id; a second taker in this process is refused; letting go frees it', async () => {
    const dir = tempDir();
    const held = lockDir(nodeFiles, dir, 'orders');
    const owner = JSON.parse(readFileSync(join(dir, 'LOCK'), 'utf8'));
    expect(owner).toMatchObject({ pid: process.pid, start: procProbe.self().start, boot: procProbe.self().boot });
    expect(owner.start).toMatch(/^\d+$/);
    expect(owner.boot).toMatch(/^[0-9a-f-]{36}$/);
    const err = await expectCode(() => lockDir(nodeFiles, dir, 'orders'), ErrorCodes.JOURNAL_LOCKED);
    expect(err.message).toContain(`process ${process.pid} (this one: another runtime)`);
    held.release();
    expect(readdirSync(dir)).toEqual([]);
    lockDir(nodeFiles, dir, 'orders').release();
  });

  it('a LOCK naming this process that no thread holds open (a journal thread that died) is taken again', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'LOCK'), JSON.stringify({ ...procProbe.self(), nonce: 'dead-thread' }));
    const held = lockDir(nodeFiles, dir, 'orders');
    expect(JSON.parse(readFileSync(join(dir, 'LOCK'), 'utf8')).nonce).not.toBe('dead-thread');
    held.release();
  });

  it('a LOCK naming a live unrelated process is held with its start time, stale with another (a pid reused after a reboot)', async () => {
    const dir = tempDir();
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const pid = other.pid!;
      const start = procProbe.startOf(pid)!;
      expect(start).toMatch(/^\d+$/);
      writeFileSync(join(dir, 'LOCK'), JSON.stringify({ pid, start, boot: procProbe.self().boot }));
      const err = await expectCode(() => lockDir(nodeFiles, dir, 'orders'), ErrorCodes.JOURNAL_LOCKED);
      expect(err.message).toContain(`process ${pid}`);
      writeFileSync(join(dir, 'LOCK'), JSON.stringify({ pid, start: String(Number(start) - 1), boot: procProbe.self().boot }));
      const held = lockDir(nodeFiles, dir, 'orders');
      expect(JSON.parse(readFileSync(join(dir, 'LOCK'), 'utf8')).pid).toBe(process.pid);
      held.release();
      // Another boot: whatever pid it names.
      writeFileSync(join(dir, 'LOCK'), JSON.stringify({ pid, start, boot: '00000000-0000-0000-0000-000000000000' }));
      lockDir(nodeFiles, dir, 'orders').release();
      // An older version's bare pid of a live process: held, as before.
      writeFileSync(join(dir, 'LOCK'), String(pid));
      await expectCode(() => lockDir(nodeFiles, dir, 'orders'), ErrorCodes.JOURNAL_LOCKED);
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('a lock left by a dead process is taken over', () => {
    const dir = tempDir();
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(child.stdout);
    expect(deadPid).toBeGreaterThan(0);
    writeFileSync(join(dir, 'LOCK'), String(deadPid));
    const held = lockDir(nodeFiles, dir, 'orders');
    expect(JSON.parse(readFileSync(join(dir, 'LOCK'), 'utf8')).pid).toBe(process.pid);
    held.release();
  });

  it('two takers of one stale lock at the same instant: one wins, the other is refused (it moved the winner\'s lock aside and puts it back)', async () => {
    const files = new MemFiles();
    files.files.set('/j/LOCK', { data: Buffer.from('{"pid":999999999}'), synced: 17, entryDurable: true });
    let winner: ReturnType<typeof lockDir> | null = null;
    // Taker A has judged the lock stale; just before A's rename, taker B runs its whole takeover.
    files.failOn = (op) => {
      if (op === 'rename' && winner === null) {
        files.failOn = null;
        winner = lockDir(files, '/j', 'orders');
      }
      return null;
    };
    const err = await expectCode(() => lockDir(files, '/j', 'orders'), ErrorCodes.JOURNAL_LOCKED);
    expect(err.message).toContain('another runtime');
    expect(winner).not.toBeNull();
    expect(files.heldHere('/j/LOCK')).toBe(true);
    expect([...files.files.keys()]).toEqual(['/j/LOCK']);
    winner!.release();
    expect(files.files.size).toBe(0);
  });
});

describe('journal lock: a durable mailbox restarted under its dead owner\'s pid', () => {
  const child = fileURLToPath(fixture('lock-child.mjs'));
  /** The child as pid 1 of a PID namespace of its own (a container's init), killed with the namespace. */
  function asPid1(args: string[]): ReturnType<typeof spawn> {
    const ns = process.getuid?.() === 0 ? [] : ['--map-root-user'];
    return spawn('unshare', [...ns, '--pid', '--fork', '--mount-proc', '--kill-child=SIGKILL', process.execPath, child, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  }
  function lines(p: ReturnType<typeof spawn>, want: RegExp): Promise<string> {
    let out = '';
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${want} from the child: ${out} ${err}`)), 20_000);
      p.stdout!.on('data', (d) => {
        out += d;
        const m = want.exec(out);
        if (m !== null) {
          clearTimeout(t);
          resolve(m[0]);
        }
      });
      p.on('exit', () => setTimeout(() => reject(new Error(`the child exited: ${out} ${err}`)), 100));
    });
  }

  it('pid 1, SIGKILLed with 50 messages unfinished, then pid 1 again: it starts and runs all 50', async () => {
    const dir = tempDir();
    const first = asPid1([dir, 'send', '50']);
    expect(await lines(first, /sent pid=\d+/)).toBe('sent pid=1');
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    expect(JSON.parse(readFileSync(join(dir, 'LOCK'), 'utf8')).pid).toBe(1);
    const second = asPid1([dir, 'drain', '50']);
    expect(await lines(second, /(processed \d+|error \S+)/)).toBe('processed 50');
    await new Promise((r) => second.once('exit', r));
  });

  it('two runtimes of one process on one directory: the second is still refused', async () => {
    const dir = tempDir();
    const opts = () => ({ mailboxes: { m: { handler: fixture('noop.js'), durability: { dir }, minThreads: 1, maxThreads: 1 } } });
    const a = runtime(opts());
    await a.start();
    const b = runtime(opts());
    const err = await expectCode(b.start(), ErrorCodes.JOURNAL_LOCKED);
    expect(err.message).toContain('this one: another runtime');
    await a.close();
    const c = runtime(opts());
    await c.start();
    await c.close();
  });
});
