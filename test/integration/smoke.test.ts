import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;

// The examples and the benchmarks run in CI in a short mode so they cannot rot (their figures are not asserted).
// The demo (npm start) has its own file: test/integration/demo.test.ts.
describe('smoke: examples and benchmarks', () => {
  it('the orders pipeline ships every order through payments, the inventory actors and shipping', async () => {
    const { stdout } = await run(process.execPath, ['dist/examples/orders/main.js', '--seconds', '3', '--rate', '200'], { cwd: root, timeout: 60_000 });
    expect(stdout).toMatch(/every order shipped\s+yes/);
    // the inventory actors' per-SKU stock, read back with typed asks, adds up
    expect(stdout).toMatch(/units reserved \(50 SKU actors\) (\d+) of \1 ordered: exact/);
  }, 60_000);


  it('the ask() round-trip benchmark runs one quick iteration of every system', async () => {
    const { stdout } = await run(process.execPath, ['dist/bench/ask.js', '--quick'], { cwd: root, timeout: 120_000 });
    for (const system of ['ringpool ask()', 'ringpool actor proxy ask.bump()', 'piscina.run()', 'raw postMessage round trip']) expect(stdout).toContain(system);
  }, 120_000);
});
