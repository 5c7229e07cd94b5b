"""The Lua scripts of the Redis store: each step that must be atomic on the
server is one script (see keys.py for the keys they use).

A delivery is identified by (level, stream id, delivery count): a script
that settles a message first checks with XPENDING that the entry is still
pending for this consumer with that count, so a late ack of a delivery that
timed out and was claimed again (even by the same consumer) changes nothing.
Every script takes the queue's key base as KEYS[1]; keys derived from it are
computed inside, so the store is for a single Redis server (or a primary
with replicas), not a Redis Cluster.
"""

from __future__ import annotations

import hashlib
from typing import Any

import redis

from flinq.redisstore.connection import replies
from flinq.redisstore.keys import GROUP, READY_OWNER

__all__ = ["Scripts"]

_COMMON = f"""
local GROUP = '{GROUP}'
local READY = '{READY_OWNER}'
local base = KEYS[1]
local function stream_of(b, level) return b .. ':s:' .. level end
local function stream(level) return stream_of(base, level) end
local function wake(b, level)
  redis.call('XADD', b .. ':wake', 'MAXLEN', '~', 16, '*', 'l', level)
end
local function ensure_level(b, level)
  if redis.call('ZADD', b .. ':levels', 'NX', level, level) == 1 then
    redis.pcall('XGROUP', 'CREATE', stream_of(b, level), GROUP, '0', 'MKSTREAM')
    wake(b, level)
  end
end
local function pending_count(s, id, consumer)
  local p = redis.call('XPENDING', s, GROUP, id, id, 1)
  if p[1] and (consumer == nil or p[1][2] == consumer) then return tonumber(p[1][4]) end
  return nil
end
local function mine(s, id, consumer, count)
  return pending_count(s, id, consumer) == tonumber(count)
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Trim stream s below its oldest entry still needed: the oldest pending one,
-- else the first not yet delivered (every delivered entry below it that is
-- not pending was acked, and XDEL would cost a lookup per id). -> nil when
-- nothing is pending, else that oldest pending id.
local function trim(s)
  local summary = redis.call('XPENDING', s, GROUP)
  if tonumber(summary[1]) > 0 then
    redis.call('XTRIM', s, 'MINID', summary[2])
    return summary[2]
  end
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', s)) do
    local fields = {{}}
    for i = 1, #g, 2 do fields[g[i]] = g[i + 1] end
    if fields['name'] == GROUP then
      local ms, seq = string.match(fields['last-delivered-id'], '^(%d+)-(%d+)$')
      redis.call('XTRIM', s, 'MINID', ms .. '-' .. string.format('%.0f', tonumber(seq) + 1))
    end
  end
  return nil
end
local function parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(a, b)
  local am, as = parts(a)
  local bm, bs = parts(b)
  if am ~= bm then return am < bm end
  return as < bs
end
local function counts(b)
  local ready, flying = 0, 0
  for _, level in ipairs(redis.call('ZRANGE', b .. ':levels', 0, -1)) do
    local s = stream_of(b, level)
    local summary = redis.call('XPENDING', s, GROUP)
    local pending = tonumber(summary[1])
    local given_back = 0
    if pending > 0 then
      for _, c in ipairs(summary[4]) do
        if c[1] == READY then given_back = tonumber(c[2]) end
      end
    end
    ready = ready + redis.call('XLEN', s) - pending + given_back
    flying = flying + pending - given_back
  end
  return ready, flying, redis.call('ZCARD', b .. ':delayed')
end
"""

# KEYS: base, queues hash. ARGV: name, settings (JSON). Stores the settings
# and makes level 0's stream and group.
_CREATE = """
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
ensure_level(base, '0')
return 1
"""

# KEYS: base, seq. ARGV: level, maxsize, record...
# -> the first id given, or -1 when a bounded queue has no room for them all.
_PUT = """
local level, maxsize = ARGV[1], tonumber(ARGV[2])
local n = #ARGV - 2
if maxsize > 0 then
  local ready = counts(base)
  if ready + n > maxsize then return -1 end
end
ensure_level(base, level)
local last = redis.call('INCRBY', KEYS[2], n)
local first = last - n + 1
local s = stream(level)
for i = 1, n do
  redis.call('XADD', s, '*', string.format('%.0f', first + i - 1), ARGV[i + 2])
end
return first
"""

# KEYS: base. ARGV: consumer, n, visibility timeout (ms, 0: none), "1" to
# read new entries too (priority queues: level by level, lowest first).
# Due delayed messages go back to the end of their level first; then up to n
# deliveries: given-back entries, timed-out ones, new ones (with "1").
# -> {k, then k times: level, stream id, id, record, delivery count}.
_TAKE = """
local consumer, n, vt, read_new = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', base .. ':delayed', '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  local held = redis.call('HGET', base .. ':held', id)
  if held then
    local sep = string.find(held, ':', 1, true)
    local level = string.sub(held, 1, sep - 1)
    ensure_level(base, level)
    redis.call('XADD', stream(level), '*', id, string.sub(held, sep + 1))
    redis.call('HDEL', base .. ':held', id)
  end
  redis.call('ZREM', base .. ':delayed', id)
end
local out = {0}
local got = 0
local function add(level, entry, count)
  local fields = entry[2]
  if not fields then return end
  out[#out + 1] = level
  out[#out + 1] = entry[1]
  out[#out + 1] = fields[1]
  out[#out + 1] = fields[2]
  out[#out + 1] = count
  got = got + 1
end
for _, level in ipairs(redis.call('ZRANGE', base .. ':levels', 0, -1)) do
  if got >= n then break end
  local s = stream(level)
  local back = redis.call('XPENDING', s, GROUP, '-', '+', n - got, READY)
  if #back > 0 then
    -- XCLAIM adds one to each delivery count XPENDING just gave.
    local ids, counts = {}, {}
    for j, p in ipairs(back) do
      ids[j] = p[1]
      counts[p[1]] = tonumber(p[4]) + 1
    end
    for _, entry in ipairs(redis.call('XCLAIM', s, GROUP, consumer, 0, unpack(ids))) do
      add(level, entry, counts[entry[1]])
    end
  end
  if vt > 0 and got < n then
    local cursor = redis.call('HGET', base .. ':cursor', level) or '0-0'
    local r = redis.call('XAUTOCLAIM', s, GROUP, consumer, vt, cursor, 'COUNT', n - got)
    if r[1] ~= cursor then  -- an unchanged cursor: no write (AOF, replicas) on an idle poll
      redis.call('HSET', base .. ':cursor', level, r[1])
    end
    for _, entry in ipairs(r[2]) do
      add(level, entry, pending_count(s, entry[1], consumer))
    end
  end
  if read_new and got < n then
    local r = redis.call('XREADGROUP', 'GROUP', GROUP, consumer, 'COUNT', n - got,
                         'STREAMS', s, '>')
    if r then
      for _, entry in ipairs(r[1][2]) do add(level, entry, 1) end
    end
  end
end
out[1] = got
return out
"""

# KEYS: base. What a taker that found nothing waits for.
# -> {1 if something can be taken now (look again) else 0, ms until the next
# delayed message is due (-1: none), then (stream, last id) pairs to XREAD.
_WAIT = """
local now = now_ms()
local ready = 0
local next_due = -1
local due = redis.call('ZRANGE', base .. ':delayed', 0, 0, 'WITHSCORES')
if due[2] then
  next_due = math.max(0, tonumber(due[2]) - now)
  if next_due == 0 then ready = 1 end
end
local out = {0, next_due}
for _, level in ipairs(redis.call('ZRANGE', base .. ':levels', 0, -1)) do
  local s = stream(level)
  if #redis.call('XPENDING', s, GROUP, '-', '+', 1, READY) > 0 then ready = 1 end
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', s)) do
    local fields = {}
    for i = 1, #g, 2 do fields[g[i]] = g[i + 1] end
    if fields['name'] == GROUP then
      local newer = redis.call('XRANGE', s, '(' .. fields['last-delivered-id'], '+', 'COUNT', 1)
      if #newer > 0 then ready = 1 end
    end
  end
  local last = redis.call('XREVRANGE', s, '+', '-', 'COUNT', 1)
  out[#out + 1] = s
  out[#out + 1] = last[1] and last[1][1] or '0-0'
end
local w = redis.call('XREVRANGE', base .. ':wake', '+', '-', 'COUNT', 1)
out[#out + 1] = base .. ':wake'
out[#out + 1] = w[1] and w[1][1] or '0-0'
out[1] = ready
return out
"""

# KEYS: base. ARGV: level, stream id... of entries this consumer just read
# and cannot hand out (more than asked for): back, ready, not counted.
_UNTAKE = """
local level = ARGV[1]
local command = {'XCLAIM', stream(level), GROUP, READY, 0}
for j = 2, #ARGV do command[#command + 1] = ARGV[j] end
command[#command + 1] = 'RETRYCOUNT'
command[#command + 1] = 0
redis.call(unpack(command))
wake(base, level)
return #ARGV - 1
"""

# KEYS: base. ARGV: consumer, then (level, stream id, delivery count) per
# message. -> per message, 1 if it was still this delivery (now deleted), else 0.
# One XPENDING over the consumer's entries in the batch's id range checks
# them all; XACK takes the batch in chunks, then trim() deletes them but for
# those acked out of order, which XDEL deletes.
_ACK = """
local consumer = ARGV[1]
local done = {}
local by_level, order = {}, {}
for j = 2, #ARGV, 3 do
  local level = ARGV[j]
  if not by_level[level] then by_level[level] = {}; order[#order + 1] = level end
  local list = by_level[level]
  list[#list + 1] = j
  done[(j + 1) / 3] = 0
end
for _, level in ipairs(order) do
  local s = stream(level)
  local list = by_level[level]
  local lo, hi = ARGV[list[1] + 1], ARGV[list[1] + 1]
  for _, j in ipairs(list) do
    local id = ARGV[j + 1]
    if less(id, lo) then lo = id end
    if less(hi, id) then hi = id end
  end
  local held = {}
  for _, p in ipairs(redis.call('XPENDING', s, GROUP, lo, hi, 1000000, consumer)) do
    held[p[1]] = tonumber(p[4])
  end
  local ids = {}
  for _, j in ipairs(list) do
    local id = ARGV[j + 1]
    if held[id] == tonumber(ARGV[j + 2]) then
      held[id] = nil  -- the same delivery twice in one call is acked once
      ids[#ids + 1] = id
      done[(j + 1) / 3] = 1
    end
  end
  for k = 1, #ids, 500 do
    redis.call('XACK', s, GROUP, unpack(ids, k, math.min(k + 499, #ids)))
  end
  local keep = trim(s)
  if keep then
    local above = {}
    for _, id in ipairs(ids) do
      if not less(id, keep) then above[#above + 1] = id end
    end
    for k = 1, #above, 500 do
      redis.call('XDEL', s, unpack(above, k, math.min(k + 499, #above)))
    end
  end
end
return done
"""

# KEYS: base. ARGV: level. Run after XACK of deliveries of a queue without a
# visibility timeout (nobody else can have claimed them), in the same MULTI:
# trim(). -> nil when nothing is pending (every delivered entry is gone),
# else the oldest pending id: acked ids at or above it (acked out of order)
# are left for the caller to XDEL.
_TRIM = """
return trim(stream(ARGV[1])) or false
"""

# KEYS: base. ARGV: consumer, level, stream id, delivery count, count to
# leave. The message goes back in place, ready: the next take claims it.
_GIVE_BACK = """
local consumer, level, id = ARGV[1], ARGV[2], ARGV[3]
local s = stream(level)
if not mine(s, id, consumer, ARGV[4]) then return 0 end
redis.call('XCLAIM', s, GROUP, READY, 0, id, 'RETRYCOUNT', ARGV[5])
wake(base, level)
return 1
"""

# KEYS: base. ARGV: consumer, level, stream id, delivery count, id, record
# (attempts so far in it), delay (ms). Out of the stream until it is due.
_DELAY = """
local consumer, level, id = ARGV[1], ARGV[2], ARGV[3]
local s = stream(level)
if not mine(s, id, consumer, ARGV[4]) then return 0 end
redis.call('XACK', s, GROUP, id)
redis.call('XDEL', s, id)
redis.call('ZADD', base .. ':delayed', now_ms() + tonumber(ARGV[7]), ARGV[5])
redis.call('HSET', base .. ':held', ARGV[5], level .. ':' .. ARGV[6])
wake(base, level)
return 1
"""

# KEYS: base, dead-letter queue's base, queues hash. ARGV: consumer, level,
# stream id, delivery count, id, record (as it goes there), dead-letter
# queue name, its settings if it is new (JSON).
_DEAD_LETTER = """
local consumer, level, id = ARGV[1], ARGV[2], ARGV[3]
local s = stream(level)
if not mine(s, id, consumer, ARGV[4]) then return 0 end
redis.call('XACK', s, GROUP, id)
redis.call('XDEL', s, id)
redis.call('HSETNX', KEYS[3], ARGV[7], ARGV[8])
ensure_level(KEYS[2], '0')
redis.call('XADD', stream_of(KEYS[2], '0'), '*', ARGV[5], ARGV[6])
return 1
"""

# KEYS: base. ARGV: consumer. Every message the consumer holds goes back in
# place (its delivery counted), and the consumer leaves the groups.
_RETURN_ALL = """
local consumer = ARGV[1]
local returned = 0
for _, level in ipairs(redis.call('ZRANGE', base .. ':levels', 0, -1)) do
  local s = stream(level)
  while true do
    local held = redis.call('XPENDING', s, GROUP, '-', '+', 1000, consumer)
    if #held == 0 then break end
    for _, p in ipairs(held) do
      redis.call('XCLAIM', s, GROUP, READY, 0, p[1], 'RETRYCOUNT', p[4])
      returned = returned + 1
    end
  end
  redis.pcall('XGROUP', 'DELCONSUMER', s, GROUP, consumer)
  if returned > 0 then wake(base, level) end
end
return returned
"""

# KEYS: base. -> {ready, in flight, delayed}
_COUNTS = """
local ready, flying, delayed = counts(base)
return {ready, flying, delayed}
"""

# KEYS: base, queues hash. ARGV: name, "delete" or "purge". Drops every
# message (and with "delete" the queue). -> how many messages there were.
_DROP = """
local dropped = redis.call('ZCARD', base .. ':delayed')
local levels = redis.call('ZRANGE', base .. ':levels', 0, -1)
for _, level in ipairs(levels) do
  dropped = dropped + redis.call('XLEN', stream(level))
  redis.call('DEL', stream(level))
end
redis.call('DEL', base .. ':levels', base .. ':delayed', base .. ':held', base .. ':cursor')
if ARGV[2] == 'delete' then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('DEL', base .. ':wake')
else
  ensure_level(base, '0')
  wake(base, '0')
end
return dropped
"""

# KEYS: source base, target base, queues hash, seq. ARGV: source name,
# target name, "1" if the target keeps levels (both priority queues).
# Every message of source goes to the end of target in order, attempts
# reset to 0, all at once. -> how many.
_MOVE = """
local target, keep = KEYS[2], ARGV[3] == '1'
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 or redis.call('HEXISTS', KEYS[3], ARGV[2]) == 0 then
  return -1
end
local moved = 0
local function move(level, record)
  local to = keep and level or '0'
  ensure_level(target, to)
  local id = redis.call('INCR', KEYS[4])
  record = string.sub(record, 1, 1) .. string.char(0, 0, 0, 0) .. string.sub(record, 6)
  redis.call('XADD', stream_of(target, to), '*', string.format('%.0f', id), record)
  moved = moved + 1
end
for _, level in ipairs(redis.call('ZRANGE', base .. ':levels', 0, -1)) do
  for _, entry in ipairs(redis.call('XRANGE', stream(level), '-', '+')) do
    move(level, entry[2][2])
  end
  redis.call('DEL', stream(level))
end
for _, id in ipairs(redis.call('ZRANGE', base .. ':delayed', 0, -1)) do
  local held = redis.call('HGET', base .. ':held', id)
  if held then
    local sep = string.find(held, ':', 1, true)
    move(string.sub(held, 1, sep - 1), string.sub(held, sep + 1))
  end
end
redis.call('DEL', base .. ':levels', base .. ':delayed', base .. ':held', base .. ':cursor')
ensure_level(base, '0')
return moved
"""


class Script:
    """One script: EVALSHA, loading it again if the server forgot it (a
    restart, SCRIPT FLUSH)."""

    def __init__(self, client: Any, body: str) -> None:
        self._client = client
        self.body = body
        self.sha = hashlib.sha1(body.encode()).hexdigest()

    def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        try:
            return self._client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            self.load()
            return self._client.evalsha(self.sha, len(keys), *keys, *args)

    def command(self, keys: list[Any], args: list[Any]) -> tuple[Any, ...]:
        """Its EVALSHA command, to send with others (connection.replies);
        NoScriptError comes back in its place if the server forgot it
        (load(), then retry)."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    def load(self) -> None:
        """Load it into the server's script cache."""
        self._client.script_load(self.body)

    def run_many(self, calls: list[tuple[list[Any], list[Any]]]) -> list[Any]:
        """Its reply to each (keys, args) of calls, in order, all sent in one
        round trip (connection.replies), each call atomic on its own; calls
        the server refused for not knowing the script are sent again once it
        is loaded. Another error reply comes back in its place."""
        commands = [self.command(keys, args) for keys, args in calls]
        out = replies(self._client, commands)
        forgotten = [i for i, r in enumerate(out) if isinstance(r, redis.exceptions.NoScriptError)]
        if forgotten:
            self.load()
            again = replies(self._client, [commands[i] for i in forgotten])
            for i, reply in zip(forgotten, again, strict=True):
                out[i] = reply
        return out


class Scripts:
    """The scripts, for one client."""

    def __init__(self, client: Any) -> None:
        def script(body: str) -> Script:
            return Script(client, _COMMON + body)

        self.create = script(_CREATE)
        self.put = script(_PUT)
        self.take = script(_TAKE)
        self.wait = script(_WAIT)
        self.untake = script(_UNTAKE)
        self.ack = script(_ACK)
        self.trim = script(_TRIM)
        self.give_back = script(_GIVE_BACK)
        self.delay = script(_DELAY)
        self.dead_letter = script(_DEAD_LETTER)
        self.return_all = script(_RETURN_ALL)
        self.counts = script(_COUNTS)
        self.drop = script(_DROP)
        self.move = script(_MOVE)
