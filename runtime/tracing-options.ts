/**
 * The runtime option `tracing` (issue #32): its type and its check. What it
 * turns on lives in runtime/shared/tracing.ts and workers/loop/trace.ts.
 */
import { invalidOption } from './shared/errors.js';

/** `tracing`: where consumer threads get their tracer provider, and how a process span relates to its send. */
export interface TracingOptions {
  /**
   * A module each consumer thread imports before its handler: it registers
   * that thread's tracer provider (each thread has its own OpenTelemetry
   * globals; `node --import` does not reach worker threads on Node 20).
   * Without it, the handler module may register one.
   */
  setup?: string | URL;
  /** The process span links to the send's context (`'link'`), or is also its child (`'child'`: one trace per message). @default 'link' */
  process?: 'link' | 'child';
}

/** `tracing` checked: the setup module's URL (or null) and the process span's relation; null for `tracing: false`. */
export interface ResolvedTracing {
  setup: string | null;
  process: 'link' | 'child';
}

/** RINGPOOL_INVALID_OPTION naming the option for anything but false, undefined or `{ setup, process }`. `moduleUrl` makes a module path a URL. */
export function resolveTracing(v: unknown, moduleUrl: (path: string, v: unknown) => string): ResolvedTracing | null {
  if (v === false) return null;
  if (v === undefined) return { setup: null, process: 'link' };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalidOption('tracing', 'false, or an object { setup, process }', v);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'setup' && k !== 'process') throw invalidOption(`tracing.${k}`, 'one of setup, process (unknown option)', o[k]);
  const p = o.process ?? 'link';
  if (p !== 'link' && p !== 'child') throw invalidOption('tracing.process', "'link' or 'child'", p);
  return { setup: o.setup === undefined ? null : moduleUrl('tracing.setup', o.setup), process: p };
}
