// codec: 'msgpack': what it carries across threads, its record structures shared in shared memory
// (bounded, race-safe, journaled), and a __proto__ payload.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { MsgpackCodec } from '../../dist/runtime/shared/msgpack.js';
import { MAX_SHARED_STRUCTURES, StructureTable } from '../../dist/runtime/shared/structures.js';
import { fixture, runtime, until } from '../helpers.js';

const root = mkdtempSync(join(tmpdir(), 'ringpool-msgpack-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const TYPES = {
  date: new Date(1_700_000_000_123),
  map: new Map<unknown, unknown>([['k', 1], [2, 'two']]),
  set: new Set<unknown>(['a', 3]),
  big: 2n ** 63n - 1n,
  huge: 2n ** 80n + 1n,
  u8: new Uint8Array([1, 2, 255]),
  f64: new Float64Array([1.5]),
  undef: undefined,
  text: 'héllo ☃',
  nested: { a: [1, { b: null }], n: -0.5 },
};

describe("codec: 'msgpack'", () => {
  it('carries Date, Map, Set, BigInt, typed arrays and undefined to a worker thread and back', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('mp-types.js'), codec: 'msgpack' } } });
    await rt.start();
    const r = (await rt.ask('m', TYPES)) as { p: typeof TYPES; seen: Record<string, boolean> };
    expect(r.seen).toEqual({ date: true, map: true, set: true, big: true, huge: true, u8: true, f64: true, undef: true, proto: true });
    expect(r.p).toEqual(TYPES);
    expect('undef' in r.p).toBe(true);
    expect(r.p.map).toBeInstanceOf(Map);
  });

  it('shares structures: shapes new to the table, added by 2 worker threads and the main thread at once, decode right everywhere', async () => {
    const rt = runtime({
      mailboxes: {
        fan: { handler: fixture('mp-fan.js'), codec: 'msgpack', minThreads: 2, maxThreads: 2 },
        sink: { handler: fixture('mp-verify.js'), codec: 'msgpack', maxAttempts: 1, minThreads: 2, maxThreads: 2 },
      },
    });
    await rt.start();
    let sent = 0;
    for (let r = 0; r < 20; r++) {
      // Two fan-outs (one a thread) adding 8 shapes each, while this thread adds 8 more to the same table.
      rt.send('fan', { to: 'sink', tag: `a${r}`, n: 200, s: 8 });
      rt.send('fan', { to: 'sink', tag: `b${r}`, n: 200, s: 8 });
      for (let i = 0; i < 200; i++) rt.send('sink', { tag: `m${r}`, i, s: 8, [`m${r}_${i % 8}`]: i });
      sent += 600;
      await new Promise((res) => setTimeout(res, 1));
    }
    await rt.onIdle();
    // 480 shapes asked for, 256 shared: the rest went inline, decoded just as right.
    expect(rt.stats('sink')).toMatchObject({ processed: sent, deadLettered: 0 });
  });

  it('dead letters decode on the main thread, and a __proto__ payload leaves Object.prototype alone on both threads', async () => {
    const rt = runtime({
      mailboxes: {
        m: { handler: fixture('mp-types.js'), codec: 'msgpack' },
        d: { handler: fixture('keep.js'), codec: 'msgpack' },
      },
    });
    await rt.start();
    const payload = JSON.parse('{"__proto__": {"polluted": true}, "x": 1}');
    const r = (await rt.ask('m', payload)) as { p: Record<string, unknown>; seen: Record<string, boolean> };
    expect(r.seen.proto).toBe(true);
    rt.send('d', payload);
    rt.send('d', TYPES);
    await until(() => rt.deadLetters('d').size === 2);
    const [p, t] = rt.deadLetters('d').list();
    // msgpackr renames the key (`__proto_`); it never becomes the prototype.
    expect(Object.getPrototypeOf(p!.payload)).toBe(Object.prototype);
    expect(p!.payload).toEqual({ __proto_: { polluted: true }, x: 1 });
    expect(t!.payload).toEqual(TYPES);
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    expect((Object.prototype as { polluted?: unknown }).polluted).toBeUndefined();
  });

  it('is bounded: past the shared slots, and past the table bytes, new shapes go inline and still decode', () => {
    const sab = StructureTable.allocate();
    const a = new MsgpackCodec(new StructureTable(sab));
    const b = new MsgpackCodec(new StructureTable(sab));
    const buf = Buffer.alloc(1 << 16);
    const roundTrip = (v: unknown): unknown => {
      const n = a.prepare(v);
      a.write(buf, 8);
      return b.decode(buf, buf, 8, 8 + n, false);
    };
    for (let i = 0; i < MAX_SHARED_STRUCTURES + 50; i++) expect(roundTrip({ [`k${i}`]: i, v: 'x' })).toEqual({ [`k${i}`]: i, v: 'x' });
    const t = new StructureTable(sab);
    expect(t.count).toBe(MAX_SHARED_STRUCTURES);
    // Inline: the shape travels in the message, a few bytes longer.
    expect(a.prepare({ z1: 1 })).toBeGreaterThan(a.prepare({ k1: 1, v: 'x' }));

    // The bytes bound: 200-byte keys fill a small table long before its slots.
    const small = StructureTable.allocate(4096);
    const c = new MsgpackCodec(new StructureTable(small));
    const d = new MsgpackCodec(new StructureTable(small));
    for (let i = 0; i < 60; i++) {
      const o = { [`${'k'.repeat(200)}${i}`]: i };
      const n = c.prepare(o);
      c.write(buf, 0);
      expect(d.decode(buf, buf, 0, n, false)).toEqual(o);
    }
    const st = new StructureTable(small);
    expect(st.full).toBe(true);
    expect(st.bytes).toBeLessThanOrEqual(4096 - 16);
    expect(st.count).toBeGreaterThan(10);
    expect(st.count).toBeLessThan(60);
  });

  /** A journal left by a SIGKILLed child: `count` records of `shapes` msgpack shapes, each on disk before the kill. */
  function killedJournal(dir: string, count: number, shapes = count): void {
    const child = spawnSync(process.execPath, [fileURLToPath(fixture('mp-journal-child.mjs')), dir, String(count), String(shapes)], { encoding: 'utf8', timeout: 60_000 });
    expect(child.stdout).toContain('sent');
    expect(child.signal).toBe('SIGKILL');
    expect(readdirSync(dir)).toContain('structures');
  }

  /** `n` objects of `s` shapes that mp-verify.js checks key by key (the fourth key names the shape and holds the value). */
  function shaped(tag: string, n: number, s: number, from = 0): Array<Record<string, unknown>> {
    return Array.from({ length: n }, (_, k) => ({ tag, i: from + k, s, [`${tag}_${(from + k) % s}`]: from + k }));
  }

  // Issue #26 item 1: the journal's table was loaded by the journal thread at start(), over the shapes a send before
  // start() had put in the empty table: those records (and every later send of their shapes, through the main thread's
  // cached structures) decoded with the journal's keys. Now the main thread loads it when the mailbox is built.
  it('a restarted durable msgpack mailbox: sends before and after start() and the journal\'s records each arrive as sent', async () => {
    const dir = join(root, 'early');
    killedJournal(dir, 20);
    const rt = runtime({ mailboxes: { m: { handler: fixture('mp-verify.js'), codec: 'msgpack', durability: { dir, fsync: 'always' }, maxAttempts: 1 } } });
    for (const o of shaped('early', 30, 5)) rt.send('m', o);
    await rt.start();
    for (const o of shaped('early', 30, 5, 30)) rt.send('m', o);
    await until(() => rt.stats('m').processed + rt.stats('m').deadLettered >= 80, 30_000, 'every message');
    expect(rt.stats('m')).toMatchObject({ processed: 80, deadLettered: 0 });
  });

  it('a restarted durable msgpack mailbox: another mailbox\'s handler ctx.send()s new shapes into it while it recovers; each arrives as sent', async () => {
    const dir = join(root, 'during');
    killedJournal(dir, 20);
    // A slow disk, made certain: the dead child's LOCK becomes a FIFO, so the journal thread's open blocks reading it
    // until the other mailbox's handlers have sent; then the FIFO gives it a dead pid and recovery goes on.
    const lock = join(dir, 'LOCK');
    rmSync(lock);
    expect(spawnSync('mkfifo', [lock]).status).toBe(0);
    const rt = runtime({
      mailboxes: {
        src: { handler: fixture('mp-fan.js'), minThreads: 1, maxThreads: 1 },
        m: { handler: fixture('mp-verify.js'), codec: 'msgpack', durability: { dir, fsync: 'always' }, maxAttempts: 1 },
      },
    });
    for (let k = 0; k < 10; k++) rt.send('src', { to: 'm', tag: `f${k}`, n: 20, s: 4 });
    const started = rt.start();
    // A handler's ctx.send() to a durable mailbox waits for its journal before the handler's message is acked: the
    // first fan's 20 sends are in m's ring (with its 4 shapes in the table) while m's journal thread is still opening.
    await until(() => rt.stats('m').enqueued >= 20, 30_000, 'a fan, while the journal waits for its disk');
    writeFileSync(lock, '999999999\n');
    // Judged stale, the lock is moved aside and read back before it is deleted (lock.ts): the same FIFO, fed once more.
    let aside: string | undefined;
    await until(() => (aside = readdirSync(dir).find((n) => /^LOCK\..*\.stale$/.test(n))) !== undefined, 10_000, 'the stale lock moved aside');
    writeFileSync(join(dir, aside!), '999999999\n');
    await started;
    await until(() => rt.stats('m').processed + rt.stats('m').deadLettered >= 220, 30_000, 'every message');
    expect(rt.stats('m')).toMatchObject({ processed: 220, deadLettered: 0 });
  });

  it('StructureTable.load refuses a table that holds entries already (a published slot is never overwritten)', () => {
    const a = new StructureTable(StructureTable.allocate(4096));
    const c = new MsgpackCodec(a);
    const buf = Buffer.alloc(256);
    c.prepare({ early: 1, note: 'x' });
    c.write(buf, 0);
    expect(a.count).toBe(1);
    const disk = new StructureTable(StructureTable.allocate(4096));
    const d = new MsgpackCodec(disk);
    d.prepare({ id: 7, sku: 'y' });
    d.write(buf, 0);
    expect(() => a.load(disk.snapshot())).toThrow(/already holds 1 structures/);
    expect(a.read()).toEqual([['early', 'note']]);
  });

  it('a durable msgpack mailbox decodes its records after a SIGKILL: the structures are journaled with them', async () => {
    const dir = join(root, 'j');
    const child = spawnSync(process.execPath, [fileURLToPath(fixture('mp-journal-child.mjs')), dir, '300'], { encoding: 'utf8', timeout: 60_000 });
    expect(child.stdout).toContain('sent');
    expect(child.signal).toBe('SIGKILL');
    expect(readdirSync(dir)).toContain('structures');
    const rt = runtime({ mailboxes: { m: { handler: fixture('mp-verify.js'), codec: 'msgpack', durability: { dir, fsync: 'always' }, maxAttempts: 1 } } });
    await rt.start();
    await until(() => rt.stats('m').processed + rt.stats('m').deadLettered >= 300, 30_000, 'the journaled messages');
    expect(rt.stats('m')).toMatchObject({ processed: 300, deadLettered: 0 });
  });
});
