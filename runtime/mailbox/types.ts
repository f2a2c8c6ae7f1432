/**
 * What a mailbox shows the rest of the runtime (main thread): the host it
 * needs, the events it raises, and its stats() snapshot. Types only.
 */
import type { BreakerEvent, BreakerState } from './breaker.js';
import type { AdaptiveStats } from './adaptive.js';
import type { JournalStats, StoreStats } from '../store/store.js';
import type { SourceStats } from '../source/source.js';
import type { StreamStats } from '../source/stream.js';
import type { ErrorInfo } from '../shared/errors.js';
import type { RejectReason } from '../shared/layout.js';
import type { DeadLetter, DeadLetterReason } from '../dead-letters.js';
import type { RingRef, StreamItem } from '../shared/protocol.js';
import type { HeldMessage } from '../held.js';
import type { HoleRepairs } from '../holes.js';
import type { ResolvedMailbox } from '../mailbox-options.js';
import type { LaneHost } from '../pool/threads.js';
import type { Ring } from '../shared/ring.js';

/** A consumer loop's state: `revoked`, its lease expired and its thread is being terminated; `dead`, its slot was recovered (late events are ignored). */
export type ConsumerState = 'starting' | 'running' | 'stopping' | 'revoked' | 'dead';

/** Another mailbox of the runtime, as a mailbox sees it (a delayed ctx.send() to it; its holes, repaired together). */
export interface PeerMailbox {
  acceptDelayed(held: HeldMessage, delayMs: number): void;
  /** Its sendEncoded(): a handler's chained sends to it, when its sends go to a Redis stream (chained.ts). */
  readonly sends: { sendEncoded(items: readonly StreamItem[]): Promise<unknown> };
  readonly holes: HoleRepairs;
}

/** What the mailbox needs from its runtime. */
export interface MailboxHost {
  ringRefs(): Record<string, RingRef>;
  /** The threads of mailbox `name`: the runtime's shared pool (its ring is then served by it from now on), or threads of its own. */
  threadsOf(name: string, ring: Ring, opts: ResolvedMailbox): () => LaneHost;
  mailbox(name: string): PeerMailbox | undefined;
  /** The mailbox at `index` in the runtime's order (ring tags, holes.ts). */
  mailboxAt(index: number): PeerMailbox | undefined;
  /** A thread died inside its guard: free any msgpack structure table it held locked. */
  releaseStructures(threadId: number): void;
  /** Whether a live thread of any mailbox is inside its guard now. */
  guardsHeld(): boolean;
  running(): boolean;
  emitDeadLetter(letter: DeadLetter): void;
  emitWorkerCrash(ev: WorkerCrashEvent): void;
  emitHandlerTimeout(ev: HandlerTimeoutEvent): void;
  emitScale(ev: ScaleEvent): void;
  emitBreaker(ev: BreakerEvent): void;
  emitError(err: Error): void;
}

/** The `'worker-crash'` event: a consumer thread died and was replaced. */
export interface WorkerCrashEvent {
  mailbox: string;
  threadId: number;
  error: ErrorInfo;
  /** Message ids put back (the one whose handler ran is retried or dead-lettered). */
  redelivered: number;
}

/** The `'scale'` event: the autoscaler, or `resize()`, changed a mailbox's threads or concurrency. */
export interface ScaleEvent {
  mailbox: string;
  /** Desired threads before and after. */
  from: number;
  to: number;
  /** Messages in flight per thread after the decision. */
  concurrency: number;
  reason: string;
}

/** The `'handler-timeout'` event: a handler ran past leaseMs and its thread was replaced. */
export interface HandlerTimeoutEvent {
  mailbox: string;
  id: number;
  attempt: number;
  leaseMs: number;
  threadId: number;
}

/** `rt.stats(mailbox)`. Counters count since the runtime was created. */
export interface MailboxStats {
  /** Ready messages not yet claimed (including redeliveries waiting for room). */
  depth: number;
  /** Starts nothing new now: rt.pause(), or a handler's ctx.retryAfter() (issue #31). */
  paused: boolean;
  /** How long the pause lasts yet (ms): -1 until rt.resume(), 0 when not paused. */
  pausedForMs: number;
  /** The circuit breaker: its state and how often it opened; null without one. */
  breaker: { state: BreakerState; opens: number } | null;
  /** Adaptive concurrency (`concurrency: 'adaptive'`): the limit learned, what runs, the latencies it compares; null when fixed. */
  adaptive: AdaptiveStats | null;
  /** The rateLimit in force, or null. */
  rateLimit: { max: number; perMs: number; scope: 'process' | 'group' } | null;
  /** Times a consumer thread found no start to take: held back by the rate limit, and by a pause (once a wait). */
  limitWaits: number;
  pauseWaits: number;
  /** Claimed by a thread, not yet acked or failed. */
  inFlight: number;
  /** Waiting for a retry backoff or a delayMs. */
  delayed: number;
  /** Accepted sends (first sends and redriven dead letters; not retries). */
  enqueued: number;
  /** Messages whose handler succeeded (acked). */
  processed: number;
  /** Failed attempts: handler threw, its thread crashed, or its lease expired. */
  failed: number;
  /** Failed attempts scheduled again. */
  retried: number;
  /** Messages put back after a thread crash or lease expiry (the running one and its unstarted batch). */
  redelivered: number;
  /** Messages moved to the dead-letter store (all time). */
  deadLettered: number;
  deadLetteredBy: Record<DeadLetterReason, number>;
  /** Refused sends (full, too large, unserializable, closed). */
  rejected: number;
  rejectedBy: Record<RejectReason, number>;
  /** Consumer threads running now. */
  threads: number;
  desiredThreads: number;
  minThreads: number;
  maxThreads: number;
  /** Age of the oldest ready message (time since it became ready), seconds; 0 when none. */
  oldestAgeSeconds: number;
  /** depth / recent drain rate (EWMA over ~5 s), seconds; with no drain yet, the oldest age. */
  estimatedLagSeconds: number;
  /** Messages acked per second, EWMA over ~5 s. */
  drainRate: number;
  /** Thread-count decisions taken, by direction. */
  scaleDecisions: { up: number; down: number };
  /** Messages in flight per thread. */
  concurrency: number;
  /** Publishes per second (sends, retries and redeliveries), EWMA over ~5 s. */
  arrivalRate: number;
  /** Whether the autoscaler sizes this mailbox now (false when off or pinned by resize()). */
  autoscale: boolean;
  /** The autoscaler's last reason, in words. */
  scaleReason: string;
  workerCrashes: number;
  handlerTimeouts: number;
  /** Dead letters held now. */
  deadLetterSize: number;
  /** Dead letters dropped (oldest first) because the store was at deadLetterLimit. */
  deadLettersDropped: number;
  capacityBytes: number;
  usedBytes: number;
  /** What the mailbox's store reports (a durable mailbox's journal; absent in memory). */
  store?: StoreStats;
  /** A durable mailbox's journal: `store`, under its older name. @deprecated use `store` */
  journal?: JournalStats;
  /** What the mailbox's source reports (a Redis Streams mailbox's: connection, lag, pending, counts; absent otherwise). */
  source?: SourceStats;
  /** A Redis Streams mailbox's source: `source`, under its older name. @deprecated use `source` */
  stream?: StreamStats;
}
