import { afterEach } from 'vitest';
import { createRuntime, type Runtime, type RuntimeOptions } from 'ringpool';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export const fixture = (name: string): URL => new URL(`./fixtures/${name}`, import.meta.url);

const live: Runtime[] = [];
afterEach(async () => {
  await Promise.allSettled(live.splice(0).map((rt) => rt.destroy()));
});

const channels: BroadcastChannel[] = [];
afterEach(() => {
  for (const c of channels.splice(0)) c.close();
});

/** Everything posted on BroadcastChannel `name` (by handler fixtures) during the test, in arrival order. */
export function broadcastLog<T>(name: string): T[] {
  const got: T[] = [];
  const c = new BroadcastChannel(name);
  c.onmessage = (ev) => got.push((ev as MessageEvent<T>).data);
  channels.push(c);
  return got;
}

/** A runtime destroyed after the test. */
/**
 * A full garbage collection now (V8's gc, reached without --expose-gc), for a test that measures what memory is
 * retained rather than what garbage has not been collected yet.
 */
export function collectGarbage(): void {
  setFlagsFromString('--expose_gc');
  (runInNewContext('gc') as () => void)();
}

/** One run of test/fixtures/headers-echo.js, as it posts it. */
export interface HeadersRun {
  i: number;
  attempt: number;
  headers: Record<string, string>;
  frozen: boolean;
}
/** Every run of test/fixtures/headers-echo.js, on its BroadcastChannel (headers.test.ts, redis-headers.test.ts). */
export const headersLog = (): HeadersRun[] => broadcastLog<HeadersRun>('ringpool-test-headers');

export function runtime(opts: RuntimeOptions): Runtime {
  const rt = createRuntime(opts);
  live.push(rt);
  return rt;
}

/** Wait until `cond()` holds, polling; fails after `ms`. */
export async function until(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Wait until the async `cond()` holds, polling every 20 ms; fails after `ms`. */
export async function untilAsync(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<Error & { code: string }> {
  try {
    if (typeof p === 'function') await p();
    else await p;
  } catch (err) {
    if ((err as { code?: string }).code !== code) throw new Error(`expected ${code}, got ${(err as Error).stack}`);
    return err as Error & { code: string };
  }
  throw new Error(`expected ${code}, got no error`);
}
