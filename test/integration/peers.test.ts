// Dependencies shaped for users (issue #32): @redis/client and prom-client are optional peers. With them hidden (a
// resolve hook, test/fixtures/no-peers.mjs, as in a project that installed ringpool alone) the in-memory queue runs,
// ringpool/metrics and ringpool/redis load (neither imports its peer until used), and a Redis mailbox's start() fails
// with RINGPOOL_PEER_MISSING naming @redis/client. (pack.test.ts installs the packed tarball into an empty project:
// only piscina, comlink and msgpackr come with it.)
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { fixture } from '../helpers.js';

describe('optional peers', () => {
  it('without @redis/client and prom-client: the in-memory queue runs; a Redis mailbox names the package it needs', () => {
    const r = spawnSync(process.execPath, ['--import', fixture('no-peers.mjs').href, fixture('no-peers-run.mjs').pathname], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(out.processed).toBe(100);
    expect(out.metrics).toBe('function');
    expect(out.redisModule).toBe('function');
    expect(out.redis.code).toBe('RINGPOOL_PEER_MISSING');
    expect(out.redis.package).toBe('@redis/client');
    expect(out.redis.message).toMatch(/needs the package '@redis\/client', which is not installed: npm install @redis\/client/);
  });
});
