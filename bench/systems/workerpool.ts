/** Peer: workerpool (thread workers), `exec()` per message. */
import workerpool from 'workerpool';
import { fileURLToPath } from 'node:url';
import { fixture } from '../paths.js';
import type { HandlerKind, Session } from '../session.js';
import { openTaskPool, type TaskPoolConfig } from './task-pool.js';

export async function openWorkerpool(cfg: TaskPoolConfig, handler: HandlerKind): Promise<Session> {
  const pool = workerpool.pool(fileURLToPath(fixture('workerpool-worker.js')), {
    minWorkers: cfg.threads,
    maxWorkers: cfg.threads,
    workerType: 'thread',
  });
  // workerpool's own Promise type is a thenable that TypeScript will not take as a PromiseLike: adapt it.
  const adopt = <T>(p: { then(ok: (v: T) => void, fail: (e: Error) => void): unknown }): Promise<T> =>
    new Promise<T>((resolve, reject) => void p.then(resolve, reject));
  return openTaskPool(
    { run: (task, name) => adopt<unknown>(pool.exec(name, [task])), destroy: () => adopt<unknown>(pool.terminate()) },
    cfg,
    handler,
  );
}
