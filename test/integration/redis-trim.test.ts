// Trimming a Redis mailbox's stream (runtime/source/redis/trim.ts), on the suite's own Redis (REDIS_URL): what every
// group acknowledged goes (XTRIM MINID once a second), never an entry pending in a slow consumer or not yet read by
// another group of the same stream; keepAckedMs keeps history by age; maxDeadLetters caps <stream>:dead.
import { afterAll, describe, expect, it } from 'vitest';
import { createClient } from 'redis';
import { ErrorCodes, type MailboxOptions } from 'ringpool';
import { redisProducer } from 'ringpool/redis';
import { expectCode, fixture, runtime, until, untilAsync } from '../helpers.js';

const url = process.env.REDIS_URL!;
const admin = createClient({ url });
admin.on('error', () => undefined);
let n = 0;
const prefix = `ringpool-test-trim-${process.pid}`;
function names(): { stream: string; runs: string } {
  const stream = `${prefix}-${++n}`;
  return { stream, runs: `${stream}:runs` };
}
afterAll(async () => {
  if (!admin.isOpen) return;
  for (const k of await admin.keys(`${prefix}-*`)) await admin.del(k);
  await admin.quit();
});
const connected = async (): Promise<void> => {
  if (!admin.isOpen) await admin.connect();
};

function box(stream: string, redis: Record<string, unknown> = {}, extra: Partial<MailboxOptions> = {}): MailboxOptions {
  return {
    handler: fixture('redis-work.js'),
    maxThreads: 1,
    concurrency: 8,
    backoff: { baseMs: 5, maxMs: 20 },
    ...extra,
    source: { redis: { url, stream, claimIdleMs: 2_000, blockMs: 100, ...redis } },
  } as MailboxOptions;
}

const pending = async (stream: string, group = 'ringpool'): Promise<number> => Number(((await admin.sendCommand(['XPENDING', stream, group])) as unknown[])[0]);
/** Two trim passes (once a second each) have run since now. */
const twoPasses = (): Promise<void> => new Promise((r) => setTimeout(r, 2_200));

describe('Redis mailbox: trimming what every group acknowledged', () => {
  it('after 20,000 messages processed the stream holds nothing acknowledged (default keepAckedMs 0); keepAckedMs keeps the younger history; false keeps all', async () => {
    await connected();
    const { stream, runs } = names();
    const rt = runtime({ mailboxes: { work: box(stream) } });
    await rt.start();
    const N = 20_000;
    const p = redisProducer({ url, stream });
    for (let i = 0; i < N; i++) p.send({ i, url, runs });
    await p.close();
    await until(() => rt.stats('work').stream!.acked === N, 30_000, 'every entry acknowledged');
    const before = await admin.xLen(stream);
    await untilAsync(async () => (await admin.xLen(stream)) === 0, 5_000, 'the stream trimmed');
    console.log(`trim: ${N} processed; stream length ${before} when the last was acknowledged, 0 after the next pass`);
    expect(await admin.hLen(runs)).toBe(N);
    expect(rt.stats('work').stream!.trimmedAcked).toBe(N);
    await rt.close();

    // keepAckedMs 60 s: entries whose ids are 10 minutes old go once acknowledged; the ones just added stay.
    const old = names();
    const t = Date.now() - 10 * 60_000;
    await admin.sendCommand(['XGROUP', 'CREATE', old.stream, 'ringpool', '0', 'MKSTREAM']);
    for (let i = 0; i < 100; i++) await admin.sendCommand(['XADD', old.stream, `${t}-${i}`, 'd', JSON.stringify({ i, url, runs: old.runs })]);
    for (let i = 100; i < 150; i++) await admin.sendCommand(['XADD', old.stream, '*', 'd', JSON.stringify({ i, url, runs: old.runs })]);
    const kept = runtime({ mailboxes: { work: box(old.stream, { keepAckedMs: 60_000 }) } });
    await kept.start();
    await until(() => kept.stats('work').stream!.acked === 150, 10_000, 'all acknowledged');
    await untilAsync(async () => (await admin.xLen(old.stream)) === 50, 5_000, 'the old hundred trimmed');
    await twoPasses();
    const left = await admin.xRange(old.stream, '-', '+');
    expect(left.map((e) => (JSON.parse(e.message.d!) as { i: number }).i)).toEqual(Array.from({ length: 50 }, (_, k) => 100 + k));
    await kept.close();

    // keepAckedMs false: never trimmed.
    const off = names();
    const none = runtime({ mailboxes: { work: box(off.stream, { keepAckedMs: false }) } });
    await none.start();
    for (let i = 0; i < 500; i++) none.send('work', { i, url, runs: off.runs });
    await until(() => none.stats('work').stream!.acked === 500, 10_000, 'all acknowledged');
    await twoPasses();
    expect(await admin.xLen(off.stream)).toBe(500);
  }, 60_000);

  it('never trims an entry pending in a slow consumer: the stream keeps it and all after it until it is acknowledged', async () => {
    await connected();
    const { stream, runs } = names();
    const rt = runtime({ mailboxes: { work: box(stream) } });
    await rt.start();
    // 100 fast, one that works 4 s, 300 fast: the first 100 are acknowledged and trimmed; the slow one stays pending
    // (and this process acknowledges in ring order, so the 300 after it wait for it too).
    for (let i = 0; i < 100; i++) rt.send('work', { i, url, runs });
    const slow = await rt.sendAsync<string>('work', { i: 100, url, runs, workMs: 4_000 });
    for (let i = 101; i <= 400; i++) rt.send('work', { i, url, runs });
    await until(() => rt.stats('work').processed === 400, 10_000, 'all but the slow one run');
    await untilAsync(async () => (await admin.xLen(stream)) === 301, 5_000, 'the hundred before it trimmed');
    await twoPasses();
    expect(await pending(stream)).toBeGreaterThanOrEqual(1);
    const len = await admin.xLen(stream);
    console.log(`trim: one entry pending in a slow handler after 100 acknowledged, 300 after it: stream length ${len}`);
    expect(len).toBe(301);
    expect((await admin.xRange(stream, '-', '+', { COUNT: 1 }))[0]!.id).toBe(slow);
    await untilAsync(async () => (await admin.hLen(runs)) === 401, 10_000, 'the slow one done');
    await untilAsync(async () => (await admin.xLen(stream)) === 0, 5_000, 'then all trimmed');
  }, 30_000);

  it('never trims what a second group on the same stream has not read, or has pending', async () => {
    await connected();
    const { stream, runs } = names();
    await admin.sendCommand(['XGROUP', 'CREATE', stream, 'other', '$', 'MKSTREAM']);
    const rt = runtime({ mailboxes: { work: box(stream) } });
    await rt.start();
    const ids: string[] = [];
    for (let i = 0; i < 1_000; i++) ids.push(await rt.sendAsync<string>('work', { i, url, runs }));
    await until(() => rt.stats('work').stream!.acked === 1_000, 10_000, 'all acknowledged by ringpool');
    await twoPasses();
    const unread = await admin.xLen(stream);
    expect(unread).toBe(1_000); // 'other' has read none of them
    // 'other' reads 100 and acknowledges the first 50: trimmed up to its oldest pending entry (the 51st).
    await admin.sendCommand(['XREADGROUP', 'GROUP', 'other', 'o1', 'COUNT', '100', 'STREAMS', stream, '>']);
    await admin.sendCommand(['XACK', stream, 'other', ...ids.slice(0, 50)]);
    await untilAsync(async () => (await admin.xLen(stream)) === 950, 5_000, 'trimmed to the other group\'s oldest pending');
    await twoPasses();
    expect(await admin.xLen(stream)).toBe(950);
    expect((await admin.xRange(stream, '-', '+', { COUNT: 1 }))[0]!.id).toBe(ids[50]);
    // It acknowledges the rest of what it read: trimmed up to the first entry it has not read.
    await admin.sendCommand(['XACK', stream, 'other', ...ids.slice(50, 100)]);
    await untilAsync(async () => (await admin.xLen(stream)) === 900, 5_000, 'trimmed to the other group\'s first unread');
    await twoPasses();
    console.log(`trim: a second group that read 100 of 1,000 and acknowledged them: stream length ${await admin.xLen(stream)}`);
    expect(await admin.xLen(stream)).toBe(900);
    expect((await admin.xRange(stream, '-', '+', { COUNT: 1 }))[0]!.id).toBe(ids[100]);
  }, 30_000);

  it('maxDeadLetters caps <stream>:dead (the oldest go); options are checked', async () => {
    await connected();
    const { stream, runs } = names();
    const rt = runtime({ mailboxes: { work: box(stream, { maxDeadLetters: 5 }, { maxAttempts: 1 }) } });
    const deadIs: number[] = [];
    rt.on('dead-letter', (e) => deadIs.push((e.letter.payload as { i: number }).i));
    await rt.start();
    for (let i = 0; i < 12; i++) await rt.sendAsync('work', { i, url, runs, fail: true });
    await until(() => deadIs.length === 12, 10_000, 'twelve dead letters');
    await untilAsync(async () => (await pending(stream)) === 0, 5_000, 'all written');
    const dead = await admin.xRange(`${stream}:dead`, '-', '+');
    expect(dead.map((e) => (JSON.parse(e.message.d!) as { i: number }).i)).toEqual(deadIs.slice(-5));
    const bad = (o: Record<string, unknown>) => expectCode(() => runtime({ mailboxes: { work: box(stream, o) } }), ErrorCodes.INVALID_OPTION);
    expect((await bad({ keepAckedMs: -1 })).message).toContain('source.redis.keepAckedMs');
    expect((await bad({ keepAckedMs: true })).message).toContain('false or an integer');
    expect((await bad({ maxDeadLetters: 0 })).message).toContain('source.redis.maxDeadLetters');
    expect((await bad({ maxDeadLetters: 1.5 })).message).toContain('source.redis.maxDeadLetters');
  }, 30_000);
});
