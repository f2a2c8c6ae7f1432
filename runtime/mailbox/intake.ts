/**
 * Sends that wait for room (main thread): sendAsync, sendBatchAsync and ask
 * waiters, served in order as consumers free space (on a durable mailbox,
 * resolved once on disk), and the space watch that tells when they
 * do (Atomics.waitAsync on SPACE_SEQ, never blocking the main thread).
 */
import { ErrorCodes, RingpoolError } from '../shared/errors.js';
import { SPACE_SEQ, SPACE_WAITERS } from '../shared/layout.js';
import type { BatchOptions, SendOptions } from '../shared/producer.js';
import { batchLength } from '../shared/batch.js';
import type { StoreWrites } from '../store/store.js';
import type { Producer } from '../shared/producer.js';
import type { Ring } from '../shared/ring.js';
import type { Replies } from '../replies.js';
import type { Backlog } from './backlog.js';
import type { OutcomeFeed } from './outcomes.js';

export interface IntakeDeps {
  mailbox: string;
  ring: Ring;
  producer: Producer;
  overflow: 'wait' | 'reject';
  /** The outcome feed, when a store or source listens (walked when space comes; a delayed durable send posts through it). */
  outcomes: Pick<OutcomeFeed, 'follow'> | null;
  backlog: Pick<Backlog, 'flush' | 'pendingCount'>;
  replies: Pick<Replies, 'add' | 'drop'>;
  /** The handler is an actor: an ask needs a key. */
  actor: () => boolean;
  /** The mailbox stopped: nothing waits for space any more. */
  stopped: () => boolean;
}

interface SendWaiter {
  /** Send now: what the send gives (an id, a batch's ids), or null when there is no room yet. */
  attempt: () => unknown;
  /** Called with the id in the same step as the send (an ask opens itself here, before its reply can come). */
  onSent: ((id: number) => void) | undefined;
  resolve: (sent: never) => void;
  reject: (err: unknown) => void;
  cleanup: () => void;
}

export class Intake {
  private readonly waiters: SendWaiter[] = [];
  private spaceWatch = false;
  /** Sources waiting for room (whenRoom): resolved at the next space signal. */
  private roomWaiters: Array<() => void> = [];

  constructor(private readonly m: IntakeDeps) {}

  /** Sends wait for room: a new one queues behind them. */
  get waiting(): boolean {
    return this.waiters.length > 0;
  }

  sendAsync(
    payload: unknown,
    opts: SendOptions | undefined,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    flags = 0,
    onSent?: (id: number) => void,
  ): Promise<number> {
    const producer = this.m.producer;
    // Aborted before it began: nothing is sent, even if there is room.
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.waiters.length === 0) {
      const id = producer.trySend(payload, opts, flags);
      if (id >= 0) {
        onSent?.(id);
        return Promise.resolve(id);
      }
    }
    return this.wait<number>('sendAsync', () => {
      const id = producer.trySend(payload, opts, flags);
      return id < 0 ? null : id;
    }, signal, timeoutMs, onSent, 1);
  }

  /** sendBatchAsync: the whole batch once it fits (all or nothing), FIFO with the other waiting sends. */
  sendBatchAsync(payloads: readonly unknown[], opts: BatchOptions | undefined, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<number[]> {
    const producer = this.m.producer;
    // Not an array, or one no ring could hold: refused at once, waiting or not.
    const n = batchLength(payloads, this.m.ring, this.m.mailbox);
    if (signal?.aborted) return Promise.reject(signal.reason);
    let need = 0;
    if (this.waiters.length === 0) {
      const ids = producer.trySendBatch(payloads, opts);
      if (ids !== null) return Promise.resolve(ids);
      need = producer.batchUnits;
    }
    // Encoding the batch again is the expensive part of a try: wait until as much room as it needed is free.
    const ring = this.m.ring;
    const attempt = (): number[] | null => (ring.capacityUnits - ring.usedUnits() < need ? null : producer.trySendBatch(payloads, opts));
    return this.wait<number[]>('sendBatchAsync', attempt, signal, timeoutMs, undefined, n);
  }

  /** sendAsync on a mailbox whose store writes its records (a durable one): resolved once the store wrote it. */
  sendAsyncDurable(
    j: StoreWrites,
    payload: unknown,
    opts: SendOptions | undefined,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    flags: number,
    onSent: ((id: number) => void) | undefined,
  ): Promise<number> {
    const m = this.m;
    const delayed = opts !== undefined && opts !== null && typeof opts.delayMs === 'number' && opts.delayMs > 0;
    if (!delayed && this.waiters.length === 0 && !signal?.aborted) {
      // The common case, with one promise: room now, resolved when the store has written the record.
      const id = m.producer.trySend(payload, opts, flags);
      if (id >= 0) {
        onSent?.(id);
        return j.whenWritten(m.ring.lastEnd, id);
      }
    }
    let durable: Promise<number> | null = null;
    const sent = this.sendAsync(payload, opts, signal, timeoutMs, flags, (id) => {
      onSent?.(id);
      if (delayed) {
        // Its ACCEPTED entry goes to the journal in the feed's next post: post now, wait for that one.
        m.outcomes!.follow();
        durable = j.whenPosted(j.posted, id);
      } else durable = j.whenWritten(m.ring.lastEnd, id);
    });
    return sent.then((id) => durable ?? id);
  }

  /** A batch sent to a mailbox whose store writes its records, resolved once the store wrote it. */
  durableBatch(j: StoreWrites, sent: Promise<number[]>, opts: BatchOptions | undefined): Promise<number[]> {
    const m = this.m;
    return sent.then((ids) => {
      if (ids.length === 0) return ids;
      if (opts?.delayMs !== undefined && opts.delayMs > 0) {
        m.outcomes!.follow();
        return j.whenPosted(j.posted, 0).then(() => ids);
      }
      // lastEnd may have moved past the batch since (later sends): waiting for that is waiting for the batch too.
      return j.whenWritten(m.ring.lastEnd, 0).then(() => ids);
    });
  }

  /** Queue a send that found no room (or others waiting) until consumers free space, or refuse it under overflow 'reject'. */
  private wait<T>(what: string, attempt: () => T | null, signal: AbortSignal | undefined, timeoutMs: number | undefined, onSent: ((id: number) => void) | undefined, count: number): Promise<T> {
    const m = this.m;
    if (m.overflow === 'reject') {
      m.ring.countRejected('queue_full', count);
      return Promise.reject(m.producer.fullError());
    }
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => {
        remove();
        reject(signal!.reason);
      };
      const remove = (): void => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        w.cleanup();
      };
      const w: SendWaiter = {
        attempt,
        onSent,
        resolve: resolve as (sent: never) => void,
        reject,
        cleanup: () => {
          if (timer) clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        },
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          remove();
          m.ring.countRejected('queue_full', count);
          reject(new RingpoolError(ErrorCodes.TIMEOUT, `${what} to '${m.mailbox}' found no room within ${timeoutMs} ms`, { mailbox: m.mailbox, timeoutMs }));
        }, timeoutMs);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(w);
      this.armSpaceWatch();
    });
  }

  /**
   * Send with FLAG_ASK (and FLAG_CALL for actor methods) and wait for the
   * handler's result. The ask opens in the same step as the send, so its reply
   * cannot come before it is waited for.
   */
  ask(payload: unknown, key: string | undefined, flags: number, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<unknown> {
    const m = this.m;
    if (key === undefined && m.actor()) {
      return Promise.reject(new RingpoolError(ErrorCodes.KEY_REQUIRED, `mailbox '${m.mailbox}' runs an actor: ask with { key }`, { mailbox: m.mailbox, option: 'key' }));
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<unknown>((resolve, reject) => {
      let id = -1;
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        settled = true;
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const giveUp = (err: unknown): void => {
        if (settled) return;
        if (id >= 0) m.replies.drop(id);
        done();
        reject(err);
      };
      const onAbort = (): void => giveUp(signal!.reason);
      if (timeoutMs !== undefined) {
        timer = setTimeout(
          () => giveUp(new RingpoolError(ErrorCodes.TIMEOUT, `ask to mailbox '${m.mailbox}' got no reply within ${timeoutMs} ms`, { mailbox: m.mailbox, timeoutMs })),
          timeoutMs,
        );
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      const open = {
        resolve: (v: unknown): void => {
          done();
          resolve(v);
        },
        reject: (e: unknown): void => {
          done();
          reject(e);
        },
      };
      try {
        this.sendAsync(payload, key === undefined ? undefined : { key }, signal, timeoutMs, flags, (sent) => {
          id = sent;
          if (!settled) m.replies.add(sent, open);
        }).catch(giveUp);
      } catch (err) {
        giveUp(err); // refused at once (too large, unserializable, ...): no timer or listener left behind
      }
    });
  }

  /** Resolves at the next sign of freed space (a source reading only while the ring has room). */
  whenRoom(): Promise<void> {
    if (this.m.stopped()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.roomWaiters.push(resolve);
      this.armSpaceWatch();
    });
  }

  private serveWaiters(): void {
    // (Retries and redeliveries waiting for room go first: their units count as used in every producer's reserve, see backlog.pend.)
    while (this.waiters.length > 0) {
      const w = this.waiters[0]!;
      let sent: unknown;
      try {
        sent = w.attempt();
      } catch (err) {
        this.waiters.shift();
        w.cleanup();
        w.reject(err);
        continue;
      }
      if (sent === null) return;
      this.waiters.shift();
      w.cleanup();
      w.onSent?.(sent as number);
      w.resolve(sent as never);
    }
  }

  /** Refuse every waiting send with `err` (closed, destroyed). */
  rejectWaiters(err: RingpoolError): void {
    for (const w of this.waiters.splice(0)) {
      w.cleanup();
      w.reject(err);
    }
    this.wakeRoomWaiters();
  }

  private wakeRoomWaiters(): void {
    if (this.roomWaiters.length === 0) return;
    const ws = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of ws) w();
  }

  /** Wait (without blocking the main thread) until a consumer frees space, then retry what waits. */
  armSpaceWatch(): void {
    if (this.spaceWatch || this.m.stopped()) return;
    this.spaceWatch = true;
    const i32 = this.m.ring.i32;
    Atomics.add(i32, SPACE_WAITERS, 1);
    const seq = Atomics.load(i32, SPACE_SEQ);
    const after = (): void => {
      Atomics.sub(i32, SPACE_WAITERS, 1);
      this.spaceWatch = false;
      this.onSpace();
    };
    // The timeout bounds the wait if a reclaim raced our SPACE_WAITERS increment.
    const r = Atomics.waitAsync(i32, SPACE_SEQ, seq, 20);
    if (r.async) void r.value.then(after);
    else queueMicrotask(after);
  }

  private onSpace(): void {
    const m = this.m;
    if (m.stopped()) return;
    m.outcomes?.follow();
    m.ring.reclaim();
    m.backlog.flush();
    this.serveWaiters();
    this.wakeRoomWaiters();
    if (this.waiters.length > 0 || m.backlog.pendingCount > 0) this.armSpaceWatch();
  }
}
