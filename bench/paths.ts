/**
 * Where the benchmark's files are. This module runs as dist/bench/paths.js;
 * the worker-side fixtures are plain JavaScript, loaded from bench/fixtures/
 * as they are (not compiled).
 */
export const repoRoot = new URL('../../', import.meta.url);

/** A worker-side fixture in bench/fixtures/. */
export function fixture(name: string): URL {
  return new URL(`bench/fixtures/${name}`, repoRoot);
}

/** Default output folder for JSON, SVG and Markdown results (git-ignored). */
export const defaultResultsDir = new URL('bench/results/', repoRoot);

/** The committed chart the README shows (written with --docs). */
export const docsChart = new URL('docs/bench.svg', repoRoot);
