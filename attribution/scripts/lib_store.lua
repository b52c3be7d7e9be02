-- lib_store.lua — included by store_call.lua and ingest.lua (lua.py pastes it in).
--
-- existing(p, id, body, started, party, status, direction): the stored record of a call
-- already in the log (nil when it is new), after letting an answered row upgrade a
-- stored unanswered one (Asterisk writes one row per ringing phone under one uniqueid:
-- the answered leg must win, whatever order they arrive in).
--
-- store(p, id, body, started, party, status, direction, owed, retention, sid, day, match,
-- why): store a new call and owe GA4 its event, returning true for a first-time caller.
-- Its day counters and the pruning of the log's index wait for tally(p, retention),
-- called once at the end of the script (once per batch, not once per call).
--   p          site prefix, e.g. "cp:{acme}"
--   body       the record as JSON without its closing brace, under the stored names of
--              calls.STORED_NAMES; store() appends "ftc":true for a first-time caller
--   started    call start, Unix milliseconds
--   party      caller of an inbound call, callee of an outbound one ("" if withheld)
--   status     answered | missed | busy | failed;  direction: inbound | outbound
--   owed       true when a GA4 event is owed (attributed, with a GA client id)
--   retention  milliseconds;  sid: the attributed session ("" when none)
--   day        the call's day in the site's timezone, "YYYY-MM-DD"
--   match      exact | ambiguous | static | unattributed
--   why        why no GA4 event is owed ("" when one is): no_client_id | unattributed | ...

local function reached(p, party, started)
  -- an answered call (or a call back) closes the caller's missed calls up to it
  local contact = p .. ':contact'
  local last = tonumber(redis.call('HGET', contact, party) or '0')
  if started > last then redis.call('HSET', contact, party, string.format('%d', started)) end
  local missed_at = tonumber(redis.call('ZSCORE', p .. ':unanswered', party) or '-1')
  if missed_at >= 0 and missed_at <= started then
    redis.call('ZREM', p .. ':unanswered', party)
  end
end

local function existing(p, id, body, started, party, status, direction)
  local key = p .. ':call:' .. id
  local old = redis.call('GET', key)
  if not old then return nil end
  if status ~= 'answered' or string.find(old, '"st":"answered"', 1, true) then
    return old
  end
  local rec, new = cjson.decode(old), cjson.decode(body .. '}')
  for _, f in ipairs({'st', 'ta', 'te', 'dur', 'bs', 'rec'}) do  -- see calls.STORED_NAMES
    rec[f] = new[f]
  end
  old = cjson.encode(rec)
  redis.call('SET', key, old, 'KEEPTTL')
  if party ~= '' and direction == 'inbound' then reached(p, party, started) end
  return old
end

local counts, newest = {}, nil

local function count(day, field)
  local c = counts[day]
  if not c then c = {}; counts[day] = c end
  c[field] = (c[field] or 0) + 1
end

local function store(p, id, body, started, party, status, direction, owed, retention, sid,
                     day, match, why)
  local first = false
  if party ~= '' then
    if direction == 'inbound' then
      -- the caller's latest attributed session ("" until one); a new field is a new caller
      if sid ~= '' then
        first = redis.call('HSET', p .. ':lastsid', party, sid) == 1
      else
        first = redis.call('HSETNX', p .. ':lastsid', party, '') == 1
      end
    end
    if direction == 'outbound' or status == 'answered' then
      reached(p, party, started)
    elseif direction == 'inbound' then
      local last = tonumber(redis.call('HGET', p .. ':contact', party) or '0')
      if started > last then
        redis.call('ZADD', p .. ':unanswered', 'GT', string.format('%d', started), party)
      end
    end
  end
  redis.call('SET', p .. ':call:' .. id, body .. (first and ',"ftc":true}' or '}'), 'PX',
    string.format('%d', retention))
  redis.call('ZADD', p .. ':calls', string.format('%d', started), id)
  if not newest or started > newest then newest = started end
  count(day, 'calls')
  if match ~= 'unattributed' then count(day, 'attributed') end
  if owed then
    count(day, 'owed')
    redis.call('XADD', p .. ':outbox', '*', 'kind', 'call', 'id', id, 'day', day)
  else
    count(day, 'not_sent:' .. why)
  end
  return first
end

local function tally(p, retention)
  for day, fields in pairs(counts) do
    local key = p .. ':day:' .. day
    for field, n in pairs(fields) do redis.call('HINCRBY', key, field, string.format('%d', n)) end
    redis.call('PEXPIRE', key, string.format('%d', retention))
  end
  if newest then
    -- the log's index forgets calls past retention (their records expire on their own)
    redis.call('ZREMRANGEBYSCORE', p .. ':calls', '-inf',
      '(' .. string.format('%d', newest - retention))
  end
end
