/**
 * Trimming what every group has acknowledged (main thread), for a Redis
 * mailbox: once a second, one script (atomic, one round trip, whatever the
 * number of messages) finds the oldest entry any group of the stream still
 * needs and XTRIMs below it (MINID, exact):
 *
 * - for each group (XINFO GROUPS): its oldest pending entry (XPENDING
 *   summary), and the entry after its last-delivered id (what it has not
 *   read yet);
 * - and no entry younger than keepAckedMs (by the entry id's time, against
 *   Redis's clock, TIME), the history the user keeps.
 *
 * So an entry pending in any consumer of any group, or not yet delivered to
 * some group, is never trimmed. A stream without groups is left alone. Each
 * process of the group runs it; they agree, and a pass that finds nothing
 * to trim costs Redis one XINFO, one XPENDING per group and an XTRIM that
 * removes nothing.
 */
import type { Connection } from './connection.js';
import type { ResolvedRedisSource } from './options.js';

/** How often a process trims its stream. */
export const TRIM_EVERY_MS = 1_000;

/** KEYS: stream; ARGV: keepAckedMs. Returns the entries trimmed (-1: no stream or no group). */
const TRIM_LUA = `local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
if type(groups) ~= 'table' or groups.err ~= nil or #groups == 0 then return -1 end
local function split(id)
  local d = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, d - 1)), tonumber(string.sub(id, d + 1))
end
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1])
local seq = 0
local function keep(m, s)
  if m < ms or (m == ms and s < seq) then ms, seq = m, s end
end
for _, g in ipairs(groups) do
  local name, last
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then last = g[i + 1] end
  end
  local lm, ls = split(last)
  keep(lm, ls + 1)
  local p = redis.call('XPENDING', KEYS[1], name)
  if p[1] > 0 then keep(split(p[2])) end
end
if ms <= 0 then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-%d', ms, seq))`;

export class Trim {
  /** Entries this process trimmed from the stream (acknowledged by every group). */
  trimmed = 0;

  constructor(
    private readonly o: ResolvedRedisSource,
    private readonly cmd: Connection,
  ) {}

  /** Whether trimming is on (keepAckedMs is not false). */
  get on(): boolean {
    return this.o.keepAckedMs !== false;
  }

  /** One pass over the mailbox's stream and `more` (the partitions this process owns: each trimmed by its owner). Errors go to the caller. */
  async pass(more: readonly string[] = []): Promise<void> {
    if (this.o.keepAckedMs === false) return;
    const c = this.cmd.client;
    const keep = String(this.o.keepAckedMs);
    const ns = await Promise.all([this.o.stream, ...more].map((k) => c.sendCommand(['EVAL', TRIM_LUA, '1', k, keep])));
    for (const n of ns) if (typeof n === 'number' && n > 0) this.trimmed += n;
  }
}
