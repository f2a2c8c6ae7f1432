// The journal's state encoding (runtime/store/journal/records.ts) with headers (issue #32): a state with headers
// reads back whole, the states after it read right, and a state written before headers existed (flags bit 3 clear,
// no headers length) reads with headers null.
import { describe, expect, it } from 'vitest';
import { decodeStates, encodeStates, type JournaledMessage } from '../../dist/runtime/store/journal/records.js';

const msg = (id: number, headers: string | null, extra: Partial<JournaledMessage> = {}): JournaledMessage => ({
  id,
  attempt: 2,
  dueAt: 1234.5,
  sentAt: 99,
  key: id % 2 === 0 ? `k${id}` : null,
  payload: Buffer.from(`payload ${id}`),
  ascii: true,
  kept: 0,
  reason: -1,
  deadAt: 0,
  firstError: undefined,
  lastError: undefined,
  headers: headers === null ? null : Buffer.from(headers, 'utf8'),
  ...extra,
});

const plain = (m: JournaledMessage) => ({ ...m, payload: Buffer.from(m.payload).toString(), headers: m.headers === null ? null : Buffer.from(m.headers).toString() });

describe('journal states with headers', () => {
  it('round-trip, with and without headers, next to errors and a dead letter', () => {
    const ms = [
      msg(1, '{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}'),
      msg(2, null),
      msg(3, '{"a":"ä"}', { reason: 1, deadAt: 7, firstError: { name: 'Error', message: 'first' }, lastError: { name: 'Error', message: 'last' } }),
      msg(4, null, { firstError: { name: 'Error', message: 'x' } }),
    ];
    expect(decodeStates(encodeStates(ms)).map(plain)).toEqual(ms.map(plain));
  });

  it('a state written before headers existed reads with headers null', () => {
    const buf = encodeStates([msg(5, null), msg(6, null)]);
    // The same bytes as before: no headers means flags bit 3 clear and nothing after the errors.
    expect(buf.byteLength).toBe(4 + 2 * 52 + 'payload 5'.length + 'payload 6'.length + 'k6'.length);
    const back = decodeStates(buf);
    expect(back.map((m) => m.headers)).toEqual([null, null]);
    expect(back.map((m) => Buffer.from(m.payload).toString())).toEqual(['payload 5', 'payload 6']);
  });
});
