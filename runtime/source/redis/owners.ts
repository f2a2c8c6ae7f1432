/**
 * Partition leases and fencing epochs in Redis (main thread), for a
 * partitioned Redis mailbox (issue #29). Every call is one script, atomic in
 * Redis; all keys share the hash tag `{<stream>}` (keys.ts).
 *
 * - members: this process's entry in `{S}:members:<group>` (score: its lease
 *   end on Redis's clock), expired entries dropped; returns the live ones.
 * - look: every partition's lease value (`<token> <epoch>`, or free), and
 *   the leases that are this process's renewed (PEXPIRE), in one pass.
 * - acquire: a free partition's lease, with the next fencing epoch (INCR:
 *   it only goes up, across owners and restarts).
 * - release: the lease, only if it is still this one (a clean give-back).
 * - fenced writes (FENCED_LUA, FENCED_ACKS_LUA): XACK, the retry count, a dead letter, each
 *   refused (-1) unless the partition's epoch is still the writer's. A
 *   process paused past its lease finds its late writes refused.
 */
import type { Connection } from './connection.js';
import type { PartitionKeys } from './keys.js';

const MEMBERS_LUA = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[2] == '0' then redis.call('ZREM', KEYS[1], ARGV[1]) else redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) end
return redis.call('ZRANGE', KEYS[1], 0, -1)`;

/** KEYS: every partition's owner key; ARGV: token, lease ms. Returns each value ('' when free). */
const LOOK_LUA = `local out = {}
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v then
    if string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
    out[i] = v
  else
    out[i] = ''
  end
end
return out`;

/**
 * KEYS: owner key, epoch key, released hash; ARGV: token, lease ms, partition.
 * { new epoch, 1 when the last owner did not give it back (a takeover) }, or { -1, 0 } when someone holds it.
 */
const ACQUIRE_LUA = `if redis.call('EXISTS', KEYS[1]) == 1 then return {-1, 0} end
local last = redis.call('GET', KEYS[2])
local given = redis.call('HGET', KEYS[3], ARGV[3])
local e = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. e, 'PX', ARGV[2])
if last and last ~= given then return {e, 1} end
return {e, 0}`;

/** KEYS: owner key, released hash; ARGV: its value when ours, partition, epoch. 1 when let go. */
const RELEASE_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  return redis.call('DEL', KEYS[1])
end
return 0`;

/**
 * KEYS: partition stream, epoch key, dead stream; ARGV: epoch, group, op, then
 * - 'retry': consumer, entry id, attempts ended (XCLAIM JUSTID RETRYCOUNT);
 * - 'dead': entry id, maxDeadLetters (0: no cap), then the dead entry's fields.
 * -1 when the epoch is no longer the writer's.
 */
export const FENCED_LUA = `if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
if ARGV[3] == 'retry' then
  redis.call('XCLAIM', KEYS[1], ARGV[2], ARGV[4], '0', ARGV[5], 'JUSTID', 'RETRYCOUNT', ARGV[6])
  return 1
end
local id = redis.call('XADD', KEYS[3], '*', unpack(ARGV, 6))
if ARGV[5] ~= '0' then redis.call('XTRIM', KEYS[3], 'MAXLEN', ARGV[5]) end
redis.pcall('XACK', KEYS[1], ARGV[2], ARGV[4])
return id`;

/**
 * Acknowledgements of several partitions at once. KEYS: per group, its
 * partition's stream and epoch key; ARGV: the consumer group, then per group:
 * epoch, n, n entry ids. Per group: XACK's count, or -1 (fenced).
 */
export const FENCED_ACKS_LUA = `local out = {}
local a = 2
for g = 1, #KEYS / 2 do
  local n = tonumber(ARGV[a + 1])
  if redis.call('GET', KEYS[2 * g]) ~= ARGV[a] then
    out[g] = -1
  else
    out[g] = redis.call('XACK', KEYS[2 * g - 1], ARGV[1], unpack(ARGV, a + 2, a + 1 + n))
  end
  a = a + 2 + n
end
return out`;

/** What LOOK says of one partition. */
export interface Lease {
  /** Nobody holds it. */
  free: boolean;
  /** This process holds it. */
  mine: boolean;
  epoch: number;
}

export class Owners {
  constructor(
    private readonly cmd: Connection,
    private readonly keys: PartitionKeys,
    private readonly partitions: number,
    readonly token: string,
    private readonly leaseMs: number,
  ) {}

  /** Refresh this process's membership (or leave: `join` false); the live members' names. */
  async members(me: string, join: boolean): Promise<string[]> {
    const r = (await this.cmd.client.sendCommand(['EVAL', MEMBERS_LUA, '1', this.keys.members, me, join ? String(this.leaseMs) : '0'])) as unknown[];
    return r.map(String);
  }

  /** Every partition's lease, this process's renewed on the way. */
  async look(): Promise<Lease[]> {
    const owners: string[] = [];
    for (let i = 0; i < this.partitions; i++) owners.push(this.keys.owner(i));
    const r = (await this.cmd.client.sendCommand(['EVAL', LOOK_LUA, String(owners.length), ...owners, this.token, String(this.leaseMs)])) as unknown[];
    return r.map((v) => {
      const s = String(v);
      if (s === '') return { free: true, mine: false, epoch: 0 };
      const sp = s.lastIndexOf(' ');
      return { free: false, mine: s.slice(0, sp) === this.token, epoch: Number(s.slice(sp + 1)) };
    });
  }

  /** Take partition `p` if nobody holds it: its new epoch (-1: someone does), and whether its last owner left it without giving it back. */
  async acquire(p: number): Promise<{ epoch: number; takeover: boolean }> {
    const r = (await this.cmd.client.sendCommand(['EVAL', ACQUIRE_LUA, '3', this.keys.owner(p), this.keys.epoch(p), this.keys.released, this.token, String(this.leaseMs), String(p)])) as unknown[];
    return { epoch: Number(r[0]), takeover: Number(r[1]) === 1 };
  }

  /** Give partition `p` back (only if this process still holds it at `epoch`). */
  async release(p: number, epoch: number): Promise<void> {
    await this.cmd.client.sendCommand(['EVAL', RELEASE_LUA, '2', this.keys.owner(p), this.keys.released, `${this.token} ${epoch}`, String(p), String(epoch)]);
  }
}
