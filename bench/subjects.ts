/**
 * The rows of the benchmark: each system in each configuration, and which
 * workloads it runs. ringpool's knobs (codec, metrics, keys) are rows of
 * their own on the workloads where they matter.
 */
import { openNaiveRing } from './naive-ring.js';
import type { Subject, WorkloadId } from './session.js';
import { openBullmq, redisAvailable, redisUrl } from './systems/bullmq.js';
import { KEYED_PARTITIONS, openRingpoolRedis } from './systems/ringpool-redis.js';
import { openPiscina } from './systems/piscina.js';
import { openPostMessage } from './systems/post-message.js';
import { openRingpool, type RingpoolConfig } from './systems/ringpool.js';
import { openTinypool } from './systems/tinypool.js';
import { openWorkerpool } from './systems/workerpool.js';

const ALL: readonly WorkloadId[] = ['w1', 'w2', 'w3', 'w4', 'w5'];
const always = async (): Promise<null> => null;
const threadsLabel = (n: number): string => (n === 1 ? '1 thread' : `${n} threads`);

export interface LineupOptions {
  /** BullMQ worker concurrency. */
  bullmqConcurrency: number;
  /** --quick: fewer of the rows that only vary a size (the keyed Redis rows: 2 processes only). */
  quick?: boolean;
}

function ringpool(threads: number, knobs: Partial<RingpoolConfig>, workloads: readonly WorkloadId[]): Subject {
  const cfg: RingpoolConfig = { threads, codec: 'json', metrics: false, keys: 0, durability: 'memory', batch: 0, tracing: 'default', ...knobs };
  const parts = [
    cfg.durability !== 'memory' ? `journal fsync ${cfg.durability}${cfg.durability === 'interval' ? ' 5 ms' : ''}, ${cfg.batch > 0 ? `sendBatchAsync of ${cfg.batch}` : 'sendAsync'}` : '',
    cfg.codec !== 'json' ? `codec ${cfg.codec}` : '',
    cfg.metrics ? 'metrics on' : '',
    cfg.keys > 0 ? `keyed (${cfg.keys.toLocaleString('en-US')} keys)` : '',
    cfg.batch > 0 && cfg.durability === 'memory' ? `sendBatch of ${cfg.batch}` : '',
    cfg.tracing === 'off' ? 'tracing: false' : cfg.tracing === 'on' ? 'traced (a provider on every thread)' : '',
    cfg.store ? 'a store attached (keeps nothing)' : '',
  ].filter(Boolean);
  const suffix = [
    cfg.codec !== 'json' ? cfg.codec : '',
    cfg.metrics ? 'metrics' : '',
    cfg.keys > 0 ? 'keyed' : '',
    cfg.durability !== 'memory' ? `journal-${cfg.durability}` : '',
    cfg.batch > 0 ? `batch${cfg.batch}` : '',
    cfg.tracing === 'off' ? 'untraced' : cfg.tracing === 'on' ? 'traced' : '',
    cfg.store ? 'store' : '',
  ].filter(Boolean);
  return {
    id: ['ringpool', `${threads}t`, ...suffix].join('-'),
    label: ['ringpool', threadsLabel(threads), ...parts].join(', '),
    system: 'ringpool',
    threads,
    speed: 'fast',
    payload: cfg.codec === 'raw' ? 'bytes' : 'object',
    workloads,
    available: always,
    open: (spec) => openRingpool(cfg, spec),
  };
}

export function lineup(o: LineupOptions): Subject[] {
  const rows: Subject[] = [];
  for (const t of [1, 2]) rows.push(ringpool(t, {}, ALL));
  for (const t of [1, 2]) rows.push(ringpool(t, { metrics: true }, ['w1', 'w3']));
  // Issue #17: msgpack with shared record structures (against json on W1, W4 and W5), and batch sends.
  for (const t of [1, 2]) rows.push(ringpool(t, { codec: 'msgpack' }, t === 1 ? ['w1', 'w4', 'w5'] : ['w1']));
  rows.push(ringpool(1, { batch: 100 }, ['w1']));
  // Issue #32: the default (OpenTelemetry's API installed, no provider) against tracing: false, and with a provider.
  rows.push(ringpool(1, { tracing: 'off' }, ['w1']));
  rows.push(ringpool(1, { tracing: 'on' }, ['w1']));
  // Issue #34: the outcome feed's cost, against the plain row.
  rows.push(ringpool(1, { store: true }, ['w1']));
  rows.push(ringpool(1, { codec: 'msgpack', batch: 100 }, ['w1']));
  for (const t of [1, 2]) rows.push(ringpool(t, { codec: 'v8' }, t === 1 ? ['w1', 'w5'] : ['w1']));
  for (const t of [1, 2]) rows.push(ringpool(t, { codec: 'raw' }, t === 1 ? ['w1', 'w5'] : ['w1']));
  for (const t of [1, 2]) rows.push(ringpool(t, { keys: 1000 }, ['w1']));
  // Durable mailboxes (issue #15): each fsync mode, against the in-memory rows above and BullMQ below.
  for (const d of ['never', 'interval', 'always'] as const) rows.push(ringpool(1, { durability: d }, ['w1', 'w4']));
  // Issue #34: the durable rows with sendBatchAsync of 100 (one promise and one journal append per batch).
  for (const d of ['interval', 'always'] as const) rows.push(ringpool(1, { durability: d, batch: 100 }, ['w1']));
  rows.push(ringpool(2, { durability: 'always' }, ['w1']));

  rows.push({
    id: 'ring-1t',
    label: 'hand-written SAB ring (the ceiling), 1 thread',
    system: 'ring',
    threads: 1,
    speed: 'fast',
    payload: 'object',
    workloads: ALL,
    available: always,
    open: (spec) => openNaiveRing(spec.handler, spec.burst ? 16 << 20 : 8 << 20),
  });
  for (const t of [1, 2]) {
    rows.push({
      id: `piscina-run-${t}t`,
      label: `piscina.run per message, ${threadsLabel(t)}`,
      system: 'piscina.run',
      threads: t,
      speed: 'task',
      payload: 'object',
      workloads: ALL,
      available: always,
      open: (spec) => openPiscina({ threads: t, batch: 1, lingerMs: 0, window: spec.burst ? Infinity : 1024 }, spec.handler),
    });
  }
  for (const t of [1, 2]) {
    rows.push({
      id: `piscina-batch-${t}t`,
      label: `piscina, 100 messages per run(), ${threadsLabel(t)}`,
      system: 'piscina batched',
      threads: t,
      speed: 'fast',
      payload: 'object',
      workloads: ALL,
      available: always,
      open: (spec) => openPiscina({ threads: t, batch: 100, lingerMs: 1, window: spec.burst ? Infinity : 64 }, spec.handler),
    });
  }
  for (const t of [1, 2]) {
    rows.push({
      id: `tinypool-${t}t`,
      label: `tinypool.run per message, ${threadsLabel(t)}`,
      system: 'tinypool',
      threads: t,
      speed: 'task',
      payload: 'object',
      workloads: ALL,
      available: always,
      open: (spec) => openTinypool({ threads: t, batch: 1, lingerMs: 0, window: spec.burst ? Infinity : 1024 }, spec.handler),
    });
  }
  for (const t of [1, 2]) {
    rows.push({
      id: `workerpool-${t}t`,
      label: `workerpool.exec per message, ${threadsLabel(t)}`,
      system: 'workerpool',
      threads: t,
      speed: 'task',
      payload: 'object',
      workloads: ALL,
      available: always,
      open: (spec) => openWorkerpool({ threads: t, batch: 1, lingerMs: 0, window: spec.burst ? Infinity : 1024 }, spec.handler),
    });
  }
  for (const t of [1, 2]) {
    rows.push({
      id: `postmessage-${t}t`,
      label: `raw worker_threads postMessage + ack, ${threadsLabel(t)}`,
      system: 'postMessage',
      threads: t,
      speed: 'fast',
      payload: 'object',
      workloads: ALL,
      available: always,
      open: (spec) => openPostMessage(t, spec.handler, spec.burst ? Infinity : 1024),
    });
  }
  rows.push({
    id: 'bullmq',
    label: `BullMQ on local Redis, in-process worker, concurrency ${o.bullmqConcurrency}`,
    system: 'BullMQ',
    threads: 1,
    speed: 'redis',
    payload: 'object',
    workloads: ALL,
    available: () => redisAvailable(redisUrl()),
    open: (spec) => openBullmq(o.bullmqConcurrency, spec.handler, spec.burst ? Infinity : 1000),
  });
  rows.push({
    id: 'bullmq-bulk',
    label: `BullMQ addBulk of up to 100, in-process worker, concurrency ${o.bullmqConcurrency}`,
    system: 'BullMQ',
    threads: 1,
    speed: 'redis',
    payload: 'object',
    workloads: ['w1', 'w4'],
    available: () => redisAvailable(redisUrl()),
    open: (spec) => openBullmq(o.bullmqConcurrency, spec.handler, 1000, 100),
  });
  // The Redis Streams mailbox: consumer processes on the same Redis (2 cores cap the process scaling here).
  for (const p of [1, 2, 3]) {
    rows.push({
      id: `ringpool-redis-${p}p`,
      label: `ringpool Redis Streams mailbox, ${p} consumer process${p === 1 ? '' : 'es'} x 1 thread`,
      system: 'ringpool (Redis)',
      threads: p,
      speed: 'stream',
      payload: 'object',
      workloads: ['w1', 'w4'],
      available: () => redisAvailable(redisUrl()),
      open: (spec) => openRingpoolRedis(p, spec),
    });
  }
  // Issue #29: keyed sends (1,000 keys) over 12 partitions, each owned by one of the processes (--quick: 2 processes only).
  for (const p of o.quick ? [2] : [1, 2, 3]) {
    rows.push({
      id: `ringpool-redis-keyed-${p}p`,
      label: `ringpool Redis Streams mailbox, keyed (1,000 keys, 12 partitions), ${p} consumer process${p === 1 ? '' : 'es'} x 1 thread`,
      system: 'ringpool (Redis)',
      threads: p,
      speed: 'stream',
      payload: 'object',
      workloads: ['w1'],
      available: () => redisAvailable(redisUrl()),
      open: (spec) => openRingpoolRedis(p, spec, KEYED_PARTITIONS),
    });
  }
  return rows;
}
