import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;

// The demo and the benchmarks run in CI in a short mode so they cannot rot (their figures are not asserted).
describe('smoke: demo and benchmarks', () => {
  it('the demo (npm start) runs a short burst and accounts for every message', async () => {
    const { stdout } = await run(process.execPath, ['dist/examples/demo.js', '--duration', '2', '--rate', '5000', '--poison', '3'], { cwd: root, timeout: 60_000 });
    expect(stdout).toMatch(/everything accounted for\s+yes/);
    expect(stdout).toMatch(/dead-lettered\s+3 \(unrecoverable, unrecoverable, unrecoverable\)/);
    const offered = Number(/offered\s+(\d+)/.exec(stdout)![1]);
    const processed = Number(/processed\s+(\d+)/.exec(stdout)![1]);
    expect(processed).toBe(offered - 3);
  }, 60_000);

  it('the orders pipeline ships every order through payments, inventory and shipping', async () => {
    const { stdout } = await run(process.execPath, ['dist/examples/orders/main.js', '--seconds', '3', '--rate', '200'], { cwd: root, timeout: 60_000 });
    expect(stdout).toMatch(/every order shipped\s+yes/);
  }, 60_000);

  it('the demo answers --help', async () => {
    const { stdout } = await run(process.execPath, ['dist/examples/demo.js', '--help'], { cwd: root });
    expect(stdout).toMatch(/--duration/);
  });
});
