/**
 * The fault soak: three mailboxes in one runtime under a randomized mix of
 * faults at once (handlers that throw, exit their thread, never settle or
 * busy-loop on their first attempt; poison messages that always throw or
 * always exit; slow ones), checked against the delivery promise:
 * - every non-poison message succeeds at least once, and is never dead-lettered;
 * - every poison message is dead-lettered with the right reason and never succeeds;
 * - per key, messages start in send order, and one starts only after every
 *   earlier non-poison one of its key succeeded;
 * - a message succeeds twice only if the thread of its earlier success died
 *   (a crash or a lease kill) before the ack;
 * - `enqueued = processed + deadLettered`, processed and dead-lettered are
 *   exactly the non-poison and poison counts, and nothing is left.
 * Everything random comes from one seed, printed with the report, so a failing
 * run can be replayed (`npm run soak -- --seed N`).
 *
 * Run by test/soak/soak.test.ts (bounded, in CI) and test/soak/cli.ts (long runs).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BroadcastChannel } from 'node:worker_threads';
import { createRuntime, Outcome, type MessageStore, type OutcomeBatch, type Runtime } from '../../runtime/index.js';

const HANDLER = new URL('../../../test/fixtures/soak.js', import.meta.url);

/** Fates, as the handler knows them (test/fixtures/soak.js). */
const OK = 0, SLEEP = 1, THROW1 = 2, EXIT1 = 3, HANG1 = 4, SPIN1 = 5, THROW_ALWAYS = 6, EXIT_ALWAYS = 7;
const FATE_NAMES = ['ok', 'sleep', 'throw1', 'exit1', 'hang1', 'spin1', 'throwAlways', 'exitAlways'];
/** Probability of each fate but OK (issue #13's mix). */
const MIX: Array<[number, number]> = [
  [THROW1, 0.015],
  [EXIT1, 0.002],
  [HANG1, 0.0006],
  [SPIN1, 0.0003],
  [THROW_ALWAYS, 0.0012],
  [EXIT_ALWAYS, 0.0004],
  [SLEEP, 0.03],
];
const isPoison = (f: number): boolean => f === THROW_ALWAYS || f === EXIT_ALWAYS;

export interface SoakOptions {
  seed: number;
  /** Messages over the three mailboxes. @default 24000 */
  messages?: number;
  /** Sends are spread over this long. @default 4000 */
  sendMs?: number;
  /** Give up waiting for the runtime to be idle after this long. @default 90000 */
  idleTimeoutMs?: number;
  /** Fix part of the mix instead of drawing it from the seed (the rest still comes from the seed). */
  config?: Partial<SoakReport['config']>;
}

export interface SoakReport {
  seed: number;
  /** The mix this seed chose. */
  config: { looseConcurrency: number; keyedConcurrency: number; keys: number; leaseMs: number; maxAttempts: number; churn: boolean; feed: boolean; journal: boolean; threads: 'shared' | 'dedicated'; adaptive: boolean; only?: 'loose' | 'keyed' | 'tight' };
  /** The most messages in flight per thread each mailbox had (the autoscaler raises it for I/O-bound handlers). */
  peakConcurrency: Record<string, number>;
  messages: number;
  fates: Record<string, number>;
  crashes: number;
  timeouts: number;
  /** Messages that succeeded more than once (each explained by its thread's death, or a violation). */
  duplicates: number;
  ms: number;
  /** What broke the promise; empty when the run is clean. */
  violations: string[];
}

/** A store that keeps each id's outcome kinds (the feed's check). */
class FeedCheck implements MessageStore {
  readonly kinds = new Map<number, number[]>();
  async open(): Promise<[]> {
    return [];
  }
  outcomes(b: OutcomeBatch): void {
    for (let i = 0; i < b.n; i++) {
      const id = b.id[i]!;
      const k = this.kinds.get(id);
      if (k === undefined) this.kinds.set(id, [b.kind[i]!]);
      else k.push(b.kind[i]!);
    }
  }
  async close(): Promise<void> {}
}

/** mulberry32: a small seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Msg {
  i: number;
  box: 'loose' | 'keyed' | 'tight';
  f: number;
  ms?: number;
  k?: string;
  s?: number;
  /** The id send() gave it. */
  id?: number;
}

interface Run {
  attempt: number;
  thread: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runSoak(opts: SoakOptions): Promise<SoakReport> {
  const t0 = performance.now();
  const rand = prng(opts.seed);
  const total = opts.messages ?? 24_000;
  const sendMs = opts.sendMs ?? 4_000;
  const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
  const config = {
    looseConcurrency: int(2, 8),
    keyedConcurrency: int(1, 4),
    keys: int(16, 100),
    leaseMs: int(300, 500),
    maxAttempts: int(3, 5),
    // Odd seeds also retire and restart the keyed mailbox's threads every 150 ms while it runs (rt.resize 1 <-> 2).
    churn: (opts.seed & 1) === 1,
    // Seeds 2, 3 (mod 4) attach a store to every mailbox: its outcome feed must give each message one final outcome, the right one.
    feed: ((opts.seed >> 1) & 1) === 1,
    // Seeds 4, 5 (mod 8) make every mailbox durable (a journal, fsync 'always'): after the run, a restart on the
    // same directories must give back the dead letters and nothing else (every ack reached the journal).
    journal: ((opts.seed >> 1) & 3) === 2,
    // Seeds 8-15 (mod 16) give each mailbox threads of its own; the others run all three on the runtime's shared pool.
    threads: ((opts.seed >> 3) & 1) === 1 ? ('dedicated' as const) : ('shared' as const),
    // Seeds 4-7 (mod 8) bound the loose mailbox by adaptive concurrency: crashes and hangs must give back the places they held.
    adaptive: ((opts.seed >> 2) & 1) === 1,
    ...opts.config,
  };
  // A mailbox has one store: the journal, or the feed's check. Natural seeds never draw both; a mix that sets
  // journal=true on a feed seed runs with the journal (the feed check would leave the journals empty).
  if (config.journal && config.feed) {
    if (opts.config?.feed === true && opts.config?.journal === true) throw new Error('feed and journal cannot both be set: a mailbox has one store');
    config.feed = opts.config?.feed === true;
    config.journal = !config.feed;
  }
  const stores = { loose: new FeedCheck(), keyed: new FeedCheck(), tight: new FeedCheck() };
  const journalRoot = config.journal ? mkdtempSync(join(tmpdir(), 'ringpool-soak-journal-')) : null;
  const seams = (box: keyof typeof stores): { store?: MessageStore; durability?: { dir: string; fsync: 'always' } } =>
    config.feed ? { store: stores[box] } : journalRoot !== null ? { durability: { dir: join(journalRoot, box), fsync: 'always' } } : {};
  const common = {
    handler: HANDLER,
    minThreads: 1,
    maxThreads: 2,
    leaseMs: config.leaseMs,
    maxAttempts: config.maxAttempts,
    backoff: { baseMs: 2, maxMs: 40 },
    threads: config.threads,
  };
  const rt: Runtime = createRuntime({
    mailboxes: {
      loose: {
        ...common,
        ...(config.adaptive ? { concurrency: 'adaptive' as const, adaptive: { max: 2 * config.looseConcurrency, initial: config.looseConcurrency } } : { concurrency: config.looseConcurrency }),
        ...seams('loose'),
      },
      keyed: { ...common, concurrency: config.keyedConcurrency, ...seams('keyed') },
      tight: { ...common, capacityBytes: 64 << 10, maxMessageBytes: 4096, overflow: 'wait', ...seams('tight') },
    },
  });

  // The messages and their fates, all from the seed.
  const msgs: Msg[] = [];
  const fates: Record<string, number> = Object.fromEntries(FATE_NAMES.map((n) => [n, 0]));
  const keySeq = new Map<string, number>();
  for (let i = 0; i < total; i++) {
    const r = rand();
    const box = config.only ?? (r < 0.4 ? 'loose' : r < 0.8 ? 'keyed' : 'tight');
    let f = OK;
    let acc = 0;
    const x = rand();
    for (const [fate, p] of MIX) {
      acc += p;
      if (x < acc) {
        f = fate;
        break;
      }
    }
    const m: Msg = { i, box, f };
    if (f === SLEEP) m.ms = int(1, 3);
    if (box === 'keyed') {
      m.k = `k${int(0, config.keys - 1)}`;
      m.s = keySeq.get(m.k) ?? 0;
      keySeq.set(m.k, m.s + 1);
    }
    fates[FATE_NAMES[f]!]!++;
    msgs.push(m);
  }

  // What the handlers report, and which threads died.
  const successes: Run[][] = msgs.map(() => []);
  const violations: string[] = [];
  const violate = (s: string): void => {
    if (violations.length < 50) violations.push(s);
  };
  /** Per key: the seq that started last, and how many of its messages have succeeded in order so far. */
  const lastStart = new Map<string, number>();
  const byKey = new Map<string, Msg[]>();
  for (const m of msgs) if (m.k !== undefined) (byKey.get(m.k) ?? byKey.set(m.k, []).get(m.k)!).push(m);
  let events = 0;
  const brokenKeys = new Set<string>();
  const ch = new BroadcastChannel('ringpool-soak');
  ch.onmessage = (e: unknown) => {
    const [type, i, attempt, thread, headersOk] = (e as { data: [number, number, number, number, boolean?] }).data;
    events++;
    const m = msgs[i]!;
    if (type === 1) {
      successes[i]!.push({ attempt, thread });
      if (isPoison(m.f)) violate(`poison message ${i} (${FATE_NAMES[m.f]}) succeeded at attempt ${attempt}`);
      if (headersOk === false) violate(`message ${i} ran at attempt ${attempt} without the headers it was sent with (or with others)`);
      return;
    }
    // A keyed start: never behind a later start of its key, and every earlier non-poison message of the key has succeeded.
    const last = lastStart.get(m.k!) ?? -1;
    if (m.s! < last) violate(`key ${m.k}: seq ${m.s} (message ${i}, attempt ${attempt}) started after seq ${last}`);
    lastStart.set(m.k!, Math.max(last, m.s!));
    if (brokenKeys.has(m.k!)) return; // said once per key
    for (const p of byKey.get(m.k!)!) {
      if (p.s! >= m.s!) break;
      if (!isPoison(p.f) && successes[p.i]!.length === 0) {
        brokenKeys.add(m.k!);
        violate(`key ${m.k}: seq ${m.s} (message ${i}) started before seq ${p.s} (message ${p.i}, ${FATE_NAMES[p.f]}) succeeded`);
        break;
      }
    }
  };
  const died = new Set<number>();
  const peakConcurrency: Record<string, number> = { loose: config.looseConcurrency, keyed: config.keyedConcurrency, tight: 1 };
  rt.on('scale', (e) => {
    peakConcurrency[e.mailbox] = Math.max(peakConcurrency[e.mailbox] ?? 0, e.concurrency);
  });
  let crashes = 0;
  let timeouts = 0;
  rt.on('worker-crash', (e) => {
    crashes++;
    died.add(e.threadId);
  });
  rt.on('handler-timeout', (e) => {
    timeouts++;
    died.add(e.threadId);
  });
  const errors: string[] = [];
  rt.on('error', (err) => errors.push(`${(err as { code?: string }).code ?? ''} ${err.message}`));

  try {
    await rt.start();
    // Paced sends: loose and keyed with send() (sendAsync when full), tight with sendAsync only.
    const perTick = Math.max(1, Math.ceil(total / (sendMs / 10)));
    // Odd messages carry headers ({ i }), on every kind of mailbox (ring, journal, the feed's store): the handler checks them on every attempt.
    const headed = (m: Msg): boolean => (m.i & 1) === 1;
    const payload = (m: Msg): object => ({ i: m.i, f: m.f, ...(m.ms ? { ms: m.ms } : {}), ...(m.k !== undefined ? { k: m.k, s: m.s } : {}), ...(headed(m) ? { h: 1 } : {}) });
    const sendAll = async (box: Msg['box']): Promise<void> => {
      const mine = msgs.filter((m) => m.box === box);
      for (let j = 0; j < mine.length; j++) {
        const m = mine[j]!;
        const h = headed(m) ? { headers: { i: String(m.i) } } : undefined;
        const o = m.k !== undefined ? { key: m.k, ...h } : h;
        if (box === 'tight') m.id = await rt.sendAsync(box, payload(m), o);
        else {
          try {
            m.id = rt.send(box, payload(m), o);
          } catch (err) {
            if ((err as { code?: string }).code !== 'RINGPOOL_QUEUE_FULL') throw err;
            m.id = await rt.sendAsync(box, payload(m), o);
          }
        }
        if (j % perTick === perTick - 1) await sleep(10);
      }
    };
    let churning = config.churn;
    const churn = (async () => {
      for (let n = 2; churning; await sleep(150)) rt.resize('keyed', (n = 3 - n));
      if (config.churn) rt.autoscale('keyed', true);
    })();
    await Promise.all([sendAll('loose'), sendAll('keyed'), sendAll('tight')]);
    churning = false;
    await churn;
    const idleTimeout = opts.idleTimeoutMs ?? 90_000;
    const idle = await Promise.race([rt.onIdle().then(() => true), sleep(idleTimeout).then(() => false)]);
    if (!idle) {
      for (const box of ['loose', 'keyed', 'tight']) violate(`not idle after ${idleTimeout} ms: ${box} ${JSON.stringify(rt.stats(box))}`);
    }
    // The reports were posted before the acks: let the channel deliver the last ones.
    for (let quiet = 0, seen = events; quiet < 5; ) {
      await sleep(20);
      if (events === seen) quiet++;
      else (quiet = 0), (seen = events);
    }

    for (const box of ['loose', 'keyed', 'tight'] as const) {
      const mine = msgs.filter((m) => m.box === box);
      const poison = mine.filter((m) => isPoison(m.f)).length;
      const s = rt.stats(box);
      const want = { enqueued: mine.length, processed: mine.length - poison, deadLettered: poison, depth: 0, inFlight: 0, delayed: 0 };
      const got = { enqueued: s.enqueued, processed: s.processed, deadLettered: s.deadLettered, depth: s.depth, inFlight: s.inFlight, delayed: s.delayed };
      if (JSON.stringify(got) !== JSON.stringify(want)) violate(`${box}: stats ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
      // Adaptive: every place reserved under the limit came back (crashed and revoked loops' too).
      if (s.adaptive !== null && s.adaptive.running !== 0) violate(`${box}: ${s.adaptive.running} handlers still counted as running under the adaptive limit after the run`);
      const dead = new Map<number, { reason: string; attempts: number; lastError: string }>();
      for (const d of rt.deadLetters(box).list()) {
        const i = (d.payload as { i: number }).i;
        dead.set(i, { reason: d.reason, attempts: d.attempts, lastError: d.lastError?.message ?? '' });
        if (!headersRight(i, d.headers)) violate(`${box}: dead letter ${i} has headers ${JSON.stringify(d.headers)}`);
      }
      for (const m of mine) {
        const d = dead.get(m.i);
        if (isPoison(m.f)) {
          const reason = m.f === THROW_ALWAYS ? 'max_attempts' : 'poison';
          if (d === undefined) violate(`${box}: poison message ${m.i} (${FATE_NAMES[m.f]}) was not dead-lettered`);
          else if (d.reason !== reason || d.attempts !== config.maxAttempts) {
            violate(`${box}: poison message ${m.i} (${FATE_NAMES[m.f]}) dead-lettered as ${d.reason} after ${d.attempts} attempts (expected ${reason}, ${config.maxAttempts})`);
          }
        } else {
          if (d !== undefined) violate(`${box}: innocent message ${m.i} (${FATE_NAMES[m.f]}) dead-lettered as ${d.reason} after ${d.attempts} attempts: ${d.lastError}`);
          if (successes[m.i]!.length === 0) violate(`${box}: message ${m.i} (${FATE_NAMES[m.f]}) never succeeded`);
        }
      }
    }
    let duplicates = 0;
    for (const m of msgs) {
      const runs = successes[m.i]!;
      if (runs.length < 2) continue;
      duplicates++;
      for (let r = 0; r < runs.length - 1; r++) {
        if (!died.has(runs[r]!.thread)) {
          violate(
            `${m.box}: message ${m.i} (${FATE_NAMES[m.f]}${m.k !== undefined ? `, key ${m.k} seq ${m.s}` : ''}) succeeded ${runs.length} times ` +
              `(${runs.map((x) => `attempt ${x.attempt} on thread ${x.thread}`).join(', ')}), and thread ${runs[r]!.thread} did not die`,
          );
          break;
        }
      }
    }
    if (config.feed) {
      await rt.close({ timeoutMs: 5_000 }); // the feed's last batch reaches the stores
      for (const m of msgs) {
        const k = stores[m.box].kinds.get(m.id!) ?? [];
        const count = (x: number): number => k.filter((y) => y === x).length;
        const want = isPoison(m.f) ? [0, 1] : [1, 0];
        if (count(Outcome.ACCEPTED) !== 1 || count(Outcome.ACKED) !== want[0] || count(Outcome.DEAD_LETTERED) !== want[1]) {
          violate(`${m.box}: message ${m.i} (${FATE_NAMES[m.f]}) got outcomes [${k.join(',')}] from the feed; expected one ACCEPTED and one ${isPoison(m.f) ? 'DEAD_LETTERED' : 'ACKED'}`);
        }
      }
    }
    if (journalRoot !== null) {
      await rt.close({ timeoutMs: 5_000 });
      await checkJournals(journalRoot, msgs, violate);
    }
    for (const e of errors) violate(`runtime error event: ${e}`);
    return { seed: opts.seed, config, peakConcurrency, messages: total, fates, crashes, timeouts, duplicates, ms: Math.round(performance.now() - t0), violations };
  } finally {
    ch.close();
    await rt.destroy();
    if (journalRoot !== null) rmSync(journalRoot, { recursive: true, force: true });
  }
}

/** Odd messages were sent with headers { i }, even ones with none. */
function headersRight(i: number, h: Readonly<Record<string, string>>): boolean {
  return (i & 1) === 1 ? h.i === String(i) && Object.keys(h).length === 1 : Object.keys(h).length === 0;
}

/** A restart on the soak's journals: the dead letters come back, exactly the poison messages, and no message that was acked. */
async function checkJournals(root: string, msgs: readonly Msg[], violate: (s: string) => void): Promise<void> {
  const boxes = ['loose', 'keyed', 'tight'] as const;
  const again = createRuntime({
    mailboxes: Object.fromEntries(boxes.map((b) => [b, { handler: HANDLER, minThreads: 0, maxThreads: 1, autoscale: false, durability: { dir: join(root, b), fsync: 'always' as const } }])),
  });
  try {
    await again.start();
    for (const b of boxes) {
      const poison = new Set(msgs.filter((m) => m.box === b && isPoison(m.f)).map((m) => m.id!));
      const letters = again.deadLetters(b).list();
      const dead = new Set(letters.map((d) => d.id));
      for (const d of letters) {
        const i = (d.payload as { i: number }).i;
        if (!headersRight(i, d.headers)) violate(`${b}: dead letter ${i} came back from the journal with headers ${JSON.stringify(d.headers)}`);
      }
      const s = again.stats(b);
      if (s.depth + s.delayed !== 0) violate(`${b}: after a clean close, the journal gave back ${s.depth + s.delayed} messages to run again (every one was acked or dead-lettered)`);
      for (const id of poison) if (!dead.has(id)) violate(`${b}: dead letter ${id} did not survive the restart`);
      for (const id of dead) if (!poison.has(id)) violate(`${b}: message ${id} came back as a dead letter but was not poison`);
    }
  } finally {
    await again.destroy();
  }
}
