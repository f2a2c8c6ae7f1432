// The SIGKILL loop (issue 15): a child process sends with sendAsync and handles on a durable mailbox;
// the parent kills it with SIGKILL at random points and starts it again on the same dir. Oracle: every
// non-poison message whose sendAsync resolved succeeded (a success is recorded after the handler's work,
// issue 26), every poison one is a dead letter, duplicates are counted, losses are 0.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const CHILD = fileURLToPath(new URL('../fixtures/journal-child.mjs', import.meta.url));
const KILLS = Number(process.env.RINGPOOL_KILLS ?? 100);
const PER_LIFE = 300;

interface Life {
  ok: number[];
  dead: number[] | null;
  journal: string | null;
  stderr: string;
}

function life(dir: string, out: string, from: number, count: number, killAfterMs: number | null): Promise<Life> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, dir, out, String(from), String(count)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const res: Life = { ok: [], dead: null, journal: null, stderr: '' };
    let buf = '';
    const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === 'ready' && killAfterMs !== null) setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        else if (line.startsWith('ok ')) res.ok.push(Number(line.slice(3)));
        else if (line.startsWith('dead ')) res.dead = JSON.parse(line.slice(5)) as number[];
        else if (line.startsWith('journal ')) res.journal = line.slice(8);
      }
    });
    child.stderr.on('data', (d: Buffer) => (res.stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', () => {
      clearTimeout(guard);
      resolve(res);
    });
  });
}

describe('durable mailbox under SIGKILL', () => {
  it(`${KILLS} SIGKILLs at random points: no message whose sendAsync resolved is lost; dead letters survive`, { timeout: 180_000 }, async () => {
    const root = mkdtempSync(join(tmpdir(), 'ringpool-kill-'));
    const dir = join(root, 'journal');
    const out = join(root, 'runs.txt');
    try {
      const acked = new Set<number>();
      let next = 0;
      let seed = 12345;
      const rand = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
      const t0 = Date.now();
      for (let k = 0; k < KILLS; k++) {
        const l = await life(dir, out, next, PER_LIFE, Math.floor(rand() * 150));
        next += PER_LIFE;
        for (const i of l.ok) acked.add(i);
        expect(l.stderr).not.toMatch(/JOURNAL_CORRUPT|Error:/);
      }
      const last = await life(dir, out, 0, 0, null);
      expect(last.dead, last.stderr).not.toBeNull();
      // Successes: a line per run that finished its work (journal-sink.js writes it last), so a message counts as
      // processed only if some run of it succeeded, never because an attempt started.
      const runs = new Map<number, number>();
      if (existsSync(out)) {
        for (const line of readFileSync(out, 'utf8').split('\n')) {
          if (line === '') continue;
          const i = Number(line.split(' ')[0]);
          runs.set(i, (runs.get(i) ?? 0) + 1);
        }
      }
      const nonPoison = [...acked].filter((i) => i % 53 !== 0);
      const lost = nonPoison.filter((i) => !runs.has(i));
      const retriedOk = nonPoison.filter((i) => i % 7 === 0 && runs.has(i)).length;
      const dead = new Set(last.dead);
      const poisonAcked = [...acked].filter((i) => i % 53 === 0);
      const deadLost = poisonAcked.filter((i) => !dead.has(i));
      const poisonRan = poisonAcked.filter((i) => runs.has(i));
      let duplicates = 0;
      for (const c of runs.values()) duplicates += c - 1;
      console.log(
        `SIGKILL loop: ${KILLS} kills in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${acked.size} sends acknowledged, ` +
          `${runs.size} messages succeeded (${retriedOk} of them on a retry), ${duplicates} duplicate successes, ${dead.size} dead letters, lost ${lost.length}; journal ${last.journal}`,
      );
      expect(acked.size).toBeGreaterThan(KILLS); // it did something: about 270 a life here
      expect(retriedOk).toBeGreaterThan(0);
      expect(lost).toEqual([]);
      expect(deadLost).toEqual([]);
      expect(poisonRan).toEqual([]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
