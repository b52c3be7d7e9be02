-- start.lua — a page view on a single Redis, in one round trip: the rate limit for a new
-- visitor, a number from each chosen pool, and the session's record.
--
-- KEYS[1]  the session's record, "cp:{s:<sid>}"
-- ARGV[1]  the client address's counter for this window, or "" when none applies
-- ARGV[2]  new sessions allowed per window from one address
-- ARGV[3]  the window, milliseconds
-- ARGV[4]  sid
-- ARGV[5]  now, Unix milliseconds
-- ARGV[6]  hold, milliseconds a lease lives after the last sign of life
-- ARGV[7]  history, milliseconds of lease history kept for matching
-- ARGV[8]  UTC day "YYYY-MM-DD" for the pools' counters
-- ARGV[9]  the record's lifetime, milliseconds
-- ARGV[10] "1" when the record exists and this is one more page; "0" for a sid issued
--          for this page view (the fields hold pages = 1, and no pool has a lease of it)
-- ARGV[11] n, how many pools
-- ARGV[12 .. 11+2n]  each pool's prefix and on_exhausted
-- ARGV[12+2n ..]     field, value pairs for the record
--
-- The rate-limit and pool keys are named in ARGV, so this runs on a single Redis only;
-- on a Cluster the same work is ratelimit.lua, allocate.lua per pool and three commands.
--
-- Returns {count} when the address is over its limit (nothing else is written), else
-- {count, number or false, outcome, ...} with a pair per pool (see lib_allocate.lua);
-- count is 0 when no limit applies.

--#include lib_allocate

local count = 0
if ARGV[1] ~= '' then
  count = redis.call('INCR', ARGV[1])
  if count == 1 then redis.call('PEXPIRE', ARGV[1], ARGV[3]) end
  if count > tonumber(ARGV[2]) then return {count} end
end

local sid, now, day = ARGV[4], ARGV[5], ARGV[8]
local hold, history = tonumber(ARGV[6]), ARGV[7]
local fresh = ARGV[10] == '0'  -- a sid issued for this page view holds no lease yet
local n = tonumber(ARGV[11])
local out = {count}
for i = 0, n - 1 do
  local got = allocate(ARGV[12 + 2 * i], sid, now, hold, ARGV[13 + 2 * i], history, day, true,
    fresh)
  out[#out + 1] = got[1]
  out[#out + 1] = got[2]
end

redis.call('HSET', KEYS[1], unpack(ARGV, 12 + 2 * n))
if not fresh then redis.call('HINCRBY', KEYS[1], 'pages', '1') end
redis.call('PEXPIRE', KEYS[1], ARGV[9])
return out
