/**
 * The file Piscina loads in each consumer thread, in CommonJS on purpose.
 * Piscina loads its task file with require() first, and on Node 20 require()
 * of an ES module graph aborts the whole process (a V8 fatal error,
 * "IsGraphAsync must be used on an instantiated module") when the thread is
 * terminated while that graph instantiates: a thread stopped or destroyed
 * just as it starts. This entry loads the consumer (index.ts) with import(),
 * whose termination Node handles. Exports for Piscina's task names:
 * `default` runs a consumer loop, `probe` loads the handler module,
 * `poolThread` runs a thread of the runtime's shared pool (workers/pool/).
 */
import type { ConsumerTask, LoopResult, PoolThreadTask, ProbeResult, ProbeTask } from '../../runtime/shared/protocol.js';

type Consumer = typeof import('./index.js');
let loaded: Promise<Consumer> | undefined;
const load = (): Promise<Consumer> => (loaded ??= import('./index.js'));

async function consumerLoop(task: ConsumerTask): Promise<LoopResult> {
  return (await load()).default(task);
}

async function probe(task: ProbeTask): Promise<ProbeResult> {
  return (await load()).probe(task);
}

async function poolThread(task: PoolThreadTask): Promise<{ threadId: number }> {
  return (await load()).poolThread(task);
}

// __esModule: Piscina's require() interop then reads `default` as the default export, not as module.exports.
export = { __esModule: true, default: consumerLoop, probe, poolThread };
