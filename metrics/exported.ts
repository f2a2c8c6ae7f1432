/**
 * Which runtimes are exported on which registry: createMetrics() adds and
 * removes them, serve() reads them (and is told of those exported later).
 */
import type { Registry } from 'prom-client';
import type { Runtime } from '../runtime/runtime.js';

const byRegistry = new WeakMap<Registry, Set<Runtime>>();
const watchers = new WeakMap<Registry, Set<(rt: Runtime) => void>>();

/** Runtimes exported on `registry` now, in export order. */
export function exportedRuntimes(registry: Registry): Runtime[] {
  return [...(byRegistry.get(registry) ?? [])];
}

export function noteExported(registry: Registry, rt: Runtime): void {
  let set = byRegistry.get(registry);
  if (set === undefined) byRegistry.set(registry, (set = new Set()));
  set.add(rt);
  for (const watch of watchers.get(registry) ?? []) watch(rt);
}

export function noteDetached(registry: Registry, rt: Runtime): void {
  byRegistry.get(registry)?.delete(rt);
}

/** Call `watch` for every runtime exported on `registry`, now and later. Returns the unwatch. */
export function watchExports(registry: Registry, watch: (rt: Runtime) => void): () => void {
  let set = watchers.get(registry);
  if (set === undefined) watchers.set(registry, (set = new Set()));
  set.add(watch);
  for (const rt of exportedRuntimes(registry)) watch(rt);
  return () => set!.delete(watch);
}

/** Duck-typed: a Registry from another copy of prom-client (not deduplicated by npm) works too. */
export function isRegistry(r: unknown): r is Registry {
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof (r as Registry).registerMetric === 'function' &&
    typeof (r as Registry).metrics === 'function' &&
    typeof (r as Registry).contentType === 'string'
  );
}
