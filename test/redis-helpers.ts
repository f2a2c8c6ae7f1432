// Helpers of the Redis tests: an admin client on the suite's Redis (REDIS_URL from test/global-setup.ts) that
// deletes, after the file, every key under its prefix (plain and hash-tagged), and a consumer process
// (test/fixtures/redis-child.mjs) that resolves once it printed 'ready'.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll } from 'vitest';
import { createClient } from 'redis';
import { fixture } from './helpers.js';

export const url = process.env.REDIS_URL!;

/** An admin client whose keys under `prefix` (and `{prefix`) are deleted after the file, with the children it started. */
export function scratch(prefix: string) {
  const admin = createClient({ url });
  admin.on('error', () => undefined);
  const children: ChildProcess[] = [];
  let n = 0;
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    if (!admin.isOpen) return;
    for (const k of [...(await admin.keys(`${prefix}*`)), ...(await admin.keys(`{${prefix}*`))]) await admin.del(k);
    await admin.quit();
  });
  return {
    admin,
    /** Connect the admin client (once). */
    connected: async (): Promise<void> => {
      if (!admin.isOpen) await admin.connect();
    },
    /** A fresh stream name and its runs hash. */
    names: (): { stream: string; runs: string } => {
      const stream = `${prefix}-${++n}`;
      return { stream, runs: `${stream}:runs` };
    },
    /** A consumer process of `stream` (claimIdleMs 1 s) with redis-child.mjs's overrides. */
    child: (stream: string, consumer: string, overrides: object): Promise<ChildProcess> => {
      const args = [decodeURIComponent(fixture('redis-child.mjs').pathname), url, stream, consumer, '1000', JSON.stringify(overrides)];
      const c = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(c);
      return new Promise((resolve, reject) => {
        let text = '';
        c.stdout!.on('data', (d: Buffer) => {
          text += d.toString();
          if (text.includes('ready')) resolve(c);
        });
        c.once('exit', (code) => reject(new Error(`consumer ${consumer} exited with ${code} before it was ready: ${text}`)));
      });
    },
  };
}

/** A key's start as test/fixtures/redis-keyed.js records it: [pid, n, fence, time, time sent]. */
export type Start = [pid: number, n: number, fence: number, at: number, sent: number];

/**
 * Order per key: within a run of starts by one process, n never goes down (a retry runs n again, then n + 1);
 * another process may start again only at an n not yet recorded done before the hand-over... which this oracle
 * checks as: a process's first start of a key is never past the smallest n not yet done when it began (no gap),
 * and no n is skipped in the key's sequence. Returns the violations.
 */
export function orderViolations(starts: Map<string, Start[]>, killed: Set<number>): string[] {
  const bad: string[] = [];
  for (const [key, rows] of starts) {
    for (let i = 1; i < rows.length; i++) {
      const [pid, n] = rows[i]!;
      const [ppid, pn] = rows[i - 1]!;
      if (pid === ppid && n < pn) bad.push(`${key}: ${pid} started ${n} after ${pn}`);
      // Going back is allowed only when the previous runner died (its last ones may not have been acknowledged).
      if (pid !== ppid && n < pn && !killed.has(ppid)) bad.push(`${key}: ${pid} went back to ${n} after ${ppid}'s ${pn}, which did not die`);
      if (n > pn + 1) bad.push(`${key}: ${n} started after ${pn} (skipped)`);
    }
  }
  return bad;
}

