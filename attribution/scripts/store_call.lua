-- store_call.lua — store a call record and owe GA4 its event, in one atomic step.
--
-- KEYS[1]  site prefix, e.g. "cp:{acme}"
-- ARGV[1]  call id
-- ARGV[2]  the record as JSON, containing the literal placeholder "first_time_caller":"?"
-- ARGV[3]  call start, Unix milliseconds
-- ARGV[4]  the other party: caller of an inbound call, callee of an outbound one ("" if withheld)
-- ARGV[5]  status: answered | missed | busy | failed
-- ARGV[6]  direction: inbound | outbound
-- ARGV[7]  "1" when a GA4 event is owed (attributed, with a GA client id)
-- ARGV[8]  retention, milliseconds
-- ARGV[9]  sid the call was attributed to ("" when none)
-- ARGV[10] the call's day in the site's timezone, "YYYY-MM-DD" (reconciliation counters)
-- ARGV[11] match: exact | ambiguous | static | unattributed
-- ARGV[12] why no GA4 event is owed ("" when one is): no_client_id | unattributed | outbound | ...
--
-- Idempotent by call id: a second store returns the first record untouched, except that
-- an answered row upgrades a stored unanswered one (Asterisk writes one row per ringing
-- phone under one uniqueid: the answered leg must win, whatever order they arrive in).
-- Returns {record JSON, 1 if stored now / 0 if it was already there}.

local p = KEYS[1]
local id, started, party = ARGV[1], tonumber(ARGV[3]), ARGV[4]
local status, direction, retention, sid = ARGV[5], ARGV[6], tonumber(ARGV[8]), ARGV[9]
local key = p .. ':call:' .. id
local existing = redis.call('GET', key)
if existing then
  if status ~= 'answered' or string.find(existing, '"status":"answered"', 1, true) then
    return {existing, 0}
  end
  local old, new = cjson.decode(existing), cjson.decode(ARGV[2])
  for _, f in ipairs({'status', 'answered_ms', 'ended_ms', 'duration', 'billsec',
                      'recording_url'}) do
    old[f] = new[f]
  end
  existing = cjson.encode(old)
  redis.call('SET', key, existing, 'KEEPTTL')
  if party ~= '' and direction == 'inbound' then
    local contact = p .. ':contact'
    local last = tonumber(redis.call('HGET', contact, party) or '0')
    if started > last then redis.call('HSET', contact, party, started) end
    local missed_at = tonumber(redis.call('ZSCORE', p .. ':unanswered', party) or '-1')
    if missed_at >= 0 and missed_at <= started then
      redis.call('ZREM', p .. ':unanswered', party)
    end
  end
  return {existing, 0}
end

local first = false
if party ~= '' then
  local contact = p .. ':contact'
  local unanswered = p .. ':unanswered'
  if direction == 'inbound' then
    first = redis.call('HSETNX', p .. ':callers', party, id) == 1
    if sid ~= '' then redis.call('HSET', p .. ':lastsid', party, sid) end
  end
  local reached = (direction == 'outbound') or status == 'answered'
  if reached then
    local last = tonumber(redis.call('HGET', contact, party) or '0')
    if started > last then redis.call('HSET', contact, party, started) end
    local missed_at = tonumber(redis.call('ZSCORE', unanswered, party) or '-1')
    if missed_at >= 0 and missed_at <= started then redis.call('ZREM', unanswered, party) end
  elseif direction == 'inbound' then
    local last = tonumber(redis.call('HGET', contact, party) or '0')
    if started > last then redis.call('ZADD', unanswered, 'GT', started, party) end
  end
end

local record = string.gsub(ARGV[2], '"first_time_caller":"%?"',
  '"first_time_caller":' .. tostring(first), 1)
redis.call('SET', key, record, 'PX', retention)
redis.call('ZADD', p .. ':calls', started, id)
-- the log's index forgets calls past retention (their records expire on their own)
redis.call('ZREMRANGEBYSCORE', p .. ':calls', '-inf', '(' .. (started - retention))
local day = p .. ':day:' .. ARGV[10]
redis.call('HINCRBY', day, 'calls', 1)
if ARGV[11] ~= 'unattributed' then redis.call('HINCRBY', day, 'attributed', 1) end
if ARGV[7] == '1' then
  redis.call('HINCRBY', day, 'owed', 1)
  redis.call('XADD', p .. ':outbox', '*', 'kind', 'call', 'id', id, 'day', ARGV[10])
else
  redis.call('HINCRBY', day, 'not_sent:' .. ARGV[12], 1)
end
redis.call('PEXPIRE', day, retention)
return {record, 1}
