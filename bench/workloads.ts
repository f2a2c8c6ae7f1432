/**
 * W1..W5, written once against the Session interface. Each runner opens
 * nothing itself: it gets a fresh, open session, warms it up, measures, and
 * returns one run's figures as a flat record of numbers (the suite takes the
 * median of each field across runs).
 *
 *   W1 tiny    ~100-byte object, no-op handler: msgs/s, ns per message
 *   W2 cpu     handler burns a calibrated 50 µs: msgs/s and share of the ideal threads x 20,000/s
 *   W3 burst   N sends as fast as possible: per-send call time p50/p99/p99.9/max, time to drain
 *   W4 latency fixed offered rates: end-to-end (send call -> handler start) p50/p99/p99.9
 *   W5 large   64 KiB messages: msgs/s and MB/s
 */
import { percentile } from './machine.js';
import { LARGE_BYTES, LARGE_BYTES_PER_MESSAGE, TINY_BYTES, cpu, large, stamped, tiny } from './messages.js';
import type { PayloadForm, Session } from './session.js';

export type { Figures } from './session.js';
import type { Figures } from './session.js';

/** The main thread's clock for send times; work.js `now()` is the same expression on the consumer side. */
const now = (): number => performance.timeOrigin + performance.now();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Offer `n` messages made by `make`, honouring pushback; resolves when all are accepted. */
async function offer(session: Session, n: number, make: (i: number) => unknown): Promise<void> {
  for (let i = 0; i < n; i++) {
    const p = session.send(make(i));
    if (p) await p;
  }
}

/** Run `count` messages through first: threads warm, JIT warm, pools' first tasks done. */
async function warmUp(session: Session, count: number, make: (i: number) => unknown): Promise<void> {
  await offer(session, count, make);
  await session.drain();
}

/** A tenth of the run, at least 10, at most `cap`. */
const warmCount = (n: number, cap = 2_000): number => Math.max(10, Math.min(cap, Math.ceil(n / 10)));

async function timedThroughput(session: Session, n: number, make: (i: number) => unknown): Promise<number> {
  await warmUp(session, warmCount(n), make);
  const t0 = performance.now();
  await offer(session, n, make);
  await session.drain();
  return performance.now() - t0;
}

/** W1: `n` messages after a warm-up, offered again until the run has lasted `minSeconds`. */
export async function w1(session: Session, n: number, form: PayloadForm, minSeconds = 0): Promise<Figures> {
  const make = form === 'bytes' ? () => TINY_BYTES : tiny;
  let ms = await timedThroughput(session, n, make);
  let sent = n;
  while (ms < minSeconds * 1000) {
    const t0 = performance.now();
    await offer(session, n, make);
    await session.drain();
    ms += performance.now() - t0;
    sent += n;
  }
  const perSec = (sent / ms) * 1000;
  return { messages: sent, msgsPerSec: perSec, nsPerMsg: 1e9 / perSec, seconds: ms / 1000 };
}

/** Ideal throughput of one thread running a 50 µs handler. */
export const IDEAL_PER_THREAD = 20_000;

export async function w2(session: Session, n: number, threads: number, iterations: number): Promise<Figures> {
  const ms = await timedThroughput(session, n, (i) => cpu(i, iterations));
  const perSec = (n / ms) * 1000;
  return { messages: n, msgsPerSec: perSec, shareOfIdeal: perSec / (threads * IDEAL_PER_THREAD) };
}

export async function w3(session: Session, n: number): Promise<Figures> {
  // 1,000 messages made up front, as the old W3 did: the timed call is send() alone, not building the object.
  const msgs = Array.from({ length: 1000 }, (_, i) => tiny(i));
  await warmUp(session, warmCount(n, 20_000), (i) => msgs[i % 1000]);
  const lat = new Float64Array(n);
  let waits = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const m = msgs[i % 1000];
    const a = performance.now();
    const p = session.send(m);
    lat[i] = performance.now() - a;
    if (p) {
      waits++;
      await p;
    }
  }
  const sentMs = performance.now() - t0;
  await session.drain();
  const drainMs = performance.now() - t0;
  lat.sort();
  const us = (ms: number): number => ms * 1000;
  return {
    messages: n,
    sendP50Us: us(percentile(lat, 50)),
    sendP99Us: us(percentile(lat, 99)),
    sendP999Us: us(percentile(lat, 99.9)),
    sendMaxUs: us(lat[n - 1]!),
    sendsPerSec: (n / sentMs) * 1000,
    drainMs,
    waits,
  };
}

/**
 * Offer stamped messages at `rate`/s for `seconds`, open loop: every wake-up
 * sends what is due by the schedule (a timer wakes the producer about once a
 * millisecond, so above 1,000/s messages go out in small bursts, as from any
 * event-loop producer). The send time is taken just before each send call,
 * encoding included; the handler stamps its start.
 */
async function offerAt(session: Session, rate: number, seconds: number, prefix: string): Promise<Figures> {
  const total = Math.max(1, Math.round(rate * seconds));
  const interval = 1000 / rate;
  let waits = 0;
  const t0 = performance.now();
  let i = 0;
  while (i < total) {
    const due = Math.min(total, Math.floor((performance.now() - t0) / interval) + 1);
    while (i < due) {
      const m = stamped(i++);
      m.t = now();
      const p = session.send(m);
      if (p) {
        waits++;
        await p;
      }
    }
    if (i < total) await sleep(Math.max(1, Math.floor(t0 + i * interval - performance.now())));
  }
  const elapsed = performance.now() - t0;
  const lat = await session.latencies(total);
  lat.sort();
  return {
    [`${prefix}.rate`]: rate,
    [`${prefix}.achievedRate`]: (total / elapsed) * 1000,
    [`${prefix}.p50Us`]: percentile(lat, 50),
    [`${prefix}.p99Us`]: percentile(lat, 99),
    [`${prefix}.p999Us`]: percentile(lat, 99.9),
    [`${prefix}.maxUs`]: lat[total - 1]!,
    [`${prefix}.samples`]: total,
    [`${prefix}.waits`]: waits,
  };
}

/** W4 at the fixed rate, then (if known) at `loadRate`, in one session. */
export async function w4(session: Session, fixedRate: number, loadRate: number | null, seconds: number): Promise<Figures> {
  // Warm-up: a few stamped messages, latencies discarded.
  const warm = 50;
  for (let i = 0; i < warm; i++) {
    const m = stamped(i);
    m.t = now();
    const p = session.send(m);
    if (p) await p;
  }
  await session.latencies(warm);
  const out = await offerAt(session, fixedRate, seconds, 'fixed');
  if (loadRate !== null) {
    await sleep(50);
    Object.assign(out, await offerAt(session, loadRate, seconds, 'load'));
  }
  return out;
}

export async function w5(session: Session, n: number, form: PayloadForm): Promise<Figures> {
  const ms = await timedThroughput(session, n, form === 'bytes' ? () => LARGE_BYTES : large);
  const perSec = (n / ms) * 1000;
  return { messages: n, bytesPerMessage: LARGE_BYTES_PER_MESSAGE, msgsPerSec: perSec, mbPerSec: (perSec * LARGE_BYTES_PER_MESSAGE) / 1e6 };
}
