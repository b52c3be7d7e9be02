-- start.lua — a page view on a single Redis, in one round trip: the rate limit for a new
-- visitor, a number from each chosen pool, and the session's record.
--
-- KEYS[1]  the session's record, "cp:{s:<sid>}"
-- ARGV[1]  the settings, a list the same for every page view that takes numbers from
--          the same pools: new sessions allowed per window from one address, the window
--          (ms), hold (ms a lease lives after the last sign of life), history (ms of lease
--          history kept for matching), the record's lifetime (ms), then each pool's
--          prefix and on_exhausted
-- ARGV[2]  the page view, a list: the client address's counter for this window ("" when
--          none applies), sid, now (Unix ms), the UTC day "YYYY-MM-DD" for the pools'
--          counters, "1" when the record exists and this is one more page or "0" for a
--          sid issued for this page view (its record begins here, and no pool has a
--          lease of it), the record's pages as the caller read or remembered them ("" for
--          none: nothing is checked, and the pages are counted up), then the record's
--          fields and values that change (its times and pages are set here)
--
-- A list is one argument (lua.py's lua_list: its length, then its values, each ended by
-- a zero byte): two arguments instead of about thirty, since packing a command costs
-- the server about a microsecond per argument, and struct.unpack reads them in C.
--
-- The rate-limit and pool keys are named in ARGV, so this runs on a single Redis only;
-- on a Cluster the same work is ratelimit.lua, allocate.lua per pool and three commands.
--
-- Returns {count} when the address is over its limit, {-1} when the record's pages are
-- not the caller's (another page view or a ping came between: the caller reads the
-- record again), nothing written either way; else {count, pages, number or false,
-- outcome, ...} with the record's pages now and a pair per pool (see
-- lib_allocate.lua); count is 0 when no limit applies.

--#include lib_allocate

local function list(arg)
  -- lua.py's lua_list: the count, then the values, each ended by a zero byte
  local n, at = struct.unpack('s', arg)
  local out = {struct.unpack(string.rep('s', tonumber(n)), arg, at)}
  out[#out] = nil  -- unpack's last result is where it stopped
  return out
end

local settings = list(ARGV[1])
local limit, window, hold, history, ttl = unpack(settings, 1, 5)
local view = list(ARGV[2])
local rate, sid, now, day, known, seen = unpack(view, 1, 6)

if seen ~= '' and redis.call('HGET', KEYS[1], 'pages') ~= seen then return {-1} end

local count = 0
if rate ~= '' then
  count = redis.call('INCR', rate)
  if count == 1 then redis.call('PEXPIRE', rate, window) end
  if count > tonumber(limit) then return {count} end
end

hold = tonumber(hold)
local fresh = known == '0'  -- a sid issued for this page view holds no lease yet
local out = {count, 1}
for i = 6, #settings, 2 do
  local got = allocate(settings[i], sid, now, hold, settings[i + 1], history, day, true, fresh)
  out[#out + 1] = got[1]
  out[#out + 1] = got[2]
end

if fresh then
  redis.call('HSET', KEYS[1], 'first_seen', now, 'last_seen', now, 'pages', '1',
    unpack(view, 7))
else  -- one more page: the count checked above, else the record's own, counted up
  out[2] = seen ~= '' and tonumber(seen) + 1 or redis.call('HINCRBY', KEYS[1], 'pages', '1')
  redis.call('HSET', KEYS[1], 'last_seen', now, 'pages', out[2], unpack(view, 7))
end
redis.call('PEXPIRE', KEYS[1], ttl)
return out
