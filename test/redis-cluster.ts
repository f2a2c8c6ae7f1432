// A Redis Cluster of the test's own: three masters on loopback ports (redis-server --cluster-enabled yes, joined by
// redis-cli --cluster create), in a temporary directory, stopped (and deleted) by stop(). For the tests of Redis
// mailboxes on a cluster (issue #30); it never touches another Redis.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { createClient } from 'redis';

export interface TestCluster {
  /** redis:// URLs of the masters. */
  nodes: string[];
  stop(): Promise<void>;
}

/** A free port whose cluster bus port (+10000) is free too. */
async function clusterPort(): Promise<number> {
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
  for (;;) {
    const p = await listen(0);
    if (p + 10_000 > 65_535) continue;
    try {
      await listen(p + 10_000);
      return p;
    } catch {
      // taken: another
    }
  }
}

export async function startCluster(masters = 3): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'ringpool-cluster-'));
  const procs: ChildProcess[] = [];
  const ports: number[] = [];
  for (let i = 0; i < masters; i++) {
    const port = await clusterPort();
    ports.push(port);
    const d = join(dir, String(port));
    spawnSync('mkdir', ['-p', d]);
    procs.push(
      spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000', '--save', '', '--appendonly', 'no', '--dir', d], {
        stdio: 'ignore',
      }),
    );
  }
  const nodes = ports.map((p) => `redis://127.0.0.1:${p}`);
  const stop = async (): Promise<void> => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode === null && p.signalCode === null ? p.once('exit', r) : r(null)))));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const u of nodes) await answers(u, 10_000);
    const made = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: 30_000 });
    if (made.status !== 0) throw new Error(`redis-cli --cluster create failed: ${made.stdout}${made.stderr}`);
    for (const u of nodes) await clusterOk(u, 20_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes, stop };
}

async function answers(url: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const c = createClient({ url, socket: { reconnectStrategy: false } });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.ping();
      return;
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      c.destroy();
    }
  }
}

/** Every node sees the cluster ok (all slots served). */
async function clusterOk(url: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  const c = createClient({ url });
  c.on('error', () => undefined);
  await c.connect();
  try {
    for (;;) {
      const info = String(await c.sendCommand(['CLUSTER', 'INFO']));
      if (info.includes('cluster_state:ok')) return;
      if (Date.now() > end) throw new Error(`cluster not ok at ${url}: ${info}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    c.destroy();
  }
}
