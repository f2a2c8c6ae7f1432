/**
 * W4 takes the send time on the main thread and the handler start time on a
 * consumer thread, both as `performance.timeOrigin + performance.now()`. Each
 * thread has its own timeOrigin, so check once per run that the two clocks
 * agree. Both threads compare their clock with `process.hrtime` (one monotonic
 * clock for the whole process, no per-thread origin); the difference of the
 * two offsets is the skew between the threads' clocks.
 */
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';

/**
 * (timeOrigin + now) minus hrtime, in ms, at the tightest of 1,000 bracketing
 * reads. Self-contained: its source is also run as is in a worker.
 */
function offset(): number {
  let gap = Infinity;
  let off = 0;
  for (let i = 0; i < 1000; i++) {
    const a = process.hrtime.bigint();
    const t = performance.timeOrigin + performance.now();
    const b = process.hrtime.bigint();
    if (Number(b - a) < gap) {
      gap = Number(b - a);
      off = t - Number((a + b) / 2n) / 1e6;
    }
  }
  return off;
}

export interface ClockCheck {
  /** A consumer thread's clock minus the main thread's, µs (the clocks tick in ~0.25 µs steps at this epoch). */
  skewMicros: number;
}

export async function checkClocks(): Promise<ClockCheck> {
  const w = new Worker(`${offset.toString()}\nrequire('node:worker_threads').parentPort.postMessage(offset());`, { eval: true });
  const [theirs] = (await once(w, 'message')) as [number];
  const mine = offset();
  await w.terminate();
  return { skewMicros: Math.round((theirs - mine) * 1000 * 100) / 100 };
}
