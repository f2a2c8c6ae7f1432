/**
 * Typed actor proxies, checked by the TypeScript compiler: test/types/use-proxy.ts
 * must compile with no diagnostics (every @ts-expect-error line there is a real
 * error: an unused one is itself a diagnostic), and the same file with the
 * directives removed must fail on exactly those lines.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const proxyFile = fileURLToPath(new URL('../types/use-proxy.ts', import.meta.url));
const typedFile = fileURLToPath(new URL('../types/typed-mailboxes.ts', import.meta.url));
const options: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  types: ['node'],
};

function diagnostics(file: string, source?: string): ts.Diagnostic[] {
  const host = ts.createCompilerHost(options);
  if (source !== undefined) {
    const read = host.readFile.bind(host);
    host.readFile = (f) => (f === file ? source : read(f));
    const get = host.getSourceFile.bind(host);
    host.getSourceFile = (f, lang, ...rest) => (f === file ? ts.createSourceFile(f, source, lang) : get(f, lang, ...rest));
  }
  const program = ts.createProgram([file], options, host);
  return [...ts.getPreEmitDiagnostics(program)];
}

/** Each file: no diagnostics as it is; without its @ts-expect-error directives, exactly those lines fail. */
function checks(title: string, file: string, directives: number): void {
  describe(title, () => {
    it('right calls compile, and every wrong one is an error', () => {
      const diags = diagnostics(file);
      expect(diags.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))).toEqual([]);
    }, 60_000);

    it('without the @ts-expect-error directives, exactly those lines fail', () => {
      const text = readFileSync(file, 'utf8');
      const lines = text.split('\n');
      const expected = lines.flatMap((l, i) => (l.trim().startsWith('// @ts-expect-error') ? [i + 1] : []));
      expect(expected.length).toBe(directives);
      const stripped = lines.map((l) => (l.trim().startsWith('// @ts-expect-error') ? '' : l)).join('\n');
      const failing = new Set(
        diagnostics(file, stripped)
          .filter((d) => d.file?.fileName === file)
          .map((d) => d.file!.getLineAndCharacterOfPosition(d.start!).line),
      );
      // the line after each directive (0-based = directive's 1-based number)
      expect([...failing].sort((a, b) => a - b)).toEqual(expected);
    }, 60_000);
  });
}

checks('typed actor proxies (rt.actor<typeof def>)', proxyFile, 6);
// Issue #32: createRuntime infers each mailbox's types from mailbox<typeof import(...)>(url), or from a type map.
checks('typed mailboxes (mailbox<M>(), Runtime<T>)', typedFile, 7);
