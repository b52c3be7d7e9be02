-- outbox_dead.lua — GA4 will never take an event: dead-letter, acknowledge, count, atomically.
--
-- KEYS[1]  site prefix, e.g. "cp:{acme}"   (uses P:outbox, P:sent, P:dead, P:day:<date>)
-- ARGV[1]  outbox stream entry id
-- ARGV[2]  event id: "call:<call id>" or "conv:<transaction id>"
-- ARGV[3]  the dead letter, JSON {reason, detail, at (ISO-8601 UTC), attempts, kind, id}
-- ARGV[4]  the event's counter day in the site's timezone, "YYYY-MM-DD"
-- ARGV[5]  counter prefix: "" for call events, "conv_" for conversions
-- ARGV[6]  reason code, e.g. "http_400", "outside_window", "record_missing"
-- ARGV[7]  retention of the day hash, milliseconds (set only when it has none)
--
-- Nothing is dead-lettered when the ledger already holds the event (delivered wins) or
-- when another worker has already settled this entry (its XACK came first).
-- Returns 1 when dead-lettered now, 0 otherwise.

local p = KEYS[1]
local entry, event, prefix = ARGV[1], ARGV[2], ARGV[5]
local outbox = p .. ':outbox'
local acked = redis.call('XACK', outbox, 'ga4', entry)
redis.call('XDEL', outbox, entry)
if redis.call('HEXISTS', p .. ':sent', event) == 1 then return 0 end
if acked == 0 then return 0 end
if redis.call('HSETNX', p .. ':dead', event, ARGV[3]) == 0 then return 0 end
local day = p .. ':day:' .. ARGV[4]
redis.call('HINCRBY', day, prefix .. 'dead', '1')
redis.call('HINCRBY', day, prefix .. 'dead:' .. ARGV[6], '1')
if redis.call('PTTL', day) == -1 then redis.call('PEXPIRE', day, ARGV[7]) end
return 1
