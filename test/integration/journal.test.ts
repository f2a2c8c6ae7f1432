// Durable mailboxes on real files with real fsync: what survives a restart, and the journal's errors.
import { mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCodes, type Runtime } from 'ringpool';
import { expectCode, fixture, runtime, until } from '../helpers.js';

const root = mkdtempSync(join(tmpdir(), 'ringpool-journal-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => join(root, `j${n++}`);

function durable(dir: string, handler: string, extra: Record<string, unknown> = {}): Runtime {
  return runtime({ mailboxes: { m: { handler: fixture(handler), durability: { dir, fsync: 'always' }, minThreads: 1, maxThreads: 1, ...extra } } });
}

const segments = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.log')).sort();

describe('durable mailboxes', () => {
  it('sendAsync resolves once the message is in the journal file', async () => {
    const dir = freshDir();
    const rt = durable(dir, 'hang.js');
    await rt.start();
    const marker = `marker-${Math.random()}`;
    await rt.sendAsync('m', { marker, hang: 'promise' });
    const bytes = Buffer.concat(segments(dir).map((f) => readFileSync(join(dir, f))));
    expect(bytes.includes(Buffer.from(marker))).toBe(true);
    expect(rt.stats('m').journal!.fsyncs).toBeGreaterThan(0);
  });

  it('dead letters, redrives and purges survive a restart, with payload, reason and errors', async () => {
    const dir = freshDir();
    const a = durable(dir, 'keep.js');
    await a.start();
    for (let i = 0; i < 4; i++) await a.sendAsync('m', { i });
    await until(() => a.deadLetters('m').size === 4);
    a.deadLetters('m').purge((d) => (d.payload as { i: number }).i === 0);
    await a.destroy();
    const b = durable(dir, 'keep.js');
    await b.start();
    const back = b.deadLetters('m').list();
    expect(back.map((d) => (d.payload as { i: number }).i).sort()).toEqual([1, 2, 3]);
    expect(back[0]!.reason).toBe('unrecoverable');
    expect(back[0]!.lastError?.message).toBe('kept');
    expect(b.stats('m').journal!.recovered).toBe(3);
    // Redriven: it runs again (and is kept again); the purged one never comes back.
    expect(b.deadLetters('m').redrive((d) => (d.payload as { i: number }).i === 1)).toBe(1);
    await until(() => b.stats('m').processed + b.stats('m').deadLettered === 1);
    await b.destroy();
    const c = durable(dir, 'keep.js');
    await c.start();
    expect(c.deadLetters('m').list().map((d) => (d.payload as { i: number }).i).sort()).toEqual([1, 2, 3]);
  });

  it('a delayed message and a retry waiting for its backoff come back delayed, with their attempt', async () => {
    const dir = freshDir();
    // A 1 s backoff: the retry is seen waiting (retried === 1) even on a busy machine, where 300 ms once let a second failure in first.
    const a = durable(dir, 'fail.js', { maxAttempts: 5, backoff: { baseMs: 1_000, maxMs: 1_000 } });
    await a.start();
    await a.sendAsync('m', { late: true }, { delayMs: 60_000 });
    await a.sendAsync('m', { failures: 'always' });
    await until(() => a.stats('m').retried === 1);
    await a.destroy();
    // Its attempt came back as 2: with maxAttempts 2 the next failure is its last (as attempt 1 it would be retried).
    const b = durable(dir, 'fail.js', { maxAttempts: 2, backoff: { baseMs: 60_000, maxMs: 60_000 } });
    await b.start();
    expect(b.stats('m').journal!.recovered).toBe(2);
    // The delayed send waits for its time again (the retry's backoff, under 1 s, may be over already).
    expect(b.stats('m').delayed).toBeGreaterThanOrEqual(1);
    await until(() => b.deadLetters('m').size === 1, 5_000, 'the retried message dead-lettered at attempt 2');
    expect(b.deadLetters('m').list()[0]!.attempts).toBe(2);
    expect(b.stats('m').retried).toBe(0);
    expect(b.stats('m').delayed).toBe(1); // the delayed send: still a minute away
  });

  it('sends before start() are journaled once it runs: sendAsync (plain and delayed) resolves then', async () => {
    const dir = freshDir();
    const a = durable(dir, 'hang.js');
    const plain = a.sendAsync('m', { early: 1, hang: 'promise' });
    const delayed = a.sendAsync('m', { early: 2 }, { delayMs: 60_000 });
    let settled = false;
    void Promise.allSettled([plain, delayed]).then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(settled).toBe(false); // nothing is on disk before start()
    await a.start();
    await Promise.all([plain, delayed]);
    await a.destroy();
    const b = durable(dir, 'hang.js');
    await b.start();
    expect(b.stats('m').journal!.recovered).toBe(2);
  });

  it('a second runtime on the same dir is refused with RINGPOOL_JOURNAL_LOCKED', async () => {
    const dir = freshDir();
    const a = durable(dir, 'noop.js');
    await a.start();
    const b = durable(dir, 'noop.js');
    const err = await expectCode(b.start(), ErrorCodes.JOURNAL_LOCKED);
    expect(err.message).toContain(String(process.pid));
  });

  it('a torn tail is cut off and reported on error; start goes on with every record before it', async () => {
    const dir = freshDir();
    const a = durable(dir, 'hang.js');
    await a.start();
    for (let i = 0; i < 3; i++) await a.sendAsync('m', { i, hang: 'promise' });
    await a.destroy();
    const seg = join(dir, segments(dir).at(-1)!);
    writeFileSync(seg, Buffer.concat([readFileSync(seg), Buffer.from([200, 0, 0, 0, 1, 2, 3, 4, 1, 9, 9])]));
    const errors: Array<{ code: string }> = [];
    const b = durable(dir, 'hang.js');
    b.on('error', (e) => errors.push(e as { code: string }));
    await b.start();
    expect(errors.map((e) => e.code)).toContain(ErrorCodes.JOURNAL_TORN);
    expect(b.stats('m').journal!.recovered).toBe(3);
  });

  it('a bad checksum with good records after it: start() rejects with RINGPOOL_JOURNAL_CORRUPT naming file and offset', async () => {
    const dir = freshDir();
    const a = durable(dir, 'hang.js');
    await a.start();
    for (let i = 0; i < 5; i++) await a.sendAsync('m', { i, hang: 'promise', pad: 'z'.repeat(100) });
    await a.destroy();
    const seg = join(dir, segments(dir)[0]!);
    const buf = readFileSync(seg);
    buf[40] ^= 0x10; // inside the first record's data
    writeFileSync(seg, buf);
    const b = durable(dir, 'hang.js');
    const err = (await expectCode(b.start(), ErrorCodes.JOURNAL_CORRUPT)) as Error & { details: { file: string; offset: number } };
    expect(err.details.file).toBe(seg);
    expect(err.details.offset).toBe(0);
    // The refusal let the directory go: once the operator removed the bad segment, this process opens it.
    rmSync(seg);
    const c = durable(dir, 'hang.js');
    await c.start();
    expect(c.stats('m').journal!.recovered).toBe(0);
  });

  it('a write that fails (ENOSPC: the segment is /dev/full) stops the mailbox with RINGPOOL_JOURNAL_IO; nothing is reported durable', async () => {
    const dir = freshDir();
    const rt = durable(dir, 'noop.js');
    const errors: Array<{ code: string }> = [];
    rt.on('error', (e) => errors.push(e as { code: string }));
    await rt.start();
    // No segment yet: the first batch creates this one, and every write to it fails with ENOSPC.
    symlinkSync('/dev/full', join(dir, '00000000000000000000.log'));
    await expectCode(rt.sendAsync('m', { a: 1 }), ErrorCodes.JOURNAL_IO);
    await until(() => errors.some((e) => e.code === ErrorCodes.JOURNAL_IO));
    await expectCode(() => rt.send('m', { a: 2 }), ErrorCodes.JOURNAL_IO);
    await expectCode(rt.sendAsync('m', { a: 3 }), ErrorCodes.JOURNAL_IO);
    expect(rt.stats('m').processed).toBe(0); // no handler ran a message that is not on disk
  });

  it.each([1, 4])("a handler's ctx.send() to a durable mailbox is on disk before the handler's message counts as acked (concurrency %i)", async (concurrency) => {
    const rt = runtime({
      mailboxes: {
        a: { handler: fixture('forward.js'), minThreads: 1, maxThreads: 1, autoscale: false, concurrency },
        b: { handler: fixture('hang.js'), durability: { dir: freshDir(), fsync: 'always' }, minThreads: 0, maxThreads: 1, autoscale: false },
      },
    });
    await rt.start();
    // One at a time: the moment a's message is acked, b's journal must have fdatasynced the forwarded one.
    for (let n = 1; n <= 20; n++) {
      rt.send('a', { to: 'b', n });
      while (rt.stats('a').processed < n) await new Promise((r) => setImmediate(r));
      expect(rt.stats('b').journal!.fsyncs, `message ${n}`).toBeGreaterThanOrEqual(n);
    }
  });

  it('a journal thread that dies stops its mailbox: RINGPOOL_JOURNAL_IO on error, on send, and for whoever waits; a new runtime of this process takes its directory again', async () => {
    const dir = freshDir();
    const rt = durable(dir, 'noop.js');
    const errors: Array<{ code: string }> = [];
    rt.on('error', (e) => errors.push(e as { code: string }));
    await rt.start();
    await rt.sendAsync('m', { before: true });
    // Reached through internals: nothing public kills the journal thread (an OOM there would).
    const journal = (rt as unknown as { boxes: Map<string, { attached: { d: { store: { worker: { terminate(): Promise<number> } } } } }> }).boxes.get('m')!.attached.d.store;
    await journal.worker.terminate();
    await until(() => errors.some((e) => e.code === ErrorCodes.JOURNAL_IO), 5_000, 'the error event');
    await expectCode(() => rt.send('m', { after: true }), ErrorCodes.JOURNAL_IO);
    await expectCode(rt.sendAsync('m', { after: true }), ErrorCodes.JOURNAL_IO);
    await rt.destroy();
    // Its LOCK names this process, and the descriptor that held it is closed: stale, so the next runtime takes it.
    const again = durable(dir, 'noop.js');
    await again.start();
    await again.sendAsync('m', { again: true });
    await until(() => again.stats('m').processed >= 1, 5_000, 'a message on the new runtime');
  });

  it('bad durability options are refused with the option named', async () => {
    const bad = (durability: unknown, extra: Record<string, unknown> = {}) =>
      expectCode(() => runtime({ mailboxes: { m: { handler: fixture('noop.js'), durability, ...extra } } }), ErrorCodes.INVALID_OPTION);
    expect((await bad({ dir: '' })).message).toContain('mailboxes.m.durability.dir');
    expect((await bad({ dir: '/tmp/x', fsync: 'sometimes' })).message).toContain('mailboxes.m.durability.fsync');
    expect((await bad({ dir: '/tmp/x', fsync: 'interval', intervalMs: 0 })).message).toContain('mailboxes.m.durability.intervalMs');
    expect((await bad({ dir: '/tmp/x', segmentBytes: 10 })).message).toContain('mailboxes.m.durability.segmentBytes');
    expect((await bad({ dir: '/tmp/x', colour: 1 })).message).toContain('mailboxes.m.durability.colour');
    const store = { open: async () => [], outcomes() {}, close: async () => {} };
    expect((await bad({ dir: '/tmp/x' }, { store })).message).toContain('mailboxes.m.durability');
  });
});
