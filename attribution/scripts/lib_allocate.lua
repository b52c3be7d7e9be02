-- lib_allocate.lua — included by allocate.lua and start.lua (lua.py pastes it in).
--
-- allocate(p, sid, now, hold, mode, history, day, may_allocate, fresh): give a session
-- a tracking number from one pool.
--   p             pool prefix, e.g. "cp:{acme/kharkiv-paid}" (every key below derives
--                 from it, so a call touches one Cluster slot)
--   sid           the session
--   now           Unix milliseconds, as text (it becomes part of history members)
--   hold          milliseconds a lease lives after the last sign of life
--   mode          on_exhausted: "share-oldest" | "fallback"
--   history       milliseconds of lease history kept for matching, as text
--   day           UTC day "YYYY-MM-DD" for the pool's counters
--   may_allocate  false to only refresh (a ping): a session holding nothing stays so
--   fresh         true for a sid issued by this very request: it holds nothing yet
--
-- Returns {number or false, outcome} with outcome one of
--   "held"     the session's own live lease, refreshed
--   "new"      a free number (the one released longest ago)
--   "shared"   pool exhausted: the lease with the oldest activity is now shared (overflow)
--   "fallback" pool exhausted: show the site's own number (overflow)
--   "lost"     a refresh found no live lease (may_allocate false)
--
-- A lease's history member is "<from>:<sid>" ("s<from>:<sid>" when taken shared); the
-- session's entry in P:sess is "<number>|<from or s-from>".
--
-- P:leases scores every number by its last holder's expiry, so its first entry is the
-- number to give: free when that moment has passed (the one released longest ago),
-- else the lease with the oldest activity, to share.  A number's ended leases are
-- closed (their ends written to P:hu:<number>) when it is given again, or when their
-- holder comes back; until then the matcher reads their ends where they are.

-- Numbers reach Redis as text: a Lua number passed to redis.call is printed with
-- "%.17g", which costs more than the command.  Times arrive as text and are printed
-- back with "%d" when computed.
local function allocate(p, sid, nowtext, hold, mode, history, day, may_allocate, fresh)
  local now = tonumber(nowtext)
  local stats = p .. ':stats:' .. day
  local leases, sess = p .. ':leases', p .. ':sess'

  local function count(outcome)
    -- the day's counters live as long as the lease history; set once, when they begin
    if redis.call('HINCRBY', stats, outcome, '1') == 1 then
      redis.call('PEXPIRE', stats, history)
    end
  end

  local function finish(number, holder, from, untiltext, cur)
    -- close one holder's lease: remember when it ended, for late CDRs.  cur is the
    -- holder's entry in P:sess; the caller removes it from P:h:<number>
    redis.call('HSET', p .. ':hu:' .. number, from .. ':' .. holder, untiltext)
    if cur == number .. '|' .. from then
      redis.call('HDEL', sess, holder)
    end
  end

  local function prune(number)
    local hist, hu = p .. ':hist:' .. number, p .. ':hu:' .. number
    local before = '(' .. string.format('%d', now - tonumber(history))
    local old = redis.call('ZRANGEBYSCORE', hist, '-inf', before, 'LIMIT', '0', '100')
    if #old > 0 then
      redis.call('ZREM', hist, unpack(old))
      redis.call('HDEL', hu, unpack(old))
    end
  end

  local function release(number)
    -- a number whose last holder's lease ran out is free: each of its leases ends
    -- (remembered for late CDRs), and history past its keeping goes
    local h = p .. ':h:' .. number
    local holders = redis.call('ZRANGE', h, '0', '-1', 'WITHSCORES')
    for i = 1, #holders, 2 do
      local holder = holders[i]
      local cur = redis.call('HGET', sess, holder)
      local from = '0'
      if cur then
        local bar = string.find(cur, '|', 1, true)
        if string.sub(cur, 1, bar - 1) == number then from = string.sub(cur, bar + 1) end
      end
      finish(number, holder, from, holders[i + 1], cur)
    end
    if #holders > 0 then redis.call('DEL', h) end
    prune(number)
  end

  local function hold_on(number)
    -- the session holds number for another `hold` ms; the number's lease lives as long
    local expires = string.format('%d', now + hold)
    redis.call('ZADD', p .. ':h:' .. number, expires, sid)
    -- XX: a number taken out of pools.toml (sync_pool.lua) is not put back
    redis.call('ZADD', leases, 'XX', 'GT', expires, number)
  end

  local function take(number, outcome)
    hold_on(number)
    -- a shared take is marked "s<from>": the matcher stops at the newest unshared lease
    -- that began before a call, since the number was free just before it
    local from = (outcome == 'shared') and ('s' .. nowtext) or nowtext
    redis.call('ZADD', p .. ':hist:' .. number, nowtext, from .. ':' .. sid)
    redis.call('HSET', sess, sid, number .. '|' .. from)
    count(outcome)
    if outcome == 'new' then  -- a shared take leaves the number of live leases as it was
      local live = redis.call('ZCOUNT', leases, '(' .. nowtext, '+inf')
      local peak = tonumber(redis.call('HGET', stats, 'peak') or '0')
      if live > peak then redis.call('HSET', stats, 'peak', string.format('%d', live)) end
    end
    return {number, outcome}
  end

  -- 1. the session's own lease, if still live
  local mine = (not fresh) and redis.call('HGET', sess, sid)
  if mine then
    local bar = string.find(mine, '|', 1, true)
    local number, from = string.sub(mine, 1, bar - 1), string.sub(mine, bar + 1)
    local exptext = redis.call('ZSCORE', p .. ':h:' .. number, sid)
    if exptext and tonumber(exptext) > now then
      hold_on(number)
      return {number, 'held'}
    end
    finish(number, sid, from, exptext or nowtext, mine)
    redis.call('ZREM', p .. ':h:' .. number, sid)
  end

  if not may_allocate then return {false, 'lost'} end

  -- 2. the number that has rested longest: the first in P:leases, when its last
  --    holder's lease has run out (a number never held yet scores 0)
  local first = redis.call('ZRANGE', leases, '0', '0', 'WITHSCORES')
  if first[1] and tonumber(first[2]) <= now then
    if first[2] ~= '0' then release(first[1]) end
    return take(first[1], 'new')
  end

  -- 3. exhausted: every number is held
  if mode == 'fallback' then
    count('fallback')
    return {false, 'fallback'}
  end
  if not first[1] then return {false, 'fallback'} end
  return take(first[1], 'shared')
end
