import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { autoscaleDefaults, mailboxDefaults } from 'ringpool';

// The mailbox options table (docs/getting-started.md, linked from the README) must say what the code
// does (piscina's README once disagreed with its code).
describe('README', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const options = readFileSync(new URL('../../docs/getting-started.md', import.meta.url), 'utf8');
  const rows = new Map<string, string>();
  for (const m of options.matchAll(/^\| `(\w+)` \| [^|]*(?:\\\|[^|]*)* \| (.+?) \| .+ \|$/gm)) rows.set(m[1]!, m[2]!);

  it('lists every mailbox option with the default the code uses', () => {
    const expected: Record<string, string> = {};
    for (const [k, v] of Object.entries(mailboxDefaults)) {
      if (k === 'maxThreads') {
        expect(v).toBe(availableParallelism());
        expected[k] = '`os.availableParallelism()`';
      } else if (k === 'autoscale') {
        expected[k] =
          '`{ ' +
          Object.entries(autoscaleDefaults)
            .map(([a, b]) => `${a}: ${b}`)
            .join(', ') +
          ' }`';
      } else if (k === 'backoff') expected[k] = `\`{ baseMs: ${(v as { baseMs: number }).baseMs}, maxMs: ${(v as { maxMs: number }).maxMs} }\``;
      else if (typeof v === 'string') expected[k] = `\`'${v}'\``;
      else expected[k] = `\`${String(v)}\``;
    }
    for (const [k, def] of Object.entries(expected)) expect(rows.get(k), `docs/getting-started.md default of ${k}`).toBe(def);
    expect(rows.get('handler')).toBe('(required)');
  });

  it('shows the two commands', () => {
    expect(readme).toContain('npm start');
    expect(readme).toContain('npm test');
  });
});
