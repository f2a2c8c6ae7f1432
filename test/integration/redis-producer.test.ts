// ringpool/redis's producer on the suite's own Redis (test/global-setup.ts starts it; REDIS_URL): entries in
// order with the payload in field `d`, entry ids from sendAsync, pipelined sends flushed by close(), refusals.
import { afterAll, describe, expect, it } from 'vitest';
import { createClient } from 'redis';
import { ErrorCodes } from 'ringpool';
import { redisProducer } from 'ringpool/redis';
import { expectCode } from '../helpers.js';

const url = process.env.REDIS_URL!;
const admin = createClient({ url });
const keys: string[] = [];
const stream = (): string => {
  const k = `ringpool-test-producer-${process.pid}-${keys.length}`;
  keys.push(k);
  return k;
};
afterAll(async () => {
  if (!admin.isOpen) return;
  for (const k of keys) await admin.del(k);
  await admin.quit();
});

describe('redisProducer (ringpool/redis)', () => {
  it('sends in order, one entry a message with the JSON payload in field d; sendAsync gives the entry id; close() flushes', async () => {
    await admin.connect();
    const key = stream();
    const p = redisProducer({ url, stream: key });
    for (let i = 0; i < 500; i++) expect(p.send({ i })).toBe(i);
    const id = await p.sendAsync({ i: 500, last: true });
    for (let i = 501; i < 1000; i++) p.send({ i });
    await p.close();
    const entries = await admin.xRange(key, '-', '+');
    expect(entries).toHaveLength(1000);
    expect(entries.map((e) => (JSON.parse(e.message.d!) as { i: number }).i)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(entries[500]!.id).toBe(id);
    expect(p.failed).toBe(0);
  });

  it('refuses bad options, a payload over maxMessageBytes, an unserializable one, and sends after close()', async () => {
    const bad = (o: unknown) => expectCode(() => redisProducer(o as never), ErrorCodes.INVALID_OPTION);
    expect((await bad({ url: 'http://x', stream: 's' })).message).toContain('redisProducer.url');
    expect((await bad({ url, stream: '' })).message).toContain('redisProducer.stream');
    expect((await bad({ url, stream: 's', codec: 'xml' })).message).toContain('redisProducer.codec');
    expect((await bad({ url, stream: 's', maxMessageBytes: 0 })).message).toContain('redisProducer.maxMessageBytes');
    expect((await bad({ url, stream: 's', sendBufferBytes: 0 })).message).toContain('redisProducer.sendBufferBytes');
    const key = stream();
    const p = redisProducer({ url, stream: key, maxMessageBytes: 64 });
    await expectCode(() => p.send({ big: 'x'.repeat(100) }), ErrorCodes.MESSAGE_TOO_LARGE);
    await expectCode(() => p.send({ n: 1n }), ErrorCodes.UNSERIALIZABLE);
    await expectCode(p.sendAsync({ ok: 1 }, { timeoutMs: -1 }), ErrorCodes.INVALID_OPTION);
    await expectCode(p.sendAsync({ ok: 1 }, { signal: 'stop' as never }), ErrorCodes.INVALID_OPTION);
    await p.sendAsync({ ok: true }, { timeoutMs: 5_000 });
    await p.close();
    await expectCode(() => p.send({ late: true }), ErrorCodes.CLOSED);
    expect(await admin.xLen(key)).toBe(1); // nothing refused was written
  });

  it('a command Redis refuses rejects its sendAsync with RINGPOOL_SOURCE_IO, and a send() is counted and told', async () => {
    const key = stream();
    await admin.set(key, 'not a stream'); // XADD to a string key: WRONGTYPE
    const told: string[] = [];
    const p = redisProducer({ url, stream: key, onError: (e) => told.push(e.code) });
    p.send({ a: 1 });
    await expectCode(p.sendAsync({ a: 2 }), ErrorCodes.SOURCE_IO);
    await p.close();
    expect(p.failed).toBe(1);
    expect(told).toEqual([ErrorCodes.SOURCE_IO]);
  });
});
