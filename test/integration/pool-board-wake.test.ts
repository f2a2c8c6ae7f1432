// A pool thread parked on the pool board's wake word (runtime/shared/pool-board.ts, issue #28) is woken by a
// producer marking a lane it hosts: a real worker thread in Atomics.wait, a real SharedArrayBuffer.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { PoolBoard } from '../../dist/runtime/shared/pool-board.js';

const boardUrl = new URL('../../dist/runtime/shared/pool-board.js', import.meta.url).href;

describe('PoolBoard wake-up across threads', () => {
  it('a parked worker thread wakes when a lane is marked', async () => {
    const b = new PoolBoard(PoolBoard.allocate(64));
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      import(workerData.url).then(({ PoolBoard }) => {
        const b = new PoolBoard(workerData.sab);
        const seen = b.announce(3);
        parentPort.postMessage('parked');
        const r = b.isReady(7) ? 'found' : b.wait(3, seen, 10000);
        b.leave(3);
        parentPort.postMessage({ r, lane: b.isReady(7) ? 7 : -1 });
      });`;
    const w = new Worker(code, { eval: true, workerData: { sab: b.i32.buffer, url: boardUrl } });
    const results: unknown[] = [];
    const done = new Promise<void>((resolve, reject) => {
      w.on('message', (m) => {
        results.push(m);
        if (m === 'parked') setTimeout(() => b.markReady(7, 1 << 3), 20);
        else resolve();
      });
      w.on('error', reject);
    });
    await done;
    await w.terminate();
    expect(results[1]).toMatchObject({ lane: 7 });
    expect(['ok', 'not-equal']).toContain((results[1] as { r: string }).r);
  });
});
