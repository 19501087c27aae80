"""Lua scripts behind DLQ scans, batch removal and pause, run by EVALSHA; only queues/ uses them."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis.asyncio as aioredis


class Lua:
    """A script sent by EVALSHA, and loaded first only when the server does not know it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def run(
        self, client: aioredis.Redis, keys: list[str], args: list[Any], raw: bool = False
    ) -> Any:
        """Run it (`raw`: reply as bytes); on NOSCRIPT nothing ran, so load-and-run is no retry."""
        from redis.client import NEVER_DECODE
        from redis.exceptions import NoScriptError

        options = {NEVER_DECODE: True} if raw else {}
        try:
            return await client.execute_command(
                "EVALSHA", self.sha, len(keys), *keys, *args, **options
            )
        except NoScriptError:
            await client.script_load(self.source)
            return await client.execute_command(
                "EVALSHA", self.sha, len(keys), *keys, *args, **options
            )


Call = tuple[Lua, list[str], list[Any], bool]


# KEYS: failed zset. ARGV: job key prefix, newest score included ('+inf' or ms), offset, count, min
# attempts, mode, extra hash fields. Newest first, members only (attempts made >= min). Modes:
# 'count'; 'rows' ([id, attempts, *fields]); 'reasons' (fields finishedOn, failedReason: first lines
# counted, and the oldest); 'records' ([id, score, whole hash]). 'count', 'rows' and 'reasons' use
# SORT BY nosort DESC, which keeps the zset's order and reads only the LIMIT range; small (listpack)
# zsets, which SORT would convert to a skiplist, and servers that refuse SORT take ZREVRANGE + HMGET
# instead. Returns MessagePack {scanned, members, rows, oldest, newest ('reasons': the first member
# as [id, score])}: unlike JSON it needs no escaping, which matters for records full of stack
# traces.
SCAN = Lua("""
local key, prefix, mode = KEYS[1], ARGV[1], ARGV[6]
local skip = 0
if ARGV[2] ~= '+inf' then skip = redis.call('ZCOUNT', key, '(' .. ARGV[2], '+inf') end
local start, count, min = skip + tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
if mode == 'records' then
  local ids = redis.call('ZREVRANGE', key, start, start + count - 1, 'WITHSCORES')
  for i = 1, #ids, 2 do
    local flat, record = redis.call('HGETALL', prefix .. ids[i]), {}
    for j = 1, #flat, 2 do record[flat[j]] = flat[j + 1] end
    local attempts = tonumber(record.atm) or tonumber(record.attemptsMade) or 0
    if attempts >= min then out[#out + 1] = {ids[i], ids[i + 1], record} end
  end
  return cmsgpack.pack({scanned = #ids / 2, members = #out, rows = out})
end
local get = {'atm', 'attemptsMade'}
for i = 7, #ARGV do get[#get + 1] = ARGV[i] end
local width = #get + 1
local sort = {key, 'BY', 'nosort', 'DESC', 'LIMIT', start, count, 'GET', '#'}
for _, f in ipairs(get) do sort[#sort + 1] = 'GET'; sort[#sort + 1] = prefix .. '*->' .. f end
local rows = {err = 'listpack'}
if redis.call('OBJECT', 'ENCODING', key) == 'skiplist' then
  rows = redis.pcall('SORT', unpack(sort))
end
if rows.err then
  rows = {}
  for _, id in ipairs(redis.call('ZREVRANGE', key, start, start + count - 1)) do
    rows[#rows + 1] = id
    local values = redis.call('HMGET', prefix .. id, unpack(get))
    for i = 1, #get do rows[#rows + 1] = values[i] end
  end
end
local members, oldest, distinct, newest = 0, false, 0, false
for i = 1, #rows, width do
  local attempts = tonumber(rows[i + 1]) or tonumber(rows[i + 2]) or 0
  if attempts >= min then
    members = members + 1
    if mode == 'rows' then
      local row = {rows[i], attempts}
      for j = 3, width - 1 do row[#row + 1] = rows[i + j] end
      out[#out + 1] = row
    elseif mode == 'reasons' then
      if not newest then newest = {rows[i], redis.call('ZSCORE', key, rows[i])} end
      local finished, line = tonumber(rows[i + 3]), string.match(rows[i + 4] or '', '^[^\\r\\n]*')
      if finished and (not oldest or finished < oldest) then oldest = finished end
      line = string.sub(line, 1, 120)
      if not out[line] then
        distinct = distinct + 1
        if distinct > 200 then line = '(other reasons)' end
      end
      out[line] = (out[line] or 0) + 1
    end
  end
end
return cmsgpack.pack({scanned = #rows / width, members = members, rows = out, oldest = oldest,
  newest = newest})
""")


# KEYS: failed zset. ARGV: job key prefix, newest score included (ms), cursor id ('' to begin),
# cursor score, count, min attempts, 'dump' or 'pack', log lines kept. The next `count` failed
# jobs, newest first, after the cursor: the last job the previous call scanned. Finding it by rank
# keeps the walk exact while jobs before it are removed and new ones fail (they score after the
# cutoff); if it left the set meanwhile, its place is found by score, ties by member bytes, as the
# zset orders them. Returns a flat array: scanned, members, the new cursor (id, score), DROP's JSON
# argument for these members (so the client passes it back untouched), then per member id, name,
# the job hash: Redis's own DUMP of it ('dump': serialised in C, LZF-compressed) or its field/value
# list packed by cmsgpack ('pack', for Redis 6, whose DUMP forge does not read), and its log
# (job.log lines, which DROP deletes with the job) as cmsgpack [lines in all, newest lines kept],
# or '' when it has none.
TAKE = Lua("""
local key, prefix, cursor, score = KEYS[1], ARGV[1], ARGV[3], ARGV[4]
local count, min, dump = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7] == 'dump'
local kept = tonumber(ARGV[8])
local function seen(member)
  if member == cursor then return true end
  for i = 1, math.min(#member, #cursor) do
    local a, b = string.byte(member, i), string.byte(cursor, i)
    if a ~= b then return a > b end
  end
  return #member > #cursor
end
local start
if cursor == '' then
  start = redis.call('ZCOUNT', key, '(' .. ARGV[2], '+inf')
elseif redis.call('ZSCORE', key, cursor) == score then
  start = redis.call('ZREVRANK', key, cursor) + 1
else
  start = redis.call('ZCOUNT', key, '(' .. score, '+inf')
  local offset, ties = 0, nil
  repeat
    ties = redis.call('ZREVRANGEBYSCORE', key, score, score, 'LIMIT', offset, 1000)
    for _, member in ipairs(ties) do
      if not seen(member) then ties = {} break end
      start = start + 1
    end
    offset = offset + 1000
  until #ties < 1000
end
local ids = redis.call('ZREVRANGE', key, start, start + count - 1, 'WITHSCORES')
local out, plan, n = {#ids / 2, 0, ids[#ids - 1] or cursor, ids[#ids] or score, ''}, {}, 5
for i = 1, #ids, 2 do
  local job = prefix .. ids[i]
  local f = redis.call('HMGET', job, 'atm', 'attemptsMade', 'name', 'parentKey', 'deid')
  if (tonumber(f[1]) or tonumber(f[2]) or 0) >= min then
    local record
    if dump then
      record = redis.call('DUMP', job)
    else
      record = cmsgpack.pack(redis.call('HGETALL', job))
    end
    local lines, log = redis.call('LRANGE', job .. ':logs', -kept, -1), ''
    if #lines > 0 then log = cmsgpack.pack({redis.call('LLEN', job .. ':logs'), lines}) end
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], n = ids[i], f[3] or '', record, log, n + 4
    plan[#plan + 1] = {ids[i], ids[i + 1], f[4] or '', f[5] or ''}
  end
end
out[2] = #plan
if #plan > 0 then out[5] = cjson.encode(plan) end
return out
""")


# KEYS: failed zset, events stream. ARGV: job key prefix, JSON [[id, failed score when archived,
# parentKey, deid], …] ('' when absent). A job is removed only while it is still failed with that
# score: a retried job has left the set, and one that failed again has a newer score (and a record
# nobody archived). Deletes what BullMQ's removeJob deletes, plus :lock. Returns the ids it left
# alone, so the usual reply is empty.
DROP = Lua("""
local failed, events, prefix = KEYS[1], KEYS[2], ARGV[1]
local jobs, ids = cjson.decode(ARGV[2]), {}
for n, job in ipairs(jobs) do ids[n] = job[1] end
if #ids == 0 then return {} end
local scores = redis.call('ZMSCORE', failed, unpack(ids))
local function parentDone(jobKey, parentKey)
  if redis.call('SREM', parentKey .. ':dependencies', jobKey) == 0 then return end
  if redis.call('SCARD', parentKey .. ':dependencies') > 0 then return end
  local parentId = string.match(parentKey, '.*:(.*)')
  local parentPrefix = string.sub(parentKey, 1, #parentKey - #parentId)
  if redis.call('ZREM', parentPrefix .. 'waiting-children', parentId) == 0 then return end
  local meta = redis.call('HMGET', parentPrefix .. 'meta', 'paused', 'concurrency')
  redis.call('RPUSH', parentPrefix .. 'wait', parentId)
  local maxed = meta[2] and redis.call('LLEN', parentPrefix .. 'active') >= tonumber(meta[2])
  if not meta[1] and not maxed then redis.call('ZADD', parentPrefix .. 'marker', 0, '0') end
  redis.call('XADD', parentPrefix .. 'events', '*', 'event', 'waiting', 'jobId', parentId,
    'prev', 'waiting-children')
end
local removed, left, doomed = {}, {}, {}
for n, job in ipairs(jobs) do
  if scores[n] and scores[n] == job[2] then
    removed[#removed + 1] = job
  else
    left[#left + 1] = job[1]
  end
end
if #removed == 0 then return left end
local maxEvents = redis.call('HGET', prefix .. 'meta', 'opts.maxLenEvents') or 10000
redis.call('XADD', events, 'MAXLEN', '~', maxEvents, '*', 'event', 'cleaned', 'count', #removed)
local suffixes = {'', ':logs', ':lock', ':dependencies', ':processed', ':failed', ':unsuccessful'}
for i, job in ipairs(removed) do
  local id, parentKey, dedupId = job[1], job[3], job[4]
  local jobKey = prefix .. id
  if parentKey ~= '' and redis.call('EXISTS', parentKey) == 1 then parentDone(jobKey, parentKey) end
  if dedupId ~= '' and redis.call('GET', prefix .. 'de:' .. dedupId) == id then
    redis.call('DEL', prefix .. 'de:' .. dedupId, prefix .. 'dn:' .. dedupId)
  end
  removed[i] = id
  for _, s in ipairs(suffixes) do doomed[#doomed + 1] = jobKey .. s end
end
for i = 1, #doomed, 7000 do redis.call('DEL', unpack(doomed, i, math.min(i + 6999, #doomed))) end
redis.call('ZREM', failed, unpack(removed))
return left
""")


# KEYS: wait, paused, meta, events, marker. Pauses the way Node BullMQ 3.15 and 5.63 do
# (pause-*.lua): the wait list becomes the paused list, meta.paused is set and the marker dropped,
# so workers of both versions stop taking jobs. (The Python package only sets meta.paused, which a
# 3.x worker ignores.) Returns 0 when already paused.
PAUSE = Lua("""
if redis.call('HEXISTS', KEYS[3], 'paused') == 1 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
      redis.call('LPUSH', KEYS[1], id)
    end
  end
  redis.call('RENAME', KEYS[1], KEYS[2])
end
redis.call('HSET', KEYS[3], 'paused', 1)
redis.call('DEL', KEYS[5])
redis.call('XADD', KEYS[4], '*', 'event', 'paused')
return 1
""")


# KEYS: failed zset. ARGV: job key prefix, low score (exclusive; '-inf'), high score (inclusive;
# '+inf'), min attempts, bucket size, budget. The DLQ members of that score range, oldest first, as
# buckets of about `size` members that never split equal scores: flat [done, high, members, dlq,
# high, members, dlq, …], `done` 0 when `budget` members were read before the range's end (the
# caller goes on from the last high). A skiplist's attempts are read by SORT BY nosort (in C, only
# the LIMIT range); a small listpack, which SORT would convert, and servers refusing SORT, by HMGET.
TALLY = Lua("""
local key, prefix, low, high = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local min, size, budget = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local start = 0
if low ~= '-inf' then start = redis.call('ZCOUNT', key, '-inf', low) end
local stop = redis.call('ZCOUNT', key, '-inf', high)
local skiplist = redis.call('OBJECT', 'ENCODING', key) == 'skiplist'
local function score(rank) return redis.call('ZRANGE', key, rank, rank, 'WITHSCORES')[2] end
local function dlq(first, n)
  local rows, found = {err = 'listpack'}, 0
  if skiplist then
    rows = redis.pcall('SORT', key, 'BY', 'nosort', 'LIMIT', first, n,
      'GET', prefix .. '*->atm', 'GET', prefix .. '*->attemptsMade')
  end
  if rows.err then
    rows = {}
    for _, id in ipairs(redis.call('ZRANGE', key, first, first + n - 1)) do
      local f = redis.call('HMGET', prefix .. id, 'atm', 'attemptsMade')
      rows[#rows + 1], rows[#rows + 2] = f[1], f[2]
    end
  end
  for i = 1, #rows, 2 do
    if (tonumber(rows[i]) or tonumber(rows[i + 1]) or 0) >= min then found = found + 1 end
  end
  return found
end
local out, read = {1}, 0
while start < stop do
  if read >= budget then out[1] = 0 break end
  local n = math.min(size, stop - start)
  local last = score(start + n - 1)
  if start + n < stop and score(start + n) == last then
    local below = redis.call('ZCOUNT', key, '-inf', '(' .. last) - start
    if below > 0 then
      n, last = below, score(start + below - 1)
    else
      n = redis.call('ZCOUNT', key, '-inf', last) - start
    end
  end
  out[#out + 1], out[#out + 2], out[#out + 3] = last, n, dlq(start, n)
  start, read = start + n, read + n
end
return out
""")
