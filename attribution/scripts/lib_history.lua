-- lib_history.lua — included by match.lua and ingest.lua (lua.py pastes it in).
--
-- covering(p, number, t, grace, limit, skew): which sessions held a tracking number at
-- a given moment.
--   p       pool prefix, e.g. "cp:{acme/kharkiv-paid}"
--   number  E.164
--   t       moment of the call, Unix milliseconds
--   grace   milliseconds: a lease that ended at most this long before the call still
--           matches when nobody took the number after it
--   limit   how many history entries to read at most (newest first)
--   skew    milliseconds: a lease that began this long after the call's start still
--           covers it (PBX times are whole seconds, clocks drift)
--
-- History members are "<from>:<sid>", or "s<from>:<sid>" for a lease taken shared.
--
-- Returns a flat list {sid, from_ms, until_ms, ...} of the leases covering the moment,
-- newest first; or, when none covers it, the one lease inside the grace window
-- followed by the marker "grace"; or an empty list.
-- The history is read a few entries at a time: the scan nearly always ends at the
-- first or second entry, and every entry read becomes a Lua string.
local PAGE = 4

local function covering(p, number, t, grace, limit, skew)
  local hist = p .. ':hist:' .. number
  local out = {}
  local first_ended = nil
  local seen, done = 0, false
  while not done and seen < limit do
    local entries = redis.call('ZREVRANGEBYSCORE', hist, string.format('%d', t + skew), '-inf',
      'LIMIT', string.format('%d', seen), string.format('%d', math.min(PAGE, limit - seen)))
    for _, member in ipairs(entries) do
      seen = seen + 1
      local colon = string.find(member, ':', 1, true)
      local from, sid = string.sub(member, 1, colon - 1), string.sub(member, colon + 1)
      local shared = string.sub(from, 1, 1) == 's'
      local from_ms = tonumber(shared and string.sub(from, 2) or from)
      local untilms = redis.call('HGET', p .. ':hu:' .. number, member)
      if not untilms then
        -- still live: this holder's current expiry, if the lease is the same one
        local cur = redis.call('HGET', p .. ':sess', sid)
        if cur == number .. '|' .. from then
          untilms = redis.call('ZSCORE', p .. ':h:' .. number, sid)
        end
      end
      untilms = tonumber(untilms or from_ms)
      if untilms >= t then
        table.insert(out, sid); table.insert(out, from_ms); table.insert(out, untilms)
      elseif seen == 1 then
        first_ended = {sid, from_ms, untilms}
      end
      -- an unshared lease that began before the call was taken from a free number:
      -- nobody older can still have held it, so the scan stops here (flat cost in
      -- history depth)
      if not shared and from_ms <= t then done = true; break end
    end
    if #entries < PAGE then done = true end
  end
  if #out == 0 and first_ended and first_ended[3] + grace >= t then
    return {first_ended[1], first_ended[2], first_ended[3], 'grace'}
  end
  return out
end
