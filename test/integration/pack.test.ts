/**
 * The package as a user gets it (issue 26, item 10: a clean clone packed 9
 * files and no dist/). A git clone of this checkout's HEAD (no dist/, no
 * node_modules: what CI and a publisher start from), `npm ci` and `npm pack`
 * there (prepack builds dist/), the tarball installed into an empty project,
 * then from that project: the README's quick start, copied out of README.md as
 * it stands, run with node (real worker threads), and an import of each export
 * subpath, the console's page served from the installed package included.
 *
 * Uncommitted changes are not in the clone: commit before running this file.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'ringpool-pack-test-'));
const clone = join(work, 'clone');
const out = join(work, 'out');
const app = join(work, 'app');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

// The parent npm's npm_* variables (npm_config_local_prefix, npm_package_json, ...) describe this
// checkout, not the clone or the app: the nested npm and node runs get none of them.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));

function run(cmd: string, args: string[], cwd: string, timeoutMs = 120_000): Promise<Run> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

async function must(cmd: string, args: string[], cwd: string): Promise<Run> {
  const r = await run(cmd, args, cwd);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** The README's quick start: the first js block under "## Quick start", cut into files at its `// <file>.js` lines. */
function quickStart(): Map<string, string> {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const at = readme.indexOf('\n## Quick start\n');
  expect(at, 'README.md has a "## Quick start" section').toBeGreaterThan(0);
  const block = /```js\n([\s\S]*?)```/.exec(readme.slice(at));
  expect(block, 'the quick start has a ```js block').not.toBeNull();
  const files = new Map<string, string>();
  let file: string | null = null;
  for (const line of block![1]!.split('\n')) {
    const head = /^\/\/ ([\w./-]+\.js)\b/.exec(line);
    if (head) files.set((file = head[1]!), '');
    if (file !== null) files.set(file, files.get(file)! + line + '\n');
  }
  return files;
}

const timings: Record<string, number> = {};
let tarball = '';
let packed: string[] = [];
/** node_modules of the empty project after installing the tarball alone. */
let installedAlone: string[] = [];

beforeAll(async () => {
  timings.clone = (await must('git', ['clone', '--quiet', root, clone], work)).ms;
  const dirty = (await must('git', ['status', '--porcelain', '--untracked-files=no'], root)).stdout.trim();
  if (dirty !== '') console.warn(`pack test: packing HEAD; these uncommitted changes are not in it:\n${dirty}`);
  timings.npmCi = (await must('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], clone)).ms;
  mkdirSync(out);
  timings.pack = (await must('npm', ['pack', '--pack-destination', out], clone)).ms;
  const tgz = readdirSync(out).filter((f) => f.endsWith('.tgz'));
  expect(tgz).toHaveLength(1);
  tarball = join(out, tgz[0]!);
  packed = (await must('tar', ['-tzf', tarball], work)).stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.replace(/^package\//, ''));
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'quick-start', private: true, type: 'module' }, null, 2));
  timings.install = (await must('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], app)).ms;
  installedAlone = readdirSync(join(app, 'node_modules'));
  // ringpool/metrics takes the user's prom-client Registry (an optional peer): a metrics user installs it.
  timings.promClient = (await must('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', 'prom-client@^15'], app)).ms;
}, 300_000);

afterAll(() => {
  console.log(`pack test timings (ms): ${Object.entries(timings).map(([k, v]) => `${k} ${Math.round(v)}`).join(', ')}`);
  rmSync(work, { recursive: true, force: true });
});

describe('the package, packed from a clean clone', () => {
  it('holds the built entry points, the console page and the LICENSE, and nothing of the tests, benchmarks or examples', () => {
    const pkg = JSON.parse(readFileSync(join(clone, 'package.json'), 'utf8')) as { exports: Record<string, string | Record<string, string>> };
    const targets = Object.values(pkg.exports).flatMap((t) => (typeof t === 'string' ? [t] : Object.values(t)));
    for (const t of targets) expect(packed, `exports target ${t}`).toContain(t.replace(/^\.\//, ''));
    expect(existsSync(join(clone, 'dist', 'runtime', 'index.js')), 'prepack built dist/ in the clone').toBe(true);
    for (const f of ['LICENSE', 'README.md', 'CHANGELOG.md', 'dist/workers/loop/entry.cjs', 'dist/runtime/store/journal/thread.js', 'metrics/console/assets/index.html']) {
      expect(packed, f).toContain(f);
    }
    const stray = packed.filter(
      (f) =>
        !/^(dist\/(runtime|workers|metrics)\/.+\.(js|cjs|d\.ts|d\.cts)|metrics\/console\/assets\/[\w.-]+|package\.json|README\.md|CHANGELOG\.md|ARCHITECTURE\.md|LICENSE)$/.test(f),
    );
    expect(stray, 'files outside what ships (tests, benchmarks, examples, source maps, .ts sources)').toEqual([]);
    expect(readFileSync(join(app, 'node_modules', 'ringpool', 'LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) 2026 ringpool contributors\n/);
  });

  it('installs with piscina, comlink and msgpackr only: node-redis, prom-client and OpenTelemetry are optional peers (issue #32)', () => {
    for (const dep of ['piscina', 'comlink', 'msgpackr', 'ringpool']) expect(installedAlone, dep).toContain(dep);
    for (const peer of ['redis', '@redis', 'prom-client', '@opentelemetry', 'bintrees', 'tdigest']) expect(installedAlone, peer).not.toContain(peer);
  });

  it("require('ringpool') from CommonJS works (Node >= 20.19 loads the ES module synchronously)", async () => {
    writeFileSync(join(app, 'noop.js'), 'export default async function () {}\n');
    writeFileSync(
      join(app, 'cjs.cjs'),
      `const { createRuntime } = require('ringpool');
const { UnrecoverableError } = require('ringpool/worker');
const { createMetrics } = require('ringpool/metrics');
const { redisProducer } = require('ringpool/redis');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
(async () => {
  const rt = createRuntime({ mailboxes: { m: { handler: pathToFileURL(path.join(__dirname, 'noop.js')) } } });
  await rt.start();
  for (let i = 0; i < 10; i++) rt.send('m', { i });
  await rt.onIdle();
  console.log(JSON.stringify({ processed: rt.stats('m').processed, kinds: [typeof UnrecoverableError, typeof createMetrics, typeof redisProducer] }));
  await rt.close();
})();
`,
    );
    const r = await run(process.execPath, ['cjs.cjs'], app, 60_000);
    expect(r.code, `node cjs.cjs: ${r.stderr}`).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1)!)).toEqual({ processed: 10, kinds: ['function', 'function', 'function'] });
  }, 60_000);

  it("runs the README's quick start from the installed tarball, on worker threads", async () => {
    const files = quickStart();
    expect([...files.keys()]).toContain('main.js');
    for (const [file, text] of files) {
      mkdirSync(dirname(join(app, file)), { recursive: true });
      writeFileSync(join(app, file), text);
    }
    const r = await run(process.execPath, ['main.js'], app, 60_000);
    timings.quickStart = r.ms;
    expect(r.code, `node main.js: ${r.stderr}`).toBe(0);
    // The handlers ran on the runtime's threads: 2 orders acked, the one without a sku dead-lettered.
    expect(r.stdout).toMatch(/processed: 2,/);
    expect(r.stdout).toMatch(/deadLettered: 1,/);
    expect(r.stdout).toMatch(/threads: [12],/);
    expect(r.stderr).toContain("dead letter { id: 3 } unrecoverable no sku");
  }, 60_000);

  it('imports each export subpath from the installed package, and serves the console page from it', async () => {
    writeFileSync(join(app, 'noop.js'), 'export default async function () {}\n');
    writeFileSync(
      join(app, 'subpaths.js'),
      `import { Registry } from 'prom-client';
const out = {};
for (const s of ['ringpool', 'ringpool/worker', 'ringpool/metrics', 'ringpool/redis']) {
  out[s] = { url: import.meta.resolve(s), names: Object.keys(await import(s)).sort() };
}
out.version = (await import('ringpool/package.json', { with: { type: 'json' } })).default.version;
const { createRuntime } = await import('ringpool');
const { createMetrics, serve } = await import('ringpool/metrics');
const rt = createRuntime({ mailboxes: { m: { handler: new URL('./noop.js', import.meta.url) } } });
await rt.start();
const registry = new Registry();
createMetrics(rt, { registry });
const server = await serve(registry, { port: 0, console: true });
const page = await fetch(server.url + '/');
out.page = { status: page.status, html: await page.text() };
out.metrics = await (await fetch(server.url + '/metrics')).text();
await server.close();
await rt.close();
console.log(JSON.stringify(out));
`,
    );
    const r = await run(process.execPath, ['subpaths.js'], app, 60_000);
    timings.subpaths = r.ms;
    expect(r.code, `node subpaths.js: ${r.stderr}`).toBe(0);
    const got = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, any>;
    const installed = new URL(`file://${join(app, 'node_modules', 'ringpool', 'dist')}/`).href;
    const expected: Record<string, string[]> = {
      ringpool: ['createRuntime', 'RingpoolError', 'ErrorCodes', 'mailboxDefaults'],
      'ringpool/worker': ['UnrecoverableError', 'actor'],
      'ringpool/metrics': ['createMetrics', 'serve'],
      'ringpool/redis': ['redisProducer'],
    };
    for (const [s, names] of Object.entries(expected)) {
      expect(got[s].url, s).toMatch(new RegExp(`^${installed.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      expect(got[s].names, s).toEqual(expect.arrayContaining(names));
    }
    expect(got.version).toBe(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
    expect(got.page.status).toBe(200);
    expect(got.page.html).toContain('<script');
    expect(got.metrics).toContain('ringpool_queue_depth{mailbox="m"} 0');
  }, 60_000);
});

