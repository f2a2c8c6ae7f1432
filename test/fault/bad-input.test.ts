// Bad input the fuzz (test/fault/fuzz.test.ts) found getting through without a code (issue 26), one test a
// defect: each call must end in a RingpoolError with a stable code and change nothing.
import { connect } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createRuntime, ErrorCodes, type Runtime } from 'ringpool';
import { createMetrics, serve, type MetricsServer } from 'ringpool/metrics';
import { expectCode, fixture, runtime, until } from '../helpers.js';

const servers: MetricsServer[] = [];
afterEach(async () => {
  await Promise.allSettled(servers.splice(0).map((s) => s.close()));
});

/** An object whose property `name` throws `value` when read. */
const throwing = (name: string, value: unknown): object =>
  Object.defineProperty({}, name, {
    get() {
      throw value;
    },
    enumerable: true,
  });
const revoked = (): object => {
  const r = Proxy.revocable({}, {});
  r.revoke();
  return r.proxy;
};
/** Something thrown that is not an Error: the error paths must not read `.message` of it. */
const ODD = [null, undefined, 42, Symbol('thrown')];

async function started(): Promise<Runtime> {
  const rt = runtime({
    mailboxes: {
      m: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 1 },
      mp: { handler: fixture('noop.js'), codec: 'msgpack', minThreads: 0 },
      v8: { handler: fixture('noop.js'), codec: 'v8', minThreads: 0 },
      custom: { handler: fixture('noop.js'), codec: { name: 'nulls', url: fixture('p-codec.js').href, encode: () => { throw null; }, decode: () => null }, minThreads: 0 },
      act: { handler: fixture('counter-actor.js'), minThreads: 1, maxThreads: 1 },
      bad: { handler: fixture('ctx-bad-input.js'), minThreads: 1, maxThreads: 1 },
    },
  });
  await rt.start();
  return rt;
}

describe('bad input ends in a coded RingpoolError (issue 26)', () => {
  it('a payload whose getter or toJSON throws something that is not an Error: RINGPOOL_UNSERIALIZABLE in every codec', async () => {
    const rt = await started();
    for (const v of ODD) {
      for (const box of ['m', 'mp', 'v8']) {
        // Was a TypeError ("Cannot read properties of null (reading 'message')") from the codec's own error path.
        const e = await expectCode(() => rt.send(box, throwing('x', v)), ErrorCodes.UNSERIALIZABLE);
        if (box !== 'mp') expect(e.cause).toBe(v); // msgpackr may swallow a falsy one: what was thrown is not known then
        await expectCode(() => rt.sendBatch(box, [1, throwing('x', v)]), ErrorCodes.UNSERIALIZABLE);
      }
      await expectCode(() => rt.send('m', { toJSON: () => { throw v; } }), ErrorCodes.UNSERIALIZABLE);
    }
    await expectCode(() => rt.send('custom', 1), ErrorCodes.UNSERIALIZABLE);
    // A batch element whose getter throws.
    await expectCode(() => rt.sendBatch('m', Object.defineProperty([1, 2], 1, { get: () => { throw null; } })), ErrorCodes.UNSERIALIZABLE);
    // msgpack with a new shape: msgpackr swallowed a falsy throw and returned part of a record, which was sent.
    for (const v of [null, undefined, 0, '']) await expectCode(() => rt.send('mp', throwing(`fresh${String(v)}`, v)), ErrorCodes.UNSERIALIZABLE);
    for (const box of ['m', 'mp', 'v8']) expect(rt.stats(box).enqueued, box).toBe(0);
  });

  it('options whose getters or Proxy traps throw, or a revoked Proxy: RINGPOOL_INVALID_OPTION with the thrown value as cause, for every call', async () => {
    const rt = await started();
    for (const v of [new Error('from a getter'), ...ODD]) {
      const calls: Array<[string, () => unknown, string]> = [
        ['send', () => rt.send('m', 1, throwing('key', v) as never), 'delayMs'],
        ['sendBatch', () => rt.sendBatch('m', [1], throwing('delayMs', v) as never), 'key'],
        ['sendAsync', () => rt.sendAsync('m', 1, throwing('signal', v) as never), 'timeoutMs'],
        ['sendBatchAsync', () => rt.sendBatchAsync('m', [1], throwing('timeoutMs', v) as never), 'key'],
        ['ask', () => rt.ask('m', 1, throwing('timeoutMs', v) as never), 'key'],
        ['actor defaults', () => rt.actor('act', throwing('signal', v) as never), 'timeoutMs'],
        ['actor request', () => rt.actor('act').request('k', { add: 1 } as never, throwing('timeoutMs', v) as never), 'signal'],
        ['createRuntime', () => createRuntime({ mailboxes: { x: throwing('handler', v) } } as never), 'handler'],
        ['createRuntime (a Proxy)', () => createRuntime(new Proxy({}, { ownKeys: () => { throw v; }, get: () => { throw v; } }) as never), 'mailboxes'],
      ];
      for (const [what, call] of calls) {
        const e = await expectCode(async () => call(), ErrorCodes.INVALID_OPTION);
        expect(e.cause, what).toBe(v);
      }
    }
    for (const call of [() => rt.send('m', 1, revoked() as never), () => rt.sendAsync('m', 1, revoked() as never), () => rt.ask('m', 1, revoked() as never), () => createRuntime(revoked() as never), () => rt.resize('m', revoked() as never)]) {
      // Was a TypeError ("Cannot perform 'IsArray' on a proxy that has been revoked") from describing the value.
      await expectCode(async () => call(), ErrorCodes.INVALID_OPTION);
    }
    expect(rt.stats('m').enqueued).toBe(0);
  });

  it('close() with options that throw rejects (RINGPOOL_INVALID_OPTION) instead of throwing, and can be called again', async () => {
    const rt = await started();
    let p: Promise<unknown> | undefined;
    expect(() => (p = rt.close(throwing('timeoutMs', 42) as never))).not.toThrow();
    await expectCode(p!, ErrorCodes.INVALID_OPTION);
    await expectCode(rt.close(7 as never), ErrorCodes.INVALID_OPTION);
    expect(rt.state).toBe('running');
    expect((await rt.close({ timeoutMs: 1_000 })).drained).toBe(true);
  });

  it('send options that are not an object, and an AbortSignal look-alike, are refused', async () => {
    const rt = await started();
    for (const o of [5, 'key', () => 1, true]) await expectCode(() => rt.send('m', 1, o as never), ErrorCodes.INVALID_OPTION);
    const fake = Object.create(AbortSignal.prototype) as AbortSignal;
    // Was a TypeError from signal.aborted / addEventListener on the look-alike.
    await expectCode(rt.sendAsync('m', 1, { signal: fake }), ErrorCodes.INVALID_OPTION);
    await expectCode(rt.ask('m', 1, { signal: fake }), ErrorCodes.INVALID_OPTION);
    // An actor reference's request() options were not checked: -1 was a timeout at once, 'abc' no timeout.
    await expectCode(rt.actor('act').request('k', { add: 1 } as never, { timeoutMs: -1 }), ErrorCodes.INVALID_OPTION);
    await expectCode(rt.actor('act').request('k', { add: 1 } as never, { timeoutMs: 'abc' as never }), ErrorCodes.INVALID_OPTION);
    expect(rt.stats('m').enqueued).toBe(0);
  });

  it('a key with a lone surrogate is refused: it would reach the handler as U+FFFD, one key for two', async () => {
    const rt = await started();
    for (const key of ['\uD800', 'a\uDC00b', 'x\uDBFF']) {
      await expectCode(() => rt.send('m', 1, { key }), ErrorCodes.INVALID_OPTION);
      await expectCode(() => rt.sendBatch('m', [1], { key }), ErrorCodes.INVALID_OPTION);
      await expectCode(() => rt.sendBatch('m', [1], { key: () => key }), ErrorCodes.INVALID_OPTION);
      await expectCode(rt.ask('act', 1, { key }), ErrorCodes.INVALID_OPTION);
      await expectCode(() => rt.actor('act').tell.add!(key, 1), ErrorCodes.INVALID_OPTION);
    }
    expect(rt.sendBatch('m', [1], { key: '\uD83D\uDE00' })).toHaveLength(1); // a pair is fine
  });

  it("an actor reference's tell of a method the mailbox does not have is refused, as its ask is (it was sent and dead-lettered)", async () => {
    const rt = await started();
    await expectCode(() => rt.actor('act').tell.nope!('k', 1), ErrorCodes.INVALID_OPTION);
    await expectCode(() => rt.actor('m').tell.add!('k', 1), ErrorCodes.INVALID_OPTION);
    await expectCode(rt.actor('m').ask.add!('k', 1), ErrorCodes.INVALID_OPTION);
    expect(rt.stats('act').enqueued + rt.stats('m').enqueued).toBe(0);
    expect(typeof rt.actor('act').tell.add!('k', 1)).toBe('number');
  });

  it('autoscale() takes true or false only (a truthy string turned the autoscaler off)', async () => {
    const rt = await started();
    for (const on of ['yes', 1, null, undefined]) await expectCode(() => rt.autoscale('m', on as never), ErrorCodes.INVALID_OPTION);
    expect(rt.stats('m').autoscale).toBe(true);
  });

  it('deadLetters().redrive/purge: a filter that is not a function, or that throws, is refused and changes nothing', async () => {
    const rt = runtime({ mailboxes: { d: { handler: fixture('fuzz-dead.js'), maxAttempts: 1, minThreads: 1, maxThreads: 1 } } });
    await rt.start();
    for (let i = 0; i < 3; i++) rt.send('d', { i });
    await until(() => rt.deadLetters('d').size === 3, 10_000, '3 dead letters');
    const d = rt.deadLetters('d');
    for (const op of ['redrive', 'purge'] as const) {
      // Was a TypeError ("filter is not a function").
      for (const f of ['all', 1, {}, null]) await expectCode(() => d[op](f as never), ErrorCodes.INVALID_OPTION);
      let seen = 0;
      const e = await expectCode(
        () =>
          d[op](() => {
            if (++seen === 2) throw null;
            return true;
          }),
        ErrorCodes.INVALID_OPTION,
      );
      expect(e.cause).toBe(null);
      expect(d.size).toBe(3); // all or nothing: the letter the filter took before it threw is still there
    }
  });

  it("a handler's ctx.send / ctx.sendBatch: hostile names, lengths, getters and keys all end in a coded error", async () => {
    const rt = await started();
    const got = (await rt.ask('bad', { to: 'm' }, { timeoutMs: 10_000 })) as Record<string, string>;
    expect(Object.keys(got).length).toBeGreaterThan(10);
    for (const [what, r] of Object.entries(got)) expect(r, what).toMatch(/^RingpoolError RINGPOOL_[A-Z_]+$/);
    // '__proto__' named no ring but Object.prototype: "not a ringpool ring" (a TypeError) before.
    expect(got["mailbox '__proto__'"]).toBe('RingpoolError RINGPOOL_UNKNOWN_MAILBOX');
    expect(got['sendBatch { length: 2 ** 31 }']).toBe('RingpoolError RINGPOOL_INVALID_OPTION');
    expect(rt.stats('m').enqueued).toBe(0);
  });

  it('serve(): every option checked as createRuntime checks its own; a port it cannot listen on is RINGPOOL_INVALID_OPTION naming it', async () => {
    const registry = new Registry();
    const bad: Array<[unknown, string]> = [
      [{ port: 0, host: 123 }, 'options.host'], // was a TypeError (h.includes is not a function)
      [{ port: 0, host: 'not a host' }, 'options.host'],
      [{ port: 0, host: '' }, 'options.host'],
      [42, 'options.serve'], // was accepted: it listened on 9464
      ['x', 'options.serve'],
      [{ port: 0, prot: 1 }, 'options.prot'],
      [{ port: 0, admin: null }, 'options.admin'],
      [{ port: 0, admin: [] }, 'options.admin'],
      [{ port: 0, admin: { tokn: 'x' } }, 'options.admin.tokn'],
      [{ port: 0, console: true, admin: { origins: ['javascript:alert(1)'] } }, 'options.admin.origins[0]'],
      [{ port: 0, console: true, admin: { origins: ['file:///etc'] } }, 'options.admin.origins[0]'],
      [{ port: 0, console: 1 }, 'options.console'],
      [{ port: '80' }, 'options.port'],
      [throwing('port', null), 'serve() options'],
      [revoked(), 'serve() options'],
    ];
    for (const [o, path] of bad) {
      const e = await expectCode(serve(registry, o as never), ErrorCodes.INVALID_OPTION);
      expect(e.message, String(path)).toContain(path);
    }
    const taken = await serve(registry, { port: 0 });
    servers.push(taken);
    // Was the plain Error of listen() (EADDRINUSE).
    const inUse = await expectCode(serve(registry, { port: taken.port }), ErrorCodes.INVALID_OPTION);
    expect(inUse.message).toContain(`${taken.port}`);
    expect((inUse.cause as NodeJS.ErrnoException).code).toBe('EADDRINUSE');
    expect((inUse as unknown as { details: { option: string } }).details.option).toBe('port');
  });

  it('createMetrics(): not a runtime, or options that throw, are RINGPOOL_INVALID_OPTION', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), minThreads: 0 } } });
    // Was a TypeError (reading the runtime's state and mailboxes).
    await expectCode(() => createMetrics({} as never, { registry: new Registry() }), ErrorCodes.INVALID_OPTION);
    await expectCode(() => createMetrics(rt, throwing('registry', null) as never), ErrorCodes.INVALID_OPTION);
    await expectCode(() => createMetrics(rt, { registry: new Registry(), buckets: new Proxy([0.1], { get: (o, k) => (k === 'length' ? 2 ** 31 : o[k as never]) }) }), ErrorCodes.INVALID_OPTION);
    expect(createMetrics(rt, { registry: new Registry() }).prefix).toBe('ringpool_');
  });

  it('createRuntime(): a durability dir with NUL, resourceLimits Node would ignore, and unparsable or ill-formed Redis names are refused', async () => {
    const handler = fixture('noop.js');
    const bad: Array<[object, string]> = [
      // Was accepted; start() then failed with RINGPOOL_JOURNAL_IO.
      [{ handler, durability: { dir: '/tmp/a\u0000b' } }, 'durability.dir'],
      // Was accepted and ignored by Node: the thread ran without the limit.
      [{ handler, resourceLimits: { maxOldGenerationSizeMb: 'x' } }, 'resourceLimits.maxOldGenerationSizeMb'],
      [{ handler, resourceLimits: { maxOldGenrationSizeMb: 64 } }, 'resourceLimits.maxOldGenrationSizeMb'],
      [{ handler, source: { redis: { url: 'redis://:::1:x', stream: 's' } } }, 'source.redis.url'],
      [{ handler, source: { redis: { url: 'redis://localhost', stream: 's\uD800' } } }, 'source.redis.stream'],
      [{ handler, source: { redis: { url: 'redis://localhost', stream: 's', consumer: '\uDC00' } } }, 'source.redis.consumer'],
    ];
    for (const [box, path] of bad) {
      const e = await expectCode(() => createRuntime({ mailboxes: { m: box as never } }), ErrorCodes.INVALID_OPTION);
      expect(e.message).toContain(`mailboxes.m.${path}`);
    }
    createRuntime({ mailboxes: { m: { handler, minThreads: 0, resourceLimits: { maxOldGenerationSizeMb: 64, stackSizeMb: 4 } } } });
  });

  it("the HTTP parser's refusals (headers over 16 KiB, a malformed request line) get the console's JSON error with a code", async () => {
    const registry = new Registry();
    const s = await serve(registry, { port: 0, console: true });
    servers.push(s);
    const raw = (text: string): Promise<string> =>
      new Promise((resolve) => {
        const c = connect(s.port, '127.0.0.1');
        let got = '';
        c.on('data', (d) => (got += d));
        c.on('end', () => resolve(got));
        c.on('error', () => resolve(got));
        c.write(text);
      });
    const big = await raw(`GET /api/mailboxes?x=${'y'.repeat(20_000)} HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\n\r\n`);
    expect(big.split('\r\n')[0]).toBe('HTTP/1.1 431 Request Header Fields Too Large');
    // Was the parser's bare status line with no body.
    expect(JSON.parse(big.slice(big.indexOf('\r\n\r\n') + 4))).toMatchObject({ code: 'RINGPOOL_CONSOLE_HEADERS_TOO_LARGE' });
    const line = await raw(`GET __proto__ HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\n\r\n`);
    expect(line.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
    expect(JSON.parse(line.slice(line.indexOf('\r\n\r\n') + 4))).toMatchObject({ code: 'RINGPOOL_CONSOLE_BAD_REQUEST' });
  });
});
