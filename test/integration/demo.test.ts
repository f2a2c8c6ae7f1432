import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = new URL('../..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'ringpool-demo-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** What /metrics answered while the demo ran ('' if it was not reached). */
  scrape: string;
  /** What the console's /api/mailboxes answered while the demo ran ('' if it was not reached). */
  consoleApi: string;
}

/** Runs the built demo; scrapes /metrics once its URL is printed; `onLine` may act on each stdout line. */
function demo(args: string[], onLine?: (line: string, kill: (sig: NodeJS.Signals) => void) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['dist/examples/demo.js', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let scrape: Promise<string> = Promise.resolve('');
    let consoleApi: Promise<string> = Promise.resolve('');
    let pending = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        const m = /metrics: (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(line);
        if (m) scrape = fetch(m[1]!).then((r) => r.text()).catch((err: Error) => `scrape failed: ${err.message}`);
        const c = /console: (http:\/\/127\.0\.0\.1:\d+)\//.exec(line);
        if (c) consoleApi = fetch(`${c[1]!}/api/mailboxes`).then((r) => r.text()).catch((err: Error) => `console failed: ${err.message}`);
        onLine?.(line, (sig) => child.kill(sig));
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      void Promise.all([scrape, consoleApi]).then(([text, api]) => resolve({ code, stdout, stderr, scrape: text, consoleApi: api }));
    });
  });
}

function summaryOf(run: Run): Record<string, any> {
  const last = run.stdout.trimEnd().split('\n').at(-1)!;
  return JSON.parse(last) as Record<string, any>;
}

// The demo (npm start) in its short mode: the story's promises are asserted, its timings are not.
describe('demo (npm start --short)', () => {
  it('absorbs the burst without blocking the producer, accounts for every request, scales 1 -> 2 -> 1, writes the SVG', async () => {
    const out = join(dir, 'timeline.svg');
    const run = await demo(['--short', '--port', '0', '--out', out, '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const s = summaryOf(run);

    // The producer never blocked: every send() accepted at once, no QUEUE_FULL.
    expect(s.queueFull).toBe(0);
    expect(s.otherRefusals).toBe(0);
    expect(s.accepted).toBe(s.offered);
    expect(s.producerBlocked).toBe(false);
    expect(s.offered).toBeGreaterThan(1000);

    // Every request processed or dead-lettered, nothing lost.
    expect(s.processed + s.deadLettered).toBe(s.offered);
    expect(s.lost).toBe(0);
    expect(s.drained).toBe(true);

    // The poison requests, and only they, are dead letters.
    expect(s.poison).toBe(3);
    expect(s.deadLettered).toBe(s.poison);
    expect(s.poisonDeadLettered).toBe(s.poison);

    // The autoscaler added the second thread and retired it within the run.
    // (The demo itself waits for the scale-down, bounded, before it summarises: no timing is assumed here.)
    expect(s.maxThreads).toBe(2);
    expect(s.peakThreads).toBe(2);
    expect(s.firstScaleUpAtSeconds).not.toBeNull();
    expect(s.finalThreads).toBe(1);
    expect(s.backToOneThreadAtSeconds).not.toBeNull();

    // The saturated episode (issue #31): handlers called the real downstream, under adaptive concurrency by default.
    expect(s.protect).toBe(true);
    expect(s.downstream.served).toBeGreaterThan(0);
    expect(s.downstream.maxInIt).toBeGreaterThan(0);
    expect(run.stdout).toMatch(/the saturated downstream saw +[\d,]+ calls, at most \d+ in it at once \(it serves 8\)/);

    // Status lines while it ran, the summary table, /metrics answered.
    expect(run.stdout.match(/^\s+\d+\.\d\s+(base|BURST|satur|drain)\s+[\d,]+\s+[\d,]+\s+[\d,]+/gm)?.length ?? 0).toBeGreaterThanOrEqual(3);
    expect(run.stdout).toMatch(/^summary$/m);
    expect(run.stdout).toMatch(/producer blocked\s+no/);
    expect(run.scrape).toMatch(/^ringpool_queue_depth\{mailbox="requests"\} \d+$/m);
    expect(run.scrape).toMatch(/^ringpool_end_to_end_seconds_bucket\{/m);
    // The operator console is served next to it, its URL printed.
    expect(JSON.parse(run.consoleApi).mailboxes.map((m: { name: string }) => m.name)).toContain('requests');

    // The SVG timeline: where the summary says, and SVG-shaped.
    expect(s.svg).toBe(out);
    const svg = readFileSync(out, 'utf8');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<svg\b/g)).toHaveLength(1);
    for (const title of ['queue depth', 'threads', 'end-to-end p99']) expect(svg).toContain(title);
    expect(svg.match(/<path d="M[\d.]+ [\d.]+( L[\d.]+ [\d.]+)+/g)?.length ?? 0).toBeGreaterThanOrEqual(4);
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
    // Tags balance (a cheap well-formedness check: no nesting besides <svg>).
    const opened = (svg.match(/<(?!\/)[a-z]+\b[^>]*[^/]>/g) ?? []).length;
    const closed = (svg.match(/<\/[a-z]+>/g) ?? []).length;
    expect(opened).toBe(closed);
  }, 60_000);

  it('SIGTERM (as Ctrl-C, one handler) stops the producer, drains within close()\'s timeout, and exits with the summary', async () => {
    let sent = false;
    const run = await demo(['--short', '--port', '0', '--out', join(dir, 'interrupted.svg'), '--json'], (line, kill) => {
      // After the first status line: the burst is queued or draining.
      if (!sent && /^\s+\d+\.\d\s+(base|BURST)/.test(line)) {
        sent = true;
        kill('SIGTERM');
      }
    });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/Ctrl-C or SIGTERM: the API stops sending/);
    const s = summaryOf(run);
    expect(s.interrupted).toBe(true);
    expect(s.drained).toBe(true);
    expect(s.lost).toBe(0);
    expect(s.processed + s.deadLettered).toBe(s.offered);
    expect(s.deadLettered).toBe(s.poison);
    expect(s.queueFull).toBe(0);
    expect(readFileSync(s.svg, 'utf8')).toMatch(/<\/svg>\s*$/);
  }, 60_000);

  it('--help lists the options', async () => {
    const run = await demo(['--help']);
    expect(run.code).toBe(0);
    for (const opt of ['--duration', '--rate', '--base', '--burst', '--per-thread', '--threads', '--port', '--short', '--out', '--json']) {
      expect(run.stdout).toContain(opt);
    }
  });
});
