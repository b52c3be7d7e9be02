-- outbox_requeue.lua — move retries whose backoff has passed back onto the outbox stream.
--
-- KEYS[1]  site prefix, e.g. "cp:{acme}"   (uses P:retry, P:outbox)
-- ARGV[1]  now, Unix milliseconds
-- ARGV[2]  at most this many retries moved per call
--
-- Each due member of P:retry (a flat JSON object of strings) becomes a new stream entry
-- with those fields and leaves the set, in the same atomic step: never lost, never twice.
-- Returns {number moved, due ms of the earliest retry still waiting as a string, or ""}.

local p = KEYS[1]
local retry, outbox = p .. ':retry', p .. ':outbox'
local due = redis.call('ZRANGEBYSCORE', retry, '-inf', ARGV[1], 'LIMIT', '0', ARGV[2])
for _, job in ipairs(due) do
  local ok, fields = pcall(cjson.decode, job)
  if ok and type(fields) == 'table' then
    local args = {}
    for k, v in pairs(fields) do
      args[#args + 1] = tostring(k)
      args[#args + 1] = tostring(v)
    end
    if #args > 0 then redis.call('XADD', outbox, '*', unpack(args)) end
  end
  redis.call('ZREM', retry, job)
end
local nxt = redis.call('ZRANGE', retry, '0', '0', 'WITHSCORES')
return {#due, nxt[2] or ''}
