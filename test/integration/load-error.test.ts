// A consumer thread that cannot load its handler after start() (a crash's replacement, files replaced under the
// running process): the runtime says so (an 'error' event, RINGPOOL_HANDLER_LOAD) and tries a new loop with a
// backoff (100 ms doubling to 5 s), never in a tight loop (it respawned at once, at full CPU, and said nothing);
// the messages wait in the ring, and close() ends it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from 'ringpool';
import { fixture, runtime, until } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'ringpool-load-'));
const flag = join(dir, 'flag');
process.env.RINGPOOL_TEST_LOAD_FLAG = flag;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a handler that fails to load after start()', () => {
  for (const threads of ['shared', 'dedicated'] as const) {
    it(`${threads} threads: an error event, new loops tried with a backoff, the messages kept`, async () => {
      rmSync(flag, { force: true });
      const rt = runtime({ mailboxes: { m: { handler: fixture('load-flag.js'), threads, minThreads: 1, maxThreads: 1, autoscale: false, maxAttempts: 3 } } });
      const codes: string[] = [];
      rt.on('error', (e) => codes.push((e as { code: string }).code));
      await rt.start();
      try {
        writeFileSync(flag, '1');
        rt.send('m', { exit: true });
        for (let i = 0; i < 10; i++) rt.send('m', { i });
        await until(() => codes.includes(ErrorCodes.HANDLER_LOAD), 10_000, 'the load failure said');
        const first = codes.length;
        // 3 s of backoff: 100 + 200 + 400 + 800 + 1,600 ms holds at most 6 tries; a respawn at once made thousands.
        await new Promise((r) => setTimeout(r, 3_000));
        const tries = codes.filter((c) => c === ErrorCodes.HANDLER_LOAD).length;
        expect(tries).toBeGreaterThanOrEqual(first);
        expect(tries).toBeLessThanOrEqual(8);
        const s = rt.stats('m');
        expect(s.processed).toBe(0);
        expect(s.depth + s.inFlight).toBe(11);
      } finally {
        const report = await rt.close({ timeoutMs: 2_000 });
        expect(report.left.m!.ready + report.left.m!.inFlight).toBe(11);
      }
    }, 30_000);
  }
});
