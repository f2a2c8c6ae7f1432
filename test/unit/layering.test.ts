// The seams hold (issue #27): the in-memory core reaches a store or a source only through its interface
// (runtime/store/store.ts, runtime/source/source.ts) and the builders that load the built-in ones when a
// mailbox uses them (runtime/store/index.ts, runtime/source/index.ts). No file of runtime/ outside
// runtime/store/journal/ and runtime/source/redis/ imports from them, so runtime/ compiles and reads as the
// in-memory queue without those two folders.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else if (/\.(ts|cts|mts)$/.test(name)) out.push(p);
  }
  return out;
}

/** Every module a file names: static imports and re-exports (type-only ones too), and import() calls. */
function importsOf(source: string): string[] {
  const out: string[] = [];
  const stat = /^\s*(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm;
  const dyn = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of source.matchAll(stat)) out.push((m[1] ?? m[2])!);
  for (const m of source.matchAll(dyn)) out.push(m[1]!);
  return out;
}

/** The relative imports among `files`: file -> the files it imports. */
function importGraph(files: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const deps = importsOf(readFileSync(f, 'utf8'))
      .filter((s) => s.startsWith('.'))
      .map((s) => resolve(dirname(f), s.replace(/\.js$/, '.ts')))
      .filter((d) => files.includes(d));
    graph.set(f, deps);
  }
  return graph;
}

const IMPLEMENTATIONS = [/(^|\/)store\/journal\//, /(^|\/)source\/redis\//];

describe('layering: the core knows the store and the source by their seams', () => {
  it('no file of runtime/ outside store/journal/ and source/redis/ imports from them (runtime/mailbox/ and runtime.ts included)', () => {
    const core = filesUnder(join(root, 'runtime')).filter((f) => !/runtime\/(store\/journal|source\/redis)\//.test(f));
    expect(core.some((f) => f.endsWith('runtime/runtime.ts'))).toBe(true);
    expect(core.filter((f) => f.includes('runtime/mailbox/')).length).toBeGreaterThan(8);
    const bad: string[] = [];
    for (const f of core) {
      for (const spec of importsOf(readFileSync(f, 'utf8'))) {
        if (IMPLEMENTATIONS.some((re) => re.test(spec))) bad.push(`${relative(root, f)} imports '${spec}'`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('sees every kind of import it checks for', () => {
    const src = [
      "import { Journal } from '../store/journal/index.js';",
      "import type { StreamStats } from './source/redis/stats.js';",
      "export { x } from '../source/redis/x.js';",
      "export type {\n  y,\n} from '../store/journal/y.js';",
      "const m = await import('../source/redis/source.js');",
      "import '../store/journal/side.js';",
    ].join('\n');
    expect(importsOf(src).filter((s) => IMPLEMENTATIONS.some((re) => re.test(s)))).toHaveLength(6);
  });

  it('runtime/ has no import cycle outside source/redis/ (the mailbox\'s parts call down; signals go up as callbacks)', () => {
    const graph = importGraph(filesUnder(join(root, 'runtime')).filter((f) => !/runtime\/source\/redis\//.test(f)));
    expect(cyclesOf(graph).map((c) => c.map((f) => relative(root, f)).join(' -> '))).toEqual([]);
  });

  it('workers/ has no import cycle, and no part of workers/loop/ imports the loop (each is given what it uses)', () => {
    const files = filesUnder(join(root, 'workers'));
    expect(files.filter((f) => f.includes('workers/loop/')).length).toBeGreaterThan(8);
    const graph = importGraph(files);
    expect(cyclesOf(graph).map((c) => c.map((f) => relative(root, f)).join(' -> '))).toEqual([]);
    const loop = join(root, 'workers/loop/loop.ts');
    const takers = [...graph].filter(([, deps]) => deps.includes(loop)).map(([f]) => relative(root, f));
    // The loop's entry (index.ts) and a shared pool thread (workers/pool/thread.ts) run loops; no part of the loop does.
    expect(takers.sort()).toEqual(['workers/loop/index.ts', 'workers/pool/thread.ts']);
  });

  it('finds a cycle when there is one', () => {
    const g = new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]);
    expect(cyclesOf(g)).toEqual([['a', 'b', 'c', 'a']]);
  });
});

/** The cycles of a directed graph, one per strongly connected loop found by a depth-first walk. */
function cyclesOf(graph: Map<string, string[]>): string[][] {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const out: string[][] = [];
  const visit = (n: string): void => {
    state.set(n, 1);
    stack.push(n);
    for (const d of graph.get(n) ?? []) {
      if (state.get(d) === 1) out.push([...stack.slice(stack.indexOf(d)), d]);
      else if (state.get(d) === undefined) visit(d);
    }
    stack.pop();
    state.set(n, 2);
  };
  for (const n of graph.keys()) if (state.get(n) === undefined) visit(n);
  return out;
}
