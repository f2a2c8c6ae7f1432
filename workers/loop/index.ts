/**
 * The consumer thread's task functions (entry.cts, the file Piscina loads,
 * imports this): the default export runs one consumer loop (loop.ts) until
 * the dispatcher stops it; `probe` loads the handler module once at start(). Nothing under workers/ runs on the main
 * thread, and nothing here loads prom-client or the dispatcher.
 */
import type { ConsumerTask, LoopResult } from '../../runtime/shared/protocol.js';
import { ConsumerLoop } from './loop.js';

export { probe } from './load.js';
export { poolThread } from '../pool/thread.js';

/** Piscina task (default export): run one consumer loop until the dispatcher stops it. */
export default async function consumerLoop(task: ConsumerTask): Promise<LoopResult> {
  return new ConsumerLoop(task).run();
}
