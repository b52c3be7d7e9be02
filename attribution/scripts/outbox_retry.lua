-- outbox_retry.lua — GA4 was unavailable: park the event until its backoff has passed.
--
-- KEYS[1]  site prefix, e.g. "cp:{acme}"   (uses P:outbox, P:sent, P:retry, P:day:<date>)
-- ARGV[1]  outbox stream entry id
-- ARGV[2]  event id: "call:<call id>" or "conv:<transaction id>"
-- ARGV[3]  the entry's fields for its next attempt, a flat JSON object of strings
--          (the original fields plus attempt, first_ms and last_error)
-- ARGV[4]  due time of the next attempt, Unix milliseconds
-- ARGV[5]  the event's counter day in the site's timezone, "YYYY-MM-DD"
-- ARGV[6]  counter prefix: "" for call events, "conv_" for conversions
-- ARGV[7]  retention of the day hash, milliseconds (set only when it has none)
--
-- The entry leaves the stream and waits in P:retry (score = due ms); outbox_requeue.lua
-- puts it back when due.  Both live in Redis, so a backoff survives worker crashes and
-- (with AOF) Redis restarts.  Nothing is parked when the ledger already holds the event
-- or another worker has settled the entry first.
-- Returns 1 when parked, 0 otherwise.

local p = KEYS[1]
local entry, event, prefix = ARGV[1], ARGV[2], ARGV[6]
local outbox = p .. ':outbox'
local acked = redis.call('XACK', outbox, 'ga4', entry)
redis.call('XDEL', outbox, entry)
if redis.call('HEXISTS', p .. ':sent', event) == 1 then return 0 end
if acked == 0 then return 0 end
redis.call('ZADD', p .. ':retry', tonumber(ARGV[4]), ARGV[3])
local day = p .. ':day:' .. ARGV[5]
redis.call('HINCRBY', day, prefix .. 'retried', '1')
if redis.call('PTTL', day) == -1 then redis.call('PEXPIRE', day, ARGV[7]) end
return 1
