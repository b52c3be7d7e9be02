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
from datetime import UTC, datetime
from typing import Any

from . import metrics
from .batching import Batcher
from .cdr import ParseContext
from .cdr.record import Cdr
from .config import Config, Site
from .errors import Forbidden
from .keys import Keys
from .lua import Scripts
from .matcher import Match, Matcher, Route
from .redis_store import AnyRedis, is_cluster

PAGE_MAX = 300
SESSION_FIELDS = (
    "source",
    "medium",
    "campaign",
    "keyword",
    "region",
    "device",
    "landing_page",
    "last_page",
    "first_seen",
    "ga_client_id",
    "ga_session_id",
)
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
}


# Derived on reading, so not stored: the site (in the key) and the ISO times (from ms).
DERIVED = ("site", "started_at", "answered_at", "ended_at")


def compact(record: dict[str, Any], answered: float | None, ended: float | None) -> str:
    """The stored JSON: empty and derivable fields left out (a call costs about 1 KiB
    of Redis memory with its indexes)."""
    kept = {
        k: v
        for k, v in record.items()
        if k not in DERIVED and not (k in RECORD_DEFAULTS and v == RECORD_DEFAULTS[k])
    }
    if answered is not None:
        kept["answered_ms"] = int(answered * 1000)
    if ended is not None:
        kept["ended_ms"] = int(ended * 1000)
    return json.dumps(kept, separators=(",", ":"), ensure_ascii=False)


def load_record(raw: str | bytes, site: str = "") -> dict[str, Any]:
    """A stored call record with every field present."""
    rec: dict[str, Any] = json.loads(raw)
    for k, v in RECORD_DEFAULTS.items():
        rec.setdefault(k, v)
    rec.setdefault("site", site)
    rec["started_at"] = iso(rec["started_ms"] / 1000)
    for name in ("answered", "ended"):
        ms = rec.pop(f"{name}_ms", None)
        rec[f"{name}_at"] = iso(ms / 1000) if ms is not None else None
    return rec


def answer(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in ANSWER_FIELDS}


@dataclass(frozen=True, slots=True)
class Prepared:
    cdr: Cdr
    route: Route
    number: str  # the business number the call used (called, or caller if outbound)


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
        return Prepared(cdr, route, number)

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
        self, site: Site, items: Sequence[Prepared]
    ) -> list[tuple[dict[str, Any], bool]]:
        """:meth:`ingest`, also saying whether each call was stored now (False: already was)."""
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
                sessions[sid] = {
                    k: _s(v) for k, v in zip(SESSION_FIELDS, values, strict=True) if v is not None
                }
        # 3. store, each call atomically with its outbox entry
        records = [
            self._record(site, p, m, sessions.get(m.sid, {}))
            for p, m in zip(items, matches, strict=True)
        ]
        stored = await self._run([self._store_args(site, rec) for rec in records])
        out = []
        counted = metrics.CALLS.labels
        for (text, new), rec in zip(stored, records, strict=True):
            if int(new):  # stored as built here, with the script's first-time flag
                counted(site.id, rec["match"]).inc()
                rec["first_time_caller"] = b'"first_time_caller":true' in _b(text)
                out.append((answer(rec), True))
            else:  # the first answer, from what was stored then
                out.append((answer(load_record(text, site.id)), False))
        return out

    def _record(self, site: Site, p: Prepared, m: Match, sess: dict[str, str]) -> dict[str, Any]:
        cdr = p.cdr
        started_ms = int(cdr.started_at * 1000)
        rec: dict[str, Any] = {
            **RECORD_DEFAULTS,
            "call_id": cdr.call_id,
            "site": site.id,
            "direction": cdr.direction,
            "caller": cdr.caller,
            "called": cdr.called,
            "started_ms": started_ms,
            "_answered": cdr.answered_at,
            "_ended": cdr.ended_at,
            "status": cdr.status,
            "duration": cdr.duration,
            "billsec": cdr.billsec,
            "recording_url": cdr.recording_url,
            "match": m.kind,
            "candidates": m.candidates,
            "pool": m.pool.id if m.pool else "",
            "sid": m.sid,
            "first_time_caller": "?",
            "value": m.pool.value if m.pool else None,
            "currency": m.pool.currency if m.pool else None,
        }
        if m.static is not None:
            rec.update(
                source=m.static.source,
                medium=m.static.medium,
                campaign=m.static.campaign,
                keyword=m.static.keyword,
                region=m.static.region,
                pool="static",
            )
        elif sess:
            first = int(sess.get("first_seen") or started_ms)
            rec.update(
                source=sess.get("source", ""),
                medium=sess.get("medium", ""),
                campaign=sess.get("campaign", ""),
                keyword=sess.get("keyword", ""),
                region=sess.get("region", ""),
                device=sess.get("device", ""),
                landing_page=sess.get("landing_page", "")[:PAGE_MAX],
                last_page=(sess.get("last_page") or sess.get("landing_page", ""))[:PAGE_MAX],
                time_on_site=max(0, (started_ms - first) // 1000),
                ga_client_id=sess.get("ga_client_id", ""),
                ga_session_id=sess.get("ga_session_id", ""),
            )
        rec["_why"] = self._not_owed(site, cdr, m, rec)
        return rec

    @staticmethod
    def _not_owed(site: Site, cdr: Cdr, m: Match, rec: dict[str, Any]) -> str:
        if cdr.direction != "inbound":
            return "outbound"
        if m.kind == "unattributed":
            return "unattributed"
        if site.ga4 is None:
            return "no_ga4"
        if not rec["ga_client_id"]:
            return "no_client_id"
        return ""

    def _store_args(self, site: Site, rec: dict[str, Any]) -> tuple[Any, ...]:
        why = rec.pop("_why")
        party = rec["caller"] if rec["direction"] == "inbound" else rec["called"]
        day = datetime.fromtimestamp(rec["started_ms"] / 1000, site.timezone).strftime("%Y-%m-%d")
        text = compact(rec, rec.pop("_answered"), rec.pop("_ended"))
        return (
            "store_call",
            self.keys.site(site.id),
            rec["call_id"],
            text,
            rec["started_ms"],
            party,
            rec["status"],
            rec["direction"],
            "0" if why else "1",
            self.retention_ms,
            rec["sid"],
            day,
            rec["match"],
            why,
        )

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


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
