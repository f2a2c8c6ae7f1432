// A Redis mailbox's dead letters when <stream>:dead holds entries ringpool did not write, on the suite's own Redis
// (REDIS_URL): a malformed entry is a damaged letter (its raw fields, the problems in lastError), never a failed
// list(); redrive, purge and the console's page go on.
import { afterAll, describe, expect, it } from 'vitest';
import { createClient } from 'redis';
import { Registry } from 'prom-client';
import type { StreamDeadLetter, StreamDeadLetters } from 'ringpool';
import { createMetrics, serve } from 'ringpool/metrics';
import { fixture, runtime, until } from '../helpers.js';

const url = process.env.REDIS_URL!;
const admin = createClient({ url });
admin.on('error', () => undefined);
const prefix = `ringpool-test-dead-${process.pid}`;
afterAll(async () => {
  if (!admin.isOpen) return;
  for (const k of await admin.keys(`${prefix}*`)) await admin.del(k);
  await admin.quit();
});

describe('Redis mailbox: damaged entries in <stream>:dead', () => {
  it('lists a malformed entry as a damaged letter; redrive, purge and the console page go on', async () => {
    await admin.connect();
    const stream = `${prefix}-a`;
    const runs = `${stream}:runs`;
    const rt = runtime({
      mailboxes: { work: { handler: fixture('redis-work.js'), maxThreads: 1, maxAttempts: 1, source: { redis: { url, stream, blockMs: 100 } } } },
    });
    const registry = new Registry();
    createMetrics(rt, { registry });
    await rt.start();
    for (let i = 0; i < 3; i++) await rt.sendAsync('work', { i, url, runs, fail: true });
    await until(() => rt.stats('work').stream!.deadLetters === 3, 10_000, 'three letters');
    const dead = `${stream}:dead`;
    // Written by something else: an error field that is not JSON, no payload at all, an unknown reason.
    const notJson = String(await admin.sendCommand(['XADD', dead, '*', 'd', JSON.stringify({ i: 10, url, runs }), 'reason', 'max_attempts', 'last', '{not json', 'attempts', '2']));
    const empty = String(await admin.sendCommand(['XADD', dead, '*', 'foo', 'bar']));
    const odd = String(await admin.sendCommand(['XADD', dead, '*', 'd', JSON.stringify({ i: 11, url, runs }), 'reason', 'weird']));
    const dl = rt.deadLetters<StreamDeadLetters>('work');
    const letters = await dl.list();
    expect(letters).toHaveLength(6);
    const byEntry = new Map<string, StreamDeadLetter>(letters.map((l) => [l.deadEntryId, l]));
    expect(letters.filter((l) => l.damaged === undefined).map((l) => (l.payload as { i: number }).i)).toEqual([0, 1, 2]);
    expect(byEntry.get(notJson)!.damaged!.problems).toEqual(["'last' is not an error as JSON", "'sent' is not a number", "'dead' is not a number"]);
    expect(byEntry.get(notJson)!.damaged!.fields.last).toBe('{not json');
    expect(byEntry.get(notJson)!.payload).toEqual({ i: 10, url, runs });
    expect(byEntry.get(notJson)!.reason).toBe('max_attempts');
    expect(byEntry.get(empty)!.damaged!.fields).toEqual({ foo: 'bar' });
    expect(byEntry.get(empty)!.reason).toBe('poison');
    expect(byEntry.get(empty)!.lastError!.message).toMatch(/damaged entry .* no field 'd'/);
    expect(byEntry.get(odd)!.damaged!.problems[0]).toMatch(/'reason' "weird" is not one of/);
    // The console's page lists all six.
    const server = await serve(registry, { port: 0, console: true });
    try {
      const page = (await (await fetch(`${server.url}/api/mailboxes/work/dead-letters`)).json()) as { total: number; letters: Array<{ ref: string; lastError: { message: string } }> };
      expect(page.total).toBe(6);
      expect(page.letters.find((l) => l.ref === empty)!.lastError.message).toMatch(/damaged entry/);
    } finally {
      await server.close();
    }
    // Redrive takes those with a payload: the two damaged ones run (they succeed), the three poison ones come back.
    expect(await dl.redrive()).toBe(5);
    await until(() => rt.stats('work').stream!.acked === 2, 10_000, 'the two redriven run');
    expect(Object.keys(await admin.hGetAll(runs)).sort()).toEqual(['10', '11']);
    await until(() => rt.stats('work').stream!.deadLetters === 4, 10_000, 'three poison back, one without payload left');
    expect((await dl.list()).map((l) => l.deadEntryId)).toContain(empty);
    expect(await dl.purge()).toBe(4);
    expect(await admin.xLen(dead)).toBe(0);
  }, 30_000);
});
