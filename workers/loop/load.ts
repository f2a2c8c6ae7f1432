/**
 * Loading a handler module on a worker thread: import it, check its default
 * export (a function or an actor), and the start() probe that tells the
 * dispatcher what the module is before any loop runs.
 */
import { isActor, type ActorDefinition } from '../actor.js';
import { loadCodec } from '../../runtime/shared/codec.js';
import { ErrorCodes, RingpoolError } from '../../runtime/shared/errors.js';
import type { ProbeResult, ProbeTask } from '../../runtime/shared/protocol.js';
import type { Handler } from '../context.js';

/** Import a handler module and check its default export (also used by the dispatcher's start() probe). */
export async function loadHandler(url: string): Promise<Handler | ActorDefinition> {
  let mod: { default?: unknown };
  try {
    mod = (await import(url)) as { default?: unknown };
  } catch (err) {
    throw new RingpoolError(ErrorCodes.HANDLER_LOAD, `handler module ${url} failed to load: ${(err as Error)?.message ?? err}`, { url }, { cause: err });
  }
  if (isActor(mod.default)) return mod.default;
  if (typeof mod.default !== 'function') {
    throw new RingpoolError(
      ErrorCodes.HANDLER_LOAD,
      `handler module ${url} must export a function or an actor(...) as default, got ${mod.default === undefined ? 'no default export' : typeof mod.default}`,
      { url },
    );
  }
  return mod.default as Handler;
}

/** Piscina task `probe`: load the handler and the codec, report what failed and what the module is. */
export async function probe(task: ProbeTask): Promise<ProbeResult> {
  const h = await loadHandler(task.handlerUrl);
  await loadCodec(task.codec);
  return isActor(h) ? { actor: true, methods: Object.keys(h.methods ?? {}) } : { actor: false, methods: [] };
}
