/**
 * The command-line flags of the example scripts, and of bench/ and
 * test/soak/ (issue #33; they import it from here, examples import nothing
 * from bench/): node:util `parseArgs` in strict mode, every number checked
 * (a typo or a missing value is refused, never read as NaN), and `--help`
 * written from the same table.
 *
 *   const { values } = cli({
 *     usage: 'node dist/examples/orders/main.js [flags]',
 *     flags: { seconds: { type: 'number', default: 9, gt: 0, arg: 'S', help: 'how long the producer runs' } },
 *   });
 *
 * `--help` (or `-h`) prints the usage and exits 0; an unknown flag, a
 * missing value, a number that is not one or is out of its range prints
 * `error: <flag>: <what was expected>, got <value>` and "try --help" on
 * stderr and exits 2, before the script does any work.
 */
import { parseArgs } from 'node:util';

/** The range a number flag (or an argument read with toNumber) takes. */
export interface NumberRange {
  integer?: boolean;
  /** Smallest allowed (inclusive). */
  min?: number;
  /** Greater than this (exclusive). */
  gt?: number;
  /** Largest allowed (inclusive). */
  max?: number;
}

interface FlagBase {
  /** One line: what the flag does. */
  help: string;
  /** The value's placeholder in the usage (number: N, string: VALUE). */
  arg?: string;
  /** The default as the usage shows it, when it is not `default` (it depends on another flag or on the machine). */
  defaultText?: string;
}
export interface BooleanFlag {
  type: 'boolean';
  help: string;
}
export interface NumberFlag extends FlagBase, NumberRange {
  type: 'number';
  default?: number;
}
export interface StringFlag extends FlagBase {
  type: 'string';
  default?: string;
  /** The values it takes (else any non-empty string). */
  choices?: readonly string[];
  /** What it takes, for the error message (default: "a value"). */
  expected?: string;
  /** May be given more than once: the values in order. */
  multiple?: boolean;
}
export type Flag = BooleanFlag | NumberFlag | StringFlag;
export type Flags = Record<string, Flag>;

export interface Positional {
  name: string;
  help: string;
  optional?: boolean;
}

export interface Command<F extends Flags = Flags> {
  /** How it is run, e.g. 'npm run bench:many -- [flags]'. */
  usage: string;
  /** What it does, before the flags. */
  about?: string;
  /** Flag names without the leading --; --help and -h are added. */
  flags: F;
  /** Its positional arguments in order (none given: flags only). */
  positionals?: readonly Positional[];
  /** After the flags. */
  notes?: string;
}

type ValueOf<T> = T extends BooleanFlag
  ? boolean
  : T extends NumberFlag
    ? T extends { default: number } ? number : number | undefined
    : T extends { multiple: true }
      ? string[]
      : T extends { default: string } ? string : string | undefined;

/** The flags' values by name: booleans false when absent, the others their default (undefined if none). */
export type Values<F extends Flags> = { -readonly [K in keyof F]: ValueOf<F[K]> };

export interface Parsed<F extends Flags> {
  values: Values<F>;
  positionals: string[];
  /** --help or -h was given (values and positionals are then empty). */
  help: boolean;
}

/** A refused command line; its message is `<flag>: <what was expected>, got <value>`. */
export class CliError extends Error {
  override name = 'CliError';
}

const show = (v: string | undefined): string => (v === undefined ? 'nothing' : v === '' || /\s/.test(v) ? JSON.stringify(v) : v);

/** Refuses the command line: `flag` (or argument) expected `expected` and got `got` (undefined: nothing). */
export function fail(flag: string, expected: string, got: string | undefined): never {
  throw new CliError(`${flag}: ${expected}, got ${show(got)}`);
}

/** "an integer >= 1", "a number > 0", "an integer from 0 to 65535". */
export function numberText(r: NumberRange): string {
  const kind = r.integer ? 'an integer' : 'a number';
  if (r.min !== undefined && r.max !== undefined && r.gt === undefined) return `${kind} from ${r.min} to ${r.max}`;
  const bounds = [r.gt !== undefined ? `> ${r.gt}` : r.min !== undefined ? `>= ${r.min}` : '', r.max !== undefined ? `<= ${r.max}` : ''].filter(Boolean);
  return [kind, bounds.join(' and ')].filter(Boolean).join(' ');
}

/** `raw` as a number in range `r`, or a CliError naming `flag`. */
export function toNumber(flag: string, raw: string, r: NumberRange = {}): number {
  const n = raw.trim() === '' ? NaN : Number(raw);
  const ok =
    Number.isFinite(n) &&
    (!r.integer || Number.isInteger(n)) &&
    (r.min === undefined || n >= r.min) &&
    (r.gt === undefined || n > r.gt) &&
    (r.max === undefined || n <= r.max);
  if (!ok) fail(flag, numberText(r), raw);
  return n;
}

function expectedOf(f: NumberFlag | StringFlag): string {
  if (f.type === 'number') return numberText(f);
  if (f.choices) return `one of ${f.choices.join(', ')}`;
  return f.expected ?? 'a value';
}

type Options = NonNullable<Parameters<typeof parseArgs>[0]>['options'] & object;

/** Parses `argv` strictly against `cmd`; a CliError for what it refuses. */
export function parse<F extends Flags>(cmd: Command<F>, argv: readonly string[]): Parsed<F> {
  const options: Options = { help: { type: 'boolean', short: 'h' } };
  for (const [name, f] of Object.entries(cmd.flags)) {
    options[name] = f.type === 'boolean' ? { type: 'boolean' } : { type: 'string', multiple: f.type === 'string' && f.multiple === true };
  }
  const args = [...argv];
  // A lenient look first: --help wins over whatever else is wrong, and a refusal names its flag.
  const { tokens } = parseArgs({ args, options, strict: false, allowPositionals: true, tokens: true });
  if (tokens.some((t) => t.kind === 'option' && t.name === 'help')) return { values: {} as Values<F>, positionals: [], help: true };
  let got: { values: Record<string, string | boolean | Array<string | boolean> | undefined>; positionals: string[] };
  try {
    got = parseArgs({ args, options, strict: true, allowPositionals: cmd.positionals !== undefined });
  } catch (err) {
    for (const t of tokens) {
      if (t.kind === 'positional' && cmd.positionals === undefined) throw new CliError(`unexpected argument ${show(t.value)}: this command takes flags only`);
      if (t.kind !== 'option') continue;
      const f = cmd.flags[t.name];
      if (f === undefined) throw new CliError(`unknown flag ${t.rawName}`);
      if (f.type === 'boolean') {
        if (t.value !== undefined) fail(t.rawName, 'no value', t.value);
        continue;
      }
      if (t.value === undefined) fail(t.rawName, expectedOf(f), undefined);
      if (!t.inlineValue && t.value.startsWith('-')) {
        if (f.type === 'number') toNumber(t.rawName, t.value, f);
        throw new CliError(`${t.rawName}: ${expectedOf(f)}, got nothing (${t.value} reads as a flag; write ${t.rawName}=${t.value} for a value that starts with -)`);
      }
    }
    throw new CliError((err as Error).message);
  }
  const values: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(cmd.flags)) {
    const raw = got.values[name];
    const flag = `--${name}`;
    if (f.type === 'boolean') values[name] = raw === true;
    else if (f.type === 'number') values[name] = raw === undefined ? f.default : toNumber(flag, raw as string, f);
    else {
      const list = raw === undefined ? [] : Array.isArray(raw) ? (raw as string[]) : [raw as string];
      for (const v of list) if (v === '' || (f.choices && !f.choices.includes(v))) fail(flag, expectedOf(f), v);
      values[name] = f.multiple ? list : (list[0] ?? f.default);
    }
  }
  const want = cmd.positionals ?? [];
  const ps = got.positionals;
  const missing = want.slice(ps.length).find((p) => !p.optional);
  if (missing) fail(`<${missing.name}>`, missing.help, undefined);
  if (ps.length > want.length) throw new CliError(`unexpected argument ${show(ps[want.length])}: this command takes ${want.length} argument${want.length === 1 ? '' : 's'} (${want.map((p) => `<${p.name}>`).join(' ')})`);
  return { values: values as Values<F>, positionals: ps, help: false };
}

/** The --help text: usage line, what it does, each argument and flag with its type and default. */
export function usage(cmd: Command): string {
  const rows: Array<[string, string]> = (cmd.positionals ?? []).map((p) => [p.optional ? `[<${p.name}>]` : `<${p.name}>`, p.help]);
  for (const [name, f] of Object.entries(cmd.flags)) {
    if (f.type === 'boolean') {
      rows.push([`--${name}`, f.help]);
      continue;
    }
    const left = `--${name} ${f.arg ?? (f.type === 'number' ? 'N' : 'VALUE')}`;
    const type = f.type === 'number' ? numberText(f).replace(/^an? /, '') : f.choices ? `one of ${f.choices.join(', ')}` : '';
    const def = f.defaultText ?? (f.default === undefined ? '' : String(f.default));
    const tail = [type, def === '' ? '' : `default ${def}`].filter(Boolean).join('; ');
    rows.push([left + (f.type === 'string' && f.multiple ? ' ...' : ''), tail === '' ? f.help : `${f.help} (${tail})`]);
  }
  rows.push(['--help, -h', 'this text']);
  const width = Math.min(26, Math.max(...rows.map(([l]) => l.length)));
  const lines = rows.map(([l, r]) => `  ${l.padEnd(width)}  ${r}`);
  return [`Usage: ${cmd.usage}`, ...(cmd.about ? ['', cmd.about] : []), '', ...lines, ...(cmd.notes ? ['', cmd.notes] : [])].join('\n');
}

/** Prints a CliError as `error: ...` and "try --help" on stderr and exits 2; rethrows anything else. */
export function refuse(err: unknown): never {
  if (!(err instanceof CliError)) throw err;
  console.error(`error: ${err.message}\ntry --help`);
  process.exit(2);
}

/**
 * Parses process.argv (or `argv`) against `cmd`: on --help prints the usage
 * and exits 0; on a refusal (from parsing or from `build`, which may call
 * fail()) prints it and exits 2. Returns `build`'s result, else the parse.
 */
export function cli<const F extends Flags>(cmd: Command<F>): Parsed<F>;
export function cli<const F extends Flags, R>(cmd: Command<F>, build: (p: Parsed<F>) => R, argv?: readonly string[]): R;
export function cli<const F extends Flags, R>(cmd: Command<F>, build?: (p: Parsed<F>) => R, argv: readonly string[] = process.argv.slice(2)): R | Parsed<F> {
  try {
    const p = parse(cmd, argv);
    if (p.help) {
      console.log(usage(cmd));
      process.exit(0);
    }
    return build ? build(p) : p;
  } catch (err) {
    return refuse(err);
  }
}
