/**
 * A test downstream (issue #31), run as a child process by index.ts: an HTTP
 * server on loopback that serves at most `capacity` requests at once in
 * `serviceMs` each and queues the rest in arrival order, so its queueing shows
 * in its latency, as a database at its connection limit does. Told over IPC,
 * it answers 503 for a while, or 429 with Retry-After. It reports what it
 * saw: requests served, how long each waited in its queue, the most present
 * at once, arrivals per second.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { DownstreamCommand, DownstreamStats } from './index.js';
import { cli, toNumber } from '../cli.js';

const start = cli(
  {
    usage: 'node dist/examples/downstream/server.js [<capacity> [<serviceMs>]]        (forked by startDownstream(), examples/downstream/index.ts)',
    about: 'Listens on a free port of 127.0.0.1 and tells its parent the port over IPC; changed and read over IPC.',
    flags: {},
    positionals: [
      { name: 'capacity', help: 'requests served at once, the rest queued (an integer >= 1; default 8)', optional: true },
      { name: 'serviceMs', help: 'ms each request takes (a number >= 0; default 5)', optional: true },
    ],
  },
  ({ positionals: [c, ms] }) => ({
    capacity: c === undefined ? 8 : toNumber('<capacity>', c, { integer: true, min: 1 }),
    serviceMs: ms === undefined ? 5 : toNumber('<serviceMs>', ms, { min: 0 }),
  }),
);
let capacity = start.capacity;
let serviceMs = start.serviceMs;
let downUntil = 0;
let busyUntil = 0;
let retryAfterS = 1;

const queue: { res: ServerResponse; at: number }[] = [];
let qHead = 0;
let active = 0;
let present = 0;
let served = 0;
let refused = 0;
let maxPresent = 0;
let waits: number[] = [];
/** Arrivals per whole second since the server started (index: second). */
let perSecond: number[] = [];
const t0 = performance.now();

function pump(): void {
  while (active < capacity && qHead < queue.length) {
    const { res, at } = queue[qHead++]!;
    if (qHead > 4096 && qHead * 2 > queue.length) {
      queue.splice(0, qHead);
      qHead = 0;
    }
    active++;
    waits.push(performance.now() - at);
    setTimeout(() => {
      active--;
      present--;
      served++;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
      pump();
    }, serviceMs);
  }
}

function onRequest(req: IncomingMessage, res: ServerResponse): void {
  const at = performance.now();
  const sec = Math.floor((at - t0) / 1000);
  perSecond[sec] = (perSecond[sec] ?? 0) + 1;
  req.resume();
  req.on('end', () => {
    const now = Date.now();
    if (now < downUntil || now < busyUntil) {
      refused++;
      const down = now < downUntil;
      res.writeHead(down ? 503 : 429, down ? {} : { 'retry-after': String(retryAfterS) });
      res.end();
      return;
    }
    present++;
    if (present > maxPresent) maxPresent = present;
    queue.push({ res, at });
    pump();
  });
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}

function stats(reset: boolean): DownstreamStats {
  const out: DownstreamStats = {
    served,
    refused,
    capacity,
    serviceMs,
    present,
    maxPresent,
    queueP50Ms: percentile(waits, 0.5),
    queueP99Ms: percentile(waits, 0.99),
    perSecond: perSecond.map((n) => n ?? 0),
  };
  if (reset) {
    served = 0;
    refused = 0;
    maxPresent = present;
    waits = [];
    perSecond = [];
  }
  return out;
}

const server = createServer(onRequest);
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => {
  const a = server.address() as { port: number };
  process.send!({ port: a.port });
});
process.on('message', (m: DownstreamCommand & { seq: number }) => {
  if (m.capacity !== undefined) capacity = m.capacity;
  if (m.serviceMs !== undefined) serviceMs = m.serviceMs;
  if (m.downForMs !== undefined) downUntil = Date.now() + m.downForMs;
  if (m.busyForMs !== undefined) busyUntil = Date.now() + m.busyForMs;
  if (m.retryAfterS !== undefined) retryAfterS = m.retryAfterS;
  pump();
  process.send!({ seq: m.seq, stats: stats(m.reset === true) });
});
process.on('disconnect', () => process.exit(0));
