-- outbox_delivered.lua — GA4 took an event: ledger, acknowledge, count, in one atomic step.
--
-- KEYS[1]  site prefix, e.g. "cp:{acme}"   (uses P:outbox, P:sent, P:dead, P:day:<date>)
-- ARGV[1]  outbox stream entry id, e.g. "1732440902000-0"
-- ARGV[2]  event id: "call:<call id>" or "conv:<transaction id>"
-- ARGV[3]  delivered at, Unix milliseconds
-- ARGV[4]  the event's counter day in the site's timezone, "YYYY-MM-DD"
-- ARGV[5]  counter prefix: "" for call events, "conv_" for conversions
-- ARGV[6]  retention of the day hash, milliseconds (set only when it has none)
--
-- The entry leaves the consumer group's pending list and the stream.  The ledger entry
-- is written once (HSETNX): a second delivery of the same event (a worker that stalled
-- past the reclaim idle time) counts nothing.  If a racing worker had dead-lettered the
-- event meanwhile, GA4 has it after all: the dead letter and its counters are undone.
-- Returns 1 when the delivery is new in the ledger, 0 when it was already there.

local p = KEYS[1]
local entry, event, at, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
local outbox = p .. ':outbox'
redis.call('XACK', outbox, 'ga4', entry)
redis.call('XDEL', outbox, entry)
if redis.call('HSETNX', p .. ':sent', event, at) == 0 then return 0 end
local day = p .. ':day:' .. ARGV[4]
redis.call('HINCRBY', day, prefix .. 'delivered', '1')
local dead = redis.call('HGET', p .. ':dead', event)
if dead then
  redis.call('HDEL', p .. ':dead', event)
  local ok, letter = pcall(cjson.decode, dead)
  redis.call('HINCRBY', day, prefix .. 'dead', '-1')
  if ok and type(letter) == 'table' and type(letter['reason']) == 'string' then
    redis.call('HINCRBY', day, prefix .. 'dead:' .. letter['reason'], '-1')
  end
end
if redis.call('PTTL', day) == -1 then redis.call('PEXPIRE', day, ARGV[6]) end
return 1
