/**
 * comlink, for Node: its package.json has no "exports" and its "main" is a
 * UMD build, so the ESM build is imported by path and typed from the package's
 * own declarations. `endpoint()` adapts a worker_threads MessagePort.
 * Thread-neutral (the dispatcher wraps, consumer loops expose).
 */
import type * as ComlinkTypes from 'comlink';
import type { MessagePort } from 'node:worker_threads';
// @ts-expect-error -- no declarations at this path; typed below from 'comlink'
import * as impl from 'comlink/dist/esm/comlink.mjs';
// @ts-expect-error -- same
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';

export type Remote<T> = ComlinkTypes.Remote<T>;
export const wrap = (impl as typeof ComlinkTypes).wrap;
export const expose = (impl as typeof ComlinkTypes).expose;
export const releaseProxy = (impl as typeof ComlinkTypes).releaseProxy;

export function endpoint(port: MessagePort): ComlinkTypes.Endpoint {
  return (nodeEndpoint as (p: unknown) => ComlinkTypes.Endpoint)(port);
}
