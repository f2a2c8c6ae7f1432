/**
 * The messages each workload sends, and the calibration of W2's 50 µs of CPU.
 * Every system gets the same objects; the peers JSON-encode them into their
 * transport, ringpool's json codec does the same inside send().
 */
import { fixture } from './paths.js';

export interface Tiny {
  id: number;
  user: string;
  sku: string;
  qty: number;
  price: number;
  tags: string[];
}

/** W1: ~100 bytes of JSON. */
export function tiny(i: number): Tiny {
  return { id: i, user: 'user-000042', sku: 'SKU-ABCDEFGH', qty: 3, price: 19.99, tags: ['a', 'bb', 'ccc'] };
}

/** W1 for ringpool's raw codec: the same ~100 bytes, already bytes (no codec at all; one copy each way). */
export const TINY_BYTES: Uint8Array = new Uint8Array(Buffer.from(JSON.stringify(tiny(100_000))));

/** W2: the tiny message plus the number of burn iterations the handler runs. */
export function cpu(i: number, iterations: number): Tiny & { burn: number } {
  return { ...tiny(i), burn: iterations };
}

/** W4: the tiny message plus its send time (set just before the send call). */
export function stamped(i: number): Tiny & { t: number } {
  return { ...tiny(i), t: 0 };
}

/** W5: exactly 64 KiB of JSON (ASCII): `{"id":N,"blob":"xxx…"}` with a 7-digit id. */
export const LARGE_BYTES_PER_MESSAGE = 64 << 10;
const BLOB = 'x'.repeat(LARGE_BYTES_PER_MESSAGE - JSON.stringify({ id: 1_000_000, blob: '' }).length);
export function large(i: number): { id: number; blob: string } {
  return { id: 1_000_000 + (i % 9_000_000), blob: BLOB };
}

/** W5 for ringpool's raw codec: 64 KiB of bytes. */
export const LARGE_BYTES: Uint8Array = new Uint8Array(LARGE_BYTES_PER_MESSAGE).fill(120);

interface WorkModule {
  burn(iterations: number): number;
  now(): number;
}

export interface BurnCalibration {
  /** Iterations of work.js burn() that take `targetMicros` on this machine's main thread. */
  iterations: number;
  targetMicros: number;
  /** What one burn(iterations) call measured afterwards (median of 200). */
  measuredMicros: number;
}

/**
 * Calibrate W2's handler: the fastest of 20 timed runs spread over ~200 ms
 * (the least disturbed by other work on the machine) sets iterations per
 * microsecond. The handler then does a fixed amount of work, so a thread
 * that loses its core takes longer rather than the benchmark looking better.
 * The suite calibrates right before W2 runs.
 */
export async function calibrateBurn(targetMicros = 50): Promise<BurnCalibration> {
  const { burn } = (await import(fixture('work.js').href)) as WorkModule;
  for (let i = 0; i < 5; i++) burn(1_000_000); // JIT
  const probe = 200_000;
  let best = Infinity;
  for (let i = 0; i < 20; i++) {
    const t = performance.now();
    burn(probe);
    best = Math.min(best, (performance.now() - t) * 1000);
    await new Promise((r) => setTimeout(r, 10));
  }
  const iterations = Math.max(1, Math.round((targetMicros * probe) / best));
  const calls = new Float64Array(200);
  for (let i = 0; i < calls.length; i++) {
    const t = performance.now();
    burn(iterations);
    calls[i] = (performance.now() - t) * 1000;
  }
  calls.sort();
  return { iterations, targetMicros, measuredMicros: Math.round(calls[100]! * 10) / 10 };
}
