import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  createRuntime,
  DEAD_LETTER_REASONS,
  ErrorCodes,
  Outcome,
  type MessageSource,
  type MessageStore,
  type OutcomeBatch,
  type SourceIntake,
  type StoredMessage,
} from 'ringpool';
import { expectCode, fixture, runtime, until } from '../helpers.js';

interface Entry {
  kind: number;
  attempt: number;
  value: number;
}

/** Writes every outcome down, per id, in the order the feed gave them. */
class Recorder {
  readonly log = new Map<number, Entry[]>();
  batches = 0;
  outcomes(b: OutcomeBatch): void {
    this.batches++;
    for (let i = 0; i < b.n; i++) {
      const id = b.id[i]!;
      let l = this.log.get(id);
      if (l === undefined) this.log.set(id, (l = []));
      l.push({ kind: b.kind[i]!, attempt: b.attempt[i]!, value: b.value[i]! });
    }
  }
  kinds(id: number): number[] {
    return (this.log.get(id) ?? []).map((e) => e.kind);
  }
}

/**
 * A store that keeps messages in a Map that outlives its runtime: what has no
 * final outcome (ACKED, or DEAD_LETTERED then PURGED) is given back at open().
 * The seam's contract, held in memory, so a second runtime shows the replay.
 */
class MapStore extends Recorder implements MessageStore {
  readonly live = new Map<number, StoredMessage>();
  opened = 0;
  closed = 0;
  async open(): Promise<readonly StoredMessage[]> {
    this.opened++;
    return [...this.live.values()];
  }
  override outcomes(b: OutcomeBatch): void {
    super.outcomes(b);
    for (let i = 0; i < b.n; i++) {
      const id = b.id[i]!;
      const k = b.kind[i]!;
      if (k === Outcome.ACCEPTED) {
        const m = b.message(i)!;
        this.live.set(id, { ...m, attempt: 1 });
      } else if (k === Outcome.RETRY) {
        const m = this.live.get(id);
        if (m) m.attempt = b.attempt[i]!;
      } else if (k === Outcome.ACKED || k === Outcome.PURGED) {
        this.live.delete(id);
      }
    }
  }
  async close(): Promise<void> {
    this.closed++;
  }
}

describe('the store seam: the outcome feed tells a store every moment of a message', () => {
  it('accepted, claimed per attempt, retry with its due time, acked or dead-lettered: once each, in the order of the message’s life', async () => {
    const store = new MapStore();
    const rt = runtime({
      mailboxes: { m: { handler: fixture('fail.js'), minThreads: 2, maxThreads: 2, autoscale: false, maxAttempts: 3, backoff: { baseMs: 1, maxMs: 3 }, store } },
      tickMs: 20,
    });
    await rt.start();
    const fate = new Map<number, number | 'always'>();
    for (let n = 0; n < 3000; n++) {
      const failures = n % 10 === 0 ? 'always' : n % 3 === 0 ? 1 : 0;
      fate.set(rt.send('m', { n, failures }), failures);
    }
    await rt.onIdle();
    await rt.close();
    expect(store.opened).toBe(1);
    expect(store.closed).toBe(1);
    expect(store.batches).toBeGreaterThan(0);
    expect([...store.log.keys()].sort((a, b) => a - b)).toEqual([...fate.keys()].sort((a, b) => a - b));
    for (const [id, failures] of fate) {
      const log = store.log.get(id)!;
      const attempts = failures === 'always' ? 3 : failures + 1;
      const expected: number[] = [Outcome.ACCEPTED];
      for (let a = 1; a <= attempts; a++) {
        expected.push(Outcome.CLAIMED);
        if (a < attempts) expected.push(Outcome.RETRY);
      }
      expected.push(failures === 'always' ? Outcome.DEAD_LETTERED : Outcome.ACKED);
      expect(store.kinds(id), `message ${id} (failures ${failures})`).toEqual(expected);
      const claims = log.filter((e) => e.kind === Outcome.CLAIMED).map((e) => e.attempt);
      expect(claims).toEqual(Array.from({ length: attempts }, (_, i) => i + 1));
      for (const r of log.filter((e) => e.kind === Outcome.RETRY)) expect(r.value).toBeGreaterThan(0);
      const last = log.at(-1)!;
      expect(last.attempt).toBe(attempts);
      if (failures === 'always') expect(DEAD_LETTER_REASONS[last.value]).toBe('max_attempts');
    }
    // Everything acked left the store; the dead letters stay until purged.
    expect(store.live.size).toBe(300);
  });

  it('a delayed send is accepted when sent and acked when it ran; purge and the deadLetterLimit drop tell PURGED, redrive tells REDRIVEN', async () => {
    const rec = new MapStore();
    const rt = runtime({
      mailboxes: { m: { handler: fixture('fail.js'), minThreads: 1, maxThreads: 1, autoscale: false, maxAttempts: 1, deadLetterLimit: 2, store: rec } },
      tickMs: 20,
    });
    await rt.start();
    const delayed = rt.send('m', { n: 0 }, { delayMs: 30 });
    expect(rec.kinds(delayed)).toEqual([]); // delivered in the next batch, not synchronously
    await until(() => rec.kinds(delayed).includes(Outcome.ACCEPTED), 2_000, 'the delayed send accepted');
    expect(rec.kinds(delayed)).toEqual([Outcome.ACCEPTED]);
    const poison = [1, 2, 3, 4, 5].map((n) => rt.send('m', { n, failures: 'always' }));
    await rt.onIdle();
    await until(() => rec.kinds(delayed).includes(Outcome.ACKED), 2_000, 'the delayed send acked');
    expect(rec.kinds(delayed)).toEqual([Outcome.ACCEPTED, Outcome.CLAIMED, Outcome.ACKED]);
    // Five dead letters in a store of two: the oldest three were dropped.
    await until(() => poison.slice(0, 3).every((id) => rec.kinds(id).at(-1) === Outcome.PURGED), 2_000, 'drops');
    for (const id of poison.slice(0, 3)) expect(rec.kinds(id)).toEqual([Outcome.ACCEPTED, Outcome.CLAIMED, Outcome.DEAD_LETTERED, Outcome.PURGED]);
    expect(rt.deadLetters('m').redrive((l) => l.id === poison[3])).toBe(1);
    expect(rt.deadLetters('m').purge()).toBe(1);
    await rt.onIdle();
    await rt.close();
    expect(rec.kinds(poison[3]!)).toEqual([Outcome.ACCEPTED, Outcome.CLAIMED, Outcome.DEAD_LETTERED, Outcome.REDRIVEN, Outcome.CLAIMED, Outcome.DEAD_LETTERED]);
    expect(rec.kinds(poison[4]!)).toEqual([Outcome.ACCEPTED, Outcome.CLAIMED, Outcome.DEAD_LETTERED, Outcome.PURGED]);
  });

  it('what a listener causes from inside outcomes() (a redrive, a delayed send) comes in the next batch, nothing dropped', async () => {
    let rt!: ReturnType<typeof runtime>;
    const redriven = new Set<number>();
    const followUps = new Map<number, number>();
    class Busy extends MapStore {
      override outcomes(b: OutcomeBatch): void {
        super.outcomes(b);
        for (let i = 0; i < b.n; i++) {
          const id = b.id[i]!;
          if (b.kind[i] === Outcome.DEAD_LETTERED && !redriven.has(id)) {
            redriven.add(id);
            rt.deadLetters('m').redrive((l) => l.id === id);
          } else if (b.kind[i] === Outcome.ACKED && !followUps.has(id) && ![...followUps.values()].includes(id)) {
            followUps.set(id, rt.send('m', { n: -1 }, { delayMs: 1 }));
          }
        }
      }
    }
    const store = new Busy();
    rt = runtime({ mailboxes: { m: { handler: fixture('fail.js'), minThreads: 1, maxThreads: 1, autoscale: false, maxAttempts: 1, store } }, tickMs: 20 });
    await rt.start();
    const poison = Array.from({ length: 50 }, (_, n) => rt.send('m', { n, failures: 'always' }));
    const fine = Array.from({ length: 50 }, (_, n) => rt.send('m', { n }));
    await until(() => followUps.size === 50 && [...followUps.values()].every((f) => store.kinds(f).at(-1) === Outcome.ACKED), 10_000, 'follow-ups acked');
    await until(() => poison.every((id) => store.kinds(id).length === 6), 10_000, 'redriven letters dead again');
    for (const id of poison) expect(store.kinds(id)).toEqual([Outcome.ACCEPTED, Outcome.CLAIMED, Outcome.DEAD_LETTERED, Outcome.REDRIVEN, Outcome.CLAIMED, Outcome.DEAD_LETTERED]);
    for (const id of fine) expect(store.kinds(followUps.get(id)!)).toEqual([Outcome.ACCEPTED, Outcome.CLAIMED, Outcome.ACKED]);
  });

  it('a listener calling back in while a batch of over 4,096 entries is delivered mid-walk gets each entry once', async () => {
    let rt!: ReturnType<typeof runtime>;
    let calls = 0;
    class CallsBack extends MapStore {
      override outcomes(b: OutcomeBatch): void {
        super.outcomes(b);
        // A delayed send and a purge from inside the delivery: both re-enter the feed.
        if (calls++ < 3) {
          rt.send('m', { n: -1 }, { delayMs: 1 });
          rt.deadLetters('m').purge();
        }
      }
    }
    const store = new CallsBack();
    rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 1, autoscale: false, capacityBytes: 4 << 20, store } }, tickMs: 20 });
    const ids = Array.from({ length: 6000 }, (_, n) => rt.send('m', { n })); // before start(): the feed's first walk meets all of them
    await rt.start();
    await rt.onIdle();
    await rt.close();
    for (const id of ids) expect(store.kinds(id), `message ${id}`).toEqual([Outcome.ACCEPTED, Outcome.CLAIMED, Outcome.ACKED]);
    const followUps = [...store.log.keys()].filter((id) => !ids.includes(id));
    expect(followUps.length).toBe(3);
    for (const id of followUps) expect(store.kinds(id)).toEqual([Outcome.ACCEPTED, Outcome.CLAIMED, Outcome.ACKED]);
  });

  it('with deadLetterLimit 0 a dead letter is told DEAD_LETTERED, then PURGED', async () => {
    const store = new MapStore();
    const rt = runtime({ mailboxes: { m: { handler: fixture('fail.js'), minThreads: 1, maxThreads: 1, autoscale: false, maxAttempts: 1, deadLetterLimit: 0, store } }, tickMs: 20 });
    await rt.start();
    const id = rt.send('m', { n: 1, failures: 'always' });
    await rt.onIdle();
    await rt.close();
    expect(store.kinds(id)).toEqual([Outcome.ACCEPTED, Outcome.CLAIMED, Outcome.DEAD_LETTERED, Outcome.PURGED]);
    expect(store.live.size).toBe(0);
  });

  it('a second runtime with the same store delivers again what the first left unfinished (ids kept, new ids past them)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ringpool-seam-'));
    const flag = join(dir, 'fixed');
    try {
      const store = new MapStore();
      const opts = {
        mailboxes: { m: { handler: fixture('gate.js'), minThreads: 1, maxThreads: 1, autoscale: false as const, maxAttempts: 1000, backoff: { baseMs: 20, maxMs: 40 }, store } },
        tickMs: 20,
      };
      const first = createRuntime(opts);
      await first.start();
      const ids = Array.from({ length: 200 }, (_, i) => first.send('m', { i, flag }, i % 2 === 0 ? { key: `k${i % 7}` } : undefined));
      // Every unkeyed message failed at least once (a keyed one may still wait behind its key's first, which keeps failing).
      const unkeyed = ids.filter((_, i) => i % 2 === 1);
      await until(() => unkeyed.every((id) => store.kinds(id).includes(Outcome.RETRY)), 10_000, 'every unkeyed message failed once');
      await first.destroy();
      expect(first.stats('m').processed).toBe(0);
      expect([...store.live.keys()].sort((a, b) => a - b)).toEqual([...ids].sort((a, b) => a - b));
      for (const id of unkeyed) expect(store.live.get(id)!.attempt).toBeGreaterThan(1);

      writeFileSync(flag, '');
      expect(existsSync(flag)).toBe(true);
      const second = runtime(opts);
      await second.start();
      expect(store.opened).toBe(2);
      await second.onIdle();
      expect(second.stats('m')).toMatchObject({ enqueued: 200, processed: 200, deadLettered: 0 });
      expect(store.live.size).toBe(0);
      const acked = ids.filter((id) => store.kinds(id).at(-1) === Outcome.ACKED);
      expect(acked.length).toBe(200);
      const fresh = second.send('m', { i: -1, flag });
      expect(ids).not.toContain(fresh);
      await second.onIdle();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Offers `total` messages, only while the ring has room; counts how often it had to wait. */
class ArraySource extends Recorder implements MessageSource {
  readonly offered: number[] = [];
  waits = 0;
  stopped = false;
  private done!: Promise<void>;
  constructor(private readonly total: number) {
    super();
  }
  start(intake: SourceIntake): void {
    this.done = (async () => {
      let n = 0;
      while (n < this.total && intake.open && !this.stopped) {
        const id = intake.offer({ n, failures: n % 10 === 0 ? 'always' : 0 });
        if (id < 0) {
          this.waits++;
          await intake.whenRoom();
          continue;
        }
        this.offered.push(id);
        n++;
      }
    })();
  }
  finished(): Promise<void> {
    return this.done;
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

describe('the source seam: records from elsewhere, read only while the ring has room', () => {
  it('offers into a small ring, waits for room when full, and learns each message’s final outcome once', async () => {
    const source = new ArraySource(3000);
    const rt = runtime({
      mailboxes: {
        m: { handler: fixture('fail.js'), minThreads: 1, maxThreads: 1, autoscale: false, maxAttempts: 2, backoff: { baseMs: 1, maxMs: 2 }, capacityBytes: 16384, maxMessageBytes: 1024, source },
      },
      tickMs: 20,
    });
    await rt.start();
    await source.finished();
    await rt.onIdle();
    await rt.close();
    expect(source.offered.length).toBe(3000);
    expect(source.waits).toBeGreaterThan(0);
    for (const [i, id] of source.offered.entries()) {
      const finals = source.kinds(id).filter((k) => k === Outcome.ACKED || k === Outcome.DEAD_LETTERED);
      expect(finals, `offer ${i}`).toEqual([i % 10 === 0 ? Outcome.DEAD_LETTERED : Outcome.ACKED]);
    }
    expect(rt.stats('m')).toMatchObject({ enqueued: 3000, processed: 2700, deadLettered: 300 });
  });

  it('stop() is called when the runtime closes', async () => {
    const source = new ArraySource(1e9);
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 1, autoscale: false, source } } });
    await rt.start();
    await until(() => source.offered.length > 1000, 5_000, 'offers');
    await rt.close({ timeoutMs: 2_000 });
    expect(source.stopped).toBe(true);
    await source.finished();
  });
});

describe('the seams cost the in-memory mailbox nothing and refuse bad input', () => {
  it('no store and no source: no outcome feed, the ring is not followed', async () => {
    const rt = runtime({ mailboxes: { m: { handler: fixture('noop.js'), minThreads: 1, maxThreads: 1 } } });
    const box = (rt as unknown as { mailbox(n: string): { outcomes: unknown; ring: { i32: Int32Array } } }).mailbox('m');
    expect(box.outcomes).toBeNull();
    expect(box.ring.i32[71]).toBe(0); // FOLLOW_WORD
  });

  it('a store or source without its methods is RINGPOOL_INVALID_OPTION naming the missing one', async () => {
    const err = await expectCode(
      () => createRuntime({ mailboxes: { m: { handler: fixture('noop.js'), store: { open: async () => [], close: async () => {} } as unknown as MessageStore } } }),
      ErrorCodes.INVALID_OPTION,
    );
    expect(err.message).toContain('mailboxes.m.store.outcomes');
    const err2 = await expectCode(() => createRuntime({ mailboxes: { m: { handler: fixture('noop.js'), source: 42 as unknown as MessageSource } } }), ErrorCodes.INVALID_OPTION);
    expect(err2.message).toContain('mailboxes.m.source');
  });
});
