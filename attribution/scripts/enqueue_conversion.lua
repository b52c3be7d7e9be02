-- enqueue_conversion.lua — owe GA4 a conversion of a call, once per transaction id.
--
-- KEYS[1]  site prefix, e.g. "cp:{acme}"   (uses P:call:<id>, P:tx, P:revenue, P:outbox, P:day:<date>)
-- ARGV[1]  call id
-- ARGV[2]  transaction id (1–100 characters)
-- ARGV[3]  value, a decimal string, e.g. "1250.5"
-- ARGV[4]  currency, ISO 4217, e.g. "UAH"
-- ARGV[5]  the counter day, "YYYY-MM-DD" (site timezone when known, else UTC)
-- ARGV[6]  now, Unix milliseconds (the conversion's time in GA4)
-- ARGV[7]  "1" when the site sends to GA4
-- ARGV[8]  retention of P:day:<date>, milliseconds (set only when it has none)
--
-- A transaction id already seen is refused whatever call it names.  A conversion GA4
-- cannot take (no ga4 settings, no GA client id on the call) is recorded and counted
-- as conv_not_sent:<reason>; otherwise it is XADDed as
-- kind=conversion id=<call id> tx value currency day at and counted conv_owed.
-- Returns 1 when new, 0 when the transaction id was already known, -1 when there is no
-- such call.

local p = KEYS[1]
local id, tx = ARGV[1], ARGV[2]
local record = redis.call('GET', p .. ':call:' .. id)
if not record then return -1 end
if redis.call('HSETNX', p .. ':tx', tx, id) == 0 then return 0 end
redis.call('HINCRBYFLOAT', p .. ':revenue', id, ARGV[3])   -- money per call, for reports
local reason = ''
if ARGV[7] ~= '1' then
  reason = 'no_ga4'
else
  local ok, call = pcall(cjson.decode, record)
  local cid = ok and type(call) == 'table' and call['gc']  -- calls.STORED_NAMES
  if type(cid) ~= 'string' or cid == '' then reason = 'no_client_id' end
end
local day = p .. ':day:' .. ARGV[5]
if reason == '' then
  redis.call('HINCRBY', day, 'conv_owed', '1')
  redis.call('XADD', p .. ':outbox', '*', 'kind', 'conversion', 'id', id, 'tx', tx,
    'value', ARGV[3], 'currency', ARGV[4], 'day', ARGV[5], 'at', ARGV[6])
else
  redis.call('HINCRBY', day, 'conv_not_sent:' .. reason, '1')
end
if redis.call('PTTL', day) == -1 then redis.call('PEXPIRE', day, ARGV[8]) end
return 1
