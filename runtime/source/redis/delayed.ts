/**
 * Delayed messages of a Redis mailbox (main thread; issue #30): they wait
 * in Redis, not in one process's memory.
 *
 * - `<D>` (D = `{<stream>}:delayed`, or `<stream>:delayed` when the stream
 *   name has a hash tag of its own: in the stream's hash slot either way): a
 *   sorted set scored by due time (ms, Redis's clock); each member is one
 *   message, `<seq:16 hex>:<flags>:<stream len>:<key len>:<reply len>:<corr len>:`
 *   then its stream, key, reply stream, correlation id (an ask's) and payload
 *   (the seq orders messages due at the same ms as they were sent). A message
 *   with headers (no ask: an ask carries none) keeps them in the correlation
 *   id's place, its reply stream empty, and gets them back as field `h` when
 *   moved; a member without them is as before headers existed (and a mover
 *   of then moves one with them, without its headers).
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
import { PAYLOAD_FIELD, KEY_FIELD, CALL_FIELD, REPLY_FIELD, CORR_FIELD, HEADERS_FIELD } from './fields.js';
import { slotPrefix } from './keys.js';

export interface DelayedKeys {
  set: string;
  holds: string;
  seq: string;
  wake: string;
  /** A channel told each key a delayed message starts to hold (holds.ts). */
  held: string;
}

/**
 * The keys of a stream's delayed messages, in the stream's hash slot (Redis
 * Cluster hashes `{S}` as S, and a name with its own tag by that tag), the
 * same whoever sends: a mailbox with or without partitions, a producer.
 */
export function delayedKeys(stream: string): DelayedKeys {
  const d = `${slotPrefix(stream)}:delayed`;
  return { set: d, holds: `${d}:holds`, seq: `${d}:seq`, wake: `${d}:wake`, held: `${d}:held` };
}

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** The XADD of one message: its fields from flags, key, reply stream, correlation id and headers (Lua locals of that name). */
const XADD_FIELDS = `local f = { '${PAYLOAD_FIELD}', payload }
if string.find(flags, 'k', 1, true) then f[#f + 1] = '${KEY_FIELD}'; f[#f + 1] = key end
if string.find(flags, 'c', 1, true) then f[#f + 1] = '${CALL_FIELD}'; f[#f + 1] = '1' end
if reply ~= '' then f[#f + 1] = '${REPLY_FIELD}'; f[#f + 1] = reply; f[#f + 1] = '${CORR_FIELD}'; f[#f + 1] = corr end
if headers ~= '' then f[#f + 1] = '${HEADERS_FIELD}'; f[#f + 1] = headers end`;

/**
 * KEYS: set, holds, seq, the message's stream; ARGV: when it is due (ms on
 * Redis's clock, the sender's clock corrected by its measured offset; 0: not
 * delayed), flags ('',
 * 'k' keyed, 'kc' a keyed method call), key, payload, wake channel, reply
 * stream ('' unless an ask), correlation id, held channel, headers as
 * encoded ('' for none; never an ask's). An XADD (its entry id) when
 * neither delayed nor behind a delayed message of its key; else a member of
 * the set ('delayed:<seq>').
 */
export const SEND_LUA = `local flags, key, payload, reply, corr, headers = ARGV[2], ARGV[3], ARGV[4], ARGV[6], ARGV[7], ARGV[9]
local keyed = flags ~= ''
local h = false
if keyed then h = redis.call('HGET', KEYS[2], key) end
-- The common case first (a keyed send whose key holds nothing): one XADD, no more.
if not h and ARGV[1] == '0' then
  if flags == 'k' and reply == '' and headers == '' then return redis.call('XADD', KEYS[4], '*', '${PAYLOAD_FIELD}', payload, '${KEY_FIELD}', key) end
${XADD_FIELDS}
  return redis.call('XADD', KEYS[4], '*', unpack(f))
end
local due = tonumber(ARGV[1])
${NOW}
if due <= now and not h then
${XADD_FIELDS}
  return redis.call('XADD', KEYS[4], '*', unpack(f))
end
if due < now then due = now end
if keyed then
  local n = 1
  if h then
    local sp = string.find(h, ' ', 1, true)
    n = tonumber(string.sub(h, 1, sp - 1)) + 1
    local last = tonumber(string.sub(h, sp + 1))
    if last > due then due = last end
  end
  redis.call('HSET', KEYS[2], key, n .. ' ' .. due)
  if not h then redis.call('PUBLISH', ARGV[8], key) end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local seq = redis.call('INCR', KEYS[3])
local s = string.format('%016x', seq)
-- The correlation id's place holds the headers of a message that is not an ask.
if reply == '' then corr = headers end
redis.call('ZADD', KEYS[1], due, s .. ':' .. flags .. ':' .. #KEYS[4] .. ':' .. #key .. ':' .. #reply .. ':' .. #corr .. ':' .. KEYS[4] .. key .. reply .. corr .. payload)
if first[2] == nil or tonumber(first[2]) > due then redis.call('PUBLISH', ARGV[5], tostring(due - now)) end
return 'delayed:' .. s`;

/**
 * KEYS: set, holds; ARGV: most to move. Moves what is due, in due order, to
 * its stream (with its headers); releases its key's hold with the last. { moved, ms until the
 * next due (-1: none), members left }.
 */
export const MOVE_LUA = `${NOW}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for i = 1, #due do
  local m = due[i]
  local at = 18
  local lens = {}
  for j = 1, 5 do
    local c = string.find(m, ':', at, true)
    lens[j] = string.sub(m, at, c - 1)
    at = c + 1
  end
  local flags = lens[1]
  local sl, kl, rl, al = tonumber(lens[2]), tonumber(lens[3]), tonumber(lens[4]), tonumber(lens[5])
  local stream = string.sub(m, at, at + sl - 1)
  local key = string.sub(m, at + sl, at + sl + kl - 1)
  local reply = string.sub(m, at + sl + kl, at + sl + kl + rl - 1)
  local corr = string.sub(m, at + sl + kl + rl, at + sl + kl + rl + al - 1)
  local payload = string.sub(m, at + sl + kl + rl + al)
  local headers = ''
  if reply == '' then headers = corr end
${XADD_FIELDS}
  redis.call('XADD', stream, '*', unpack(f))
  if flags ~= '' then
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
