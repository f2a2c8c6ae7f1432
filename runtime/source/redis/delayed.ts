/**
 * Delayed messages of a Redis mailbox (main thread; issue #30): they wait
 * in Redis, not in one process's memory.
 *
 * - `<D>` (D = `{<stream>}:delayed`, or `<stream>:delayed` when the stream
 *   name has a hash tag of its own: in the stream's hash slot either way): a
 *   sorted set scored by due time (ms, Redis's clock); each member is one
 *   message, `<seq:16 hex>:<flags>:<stream len>:<key len>:<stream><key><payload>`
 *   (the seq orders messages due at the same ms as they were sent).
 * - `<D>:holds`: a hash, key -> `<count> <last due>`: a keyed message
 *   delayed pauses its key, as in memory: the key's later messages (delayed
 *   or not) wait behind it, scored at least its due time. So every keyed send
 *   of a Redis mailbox goes through SEND_LUA (an XADD when its key holds
 *   nothing).
 * - `<D>:seq`: the counter; `<D>:wake`: a channel told the time to wait when
 *   a send makes a new earliest due time.
 *
 * The mover (MOVE_LUA) takes due members in score order, XADDs each to its
 * stream and removes it, in one script: atomic in Redis, so a process that
 * dies around it neither loses nor doubles a message. Every consumer process
 * runs it, woken for the earliest due time it knows (its own sends, the wake
 * channel, the last pass's answer) and at least every second.
 */
import { PAYLOAD_FIELD, KEY_FIELD, CALL_FIELD } from './fields.js';
import { hasHashTag } from './keys.js';

export interface DelayedKeys {
  set: string;
  holds: string;
  seq: string;
  wake: string;
}

/**
 * The keys of a stream's delayed messages, in the stream's hash slot (Redis
 * Cluster hashes `{S}` as S, and a name with its own tag by that tag), the
 * same whoever sends: a mailbox with or without partitions, a producer.
 */
export function delayedKeys(stream: string): DelayedKeys {
  const d = hasHashTag(stream) ? `${stream}:delayed` : `{${stream}}:delayed`;
  return { set: d, holds: `${d}:holds`, seq: `${d}:seq`, wake: `${d}:wake` };
}

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * KEYS: set, holds, seq, the message's stream; ARGV: delay ms, flags ('',
 * 'k' keyed, 'kc' a keyed method call), key, payload, wake channel. An XADD
 * (its entry id) when neither delayed nor behind a delayed message of its
 * key; else a member of the set ('delayed:<seq>').
 */
export const SEND_LUA = `local d = tonumber(ARGV[1])
local keyed = ARGV[2] ~= ''
local h = false
if keyed then h = redis.call('HGET', KEYS[2], ARGV[3]) end
if d <= 0 and not h then
  if not keyed then return redis.call('XADD', KEYS[4], '*', '${PAYLOAD_FIELD}', ARGV[4]) end
  if ARGV[2] == 'kc' then return redis.call('XADD', KEYS[4], '*', '${PAYLOAD_FIELD}', ARGV[4], '${KEY_FIELD}', ARGV[3], '${CALL_FIELD}', '1') end
  return redis.call('XADD', KEYS[4], '*', '${PAYLOAD_FIELD}', ARGV[4], '${KEY_FIELD}', ARGV[3])
end
${NOW}
local due = now + d
if keyed then
  local n = 1
  if h then
    local sp = string.find(h, ' ', 1, true)
    n = tonumber(string.sub(h, 1, sp - 1)) + 1
    local last = tonumber(string.sub(h, sp + 1))
    if last > due then due = last end
  end
  redis.call('HSET', KEYS[2], ARGV[3], n .. ' ' .. due)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local seq = redis.call('INCR', KEYS[3])
local s = string.format('%016x', seq)
redis.call('ZADD', KEYS[1], due, s .. ':' .. ARGV[2] .. ':' .. #KEYS[4] .. ':' .. #ARGV[3] .. ':' .. KEYS[4] .. ARGV[3] .. ARGV[4])
if first[2] == nil or tonumber(first[2]) > due then redis.call('PUBLISH', ARGV[5], tostring(due - now)) end
return 'delayed:' .. s`;

/**
 * KEYS: set, holds; ARGV: most to move. Moves what is due, in due order, to
 * its stream; releases its key's hold with the last. { moved, ms until the
 * next due (-1: none), members left }.
 */
export const MOVE_LUA = `${NOW}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for i = 1, #due do
  local m = due[i]
  local b = string.find(m, ':', 18, true)
  local flags = string.sub(m, 18, b - 1)
  local c = string.find(m, ':', b + 1, true)
  local sl = tonumber(string.sub(m, b + 1, c - 1))
  local e = string.find(m, ':', c + 1, true)
  local kl = tonumber(string.sub(m, c + 1, e - 1))
  local stream = string.sub(m, e + 1, e + sl)
  local payload = string.sub(m, e + sl + kl + 1)
  if flags == '' then
    redis.call('XADD', stream, '*', '${PAYLOAD_FIELD}', payload)
  else
    local key = string.sub(m, e + sl + 1, e + sl + kl)
    if flags == 'kc' then redis.call('XADD', stream, '*', '${PAYLOAD_FIELD}', payload, '${KEY_FIELD}', key, '${CALL_FIELD}', '1')
    else redis.call('XADD', stream, '*', '${PAYLOAD_FIELD}', payload, '${KEY_FIELD}', key) end
    local h = redis.call('HGET', KEYS[2], key)
    if h then
      local sp = string.find(h, ' ', 1, true)
      local left = tonumber(string.sub(h, 1, sp - 1)) - 1
      if left <= 0 then redis.call('HDEL', KEYS[2], key) else redis.call('HSET', KEYS[2], key, left .. string.sub(h, sp)) end
    end
  end
end
if #due > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #due - 1) end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = -1
if nxt[2] then wait = tonumber(nxt[2]) - now end
return { #due, wait, redis.call('ZCARD', KEYS[1]) }`;

/** A send's flags in a member: '' unkeyed, 'k' keyed, 'kc' a keyed actor method call. */
export function sendFlags(key: string | null, call: boolean): string {
  return key === null ? '' : call ? 'kc' : 'k';
}
