// The API reference (issue #32): `npm run docs` (TypeDoc, typedoc.json) generates it from the doc comments of the four
// entry points, and every exported symbol must have one: TypeDoc's notDocumented validation, with warnings as
// errors. Run here without writing (--emit none); it fails on an exported interface, class, function, type,
// variable, method or accessor without a doc comment.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('the API reference', () => {
  it('TypeDoc builds it and finds every exported symbol documented', () => {
    const r = spawnSync(process.execPath, ['node_modules/typedoc/bin/typedoc', '--emit', 'none'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    const out = `${r.stdout}\n${r.stderr}`;
    expect(out, out).not.toMatch(/does not have any documentation/);
    expect(r.status, out).toBe(0);
  }, 60_000);
});
