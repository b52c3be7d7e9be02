-- sync_pool.lua — make a pool's numbers agree with pools.toml.
--
-- KEYS[1]  pool prefix, e.g. "cp:{acme/kharkiv-paid}"
-- ARGV     the configured tracking numbers (E.164)
--
-- P:leases holds every number a visitor may be given, scored by when its lease runs
-- out (or ran out): a new number joins with score 0 (first to be used), or with its
-- holders' last expiry when it comes back to the file while some are still live.  A
-- number no longer configured leaves it at once: its live holders keep it until their
-- leases run out (allocate never puts it back), and it is never given again.
-- A free list of an earlier version (P:free) is folded in.  Returns {added, removed}.

local p = KEYS[1]
local leases, configured, old = p .. ':leases', p .. ':numbers', p .. ':free'
local earlier = redis.call('ZRANGE', old, '0', '-1', 'WITHSCORES')
for i = 1, #earlier, 2 do
  redis.call('ZADD', leases, 'NX', earlier[i + 1], earlier[i])
end
redis.call('DEL', old)

local want = {}
for _, n in ipairs(ARGV) do want[n] = true end
local removed = 0
for _, n in ipairs(redis.call('SMEMBERS', configured)) do
  if not want[n] then
    redis.call('SREM', configured, n)
    removed = removed + redis.call('ZREM', leases, n)
  end
end
local added = 0
for _, n in ipairs(ARGV) do
  redis.call('SADD', configured, n)
  if not redis.call('ZSCORE', leases, n) then
    local last = redis.call('ZRANGE', p .. ':h:' .. n, '-1', '-1', 'WITHSCORES')[2]
    redis.call('ZADD', leases, last or '0', n)
    added = added + 1
  end
end
return {added, removed}
