-- match.lua — which sessions held a tracking number at a given moment (see lib_history).
--
-- KEYS[1]  pool prefix, e.g. "cp:{acme/kharkiv-paid}"
-- ARGV[1]  number (E.164)
-- ARGV[2]  moment of the call, Unix milliseconds
-- ARGV[3]  grace, milliseconds
-- ARGV[4]  how many history entries to read at most (newest first)
-- ARGV[5]  clock skew, milliseconds
--
-- Returns covering()'s flat list {sid, from_ms, until_ms, ...} [, "grace"].

--#include lib_history

return covering(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5]))
