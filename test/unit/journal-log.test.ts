import { describe, expect, it } from 'vitest';
import { ErrorCodes } from 'ringpool';
import { SegmentLog } from '../../dist/runtime/store/journal/segment-log.js';
import { expectCode } from '../helpers.js';
import { MemFiles } from '../mem-files.js';

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

/** A seeded PRNG (mulberry32): the same subsets every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every subset of `pages` when there are few, else `max` drawn from `rand`: each a set of "path#page" keys to keep. */
function subsets(pages: Map<string, number[]>, rand: () => number, max = 64): Array<Set<string>> {
  const all = [...pages].flatMap(([p, ns]) => ns.map((n) => `${p}#${n}`));
  const out: Array<Set<string>> = [];
  if (all.length <= 6) {
    for (let mask = 0; mask < 1 << all.length; mask++) out.push(new Set(all.filter((_, i) => (mask >> i) & 1)));
  } else for (let k = 0; k < max; k++) out.push(new Set(all.filter(() => rand() < 0.5)));
  return out;
}

// Issue #26 item 3: recovery called a segment corrupt when a whole good record followed a damaged one, which a power
// cut leaves when the disk wrote a later page of an unsynced batch and not an earlier one.
describe('the journal log: power cuts that keep later pages and lose earlier ones', () => {
  /** Records of 1-3 KiB, so a batch spans several 4 KiB pages. */
  const big = (i: number): Buffer => Buffer.from(`\u0001message ${i} ${'y'.repeat(1000 + ((i * 733) % 2200))}`, 'latin1');

  it("fsync 'always', a cut after any call, any subset of the unsynced 4 KiB pages kept: every synced record is there, nothing is refused", () => {
    const rounds = 24;
    const run = (cutAfter: number): { fs: MemFiles; acked: number } => {
      const fs = new MemFiles();
      let acked = 0;
      fs.failOn = () => (fs.ops > cutAfter ? Object.assign(new Error('power cut'), { code: 'CUT' }) : null);
      const log = new SegmentLog(fs, '/j', 24 << 10, 'm');
      try {
        log.open();
        let n = 0;
        for (let b = 0; b < rounds; b++) {
          log.append(Array.from({ length: 1 + (b % 8) }, () => big(n++)), true);
          acked = n;
        }
      } catch (err) {
        expect((err as { code?: string }).code).toBe(ErrorCodes.JOURNAL_IO);
      }
      return { fs, acked };
    };
    const total = run(Infinity).fs.ops;
    const rand = prng(26);
    let tried = 0;
    let holes = 0;
    for (let cut = 0; cut <= total; cut++) {
      const { fs, acked } = run(cut);
      const pages = fs.unsyncedPages();
      for (const keep of subsets(pages, rand)) {
        const state = fs.afterPageLoss((p, page) => keep.has(`${p}#${page}`));
        const log = new SegmentLog(state, '/j', 24 << 10, 'm');
        let got: string[];
        try {
          got = log.open().records.map(text);
        } catch (err) {
          throw new Error(`cut after call ${cut}, pages kept ${[...keep].join(' ')}: ${(err as Error).message}`);
        }
        expect(got.length, `cut after call ${cut}`).toBeGreaterThanOrEqual(acked);
        expect(got).toEqual(Array.from({ length: got.length }, (_, i) => text({ data: big(i).subarray(1) })));
        // It goes on from there: the next append lands after what was kept.
        expect(log.append([big(got.length)], true)).toBe(got.length);
        tried++;
        // A lost page with a kept one after it: what recovery used to refuse.
        if ([...pages].some(([p, ns]) => ns.some((lost, i) => !keep.has(`${p}#${lost}`) && ns.slice(i + 1).some((k) => keep.has(`${p}#${k}`))))) holes++;
      }
    }
    console.log(`always: ${total} calls, ${tried} power cuts, ${holes} with a lost page before a kept one`);
    expect(tried).toBeGreaterThan(300);
    expect(holes).toBeGreaterThan(100);
  });

  it("fsync 'never': a power cut may tear any segment, the one before the newest included; each is cut at its damage, nothing is refused", () => {
    const rand = prng(7);
    let torn = 0;
    for (let trial = 0; trial < 200; trial++) {
      const fs = new MemFiles();
      const log = new SegmentLog(fs, '/j', 16 << 10, 'm', false);
      log.open();
      let n = 0;
      for (let b = 0; b < 10; b++) log.append(Array.from({ length: 1 + (b % 4) }, () => big(n++)), false);
      expect(log.segmentCount).toBeGreaterThan(2);
      const state = fs.afterPageLoss(() => rand() < 0.7);
      const rec = new SegmentLog(state, '/j', 16 << 10, 'm', false).open();
      if (rec.tornBytes > 0) torn++;
      for (const r of rec.records) expect(text(r)).toBe(text({ data: big(r.seq).subarray(1) }));
    }
    expect(torn).toBeGreaterThan(150);
  });

  it('damage inside synced bytes is still refused when a later mark says they were synced; in the last synced batch, with nothing after it, it cannot be told from a torn write', async () => {
    const fs = new MemFiles();
    const log = new SegmentLog(fs, '/j', 1 << 20, 'm');
    log.open();
    for (let b = 0; b < 4; b++) log.append([big(b * 2), big(b * 2 + 1)], true);
    log.close();
    const seg = [...fs.files.values()][0]!;
    const pristine = Buffer.from(seg.data);
    // The second batch's first record: batches three and four begin with marks covering it.
    seg.data[big(0).length + big(1).length + 40]! ^= 0x01;
    const err = await expectCode(() => new SegmentLog(fs, '/j', 1 << 20, 'm').open(), ErrorCodes.JOURNAL_CORRUPT);
    expect(err.message).toMatch(/inside the \d+ bytes it had synced/);
    // The last batch, synced, but no record after it says so: cut off as a torn tail (README: Durable mailboxes).
    seg.data = Buffer.from(pristine);
    seg.data[seg.data.length - big(7).length + 40]! ^= 0x01;
    const rec = new SegmentLog(fs, '/j', 1 << 20, 'm').open();
    expect(rec.records.length).toBe(7);
    expect(rec.tornBytes).toBeGreaterThan(0);
  });
});
