/**
 * Loading a built-in store or source only when a mailbox uses it (main
 * thread): the journal (runtime/store/journal/) and the Redis source
 * (runtime/source/redis/) are not imported by the in-memory runtime, so it
 * neither loads nor depends on them. Synchronous, because mailboxes are built
 * in createRuntime(): require() of an ES module, which Node >= 20.19 does
 * (it shares the module instance with import()).
 */
import { createRequire } from 'node:module';

const requireHere = createRequire(import.meta.url);

/** The module at `path` (relative to runtime/), typed by the caller's view of its seam. */
export function loadBuiltIn<T>(path: string): T {
  return requireHere(path) as T;
}
