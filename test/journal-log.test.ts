import { describe, expect, it } from 'vitest';
import { ErrorCodes } from 'ringpool';
import { SegmentLog } from '../dist/runtime/store/journal/segment-log.js';
import { expectCode } from './helpers.js';
import { MemFiles } from './mem-files.js';

const body = (i: number): Buffer => Buffer.from(`\u0001message ${i} ${'x'.repeat(i % 13)}`, 'latin1');
const text = (r: { data: Buffer }): string => r.data.toString('latin1');

describe('the journal log: segments, group commit, recovery', () => {
  it('appends in batches, rolls segments at segmentBytes, and reopens with every record and sequence in order', () => {
    const fs = new MemFiles();
    const log = new SegmentLog(fs, '/j', 512, 'm');
    expect(log.open().records).toEqual([]);
    let n = 0;
    for (let b = 0; b < 30; b++) {
      const batch = Array.from({ length: 1 + (b % 5) }, () => body(n++));
      expect(log.append(batch, true)).toBe(n - batch.length);
    }
    expect(log.stats().segments).toBeGreaterThan(3);
    expect(log.fsyncs).toBeGreaterThanOrEqual(30);
    log.close();
    const again = new SegmentLog(fs, '/j', 512, 'm');
    const rec = again.open();
    expect(rec.records.map((r) => r.seq)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(rec.records.map(text)).toEqual(Array.from({ length: n }, (_, i) => text({ data: body(i).subarray(1) })));
    expect(again.nextSeq).toBe(n);
    expect(again.append([body(n)], true)).toBe(n);
  });

  it('a power cut after any call keeps every record whose batch was synced, whatever part of the unsynced bytes survives', () => {
    // Run once to count the calls, then again cutting after each one.
    const run = (cutAfter: number): { fs: MemFiles; acked: number } => {
      const fs = new MemFiles();
      let acked = 0;
      fs.failOn = () => (fs.ops > cutAfter ? Object.assign(new Error('power cut'), { code: 'CUT' }) : null);
      const log = new SegmentLog(fs, '/j', 400, 'm');
      log.open();
      let n = 0;
      try {
        for (let b = 0; b < 25; b++) {
          const k = 1 + (b % 4);
          log.append(Array.from({ length: k }, () => body(n++)), true);
          acked = n; // append returned: the batch is synced
        }
      } catch (err) {
        expect((err as { code?: string }).code).toBe(ErrorCodes.JOURNAL_IO);
      }
      return { fs, acked };
    };
    const total = (() => {
      const fs = new MemFiles();
      const log = new SegmentLog(fs, '/j', 400, 'm');
      log.open();
      let n = 0;
      for (let b = 0; b < 25; b++) log.append(Array.from({ length: 1 + (b % 4) }, () => body(n++)), true);
      return fs.ops;
    })();
    let cuts = 0;
    for (let cut = 0; cut <= total; cut++) {
      const { fs, acked } = run(cut);
      for (const keep of [() => 0, (u: number) => Math.floor(u / 2), (u: number) => u, (u: number) => (u > 3 ? u - 3 : 0)]) {
        const state = fs.afterPowerCut(keep);
        const log = new SegmentLog(state, '/j', 400, 'm');
        const rec = log.open();
        const got = rec.records.map(text);
        // Everything acknowledged is there, in order, and nothing else but a prefix of what came after.
        expect(got.length, `cut after call ${cut}`).toBeGreaterThanOrEqual(acked);
        expect(got).toEqual(Array.from({ length: got.length }, (_, i) => text({ data: body(i).subarray(1) })));
        cuts++;
      }
    }
    expect(cuts).toBeGreaterThan(100);
  });

  it('an fdatasync that fails (EIO) or a full disk (ENOSPC) is RINGPOOL_JOURNAL_IO, and the batch is not reported written', async () => {
    for (const [op, code] of [
      ['datasync', 'EIO'],
      ['append', 'ENOSPC'],
    ] as const) {
      const fs = new MemFiles();
      const log = new SegmentLog(fs, '/j', 1 << 20, 'm');
      log.open();
      log.append([body(0)], true);
      fs.failOn = (o) => (o === op ? Object.assign(new Error(code), { code }) : null);
      const err = await expectCode(() => log.append([body(1)], true), ErrorCodes.JOURNAL_IO);
      expect(err.message).toContain(code);
    }
  });

  it('damage in an older segment, or mid-segment with good records after it, is RINGPOOL_JOURNAL_CORRUPT naming file and offset', async () => {
    const fs = new MemFiles();
    const log = new SegmentLog(fs, '/j', 300, 'm');
    log.open();
    for (let i = 0; i < 40; i++) log.append([body(i)], true);
    log.close();
    const [first] = [...fs.files.keys()].sort();
    fs.files.get(first!)!.data[20]! ^= 0xff;
    const err = await expectCode(() => new SegmentLog(fs, '/j', 300, 'm').open(), ErrorCodes.JOURNAL_CORRUPT);
    expect(err.message).toContain(first!);
    expect(err.message).toMatch(/at byte \d+/);
  });

  it('segments with no live record are deleted (never the open one), the directory synced; the log reopens from the first kept', () => {
    const fs = new MemFiles();
    const log = new SegmentLog(fs, '/j', 300, 'm');
    log.open();
    for (let i = 0; i < 40; i++) log.append([body(i)], true);
    const before = log.stats().segments;
    let syncs = 0;
    fs.failOn = (op) => {
      if (op === 'syncDir') syncs++;
      return null;
    };
    // Records below 20 are dead (acked); a segment is live if any of its records is 20 or above.
    const dropped = log.dropDead((first, count) => first + count > 20);
    expect(dropped).toBeGreaterThan(0);
    expect(syncs).toBe(1);
    expect(log.stats().segments).toBe(before - dropped);
    const kept = new SegmentLog(fs, '/j', 300, 'm').open().records;
    expect(kept[0]!.seq).toBeGreaterThan(0);
    expect(kept[0]!.seq).toBeLessThanOrEqual(20);
    // A dead segment after a live one stays (its acks may cancel records of the live one).
    const segs = log.stats().segments;
    let seen = 0;
    expect(log.dropDead(() => seen++ === 0)).toBe(0);
    expect(log.stats().segments).toBe(segs);
    // Everything dead but the open segment: it stays.
    log.dropDead(() => false);
    expect(log.stats().segments).toBe(1);
    log.close();
    const rec = new SegmentLog(fs, '/j', 300, 'm').open();
    expect(rec.records.at(-1)!.seq).toBe(39);
    expect(rec.records[0]!.seq).toBeGreaterThan(20);
    expect(rec.records.map((r) => r.seq)).toEqual(Array.from({ length: rec.records.length }, (_, i) => rec.records[0]!.seq + i));
  });

  it('a torn tail of the newest segment is cut off and counted; the log goes on from there', () => {
    const fs = new MemFiles();
    const log = new SegmentLog(fs, '/j', 1 << 20, 'm');
    log.open();
    for (let i = 0; i < 10; i++) log.append([body(i)], true);
    log.close();
    const f = [...fs.files.values()][0]!;
    f.data = f.data.subarray(0, f.data.length - 5);
    const again = new SegmentLog(fs, '/j', 1 << 20, 'm');
    const rec = again.open();
    expect(rec.records.length).toBe(9);
    expect(rec.tornBytes).toBeGreaterThan(0);
    expect(again.append([body(9)], true)).toBe(9);
    again.close();
    expect(new SegmentLog(fs, '/j', 1 << 20, 'm').open().records.map((r) => r.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i));
  });
});
