-- store_call.lua — store a call record and owe GA4 its event, in one atomic step
-- (the Cluster path; on one Redis, ingest.lua also matches the call first).
--
-- KEYS[1]  site prefix, e.g. "cp:{acme}"
-- ARGV[1]  call id
-- ARGV[2]  the record as JSON without its closing brace (stored names: calls.STORED_NAMES)
-- ARGV[3]  call start, Unix milliseconds
-- ARGV[4]  the other party: caller of an inbound call, callee of an outbound one ("" if withheld)
-- ARGV[5]  status: answered | missed | busy | failed
-- ARGV[6]  direction: inbound | outbound
-- ARGV[7]  "1" when a GA4 event is owed (attributed, with a GA client id)
-- ARGV[8]  retention, milliseconds
-- ARGV[9]  sid the call was attributed to ("" when none)
-- ARGV[10] the call's day in the site's timezone, "YYYY-MM-DD" (reconciliation counters)
-- ARGV[11] match: exact | ambiguous | static | unattributed
-- ARGV[12] why no GA4 event is owed ("" when one is): no_client_id | unattributed | outbound | ...
--
-- Idempotent by call id: a second store returns the first record (see lib_store).
-- Returns {"", 1, 1 if a first-time caller else 0} when stored now (the caller built the
-- record), or {stored record JSON, 0} when the call was already there.

--#include lib_store

local p, id, body = KEYS[1], ARGV[1], ARGV[2]
local started, party, status, direction = tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local old = existing(p, id, body, started, party, status, direction)
if old then return {old, 0} end
local retention = tonumber(ARGV[8])
local first = store(p, id, body, started, party, status, direction, ARGV[7] == '1',
  retention, ARGV[9], ARGV[10], ARGV[11], ARGV[12])
tally(p, retention)
return {'', 1, first and 1 or 0}
