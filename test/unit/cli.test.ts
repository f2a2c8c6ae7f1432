/**
 * Every script's command line (issue #33, "CLI habits"): flags parsed by
 * examples/cli.ts (node:util parseArgs, strict). Each built script answers
 * --help (exit 0, its usage naming each of its flags) and refuses an unknown
 * flag, a missing value and a bad number (exit 2, the flag named on stderr,
 * nothing on stdout: no work started). The helper's parsing itself is checked
 * in-process. Runs the built dist/ (npm test builds first); the scripts run a
 * few at a time (each is a Node start-up and a module load, ~0.3-0.6 s).
 */
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CliError, parse, toNumber, usage, type Command } from '../../dist/examples/cli.js';

const root = new URL('../..', import.meta.url).pathname;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** At most 3 scripts at once (2 cores). */
let running = 0;
const queue: Array<() => void> = [];
async function node(args: string[]): Promise<Run> {
  if (running >= 3) await new Promise<void>((r) => queue.push(r));
  running++;
  try {
    return await new Promise<Run>((resolve) => {
      execFile(process.execPath, args, { cwd: root, timeout: 20_000, env: { ...process.env, REDIS_URL: 'redis://127.0.0.1:1' } }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
      });
    });
  } finally {
    running--;
    queue.shift()?.();
  }
}

const SUITE = ['--runs', '--quick', '--only', '--systems', '--w1-fast', '--w1-task', '--w1-redis', '--w1-stream', '--w2-fast', '--w3-task', '--w5-redis', '--w1-seconds', '--w4-seconds', '--w4-rate', '--w4-load', '--scale', '--out', '--docs', '--bullmq-concurrency'];

/** Every script that reads its command line, and the flags (or arguments) its usage must name: the ones it always took. */
const SCRIPTS: Record<string, string[]> = {
  'dist/bench/run.js': SUITE,
  'dist/bench/suite.js': SUITE,
  'dist/bench/ask.js': ['--calls', '--runs', '--quick'],
  'dist/bench/trace.js': ['--seconds', '--rate', '--codec'],
  'dist/bench/hot-path.js': ['--messages', '--codec', '--batch', '--metrics'],
  'dist/bench/fairness.js': ['--seconds', '--threads'],
  'dist/bench/journal-cli.js': ['--messages', '--gib'],
  'dist/bench/many.js': ['--counts', '--seconds', '--runs', '--threads', '--child'],
  'dist/bench/protect.js': ['--quick', '--tiny'],
  'dist/bench/redis-cross.js': ['--quick', '--tiny'],
  'dist/bench/redis-clients.js': ['--messages', '--runs'],
  'dist/bench/takeover.js': ['--kills', '--lease', '--renew', '--quick'],
  'bench/fixtures/redis-consumer.mjs': ['<url>', '<stream>', '<consumer>', '<handler>', '[<partitions>]'],
  'dist/examples/demo.js': ['--duration', '--base', '--rate', '--burst', '--per-thread', '--downstream', '--slow', '--slow-capacity', '--slow-for', '--no-protect', '--threads', '--concurrency', '--poison', '--port', '--out', '--short', '--json'],
  'dist/examples/spike.js': ['--spike', '--work', '--factor', '--max', '--window', '--tick'],
  'dist/examples/orders/main.js': ['--seconds', '--rate'],
  'dist/examples/redis/main.js': [],
  'dist/examples/redis/consumer.js': ['<url>', '<stream>', '<consumer>'],
  'dist/examples/downstream/server.js': ['[<capacity>]', '[<serviceMs>]'],
  'dist/test/soak/cli.js': ['--seconds', '--seed', '--messages', '--set'],
};

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe.concurrent('every script: --help, and an unknown flag refused', () => {
  for (const [script, flags] of Object.entries(SCRIPTS)) {
    it(`${script} --help prints its usage and exits 0`, async () => {
      const r = await node([script, '--help']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^Usage: /);
      expect(r.stdout).toMatch(/--help, -h/);
      for (const f of flags) expect(r.stdout, f).toMatch(new RegExp(`(^|\\s)${escape(f)}(\\s|,|$)`, 'm'));
    }, 60_000);

    it(`${script} --no-such-flag exits 2 naming it, before any work`, async () => {
      const r = await node([script, '--no-such-flag']);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^error: unknown flag --no-such-flag\ntry --help\n$/);
      expect(r.stdout).toBe('');
    }, 60_000);
  }
});

describe.concurrent('bad values are refused with exit 2, the flag, what it takes and what it got', () => {
  const cases: Array<[string[], string]> = [
    [['dist/bench/suite.js', '--runs', 'abc'], 'error: --runs: an integer >= 1, got abc'],
    [['dist/bench/run.js', '--only', 'w1,w9'], 'error: --only: workloads w1..w5, comma-separated, got w1,w9'],
    [['dist/examples/orders/main.js', '--seconds', 'abc'], 'error: --seconds: a number > 0, got abc'],
    [['dist/bench/fairness.js', '--threads', '1.5'], 'error: --threads: an integer >= 1, got 1.5'],
    [['dist/examples/demo.js', '--port', '70000'], 'error: --port: an integer from 0 to 65535, got 70000'],
    [['dist/bench/many.js', '--counts', '1,x'], 'error: --counts: an integer >= 1, got x'],
    [['dist/bench/takeover.js', '--kills'], 'error: --kills: an integer >= 1, got nothing'],
    [['dist/test/soak/cli.js', '--set', 'keys=abc'], 'error: --set keys: an integer >= 1, got abc'],
  ];
  for (const [args, message] of cases) {
    it(args.join(' '), async () => {
      const r = await node(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`${message}\ntry --help\n`);
      expect(r.stdout).toBe('');
    }, 60_000);
  }
});

describe('examples/cli.ts: the parser', () => {
  const cmd = {
    usage: 'x [flags]',
    flags: {
      n: { type: 'number', integer: true, min: 1, default: 3, help: 'n' },
      rate: { type: 'number', gt: 0, help: 'rate' },
      codec: { type: 'string', choices: ['json', 'v8'], default: 'json', help: 'codec' },
      set: { type: 'string', multiple: true, help: 'set' },
      quick: { type: 'boolean', help: 'quick' },
    },
  } as const satisfies Command;
  const refusal = (argv: string[], c: Command = cmd): string => {
    try {
      parse(c, argv);
    } catch (err) {
      expect(err).toBeInstanceOf(CliError);
      return (err as Error).message;
    }
    throw new Error(`not refused: ${argv.join(' ')}`);
  };

  it('gives defaults, numbers, lists and booleans; --flag=value works; the last of a repeated flag wins', () => {
    expect(parse(cmd, [])).toEqual({ values: { n: 3, rate: undefined, codec: 'json', set: [], quick: false }, positionals: [], help: false });
    expect(parse(cmd, ['--n=7', '--rate', '0.5', '--codec', 'v8', '--set', 'a=1', '--set', 'b=2', '--quick', '--n', '8']).values).toEqual({ n: 8, rate: 0.5, codec: 'v8', set: ['a=1', 'b=2'], quick: true });
    expect(parse(cmd, ['--bogus', '-h']).help).toBe(true);
  });

  it('refuses what is not a number in range, a missing value, a value for a switch, an unknown flag, a stray argument', () => {
    expect(refusal(['--n', 'abc'])).toBe('--n: an integer >= 1, got abc');
    expect(refusal(['--n', ''])).toBe('--n: an integer >= 1, got ""');
    expect(refusal(['--n', '0'])).toBe('--n: an integer >= 1, got 0');
    expect(refusal(['--n', 'Infinity'])).toBe('--n: an integer >= 1, got Infinity');
    expect(refusal(['--rate', '0'])).toBe('--rate: a number > 0, got 0');
    expect(refusal(['--n'])).toBe('--n: an integer >= 1, got nothing');
    expect(refusal(['--codec', '--quick'])).toMatch(/^--codec: one of json, v8, got nothing \(--quick reads as a flag/);
    expect(refusal(['--codec', 'xml'])).toBe('--codec: one of json, v8, got xml');
    expect(refusal(['--quick=yes'])).toBe('--quick: no value, got yes');
    expect(refusal(['--nn', '1'])).toBe('unknown flag --nn');
    expect(refusal(['-q'])).toBe('unknown flag -q');
    expect(refusal(['extra'])).toBe('unexpected argument extra: this command takes flags only');
  });

  it('takes the positional arguments it declares, and no more', () => {
    const pos: Command = { usage: 'x <a> [<b>]', flags: {}, positionals: [{ name: 'a', help: 'the a' }, { name: 'b', help: 'the b', optional: true }] };
    expect(parse(pos, ['1']).positionals).toEqual(['1']);
    expect(parse(pos, ['1', '-']).positionals).toEqual(['1', '-']);
    expect(refusal([], pos)).toBe('<a>: the a, got nothing');
    expect(refusal(['1', '2', '3'], pos)).toBe('unexpected argument 3: this command takes 2 arguments (<a> <b>)');
    expect(usage(pos)).toMatch(/^Usage: x <a> \[<b>\]\n\n  <a> +the a\n  \[<b>\] +the b\n  --help, -h +this text$/);
  });

  it('toNumber reads a number in range or names what it expected', () => {
    expect(toNumber('--x', ' 12 ', { integer: true, min: 0, max: 20 })).toBe(12);
    expect(() => toNumber('--x', '21', { integer: true, min: 0, max: 20 })).toThrow('--x: an integer from 0 to 20, got 21');
    expect(() => toNumber('--x', '0x', {})).toThrow('--x: a number, got 0x');
  });

  it('the usage names each flag with its type and default', () => {
    const u = usage(cmd);
    expect(u).toMatch(/^ {2}--n N +n \(integer >= 1; default 3\)$/m);
    expect(u).toMatch(/^ {2}--rate N +rate \(number > 0\)$/m);
    expect(u).toMatch(/^ {2}--codec VALUE +codec \(one of json, v8; default json\)$/m);
    expect(u).toMatch(/^ {2}--set VALUE \.\.\. +set$/m);
    expect(u).toMatch(/^ {2}--quick +quick$/m);
  });
});
