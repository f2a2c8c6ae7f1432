/**
 * What the dispatcher and the consumer threads say to each other outside the
 * ring. Thread-neutral types only.
 *
 * - The task a consumer loop starts with (a Piscina task, data cloned once).
 * - Events a consumer posts to the dispatcher (one-way, raw postMessage on
 *   `events`): ready, load failure, nack, delayed send. Never per success.
 * - The control interface a consumer exposes with comlink on `control`
 *   (calls with replies: stop, stats).
 */
import type { FenceRef } from './partition.js';
import type { MessagePort } from 'node:worker_threads';
import type { CodecSpec } from './codec.js';
import type { ErrorInfo } from './errors.js';

export interface RingRef {
  sab: SharedArrayBuffer;
  /** The mailbox's key table (keyed ordering). */
  keys: SharedArrayBuffer;
  /** The mailbox's reply ring: ask() results travel back through it (consumers write, the dispatcher reads). */
  replies: SharedArrayBuffer;
  codec: CodecSpec;
  maxMessageBytes: number;
  /** The shared pool's board when a pool serves this mailbox (its publishes wake the pool's threads), else null. */
  board: SharedArrayBuffer | null;
  /** The source's fence table when it reads partitions (FLAG_PARTITION records), else null. */
  fence: FenceRef | null;
  /** A mailbox whose sends go to a Redis stream: a ctx.send() to it is posted (chained.ts), not written to the ring. `partitions`: 0 without. */
  stream: { partitions: number } | null;
}

/** One ctx.send() / ctx.sendBatch() message to a Redis mailbox, encoded by its codec on the worker. */
export interface StreamItem {
  mailbox: string;
  payload: Uint8Array;
  key: string | null;
  /** Whole ms (0: now). */
  delayMs: number;
  /** Its headers as encoded (shared/headers.ts), or null: a batch's items share one. */
  headers: Uint8Array | null;
}

/** What a consumer loop needs to trace its attempts (runtime option `tracing`; null when `tracing: false`). */
export interface TracingSpec {
  /** A module imported on the thread before the handler (it registers the thread's tracer provider), or null. */
  setup: string | null;
  /** The process span links to the producer's context ('link'), and is also its child ('child'). */
  process: 'link' | 'child';
  /** The mailbox's maxAttempts: a failure on the last one is a dead letter (an event on its span). */
  maxAttempts: number;
}

export interface ConsumerTask {
  mailbox: string;
  consumer: number;
  incarnation: number;
  handlerUrl: string;
  leaseMs: number;
  batchSize: number;
  /** Every mailbox of the runtime, so handlers can ctx.send() to any of them. */
  rings: Record<string, RingRef>;
  /** This mailbox's histogram buffer (see histogram.ts); the loop records into its slot's blocks. */
  metricsSab: SharedArrayBuffer;
  control: MessagePort;
  events: MessagePort;
  tracing: TracingSpec | null;
}

/** A shared pool's thread (a long Piscina task): it runs the loops (lanes) the main thread gives it over `port`. */
export interface PoolThreadTask {
  /** Its index in the pool: its words on the board, its bit in a ring's POOL_HOSTS. */
  index: number;
  board: SharedArrayBuffer;
  /** Every mailbox of the runtime (the lanes' ConsumerTask.rings). */
  rings: Record<string, RingRef>;
  port: MessagePort;
}

/** Main thread -> pool thread. A lane's task comes without `rings` (the thread's table is used). */
export type ToPoolThread =
  | { t: 'lane'; key: number; task: Omit<ConsumerTask, 'rings'> }
  | { t: 'probe'; id: number; task: ProbeTask }
  | { t: 'quit' };

/** Pool thread -> main thread. */
export type FromPoolThread =
  | { t: 'hello'; threadId: number }
  | { t: 'lane-end'; key: number; result?: LoopResult; error?: ErrorInfo }
  | { t: 'probe'; id: number; result?: ProbeResult; error?: ErrorInfo };

export interface ProbeTask {
  handlerUrl: string;
  codec: CodecSpec;
}

/** What the probe found in the handler module. */
export interface ProbeResult {
  /** The default export is an actor definition (per-key state; a key is required). */
  actor: boolean;
  /** The actor's method names (typed proxies call them). */
  methods: string[];
}

export type WorkerEvent =
  | { type: 'ready'; consumer: number; incarnation: number; threadId: number }
  | { type: 'load-error'; consumer: number; incarnation: number; error: ErrorInfo }
  | {
      type: 'nack';
      consumer: number;
      incarnation: number;
      unit: number;
      error: ErrorInfo;
      unrecoverable: boolean;
    }
  | {
      type: 'delayed-send';
      mailbox: string;
      payload: Uint8Array;
      ascii: boolean;
      key: string | null;
      delayMs: number;
      id: number;
      sentAt: number;
      keySlot: number;
      keySeq: number;
      /** Its headers as encoded (shared/headers.ts), or null. */
      headers: Uint8Array | null;
    }
  /**
   * A handler's chained sends to Redis mailboxes, in order, posted when it
   * finished: `seq` numbers the loop's groups from 1 (0: sent after its
   * handler had finished, nobody waits). The dispatcher XADDs them and
   * answers in the slot's CHAIN words.
   */
  | { type: 'stream-sends'; seq: number; items: StreamItem[] }
  /** A keyed record whose turn has not come: the dispatcher holds it until it has. */
  | { type: 'defer'; consumer: number; incarnation: number; unit: number }
  /** A keyed message finished and others of its key are held: release the next. */
  | { type: 'key-turn'; slot: number }
  /** An ask() result that did not fit in the reply ring (rare: the ring full or the value large). */
  | { type: 'reply'; id: number; payload: Uint8Array; ascii: boolean };

/** One consumer thread's figures (`rt.workerStats(mailbox)`). */
export interface WorkerStats {
  threadId: number;
  consumer: number;
  incarnation: number;
  acked: number;
  nacked: number;
  batchSize: number;
  /** Mean handler time per message (EWMA), ms. */
  handlerMs: number;
}

/** Exposed by each consumer loop with comlink; the dispatcher holds a Remote<WorkerControl>. */
export interface WorkerControl {
  /** Finish the batch in hand, then return from the loop. Resolves with the final stats. */
  stop(): WorkerStats;
  stats(): WorkerStats;
}

export interface LoopResult {
  reason: 'stopped' | 'load-error';
  stats: WorkerStats;
}
