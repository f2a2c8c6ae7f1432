import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CONSUMER_ENTRY } from '../../dist/runtime/pool/threads.js';
import { fixture } from '../helpers.js';

describe('the consumer thread entry', () => {
  // On Node 20, require() of an ES module graph aborts the process when the thread is terminated
  // while the graph instantiates (V8: "IsGraphAsync must be used on an instantiated module"), and
  // Piscina loads its task file with require() first. Threads terminated just as they start (a
  // destroy() during a scale-up, a replacement killed at once) must not take the process down.
  it('survives threads terminated at every point of their first milliseconds, module loading included', () => {
    const r = spawnSync(process.execPath, [fileURLToPath(fixture('terminate-while-loading.mjs')), fileURLToPath(CONSUMER_ENTRY), '250'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.status, `${r.stderr}`.slice(0, 2000)).toBe(0);
    expect(r.stdout).toContain('survived');
  }, 130_000);
});
