"""The call log: match a CDR to its session, store it once, answer its attribution.

Storing a call and owing GA4 its event is one script (``scripts/store_call.lua``),
idempotent by (site, call id): a retried CDR gets the first answer back and changes
nothing.  Batches are pipelined (on a single Redis) so a bulk import costs a few
round trips per thousand calls.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any

from . import metrics
from .batching import Batcher
from .cdr import ParseContext
from .cdr.record import Cdr
from .config import Config, Pool, Site, Static
from .errors import Forbidden
from .keys import Keys
from .lua import Scripts
from .matcher import CLOCK_SKEW_MS, HISTORY_SCAN, Match, Matcher, Route
from .redis_store import AnyRedis, is_cluster
from .web import compact_json

PAGE_MAX = 300
# what ingest.lua answers of the session, beside the sid
ANSWERED_SESSION_FIELDS = ("source", "medium", "campaign", "keyword", "region")
# copied as they are from the session into the call record (ingest.lua: SESSION)
COPIED_FIELDS = (*ANSWERED_SESSION_FIELDS, "device", "ga_client_id", "ga_session_id")
SESSION_FIELDS = (*COPIED_FIELDS, "landing_page", "last_page", "first_seen")
INGEST_CHUNK = 25  # calls per ingest.lua run: a few milliseconds of Redis at most
NO_ANSWER: dict[str, Any] = {}
ANSWER_FIELDS = (
    "call_id",
    "match",
    "candidates",
    "source",
    "medium",
    "campaign",
    "keyword",
    "region",
    "sid",
    "first_time_caller",
)


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def parse_context(site: Site) -> ParseContext:
    """How this site's PBX writes numbers and local times."""
    return ParseContext(site.country, site.asterisk_timezone or site.timezone, site.asterisk_called)


# Fields stored only when they carry something; readers get them back with these defaults.
RECORD_DEFAULTS: dict[str, Any] = {
    "direction": "inbound",
    "answered_at": None,
    "ended_at": None,
    "recording_url": None,
    "pool": "",
    "sid": "",
    "source": "",
    "medium": "",
    "campaign": "",
    "keyword": "",
    "region": "",
    "landing_page": "",
    "last_page": "",
    "device": "",
    "time_on_site": None,
    "ga_client_id": "",
    "ga_session_id": "",
    "value": None,
    "currency": None,
    "candidates": 0,
    "first_time_caller": False,
}

# The names fields are stored under: a call costs under 1 KiB of Redis memory with its
# indexes, and names were a third of a record.  ingest.lua, lib_store.lua and
# enqueue_conversion.lua write and read the same names.  The site is not stored (it
# is in the key), nor are the ISO times (they come from the ``*_ms`` fields).
STORED_NAMES = {
    "call_id": "id",
    "direction": "dir",
    "caller": "clr",
    "called": "cld",
    "started_ms": "t0",
    "answered_ms": "ta",
    "ended_ms": "te",
    "status": "st",
    "duration": "dur",
    "billsec": "bs",
    "recording_url": "rec",
    "pool": "pl",
    "match": "m",
    "candidates": "nc",
    "sid": "sid",
    "source": "src",
    "medium": "med",
    "campaign": "cmp",
    "keyword": "kw",
    "region": "reg",
    "device": "dev",
    "ga_client_id": "gc",
    "ga_session_id": "gs",
    "landing_page": "lp",
    "last_page": "pg",
    "time_on_site": "tos",
    "first_time_caller": "ftc",
    "value": "val",
    "currency": "cur",
}
FULL_NAMES = {short: full for full, short in STORED_NAMES.items()}
_MISSING = object()


def record_body(rec: dict[str, Any]) -> str:
    """What the scripts take: the stored JSON without its closing brace (they append the
    match and ``first_time_caller``, which only they can know); defaults left out."""
    return compact_json(
        {STORED_NAMES.get(k, k): v for k, v in rec.items() if RECORD_DEFAULTS.get(k, _MISSING) != v}
    )[:-1]


def load_record(raw: str | bytes, site: str = "") -> dict[str, Any]:
    """A stored call record with every field present, under its full names."""
    stored: dict[str, Any] = json.loads(raw)
    rec = {FULL_NAMES.get(k, k): v for k, v in stored.items()}
    for k, v in RECORD_DEFAULTS.items():
        rec.setdefault(k, v)
    rec.setdefault("site", site)
    rec["started_at"] = iso(rec["started_ms"] / 1000)
    for name in ("answered", "ended"):
        ms = rec.pop(f"{name}_ms", None)
        rec[f"{name}_at"] = iso(ms / 1000) if ms is not None else None
    return rec


def answer(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record.get(k, RECORD_DEFAULTS.get(k)) for k in ANSWER_FIELDS}


@dataclass(frozen=True, slots=True)
class Prepared:
    cdr: Cdr
    route: Route
    number: str  # the business number the call used (called, or caller if outbound)
    party: str  # the other one: the caller of an inbound call, the callee of an outbound one


class CallLog:
    def __init__(
        self, config: Config, redis: AnyRedis, scripts: Scripts, keys: Keys, matcher: Matcher
    ) -> None:
        self.config = config
        self.redis = redis
        self.scripts = scripts
        self.keys = keys
        self.matcher = matcher
        self.retention_ms = config.calls_days * 86_400_000
        self.cluster = is_cluster(redis)
        self.batch = Batcher(redis, scripts)

    def prepare(self, site: Site, cdr: Cdr) -> Prepared:
        """Check the number belongs to the key's site (403 otherwise)."""
        number = cdr.called if cdr.direction == "inbound" else cdr.caller
        route = self.matcher.route(number)
        if route.site is not None and route.site.id != site.id:
            raise Forbidden(
                f"{'called' if cdr.direction == 'inbound' else 'caller'} number "
                "belongs to another site; use that site's key",
                field="called" if cdr.direction == "inbound" else "caller",
            )
        party = cdr.caller if cdr.direction == "inbound" else cdr.called
        return Prepared(cdr, route, number, party)

    async def _run(self, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Run script calls: batched on a single Redis, concurrently on a Cluster."""
        if not calls:
            return []
        if self.cluster:
            return list(await asyncio.gather(*(self.scripts(*c) for c in calls)))
        return await self.batch(*(("script", *c) for c in calls))

    async def ingest(self, site: Site, items: Sequence[Prepared]) -> list[dict[str, Any]]:
        """Match and store each prepared CDR; returns each call's attribution."""
        return [ans for ans, _ in await self.ingest_new(site, items)]

    async def ingest_new(
        self, site: Site, items: Sequence[Prepared], *, in_lua: bool | None = None
    ) -> list[tuple[dict[str, Any], bool]]:
        """:meth:`ingest`, also saying whether each call was stored now (False: already was).

        On one Redis each call is one ``ingest.lua`` (match, session, store); a Cluster
        keeps sessions in other slots, so there the three steps are taken from here.
        ``in_lua`` picks the way (tests compare them).
        """
        if not items:
            return []
        one_script = not self.cluster if in_lua is None else in_lua
        if one_script:
            return await self._ingest_in_lua(site, items)
        return await self._ingest_in_steps(site, items)

    async def store(self, site: Site, items: Sequence[Prepared]) -> list[bool]:
        """Match and store each prepared CDR; says only whether each was stored now (a bulk
        import needs no answers)."""
        if not items:
            return []
        if self.cluster:
            return [new for _, new in await self._ingest_in_steps(site, items)]
        return [new for _, new in await self._ingest_in_lua(site, items, answers=False)]

    async def _ingest_in_lua(
        self, site: Site, items: Sequence[Prepared], answers: bool = True
    ) -> list[tuple[dict[str, Any], bool]]:
        head = (
            "script",
            "ingest",
            self.keys.site(site.id),
            self.retention_ms,
            "1" if site.ga4 is not None else "0",
            self.keys.ns,
            self.matcher.grace_ms,
            HISTORY_SCAN,
            CLOCK_SKEW_MS,
            PAGE_MAX,
            "1" if answers else "0",
        )
        records = []
        args: list[Any] = []
        for p in items:
            rec, kind, pool = _base(p), "none", ""
            if p.cdr.direction == "inbound":
                _place(rec, p.route.static, p.route.pool)
                if p.route.static is not None:
                    kind = "static"
                elif p.route.pool is not None:
                    kind, pool = "pool", self.keys.pool(site.id, p.route.pool.id)
            started = rec["started_ms"]
            args += (
                rec["call_id"],
                record_body(rec),
                started,
                p.party,
                rec["status"],
                rec["direction"],
                call_day(site, started),
                kind,
                pool,
                p.number,
            )
            records.append(rec)
        step = INGEST_CHUNK * 10
        replies = [
            reply
            for chunk in await self.batch(
                *((*head, *args[at : at + step]) for at in range(0, len(args), step))
            )
            for reply in chunk
        ]
        out: list[tuple[dict[str, Any], bool]] = []
        if not answers:
            for reply in replies:
                if int(reply[0]):
                    metrics.count(metrics.CALLS, site.id, _s(reply[2]))
                out.append((NO_ANSWER, bool(int(reply[0]))))
            return out
        for reply, rec in zip(replies, records, strict=True):
            if not int(reply[0]):  # the first answer, from what was stored then
                out.append((answer(load_record(reply[1], site.id)), False))
                continue
            first, kind, candidates, *found = reply[1:]
            rec["first_time_caller"] = bool(int(first))
            rec["match"] = _s(kind)
            rec["candidates"] = int(candidates)
            for k, v in zip(("sid", *ANSWERED_SESSION_FIELDS), found, strict=True):
                if v:
                    rec[k] = _s(v)
            metrics.count(metrics.CALLS, site.id, rec["match"])
            out.append((answer(rec), True))
        return out

    async def _ingest_in_steps(
        self, site: Site, items: Sequence[Prepared]
    ) -> list[tuple[dict[str, Any], bool]]:
        # 1. lease history, for every inbound call to a pool number
        todo = [
            (i, p)
            for i, p in enumerate(items)
            if p.cdr.direction == "inbound" and p.route.pool is not None
        ]
        raws = await self._run(
            [
                self.matcher.match_args(site, p.route.pool, p.number, int(p.cdr.started_at * 1000))
                for _, p in todo
                if p.route.pool is not None
            ]
        )
        found: dict[int, Any] = {i: raw for (i, _), raw in zip(todo, raws, strict=True)}
        matches: list[Match] = []
        for i, p in enumerate(items):
            if p.cdr.direction != "inbound":
                matches.append(Match("unattributed"))
                continue
            matches.append(
                await self.matcher.resolve(
                    site, p.route, found.get(i, []), p.cdr.caller, int(p.cdr.started_at * 1000)
                )
            )
        # 2. the sessions behind them
        sids = [m.sid for m in matches if m.sid]
        sessions: dict[str, dict[str, str]] = {}
        if sids:
            reads = [("HMGET", self.keys.session(sid), *SESSION_FIELDS) for sid in sids]
            rows: list[Any]
            if self.cluster:
                pipe = self.redis.pipeline(transaction=False)
                for op in reads:
                    pipe.execute_command(*op)
                rows = await pipe.execute()
            else:
                rows = await self.batch(*reads)
            for sid, values in zip(sids, rows, strict=True):
                sessions[sid] = {k: _s(v) for k, v in zip(SESSION_FIELDS, values, strict=True) if v}
        # 3. store, each call atomically with its outbox entry
        records = []
        ops = []
        for p, m in zip(items, matches, strict=True):
            rec = self._record(p, m, sessions.get(m.sid) if m.sid else None)
            ops.append(store_op(self.keys, site, rec, self.retention_ms, _not_owed(site, m, rec)))
            records.append(rec)
        out = []
        for reply, rec in zip(await self._run(ops), records, strict=True):
            if int(reply[1]):  # stored as built here, with the script's first-time flag
                metrics.count(metrics.CALLS, site.id, rec["match"])
                rec["first_time_caller"] = bool(int(reply[2]))
                out.append((answer(rec), True))
            else:  # the first answer, from what was stored then
                out.append((answer(load_record(reply[0], site.id)), False))
        return out

    @staticmethod
    def _record(p: Prepared, m: Match, sess: dict[str, str] | None) -> dict[str, Any]:
        """The record as stored: only the fields that carry something (RECORD_DEFAULTS)."""
        rec = _base(p)
        rec["match"] = m.kind
        if m.candidates:
            rec["candidates"] = m.candidates
        if m.sid:
            rec["sid"] = m.sid
        _place(rec, m.static, m.pool)
        if m.static is None and sess:
            for k in COPIED_FIELDS:
                found = sess.get(k)
                if found:
                    rec[k] = found
            landing = sess.get("landing_page", "")
            if landing:
                rec["landing_page"] = landing[:PAGE_MAX]
            last = sess.get("last_page") or landing
            if last:
                rec["last_page"] = last[:PAGE_MAX]
            first = int(sess.get("first_seen") or rec["started_ms"])
            rec["time_on_site"] = max(0, (rec["started_ms"] - first) // 1000)
        return rec

    # ------------------------------------------------------------ reading

    async def get(self, site: Site, call_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self.keys.call(site.id, call_id))
        return load_record(raw, site.id) if raw else None

    async def between(
        self,
        site: Site,
        start_ms: int,
        end_ms: int,
        newest_first: bool = True,
        offset: int = 0,
        count: int = 1000,
    ) -> list[dict[str, Any]]:
        """Call records started in [start_ms, end_ms]."""
        key = self.keys.calls(site.id)
        if newest_first:
            ids = await self.redis.zrevrangebyscore(key, end_ms, start_ms, start=offset, num=count)
        else:
            ids = await self.redis.zrangebyscore(key, start_ms, end_ms, start=offset, num=count)
        if not ids:
            return []
        raws = await self.redis.mget([self.keys.call(site.id, _s(i)) for i in ids])
        return [load_record(r, site.id) for r in raws if r]


def _base(p: Prepared) -> dict[str, Any]:
    """What the PBX says of a call, as stored."""
    cdr = p.cdr
    rec: dict[str, Any] = {
        "call_id": cdr.call_id,
        "direction": cdr.direction,
        "caller": cdr.caller,
        "called": cdr.called,
        "started_ms": int(cdr.started_at * 1000),
        "status": cdr.status,
        "duration": cdr.duration,
        "billsec": cdr.billsec,
    }
    if cdr.answered_at is not None:
        rec["answered_ms"] = int(cdr.answered_at * 1000)
    if cdr.ended_at is not None:
        rec["ended_ms"] = int(cdr.ended_at * 1000)
    if cdr.recording_url:
        rec["recording_url"] = cdr.recording_url
    return rec


def _place(rec: dict[str, Any], static: Static | None, pool: Pool | None) -> None:
    """What the config says of the number: a static number's channel, or the pool's."""
    if static is not None:
        rec["pool"] = "static"
        for k, v in (
            ("source", static.source),
            ("medium", static.medium),
            ("campaign", static.campaign),
            ("keyword", static.keyword),
            ("region", static.region),
        ):
            if v:
                rec[k] = v
    elif pool is not None:
        rec["pool"] = pool.id
        if pool.value is not None:
            rec["value"] = pool.value
        if pool.currency is not None:
            rec["currency"] = pool.currency


def _not_owed(site: Site, m: Match, rec: dict[str, Any]) -> str:
    """Why no GA4 event is owed for this call ("" when one is)."""
    if rec["direction"] != "inbound":
        return "outbound"
    if m.kind == "unattributed":
        return "unattributed"
    if site.ga4 is None:
        return "no_ga4"
    if not rec.get("ga_client_id"):
        return "no_client_id"
    return ""


def call_day(site: Site, started_ms: int) -> str:
    """The call's day in the site's timezone, "YYYY-MM-DD" (the counters' day)."""
    return _local_day(site.timezone, started_ms // 900_000)


@lru_cache(maxsize=4096)
def _local_day(tz: tzinfo, quarter: int) -> str:
    """The date in ``tz`` of a quarter hour (every UTC offset and every DST change falls
    on a quarter hour, so the whole quarter has one local date)."""
    return datetime.fromtimestamp(quarter * 900, tz).strftime("%Y-%m-%d")


def store_op(
    keys: Keys, site: Site, rec: dict[str, Any], retention_ms: int, why: str
) -> tuple[Any, ...]:
    """The ``store_call`` script call for a record as :meth:`CallLog._record` builds it."""
    inbound = rec["direction"] == "inbound"
    return (
        "store_call",
        keys.site(site.id),
        rec["call_id"],
        record_body(rec),
        rec["started_ms"],
        rec["caller"] if inbound else rec["called"],
        rec["status"],
        rec["direction"],
        "0" if why else "1",
        retention_ms,
        rec.get("sid", ""),
        call_day(site, rec["started_ms"]),
        rec["match"],
        why,
    )


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
