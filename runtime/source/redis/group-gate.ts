/**
 * A rate limit and a pause shared by every process of a Redis group
 * (`rateLimit: { ..., scope: 'group' }`, issue #31; main thread). One script
 * in Redis keeps the group's schedule, GCRA as redis-cell does: a theoretical
 * arrival time (TAT, µs on Redis's clock) that each grant moves on. A process
 * takes its slots in blocks (about BLOCK_MS of the rate), not one a message:
 * the script grants k consecutive slots from the TAT and says where they
 * start, relative to its own clock, so no clocks need to agree. The block
 * goes to the ring header (runtime/shared/limit.ts, offerBlock), where the
 * loops take starts only inside the process's own blocks, GCRA-spaced as a
 * local limit. Starts across the group follow one schedule: in any window of
 * perMs at most max, as for one process.
 *
 * The same call carries the group's pause (a key with the time left, or no
 * expiry: until resumed): rt.pause / rt.resume here, and a handler's
 * ctx.retryAfter seen in the ring header (a local pause later than the
 * group's), go up; what the group says comes down to the header. A pass runs
 * every GATE_EVERY_MS, and calls Redis only to take a block (the last one
 * offered was taken and messages are waiting), to push a pause, or to read
 * the group's pause (every PAUSE_POLL_MS).
 */
import { createHash } from 'node:crypto';
import type { SourceContext } from '../index.js';
import { slotPrefix } from './keys.js';
import { LIMIT_T, PAUSE, PAUSE_HELD, PAUSE_TIMED, PAUSE_UNTIL, blockTaken, hold, now32, offerBlock, pausedFor, pauseUntil, resume, setGroup } from '../../shared/limit.js';

/** KEYS: the group's TAT, its pause. ARGV: T (µs), slots wanted (0: none), horizon (µs), the pause to push ('', 'held', 'resume', or ms). */
const GATE_LUA = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local op = ARGV[4]
if op == 'resume' then redis.call('DEL', KEYS[2])
elseif op == 'held' then redis.call('SET', KEYS[2], 'held')
elseif op ~= '' then
  local ms = tonumber(op)
  local cur = redis.call('PTTL', KEYS[2])
  if cur ~= -1 and cur < ms then redis.call('SET', KEYS[2], 'until', 'PX', ms) end
end
local pause = redis.call('PTTL', KEYS[2])
local k = tonumber(ARGV[2])
if k == 0 then return {0, '0', pause} end
local T = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
if tat - now > tonumber(ARGV[3]) then return {0, '0', pause} end
local nt = tat + k * T
redis.call('SET', KEYS[1], string.format('%.0f', nt), 'PX', math.ceil((nt - now) / 1000) + 1000)
return {k, string.format('%.0f', tat - now), pause}`;
const GATE_SHA = createHash('sha1').update(GATE_LUA).digest('hex');

/** A block holds about this much of the group's rate. */
const BLOCK_MS = 100;
/** How often a pass looks whether it must call Redis (ms). */
export const GATE_EVERY_MS = 10;
/** The group's pause is read at least this often (ms). */
const PAUSE_POLL_MS = 100;

interface Client {
  sendCommand(args: string[]): Promise<unknown>;
}

export interface GroupGateDeps {
  /** The mailbox's ring header. */
  i32: Int32Array;
  /** The group's keys (one hash slot). */
  keys: { tat: string; pause: string };
  client: () => Client;
  /** Messages wait in the ring: a block is worth taking. */
  demand: () => boolean;
  /** ms since the epoch (Date.now, or a test's); the ring's µs clock is derived from it. */
  clock?: () => number;
}

export class GroupGate {
  /** Slots a block asks for, their spacing (µs) and how far ahead the group's schedule may be booked (µs). */
  readonly k: number;
  private readonly T: number;
  private readonly horizon: number;
  /** rt.pause / rt.resume not yet in Redis: '' none, 'held', 'resume', or ms. */
  private pending = '';
  private busy = false;
  private lastCall = 0;
  /** The group's pause as last read: when it ends (epoch ms; Infinity until resumed, 0 none). */
  private groupUntil = 0;
  /** What this gate wrote to the header's pause: 'held', a PAUSE_UNTIL, or null. */
  private mirrored: 'held' | number | null = null;

  /** The gate of a mailbox whose rate limit is the group's (scope 'group'), or null. */
  static of(g: SourceContext['gate'], stream: string, client: () => Client): GroupGate | null {
    if (g.rateLimit?.scope !== 'group') return null;
    return new GroupGate({ i32: g.i32, keys: { tat: `${slotPrefix(stream)}:limit`, pause: `${slotPrefix(stream)}:pause` }, client, demand: () => g.depth() > 0 });
  }

  constructor(private readonly d: GroupGateDeps) {
    this.T = Atomics.load(d.i32, LIMIT_T);
    if (this.T === 0) throw new Error('a group limit needs the local limit set first');
    this.k = Math.max(1, Math.round((BLOCK_MS * 1000) / this.T));
    this.horizon = Math.min(1e9, Math.max(1e6, 4 * this.k * this.T));
    setGroup(d.i32, now32(this.now()));
  }

  private now(): number {
    return this.d.clock?.() ?? performance.timeOrigin + performance.now();
  }

  /** rt.pause on this process: the whole group pauses. */
  pause(ms: number | undefined): void {
    this.pending = ms === undefined ? 'held' : String(Math.max(1, Math.ceil(ms)));
  }

  /** rt.resume on this process: the whole group resumes. */
  resume(): void {
    this.pending = 'resume';
    this.mirrored = null;
  }

  /** Every GATE_EVERY_MS: call Redis when there is something to take, push or read. */
  async pass(): Promise<void> {
    if (this.busy) return;
    const now = this.now();
    const want = blockTaken(this.d.i32) && this.d.demand() ? this.k : 0;
    const push = this.toPush(now);
    if (want === 0 && push === '' && now - this.lastCall < PAUSE_POLL_MS) return;
    this.busy = true;
    this.lastCall = now;
    try {
      const c = this.d.client();
      const args = ['2', this.d.keys.tat, this.d.keys.pause, String(this.T), String(want), String(this.horizon), push];
      const r = (await c.sendCommand(['EVALSHA', GATE_SHA, ...args]).catch((err: unknown) => {
        if (!String((err as Error)?.message).startsWith('NOSCRIPT')) throw err;
        return c.sendCommand(['EVAL', GATE_LUA, ...args]);
      })) as [number, string, number];
      const at = this.now();
      if (push !== '' && push === this.pending) this.pending = '';
      const granted = Number(r[0]);
      if (granted > 0) {
        // The block starts that long after Redis's now; here, after the answer came (later by at most the round trip: safe).
        offerBlock(this.d.i32, (now32(at) + Number(r[1])) | 0, granted);
      }
      this.mirror(Number(r[2]), at);
    } finally {
      this.busy = false;
    }
  }

  /** The pause to push: rt.pause / rt.resume, or a local pause (a handler's ctx.retryAfter) later than the group's. */
  private toPush(now: number): string {
    if (this.pending !== '') return this.pending;
    const left = pausedFor(this.d.i32, now32(now));
    if (left > 0 && now + left / 1000 > this.groupUntil + 20) return String(Math.ceil(left / 1000));
    return '';
  }

  /** The group's pause (PTTL: -2 none, -1 until resumed, else ms left) to the ring header. */
  private mirror(pause: number, at: number): void {
    const i32 = this.d.i32;
    if (pause === -1) {
      this.groupUntil = Infinity;
      if (Atomics.load(i32, PAUSE) !== PAUSE_HELD) hold(i32);
      this.mirrored = 'held';
    } else if (pause > 0) {
      this.groupUntil = at + pause;
      const until = (now32(at) + pause * 1000) | 0;
      pauseUntil(i32, until, now32(at));
      this.mirrored = Atomics.load(i32, PAUSE_UNTIL);
    } else {
      this.groupUntil = 0;
      // Resumed elsewhere: lift what this gate set (not a pause this process set since, which goes up next pass).
      const p = Atomics.load(i32, PAUSE);
      if ((this.mirrored === 'held' && p === PAUSE_HELD) || (typeof this.mirrored === 'number' && p === PAUSE_TIMED && Atomics.load(i32, PAUSE_UNTIL) === this.mirrored)) resume(i32);
      this.mirrored = null;
    }
  }
}
