import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../net.js';

const root = new URL('../..', import.meta.url).pathname;
const out = mkdtempSync(join(tmpdir(), 'ringpool-bench-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** Run a built bench script; resolves with its exit code and output whatever the code. */
function node(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const opts = { cwd: root, timeout: 110_000, maxBuffer: 16 << 20, env: { ...process.env, ...env } };
    execFile(process.execPath, args, opts, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

/** Run the built suite. */
const suite = (args: string[], env: Record<string, string> = {}) => node(['--expose-gc', 'dist/bench/suite.js', ...args], env);


interface Result {
  subjects: Array<{ id: string; label: string; workloads: string[] }>;
  skipped: Array<{ subject: string; reason: string }>;
  workloads: Record<string, Array<{ subject: string; median: Record<string, number> | null; errors: string[] }>>;
}

// The benchmark harness runs one tiny iteration of every system in CI so it cannot rot.
// Its figures are not asserted (quick mode measures nothing, and the machine is shared):
// only that every row ran, or was skipped with its reason printed.
describe('bench suite (npm run bench), quick mode', () => {
  it('bench:many, bench:fairness (issue #28), bench:takeover (issue #29), bench:redis-cross (issue #30) and bench:protect (issue #31) run one tiny iteration and print their results', async () => {
    const many = await node(['dist/bench/many.js', '--counts', '1,3', '--threads', 'shared,dedicated', '--seconds', '0.2', '--runs', '1']);
    expect(many.code, many.stderr).toBe(0);
    expect(many.stdout).toMatch(/^ *shared +3 +1 /m);
    expect(many.stdout).toMatch(/^ *dedicated +3 +3 /m);
    const fair = await node(['dist/bench/fairness.js', '--seconds', '0.3']);
    expect(fair.code, fair.stderr).toBe(0);
    expect(fair.stdout).toMatch(/beside a saturating neighbour +\d+ +\d+/);
    const take = await node(['dist/bench/takeover.js', '--kills', '1', '--lease', '500', '--renew', '100']);
    expect(take.code, take.stderr).toBe(0);
    expect(take.stdout).toMatch(/takeover after SIGKILL: p50 \d+ ms, p99 \d+ ms/);
    // Issue #30: delayed precision, ask round trip against BullMQ, W1 on a Redis Cluster of its own.
    const cross = await node(['dist/bench/redis-cross.js', '--tiny']);
    expect(cross.code, cross.stderr).toBe(0);
    expect(cross.stdout).toMatch(/delayed: 200 pending .* lateness p50 -?[\d.]+ ms, p99 -?[\d.]+ ms/);
    expect(cross.stdout).toMatch(/ratio p50 [\d.]+x, p99 [\d.]+x/);
    expect(cross.stdout).toMatch(/cluster\/single [\d.]+x/);
    // Issue #31: the rate limit's accuracy, adaptive against fixed concurrency on the test downstream.
    const protect = await node(['dist/bench/protect.js', '--tiny']);
    expect(protect.code, protect.stderr).toBe(0);
    expect(protect.stdout).toMatch(/rate limit 1000\/s: achieved \d+\/s = [\d.]+x of max/);
    expect(protect.stdout).toMatch(/^adaptive +\d+ +[\d.]+x +[\d.]+ +[\d.]+ +\d+ +\d+$/m);
  }, 75_000);

  it('runs every system on every workload it applies to, or prints why it skipped it', async () => {
    const { code, stdout, stderr } = await suite(['--quick', '--out', out]);
    const result = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')) as Result;
    for (const s of result.subjects) {
      const skip = result.skipped.find((x) => x.subject === s.id);
      if (skip) {
        expect(stdout).toContain(`skip ${s.label}: ${skip.reason}`);
        continue;
      }
      for (const w of s.workloads) {
        const row = result.workloads[w]?.find((r) => r.subject === s.id);
        expect(row?.errors, `${w} ${s.label}`).toEqual([]);
        expect(row?.median, `${w} ${s.label}`).not.toBeNull();
      }
    }
    // Every system of issue #6 is in the line-up.
    const ids = result.subjects.map((s) => s.id);
    for (const id of ['ringpool-1t', 'ringpool-2t', 'ringpool-1t-metrics', 'ringpool-1t-v8', 'ringpool-1t-raw', 'ringpool-2t-keyed', 'ring-1t', 'piscina-run-1t', 'piscina-batch-2t', 'tinypool-1t', 'workerpool-2t', 'postmessage-1t', 'bullmq', 'bullmq-bulk', 'ringpool-redis-1p', 'ringpool-redis-2p', 'ringpool-redis-3p', 'ringpool-redis-keyed-2p']) {
      expect(ids).toContain(id);
    }
    expect(stdout).toMatch(/cores, \d+ GiB, Node v\d+/); // the machine header
    expect(readFileSync(join(out, 'latest.svg'), 'utf8')).toMatch(/^<svg [^>]*>[\s\S]*W1 tiny[\s\S]*<\/svg>\n$/);
    expect(readFileSync(join(out, 'latest.md'), 'utf8')).toContain('| system | msgs/s |');
    expect(code, stderr).toBe(0);
  }, 120_000);

  it('skips BullMQ with the reason printed when no Redis answers', async () => {
    const port = await freePort();
    const { code, stdout } = await suite(['--quick', '--only', 'w1', '--systems', 'bullmq', '--out', out], { REDIS_URL: `redis://127.0.0.1:${port}` });
    expect(stdout).toMatch(new RegExp(`skip BullMQ[^:]*: no Redis answered at redis://127.0.0.1:${port}`));
    expect(code).toBe(0);
  });

  it('npm run bench hands its flags to the suite (bench/run.ts), not to the ask benchmark after it', async () => {
    const r = await node(['dist/bench/run.js', '--help']);
    expect(r.stdout).toMatch(/--runs N[\s\S]*--docs/);
    expect(r.stdout).not.toContain('ask() round trip');
    expect(r.code).toBe(0);
  });

  it('answers --help and refuses an unknown flag', async () => {
    expect((await suite(['--help'])).stdout).toMatch(/--runs N[\s\S]*--quick/);
    const bad = await suite(['--frobnicate']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown flag --frobnicate');
  });
});
