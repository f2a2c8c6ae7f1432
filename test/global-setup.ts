/**
 * The suite's own set-up, so `npm test` works on a fresh machine:
 * - .ci/bootstrap installs the Debian packages the suite needs (prometheus,
 *   promtool, redis-server, chromium), or stops with one line naming what is missing;
 * - a Redis of our own on a free loopback port (never a Redis someone else
 *   runs: the suite touches no data it did not create), exported as REDIS_URL
 *   to the test files (the forks inherit this process's environment).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './net.js';

const root = fileURLToPath(new URL('..', import.meta.url));

function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

let redis: ChildProcess | null = null;
let redisDir = '';

export async function setup(): Promise<void> {
  const boot = spawnSync('bash', [join(root, '.ci', 'bootstrap')], { stdio: 'inherit' });
  if (boot.status !== 0) throw new Error('test set-up failed (.ci/bootstrap): see the line above');
  const port = await freePort();
  redisDir = mkdtempSync(join(tmpdir(), 'ringpool-redis-'));
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir], {
    stdio: 'ignore',
  });
  const end = Date.now() + 10_000;
  while (!(await pong(port))) {
    if (redis.exitCode !== null || Date.now() > end) throw new Error(`redis-server did not answer on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  process.env.REDIS_URL = `redis://127.0.0.1:${port}`;
}

export async function teardown(): Promise<void> {
  if (redis !== null && redis.exitCode === null) {
    const gone = new Promise((r) => redis!.once('exit', r));
    redis.kill('SIGTERM');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 3_000))]);
  }
  if (redisDir) rmSync(redisDir, { recursive: true, force: true });
}
