/**
 * Where a mailbox's consumer loops run (main thread): the seam between a
 * mailbox's Consumers and threads. A LaneHost runs a loop (a Piscina task of
 * a thread of the mailbox's own, or a lane of the runtime's shared pool,
 * shared.ts), probes the handler module at start(), and terminates the
 * thread of a loop whose lease ran out.
 */
import { once } from 'node:events';
import type { MessagePort, ResourceLimits } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { ErrorCodes, RingpoolError, safeString } from '../shared/errors.js';
import type { ConsumerTask, LoopResult, ProbeResult, ProbeTask } from '../shared/protocol.js';

/** The file Piscina loads in each consumer thread (CommonJS: see workers/loop/entry.cts). */
export const CONSUMER_ENTRY = new URL('../../workers/loop/entry.cjs', import.meta.url);

export interface LaneHost {
  /** Load the handler module in a thread: what it is, or why it cannot load. */
  probe(task: ProbeTask): Promise<ProbeResult>;
  /**
   * Run a consumer loop until it returns; null when no thread can take
   * another loop of this mailbox now. `doomed` is told when the loop's thread
   * is being terminated for another loop's lease (its slot waits for that exit).
   */
  run(task: ConsumerTask, transfer: MessagePort[], doomed: (exit: Promise<unknown>) => void): Promise<LoopResult> | null;
  /** The thread running the loop in `slot` runs another mailbox's handler now (a shared thread; its lease then says nothing of this one's). */
  runsOther?(slot: number): boolean;
  /** After a lease kill: terminate the thread `threadId` (running the loop in `slot`); resolves once it has exited (null: no such thread). */
  terminate(threadId: number, slot: number): Promise<unknown> | null;
  destroy(): Promise<void>;
}

/** A mailbox's own threads: one Piscina pool, one loop a thread. */
export class DedicatedThreads implements LaneHost {
  private pool: Piscina | null;

  constructor(
    o: { minThreads: number; maxThreads: number; resourceLimits: ResourceLimits | undefined },
    emitError: (err: Error) => void,
  ) {
    this.pool = new Piscina({
      filename: CONSUMER_ENTRY.href,
      minThreads: o.minThreads,
      maxThreads: o.maxThreads + 1, // one spare while a terminated thread exits
      idleTimeout: 10_000,
      atomics: 'disabled',
      concurrentTasksPerWorker: 1,
      ...(o.resourceLimits ? { resourceLimits: o.resourceLimits } : {}),
    });
    this.pool.on('error', emitError);
  }

  probe(task: ProbeTask): Promise<ProbeResult> {
    if (this.pool === null) return Promise.reject(new Error('the threads are closed'));
    return this.pool.run(task, { name: 'probe' }) as Promise<ProbeResult>;
  }

  run(task: ConsumerTask, transfer: MessagePort[]): Promise<LoopResult> | null {
    if (this.pool === null) return null;
    return this.pool.run(task, { transferList: transfer as never }) as Promise<LoopResult>;
  }

  terminate(threadId: number): Promise<unknown> | null {
    const worker = this.pool?.threads.find((w) => w.threadId === threadId);
    if (worker === undefined) return null;
    const exited = once(worker, 'exit').catch(() => {});
    void worker.terminate();
    return exited;
  }

  async destroy(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    if (pool !== null) await pool.destroy();
  }
}

/** RINGPOOL_HANDLER_LOAD for mailbox `mailbox`: its handler module cannot be used (`cause` says why). */
export function handlerLoadError(mailbox: string, url: string, cause: unknown): RingpoolError {
  const msg = cause instanceof Error ? cause.message : safeString(cause);
  return new RingpoolError(ErrorCodes.HANDLER_LOAD, `mailbox '${mailbox}': handler ${url} cannot be used: ${msg}`, { mailbox, url }, { cause });
}

/** `p`, or the error `onTimeout` makes after `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(onTimeout()), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}
