/** Peer: tinypool (a lighter fork of piscina), `run()` per message. */
import { Tinypool } from 'tinypool';
import { fixture } from '../paths.js';
import type { HandlerKind, Session } from '../session.js';
import { openTaskPool, type TaskPoolConfig } from './task-pool.js';

export async function openTinypool(cfg: TaskPoolConfig, handler: HandlerKind): Promise<Session> {
  const pool = new Tinypool({ filename: fixture('pool-tasks.js').href, minThreads: cfg.threads, maxThreads: cfg.threads });
  return openTaskPool({ run: (task, name) => pool.run(task, { name }), destroy: () => pool.destroy() }, cfg, handler);
}
