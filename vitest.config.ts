import { defineConfig } from 'vitest/config';

// Tests import the built package ('ringpool', 'ringpool/worker' resolve to dist/
// through package.json "exports"): the code under test is the code that ships,
// and worker threads load the same files. `npm test` builds first.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Debian packages (.ci/bootstrap) and a Redis of the suite's own: see the file.
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // 2 cores: files in turn keep thread counts and timings honest.
    fileParallelism: false,
    server: { deps: { external: [/\/dist\//] } },
  },
});
