-- allocate.lua — give a session a tracking number from one pool, in one round trip.
--
-- KEYS[1]  pool prefix, e.g. "cp:{acme/kharkiv-paid}" (every key the script touches
--          derives from it, so it runs in one Cluster slot)
-- ARGV[1]  sid
-- ARGV[2]  now, Unix milliseconds
-- ARGV[3]  hold, milliseconds a lease lives after the last sign of life
-- ARGV[4]  on_exhausted: "share-oldest" | "fallback"
-- ARGV[5]  history, milliseconds of lease history kept for matching
-- ARGV[6]  UTC day "YYYY-MM-DD" for the pool's counters
-- ARGV[7]  "1" to allocate when the session holds nothing, "0" to only refresh (a ping)
--
-- Returns {number or false, outcome}: see lib_allocate.lua.

--#include lib_allocate

return allocate(KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6],
  ARGV[7] ~= '0', false)
