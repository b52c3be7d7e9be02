-- sync_pool.lua — make a pool's free list agree with pools.toml.
--
-- KEYS[1]  pool prefix, e.g. "cp:{acme/kharkiv-paid}"
-- ARGV     the configured tracking numbers (E.164)
--
-- New numbers join the free list as if released at time 0 (first to be used);
-- numbers no longer configured leave the free list (a live lease runs out, then the
-- number is not freed again). Returns {added, removed}.

local p = KEYS[1]
local free, leases, configured = p .. ':free', p .. ':leases', p .. ':numbers'
local want = {}
for _, n in ipairs(ARGV) do want[n] = true end
local removed = 0
for _, n in ipairs(redis.call('SMEMBERS', configured)) do
  if not want[n] then
    redis.call('SREM', configured, n)
    removed = removed + redis.call('ZREM', free, n)
  end
end
local added = 0
for _, n in ipairs(ARGV) do
  redis.call('SADD', configured, n)
  if not redis.call('ZSCORE', free, n) and not redis.call('ZSCORE', leases, n) then
    redis.call('ZADD', free, '0', n)
    added = added + 1
  end
end
return {added, removed}
