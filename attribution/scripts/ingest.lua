-- ingest.lua — one call, end to end, on a single Redis: match it to the session that
-- held its number, copy that session's attribution into the record, store it once and
-- owe GA4 its event, in one atomic step.  (Sessions live under their own hash tag, so
-- a Cluster runs match.lua, reads the session and runs store_call.lua instead; both
-- ways build the same record, which a test checks.)
--
-- KEYS[1]  site prefix, e.g. "cp:{acme}"
-- ARGV[1]  retention, milliseconds
-- ARGV[2]  "1" when the site sends calls to GA4
-- ARGV[3]  key namespace: a session's key is "<ns>:{s:<sid>}"
-- ARGV[4]  grace, ARGV[5] history entries read at most, ARGV[6] clock skew: see
--          lib_history (milliseconds, entries, milliseconds)
-- ARGV[7]  how many characters of a page URL the record keeps
-- ARGV[8]  "1" to answer each call's attribution, "0" to answer only what is asked below
-- then ten per call, in the order they are to be stored:
--   call id;
--   what the PBX and the config say of the call, as JSON without its closing brace,
--   under the stored names of calls.STORED_NAMES (the match, the session's fields and
--   the first-time flag are appended here);
--   call start, Unix milliseconds;
--   the other party: caller of an inbound call, callee of an outbound one ("" if withheld);
--   status: answered | missed | busy | failed;  direction: inbound | outbound;
--   the call's day in the site's timezone, "YYYY-MM-DD";
--   what the number is: "pool" (match by lease history), "static", "none";
--   the pool prefix, e.g. "cp:{acme/kharkiv-paid}" ("" unless "pool");
--   the number called (E.164).
--
-- Returns, per call, {1, first-time caller 1|0, match, candidates, sid, source, medium,
-- campaign, keyword, region} when stored now, or {0, stored record JSON} when it was
-- already there; with ARGV[8] "0", only {1, first-time caller 1|0, match} or {0}.

--#include lib_history
--#include lib_store

-- what a call takes from its session, and the names the record stores the first eight
-- under (calls.STORED_NAMES), as they are
local SESSION = {'source', 'medium', 'campaign', 'keyword', 'region', 'device',
  'ga_client_id', 'ga_session_id', 'landing_page', 'last_page', 'first_seen'}
local STORED = {'src', 'med', 'cmp', 'kw', 'reg', 'dev', 'gc', 'gs'}

local p = KEYS[1]
local retention, ga4, ns = tonumber(ARGV[1]), ARGV[2] == '1', ARGV[3]
local grace, limit, skew, keep = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
  tonumber(ARGV[7])
local answers = ARGV[8] == '1'

local function session_key(sid) return ns .. ':{s:' .. sid .. '}' end

-- a JSON string (cjson would also escape every "/" of a URL)
local ESCAPES = {['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r',
  ['\t'] = '\\t'}
local function escape(c) return ESCAPES[c] or string.format('\\u%04x', string.byte(c)) end
local function jstr(s) return '"' .. string.gsub(s, '[%c"\\]', escape) .. '"' end

-- the first n characters (not bytes) of a UTF-8 string
local function chars(s, n)
  if #s <= n then return s end
  local count = 0
  for i = 1, #s do
    local b = string.byte(s, i)
    if b < 128 or b >= 192 then
      count = count + 1
      if count > n then return string.sub(s, 1, i - 1) end
    end
  end
  return s
end

-- several live leases on a shared number: the one this caller called from before,
-- else the one with the latest activity up to the call
local function prefer(found, n, party, started)
  if party ~= '' then
    local last = redis.call('HGET', p .. ':lastsid', party)
    if last then
      for i = 1, n do
        if found[3 * i - 2] == last then return last end
      end
    end
  end
  local best, best_seen = found[1], -1
  for i = 1, n do
    local sid = found[3 * i - 2]
    local seen = tonumber(redis.call('HGET', session_key(sid), 'last_seen') or '0') or 0
    if seen <= started and seen > best_seen then best, best_seen = sid, seen end
  end
  return best
end

local function ingest(id, body, started, party, status, direction, day, kind, pool, number)
  local old = existing(p, id, body, started, party, status, direction)
  if old then return answers and {0, old} or {0} end
  local match, sid, candidates = 'unattributed', '', 0
  if kind == 'static' then
    match = 'static'
  elseif kind == 'pool' then
    local found = covering(pool, number, started, grace, limit, skew)
    local n = math.floor(#found / 3)
    if n == 1 then
      match, sid, candidates = 'exact', found[1], 1
    elseif n > 1 then
      match, sid, candidates = 'ambiguous', prefer(found, n, party, started), n
    end
  end

  local parts = {body, ',"m":"', match, '"'}
  if candidates > 0 then parts[#parts + 1] = ',"nc":' .. string.format('%d', candidates) end
  local got = {}
  if sid ~= '' then
    parts[#parts + 1] = ',"sid":' .. jstr(sid)
    local values = redis.call('HMGET', session_key(sid), unpack(SESSION))
    local any = false
    for i = 1, #SESSION do
      local v = values[i]
      if v and v ~= '' then
        any = true
        got[SESSION[i]] = v
        if STORED[i] then parts[#parts + 1] = ',"' .. STORED[i] .. '":' .. jstr(v) end
      end
    end
    if any then
      local landing = got['landing_page'] or ''
      if landing ~= '' then
        parts[#parts + 1] = ',"lp":' .. jstr(chars(landing, keep))
      end
      local last = got['last_page'] or landing
      if last ~= '' then
        parts[#parts + 1] = ',"pg":' .. jstr(chars(last, keep))
      end
      local first = tonumber(got['first_seen'] or '') or started
      parts[#parts + 1] = ',"tos":' .. string.format('%d', math.max(0, (started - first) / 1000))
    end
  end

  local why = ''
  if direction ~= 'inbound' then why = 'outbound'
  elseif match == 'unattributed' then why = 'unattributed'
  elseif not ga4 then why = 'no_ga4'
  elseif not got['ga_client_id'] then why = 'no_client_id'
  end

  local first = store(p, id, table.concat(parts), started, party, status, direction, why == '',
    retention, sid, day, match, why)
  if not answers then return {1, first and 1 or 0, match} end
  return {1, first and 1 or 0, match, candidates, sid, got['source'] or '', got['medium'] or '',
    got['campaign'] or '', got['keyword'] or '', got['region'] or ''}
end

local out = {}
for i = 9, #ARGV, 10 do
  out[#out + 1] = ingest(ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4],
    ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8], ARGV[i + 9])
end
tally(p, retention)
return out
