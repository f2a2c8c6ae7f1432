// rt.sendBatch / sendBatchAsync / ctx.sendBatch: all or nothing in one reservation, ids in order, per-key order kept.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { expectCode, fixture, runtime, until } from '../helpers.js';

const root = mkdtempSync(join(tmpdir(), 'ringpool-batch-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

type Logged = { key: string; i: number; start: number; end: number };

/** Per key, the i's in the order they were handled, and no two handlers of a key at once. */
function checkOrder(log: Logged[], keys: number, perKey: number): void {
  const byKey = new Map<string, Logged[]>();
  for (const l of log) (byKey.get(l.key) ?? byKey.set(l.key, []).get(l.key)!).push(l);
  expect(byKey.size).toBe(keys);
  for (const [k, ls] of byKey) {
    expect(ls.map((l) => l.i), k).toEqual(Array.from({ length: perKey }, (_, j) => j));
    for (let j = 1; j < ls.length; j++) expect(ls[j]!.start, k).toBeGreaterThanOrEqual(ls[j - 1]!.end);
  }
}

describe('sendBatch', () => {
  it('returns the ids in order, and every message runs', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), minThreads: 2, maxThreads: 2 } } });
    await rt.start();
    const ids = rt.sendBatch('m', Array.from({ length: 500 }, (_, i) => ({ i })));
    expect(ids).toHaveLength(500);
    expect(ids.every((id, i) => i === 0 || id > ids[i - 1]!)).toBe(true);
    expect(rt.sendBatch('m', [])).toEqual([]);
    await rt.onIdle();
    expect(rt.stats('m')).toMatchObject({ enqueued: 500, processed: 500 });
  });

  it('writes nothing when the batch does not fit, or one payload is bad; refuses a batch that never could', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('hang.js'), capacityBytes: 1 << 16, maxMessageBytes: 1024, minThreads: 1, maxThreads: 1 } } });
    await rt.start();
    // 64 KiB of ring, 112 bytes a record: about 580 fit. Fill most of it (the first one hangs its thread).
    for (let b = 0; b < 2; b++) rt.sendBatch('m', Array.from({ length: 200 }, () => ({ hang: 'promise', pad: 'x'.repeat(20) })));
    const before = rt.stats('m');
    const full = await expectCode(() => rt.sendBatch('m', Array.from({ length: 250 }, () => ({ pad: 'x'.repeat(20) }))), 'RINGPOOL_QUEUE_FULL');
    expect(full.message).toMatch(/is full/);
    const bad = await expectCode(() => rt.sendBatch('m', [{ a: 1 }, { b: 2n }, { c: 3 }]), 'RINGPOOL_UNSERIALIZABLE');
    expect((bad as unknown as { details: { index: number } }).details.index).toBe(1);
    await expectCode(() => rt.sendBatch('m', [{ a: 1 }, { big: 'x'.repeat(2000) }]), 'RINGPOOL_MESSAGE_TOO_LARGE');
    const never = await expectCode(() => rt.sendBatch('m', Array.from({ length: 400 }, () => ({ pad: 'x'.repeat(100) }))), 'RINGPOOL_INVALID_OPTION');
    expect(never.message).toMatch(/over half of capacityBytes \(65536\).*could never fit/);
    expect((never as unknown as { details: { option: string } }).details.option).toBe('capacityBytes');
    await expectCode(() => rt.sendBatch('m', 'nope' as never), 'RINGPOOL_INVALID_OPTION');
    const after = rt.stats('m');
    expect(after.enqueued).toBe(before.enqueued);
    expect(after.rejectedBy).toMatchObject({ queue_full: 250, unserializable: 3, too_large: 2 });
  });

  it('refuses anything but an array, and an array no ring could hold, with RINGPOOL_INVALID_OPTION before allocating for it (issue 26)', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), capacityBytes: 1 << 16, maxMessageBytes: 1024, minThreads: 1, maxThreads: 1 } } });
    await rt.start();
    // Each of these threw a plain RangeError from new Array(n) / new Int32Array(n), or (2 ** 31) aborted the process.
    const lying = new Proxy([1, 2, 3], { get: (o, k) => (k === 'length' ? 2 ** 31 : o[k as keyof typeof o]) });
    for (const bad of [{ length: -1 }, { length: NaN }, { length: 1.5 }, { length: 2 ** 31 }, { length: '3' }, 'abc', null, 42, new Uint8Array(3), lying]) {
      const e = await expectCode(() => rt.sendBatch('m', bad as never), 'RINGPOOL_INVALID_OPTION');
      expect(e.message).toMatch(/sendBatch payloads must be an array|a batch holds at most/);
      await expectCode(rt.sendBatchAsync('m', bad as never), 'RINGPOOL_INVALID_OPTION');
    }
    const most = await expectCode(() => rt.sendBatch('m', lying as never), 'RINGPOOL_INVALID_OPTION');
    expect((most as unknown as { details: { limit: number } }).details.limit).toBeGreaterThan(0);
    expect(rt.stats('m').enqueued).toBe(0);
    expect(rt.sendBatch('m', [1, 2])).toHaveLength(2);
  });

  it('sendBatchAsync waits for room for the whole batch, FIFO with sendAsync, then every message runs', async () => {
    const flag = join(root, 'open');
    const rt = runtime({
      mailboxes: { m: { handler: fixture('gate.js'), capacityBytes: 1 << 16, maxMessageBytes: 1024, maxAttempts: 1000, backoff: { baseMs: 1, maxMs: 2 }, minThreads: 1, maxThreads: 1 } },
    });
    await rt.start();
    const first = rt.sendBatch('m', Array.from({ length: 250 }, () => ({ flag })));
    rt.sendBatch('m', Array.from({ length: 250 }, () => ({ flag })));
    let resolved: number[] | null = null;
    const waiting = rt.sendBatchAsync('m', Array.from({ length: 250 }, () => ({ flag }))).then((ids) => (resolved = ids));
    const single = rt.sendAsync('m', { flag });
    await new Promise((r) => setTimeout(r, 100));
    expect(resolved).toBeNull();
    const { writeFileSync } = await import('node:fs');
    writeFileSync(flag, '');
    const ids = await waiting;
    expect(ids).toHaveLength(250);
    expect(await single).toBeGreaterThan(ids[249]!);
    await rt.onIdle();
    expect(rt.stats('m')).toMatchObject({ processed: 751, deadLettered: 0 });
    expect(first[0]).toBeLessThan(ids[0]!);
    await expectCode(rt.sendBatchAsync('m', [{ flag }], { timeoutMs: -1 }), 'RINGPOOL_INVALID_OPTION');
  });

  it('keeps per-key order: keyed batches (a key function) and single sends interleaved, 2 threads', async () => {
    const rt = runtime({
      mailboxes: {
        k: { handler: fixture('ordered.js'), minThreads: 2, maxThreads: 2, concurrency: 4 },
        log: { handler: fixture('order-log.js'), minThreads: 1, maxThreads: 1 },
      },
    });
    await rt.start();
    const keys = 10;
    const perKey = 60;
    const next = new Array<number>(keys).fill(0);
    for (let round = 0; round < perKey / 6; round++) {
      const batch: Array<{ key: string; i: number; delay: number }> = [];
      for (let j = 0; j < 5; j++) for (let k = 0; k < keys; k++) batch.push({ key: `k${k}`, i: next[k]++, delay: (j * 7 + k) % 3 });
      rt.sendBatch('k', batch, { key: (p) => (p as { key: string }).key });
      for (let k = 0; k < keys; k++) rt.send('k', { key: `k${k}`, i: next[k]++, delay: 0 }, { key: `k${k}` });
    }
    await until(() => rt.deadLetters('log').size === keys * perKey, 30_000, 'the log');
    checkOrder(rt.deadLetters('log').list().map((d) => d.payload as Logged), keys, perKey);
  });

  it('ctx.sendBatch from worker threads: unkeyed and keyed, batches crossing the ring end', async () => {
    const rt = runtime({
      mailboxes: {
        fan: { handler: fixture('batch-fan.js'), minThreads: 2, maxThreads: 2 },
        sink: { handler: fixture('noop.js'), capacityBytes: 1 << 16, maxMessageBytes: 1024, minThreads: 1, maxThreads: 1 },
        k: { handler: fixture('ordered.js'), minThreads: 2, maxThreads: 2, concurrency: 2 },
        log: { handler: fixture('order-log.js') },
      },
    });
    await rt.start();
    // 37-record batches into a 64 KiB ring: they wrap at every lap, so some are padded to its start.
    for (let b = 0; b < 200; b++) rt.send('fan', { to: 'sink', n: 37, key: 'x', base: b * 37 });
    for (let b = 0; b < 8; b++) for (let k = 0; k < 4; k++) rt.send('fan', { to: 'k', n: 10, key: `k${k}`, base: b * 10, keyed: true }, { key: `f${k}` });
    await until(() => rt.stats('sink').processed === 200 * 37 && rt.deadLetters('log').size === 320, 30_000, 'every batch');
    expect(rt.stats('fan')).toMatchObject({ processed: 232, deadLettered: 0 });
    checkOrder(rt.deadLetters('log').list().map((d) => d.payload as Logged), 4, 80);
  });

  it('on a durable mailbox, sendBatchAsync resolves once the batch is on disk, and it survives a restart', async () => {
    const dir = join(root, 'd');
    const mk = (handler: string) =>
      runtime({ mailboxes: { m: { handler: fixture(handler), durability: { dir, fsync: 'always' }, minThreads: 1, maxThreads: 1, codec: 'msgpack' } } });
    const a = mk('keep.js');
    await a.start();
    await a.sendBatchAsync('m', Array.from({ length: 50 }, (_, i) => ({ i, at: new Date(i) })));
    await until(() => a.deadLetters('m').size === 50);
    await a.destroy();
    const b = mk('keep.js');
    await b.start();
    const back = b.deadLetters('m').list().map((d) => d.payload as { i: number; at: Date });
    expect(back.map((p) => p.i).sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(back.every((p) => p.at instanceof Date && p.at.getTime() === p.i)).toBe(true);
  });
});
