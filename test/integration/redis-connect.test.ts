// Connections as users have them (issue #30), on redis-servers of this test's own (loopback, temporary directory):
// one that needs a password, one that speaks only TLS with a certificate of a CA made here (openssl). A Redis mailbox
// and a redisProducer connect with node-redis client options beside the URL (password; TLS with the CA), or through
// an existing client (duplicated, the user's own never opened); without them they fail to start with
// RINGPOOL_SOURCE_IO. The handlers record their runs in the suite's Redis.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from 'redis';
import { ErrorCodes, type MailboxOptions } from 'ringpool';
import { redisProducer } from 'ringpool/redis';
import { expectCode, fixture, runtime, untilAsync } from '../helpers.js';
import { freePort } from '../net.js';
import { scratch, url } from '../redis-helpers.js';

const { admin, connected, names } = scratch(`ringpool-test-connect-${process.pid}`);
const dir = mkdtempSync(join(tmpdir(), 'ringpool-connect-'));
const servers: ChildProcess[] = [];
let authUrl = '';
let tlsUrl = '';
let ca = '';

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr}`);
}

async function server(args: string[], probe: Parameters<typeof createClient>[0]): Promise<void> {
  const p = spawn('redis-server', ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...args], { stdio: 'ignore' });
  servers.push(p);
  const end = Date.now() + 10_000;
  for (;;) {
    const c = createClient({ ...probe, socket: { ...(probe as { socket?: object }).socket, reconnectStrategy: false } } as never);
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.ping();
      c.destroy();
      return;
    } catch (err) {
      c.destroy();
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

beforeAll(async () => {
  const ap = await freePort();
  authUrl = `redis://127.0.0.1:${ap}`;
  await server(['--port', String(ap), '--requirepass', 'sesame'], { url: authUrl, password: 'sesame' });
  openssl(['req', '-x509', '-new', '-nodes', '-newkey', 'rsa:2048', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=ringpool-test-ca']);
  openssl(['req', '-new', '-nodes', '-newkey', 'rsa:2048', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf']);
  ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
  const tp = await freePort();
  tlsUrl = `rediss://127.0.0.1:${tp}`;
  await server(['--port', '0', '--tls-port', String(tp), '--tls-cert-file', join(dir, 'server.crt'), '--tls-key-file', join(dir, 'server.key'), '--tls-ca-cert-file', join(dir, 'ca.crt'), '--tls-auth-clients', 'no'], {
    url: tlsUrl,
    socket: { tls: true, ca } as never,
  });
}, 60_000);
afterAll(async () => {
  for (const s of servers) s.kill('SIGKILL');
  await Promise.all(servers.map((s) => new Promise((r) => (s.exitCode === null && s.signalCode === null ? s.once('exit', r) : r(null)))));
  rmSync(dir, { recursive: true, force: true });
});

function box(stream: string, redis: Record<string, unknown>): MailboxOptions {
  return { handler: fixture('redis-stamp.js'), maxThreads: 1, concurrency: 4, source: { redis: { stream, blockMs: 100, ...redis } } } as MailboxOptions;
}

/** A runtime on `redis` runs what it and a producer on `producer` send. */
async function roundTrip(redis: Record<string, unknown>, producer: Record<string, unknown>): Promise<void> {
  const { stream, runs } = names();
  const rt = runtime({ mailboxes: { work: box(stream, redis) } });
  await rt.start();
  try {
    rt.send('work', { i: 1, url, runs });
    const p = redisProducer({ stream, ...producer } as never);
    await p.sendAsync({ i: 2, url, runs });
    await p.close();
    await untilAsync(async () => (await admin.hLen(runs)) === 2, 10_000, 'both run');
  } finally {
    await rt.close();
  }
}

describe('connections: client options, an existing client, TLS', () => {
  it('a password in clientOptions (or in the URL); without it start() fails with RINGPOOL_SOURCE_IO', async () => {
    await connected();
    await roundTrip({ url: authUrl, clientOptions: { password: 'sesame' } }, { url: authUrl, clientOptions: { password: 'sesame' } });
    await roundTrip({ url: authUrl.replace('//', '//default:sesame@') }, { url: authUrl.replace('//', '//default:sesame@') });
    const rt = runtime({ startTimeoutMs: 1_500, mailboxes: { work: box(names().stream, { url: authUrl }) } });
    expect((await expectCode(rt.start(), ErrorCodes.SOURCE_IO)).message).toMatch(/NOAUTH|auth/i);
  }, 30_000);

  it("an existing client: ringpool's connections are duplicates of it, and the user's own is never opened", async () => {
    await connected();
    const mine = createClient({ url: authUrl, password: 'sesame' });
    await roundTrip({ client: mine }, { client: mine });
    expect(mine.isOpen).toBe(false);
  }, 30_000);

  it('TLS with a CA in clientOptions.socket; without the CA the certificate is refused', async () => {
    await connected();
    await roundTrip({ url: tlsUrl, clientOptions: { socket: { tls: true, ca } } }, { url: tlsUrl, clientOptions: { socket: { tls: true, ca } } });
    const rt = runtime({ startTimeoutMs: 1_500, mailboxes: { work: box(names().stream, { url: tlsUrl, clientOptions: { socket: { tls: true } } }) } });
    expect((await expectCode(rt.start(), ErrorCodes.SOURCE_IO)).message).toMatch(/certificate/i);
  }, 30_000);
});
