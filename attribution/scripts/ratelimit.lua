-- ratelimit.lua — fixed-window counter for new sessions per client address.
--
-- KEYS[1]  the window's counter key, e.g. "cp:{rl:203.0.113.7}:29612345"
-- ARGV[1]  window length, milliseconds
-- Returns the count in this window including this request.

local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
