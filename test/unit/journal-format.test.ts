import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FRAME_BYTES, scanSegment, segmentName, segmentSeq, segmentsOf, writeFrame } from '../../dist/runtime/store/journal/format.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ringpool-journal-'));
  dirs.push(d);
  return d;
}

/** A segment of `n` records of type 1 carrying "record i" (and a longer body every 7th). */
function segment(n: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const body = Buffer.from(`\u0001record ${i}${i % 7 === 0 ? ' '.repeat(300) : ''}`, 'latin1');
    const f = Buffer.alloc(FRAME_BYTES);
    writeFrame(f, 0, body);
    parts.push(f, body);
  }
  return Buffer.concat(parts);
}

describe('journal segments: names and the record frame', () => {
  it('names a segment by its first sequence, 20 digits, and lists a directory oldest first', () => {
    expect(segmentName(42)).toBe('00000000000000000042.log');
    expect(segmentSeq('00000000000000000042.log')).toBe(42);
    expect(segmentSeq('LOCK')).toBe(-1);
    expect(segmentSeq('42.log')).toBe(-1);
    expect(segmentsOf(['LOCK', segmentName(1000), segmentName(7), 'x.log', segmentName(64)])).toEqual([segmentName(7), segmentName(64), segmentName(1000)]);
  });

  it('reads back every record of an intact segment', () => {
    const s = scanSegment(segment(50));
    expect(s.damage).toBe('none');
    expect(s.records.map((r) => r.data.toString('latin1').trim())).toEqual(Array.from({ length: 50 }, (_, i) => `record ${i}`));
    expect(s.records.every((r) => r.type === 1)).toBe(true);
  });

  it('a write cut short at any byte of the last record is a torn tail: the good records before it, truncated there', () => {
    const whole = segment(20);
    const lastStart = scanSegment(whole).records.at(-1)!.offset;
    for (let cut = lastStart + 1; cut < whole.length; cut++) {
      const s = scanSegment(whole.subarray(0, cut));
      expect(s.damage, `cut at ${cut}`).toBe('torn');
      expect(s.goodBytes).toBe(lastStart);
      expect(s.records.length).toBe(19);
    }
  });

  it('a flipped bit with good records after it is corruption, at the damaged record’s offset; in the last record it is a torn tail', () => {
    const whole = segment(20);
    const recs = scanSegment(whole).records;
    for (const k of [0, 5, 13]) {
      for (const byte of [0, 3, 4, 9, 12]) {
        const b = Buffer.from(whole);
        b[recs[k]!.offset + byte]! ^= 0x10;
        const s = scanSegment(b);
        expect(s.damage, `record ${k}, byte ${byte}`).toBe('corrupt');
        expect(s.badOffset).toBe(recs[k]!.offset);
        expect(s.records.length).toBe(k);
      }
    }
    const b = Buffer.from(whole);
    b[recs[19]!.offset + 10]! ^= 1;
    expect(scanSegment(b).damage).toBe('torn');
  });
});
