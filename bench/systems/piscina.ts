/** Peer: piscina (ringpool's own thread pool), `run()` per message or per batch of messages. */
import { Piscina } from 'piscina';
import { fixture } from '../paths.js';
import type { HandlerKind, Session } from '../session.js';
import { openTaskPool, type TaskPoolConfig } from './task-pool.js';

export async function openPiscina(cfg: TaskPoolConfig, handler: HandlerKind): Promise<Session> {
  const pool = new Piscina({ filename: fixture('pool-tasks.js').href, minThreads: cfg.threads, maxThreads: cfg.threads });
  return openTaskPool({ run: (task, name) => pool.run(task, { name }), destroy: () => pool.destroy() }, cfg, handler);
}
