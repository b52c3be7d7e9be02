"""Owner reports over the call log and the pools, and the dashboard that draws them.

Routes (all but ``/dashboard`` need the site key, as Bearer or Basic; every report
takes ``from`` and ``to``: a date ``2026-11-24`` or a datetime, read in the site's
timezone when it carries no offset; ``to`` as a date includes that whole day; the
default is the last 30 days, today included):

``GET /v1/reports/sources[?by=campaign|keyword|pool|region]`` (JSON or CSV)
    ``{site, timezone, from, to, by, rows: [row], totals}``; a row is
    ``{label, source, medium[, <by>], calls, answered, missed, first_time_callers,
    unique_callers, ambiguous, attributed, attributed_share, answer_rate, share, value,
    currency}``, sorted by calls.  Inbound calls only.
``GET /v1/reports/missed[?limit=N]`` (JSON or CSV)
    ``{…range, summary: {missed, reached, not_reached, reached_share,
    median_reach_seconds}, calls: [call], truncated}``, newest first.
``GET /v1/reports/unanswered[?limit=N]`` (JSON or CSV)
    ``{…range, callers: [{caller, missed_calls, since, last_missed_at, waiting_seconds,
    source, medium, campaign, region, pool, last_call_id, called}], total, truncated}``,
    the caller waiting longest first.
``GET /v1/reports/heatmap``
    ``{…range, weekdays, hours, calls: 7x24, missed: 7x24, missed_share: 7x24 (null where
    no call), max_calls, max_missed, total_calls, total_missed}``, Monday first.
``GET /v1/reports/pools``
    ``{…range, rule, pools: [{pool, size, on_exhausted, live, free, new, held, shared,
    fallback, offered, overflow, overflow_rate, peak, peak_day, days: […],
    advice: {status, recommended_size, text}}]}``.
``GET /v1/reports/delivery``
    ``{…range, days: [outbox.delivery_report row]}``: the GA4 reconciliation of each
    site-local day of the range (calls, owed, delivered, pending, dead, not sent…).
``GET /dashboard``
    the page (``static/dashboard.{html,js,css}``), under a strict Content-Security-Policy.

What counts as what:

- *missed*: an inbound call whose status is ``missed``, ``busy`` or ``failed``.
- *reached*: a later answered inbound call from that number, or an outbound call to it
  (what ``store_call.lua`` records in the site's ``contact`` hash).
- *money*: the pool's per-call ``value`` of every answered call, plus what conversions
  recorded for the call in the site's ``revenue`` hash.
- *overflow*: allocations that found the pool exhausted (``shared`` + ``fallback``) over
  all allocations (``new`` + ``held`` + ``shared`` + ``fallback``).
- *recommended size* = ``ceil(peak x 1.25) + 1``: the busiest moment seen, a quarter more
  for a busier day, and one number so a released number can rest before reuse.  A pool
  whose peak reaches 90 % of its size, or that overflowed, should grow to it; one whose
  peak stays under half of its size could shrink to it.  ``callpath simulate`` models
  attribution accuracy against pool size for a traffic shape in depth.

The aggregations are pure (records in, dictionaries out) so they are tested without
Redis; the route handlers only read Redis and feed them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import statistics
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .calls import load_record
from .config import Pool, Site
from .errors import BadRequest, NotFound
from .services import Services, services
from .web import csv_cell, json_response, midnight, parse_end, parse_moment, site_for_key

MISSED = frozenset({"missed", "busy", "failed"})
BY = ("campaign", "keyword", "pool", "region")
UNATTRIBUTED = "(unattributed)"
NOT_SET = "(not set)"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DEFAULT_DAYS = 30
MAX_DAYS = 400
DEFAULT_LIMIT = 500
MAX_LIMIT = 10_000
CHUNK = 1000
DAY_MS = 86_400_000

GROW_AT = 0.9  # peak at or above this share of the size: grow
SHRINK_BELOW = 0.5  # peak under this share of the size: could shrink
HEADROOM = 1.25
SIZING_RULE = (
    "recommended size = ceil(peak x 1.25) + 1; grow to it when the peak reaches "
    "90 % of the pool or the pool overflowed, shrink to it when the peak stays "
    "under 50 %"
)
SIMULATE_HINT = "`callpath simulate` models attribution accuracy against pool size in depth"


# ================================================================ time range


@dataclass(frozen=True, slots=True)
class Range:
    """``[start_ms, end_ms)`` read in one timezone."""

    start_ms: int
    end_ms: int
    tz: tzinfo

    def local(self, ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, self.tz)

    def days(self) -> list[str]:
        """The local dates the range touches, "YYYY-MM-DD", oldest first."""
        return _dates(self.local(self.start_ms).date(), self.local(self.end_ms - 1).date())

    def utc_days(self) -> list[str]:
        """The UTC dates the range touches (pool counters are kept per UTC day)."""
        first = datetime.fromtimestamp(self.start_ms / 1000, UTC).date()
        last = datetime.fromtimestamp((self.end_ms - 1) / 1000, UTC).date()
        return _dates(first, last)

    def body(self) -> dict[str, Any]:
        return {
            "timezone": str(self.tz),
            "from": iso_local(self.start_ms, self.tz),
            "to": iso_local(self.end_ms, self.tz),
        }


def _dates(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def iso_local(ms: int | None, tz: tzinfo) -> str | None:
    """A moment as ISO 8601 in the site's timezone, with its offset."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="seconds")


def parse_range(
    params: Mapping[str, str],
    tz: tzinfo,
    now_ms: int,
    default_days: int = DEFAULT_DAYS,
    max_days: int = MAX_DAYS,
) -> Range:
    """``from``/``to`` → a range; a bare ``to`` date includes that whole day."""
    today = datetime.fromtimestamp(now_ms / 1000, tz).date()
    to_text, from_text = params.get("to", "").strip(), params.get("from", "").strip()
    if to_text:
        end, to_day = parse_end(to_text, tz)
    else:
        end, to_day = midnight(today + timedelta(days=1), tz), today
    if from_text:
        start, _ = parse_moment(from_text, "from", tz)
    else:
        last = to_day or datetime.fromtimestamp((end - 1) / 1000, tz).date()
        try:
            start = midnight(last - timedelta(days=default_days - 1), tz)
        except OverflowError:
            raise BadRequest("to is out of range", field="to") from None
    if end <= start:
        raise BadRequest("to must come after from", field="to")
    if end - start > max_days * DAY_MS + 3_600_000:  # an hour of slack for DST
        raise BadRequest(f"the range is longer than {max_days} days; ask for less", field="from")
    return Range(start, end, tz)


def parse_limit(params: Mapping[str, str]) -> int:
    text = params.get("limit", "").strip()
    if not text:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}", field="limit")
    return int(text)


# ================================================================ pure aggregations


def _party(rec: Mapping[str, Any]) -> str:
    """The other party: the caller of an inbound call, the callee of an outbound one."""
    key = "called" if rec.get("direction") == "outbound" else "caller"
    return str(rec.get(key) or "")


def _inbound(rec: Mapping[str, Any]) -> bool:
    return rec.get("direction", "inbound") != "outbound"


def _is_missed(rec: Mapping[str, Any]) -> bool:
    return _inbound(rec) and rec.get("status") in MISSED


def _reaches(rec: Mapping[str, Any]) -> bool:
    """Whether this call counts as the business reaching the other party."""
    return not _inbound(rec) or rec.get("status") == "answered"


def _ratio(part: float, whole: float, digits: int = 4) -> float | None:
    return round(part / whole, digits) if whole else None


# ---------------------------------------------------------------- sources


@dataclass
class _Tally:
    calls: int = 0
    answered: int = 0
    missed: int = 0
    first_time: int = 0
    attributed: int = 0
    ambiguous: int = 0
    value: float = 0.0
    callers: set[str] = field(default_factory=set)
    currencies: set[str] = field(default_factory=set)

    def add(self, rec: Mapping[str, Any], extra: float) -> None:
        self.calls += 1
        status = rec.get("status")
        if status == "answered":
            self.answered += 1
            if isinstance(rec.get("value"), int | float) and not isinstance(rec["value"], bool):
                self.value += float(rec["value"])
                if rec.get("currency"):
                    self.currencies.add(str(rec["currency"]))
        elif status in MISSED:
            self.missed += 1
        if rec.get("first_time_caller") is True:
            self.first_time += 1
        match = rec.get("match")
        if match and match != "unattributed":
            self.attributed += 1
        if match == "ambiguous":
            self.ambiguous += 1
        if rec.get("caller"):
            self.callers.add(str(rec["caller"]))
        if extra:
            self.value += extra
            if rec.get("currency"):
                self.currencies.add(str(rec["currency"]))

    def body(self, total_calls: int) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "answered": self.answered,
            "missed": self.missed,
            "first_time_callers": self.first_time,
            "unique_callers": len(self.callers),
            "ambiguous": self.ambiguous,
            "attributed": self.attributed,
            "attributed_share": _ratio(self.attributed, self.calls),
            "answer_rate": _ratio(self.answered, self.calls),
            "share": _ratio(self.calls, total_calls),
            "value": round(self.value, 2),
            "currency": next(iter(self.currencies)) if len(self.currencies) == 1 else None,
        }


class SourcesReport:
    """Inbound calls per channel (source / medium, optionally split by one more field).

    Unattributed calls form their own ``(unattributed)`` row; with ``by="pool"`` they
    stay split by the pool whose number was called, which shows each pool's match rate.
    """

    def __init__(self, by: str | None = None) -> None:
        if by is not None and by not in BY:
            raise ValueError(f"by must be one of {', '.join(BY)}")
        self.by = by
        self.rows: dict[tuple[str, str, str], _Tally] = defaultdict(_Tally)
        self.total = _Tally()

    def key(self, rec: Mapping[str, Any]) -> tuple[str, str, str]:
        extra = str(rec.get(self.by) or "") if self.by else ""
        if rec.get("match") == "unattributed":
            return UNATTRIBUTED, "", extra if self.by == "pool" else ""
        return str(rec.get("source") or ""), str(rec.get("medium") or ""), extra

    def add(self, rec: Mapping[str, Any], revenue: float = 0.0) -> None:
        if not _inbound(rec):
            return
        self.rows[self.key(rec)].add(rec, revenue)
        self.total.add(rec, revenue)

    def label(self, key: tuple[str, str, str]) -> str:
        source, medium, extra = key
        base = (
            UNATTRIBUTED if source == UNATTRIBUTED else f"{source or NOT_SET} / {medium or NOT_SET}"
        )
        if self.by and (extra or source != UNATTRIBUTED):
            return f"{base} · {extra or NOT_SET}"
        return base

    def result(self) -> dict[str, Any]:
        rows = []
        for key, tally in self.rows.items():
            row: dict[str, Any] = {"label": self.label(key), "source": key[0], "medium": key[1]}
            if self.by:
                row[self.by] = key[2]
            row.update(tally.body(self.total.calls))
            rows.append(row)
        rows.sort(key=lambda r: (-r["calls"], r["label"]))
        totals = self.total.body(self.total.calls)
        totals["currencies"] = sorted(self.total.currencies)
        return {"by": self.by, "rows": rows, "totals": totals}


def sources_report(
    records: Iterable[Mapping[str, Any]],
    by: str | None = None,
    revenue: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Per-channel totals of the inbound calls in ``records``."""
    report = SourcesReport(by)
    revenue = revenue or {}
    for rec in records:
        report.add(rec, revenue.get(str(rec.get("call_id")), 0.0))
    return report.result()


# ---------------------------------------------------------------- heatmap


class Heatmap:
    """Inbound calls on a 7 x 24 grid: Monday first, hours in the site's timezone."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self.calls = [[0] * 24 for _ in range(7)]
        self.missed = [[0] * 24 for _ in range(7)]

    def add(self, rec: Mapping[str, Any]) -> None:
        if not _inbound(rec) or rec.get("started_ms") is None:
            return
        moment = datetime.fromtimestamp(int(rec["started_ms"]) / 1000, self.tz)
        day, hour = moment.weekday(), moment.hour
        self.calls[day][hour] += 1
        if rec.get("status") in MISSED:
            self.missed[day][hour] += 1

    def result(self) -> dict[str, Any]:
        share = [
            [_ratio(m, c) for m, c in zip(mrow, crow, strict=True)]
            for mrow, crow in zip(self.missed, self.calls, strict=True)
        ]
        return {
            "weekdays": list(WEEKDAYS),
            "hours": list(range(24)),
            "calls": self.calls,
            "missed": self.missed,
            "missed_share": share,
            "max_calls": max(max(row) for row in self.calls),
            "max_missed": max(max(row) for row in self.missed),
            "total_calls": sum(map(sum, self.calls)),
            "total_missed": sum(map(sum, self.missed)),
        }


def heatmap(records: Iterable[Mapping[str, Any]], tz: tzinfo) -> dict[str, Any]:
    grid = Heatmap(tz)
    for rec in records:
        grid.add(rec)
    return grid.result()


# ---------------------------------------------------------------- missed calls


MISSED_FIELDS = (
    "call_id",
    "caller",
    "called",
    "status",
    "duration",
    "match",
    "pool",
    "source",
    "medium",
    "campaign",
    "keyword",
    "region",
    "landing_page",
    "device",
    "first_time_caller",
)


class MissedCalls:
    """Missed inbound calls, each marked reached once a later call connects with them.

    Feed records oldest first.  ``add(rec, listing=False)`` only lets a record reach
    earlier missed calls (records after the range: callbacks come later).
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._pending: dict[str, list[int]] = defaultdict(list)

    def add(self, rec: Mapping[str, Any], listing: bool = True) -> None:
        party = _party(rec)
        started = int(rec.get("started_ms") or 0)
        if _reaches(rec):
            if party in self._pending:
                how = "outbound_call" if not _inbound(rec) else "answered_call"
                for i in self._pending.pop(party):
                    row = self.rows[i]
                    row["_reached_ms"], row["reached_by"] = started, how
            return
        if listing and _is_missed(rec):
            row = {k: rec.get(k) for k in MISSED_FIELDS}
            row["_ms"] = started
            row["_reached_ms"], row["reached_by"] = None, None
            self.rows.append(row)
            if party:
                self._pending[party].append(len(self.rows) - 1)

    def pending(self) -> dict[str, int]:
        """Caller → earliest missed call not yet seen reached."""
        return {p: self.rows[ix[0]]["_ms"] for p, ix in self._pending.items() if ix}

    def result(
        self, contacts: Mapping[str, int], now_ms: int, tz: tzinfo, limit: int | None = None
    ) -> dict[str, Any]:
        """``contacts``: caller → latest contact ms, for callbacks not in the records."""
        for party, indexes in self._pending.items():
            latest = contacts.get(party)
            for i in indexes:
                row = self.rows[i]
                if latest is not None and latest >= row["_ms"]:
                    row["_reached_ms"], row["reached_by"] = latest, "later_contact"
        out, waits = [], []
        for row in reversed(self.rows):
            ms, reached_ms = row.pop("_ms"), row.pop("_reached_ms")
            row["started_at"] = iso_local(ms, tz)
            row["reached"] = reached_ms is not None
            row["reached_at"] = iso_local(reached_ms, tz)
            row["reached_after_seconds"] = (
                (reached_ms - ms) // 1000 if reached_ms is not None else None
            )
            row["waiting_seconds"] = None if reached_ms is not None else max(0, now_ms - ms) // 1000
            if reached_ms is not None:
                waits.append(row["reached_after_seconds"])
            out.append(row)
        reached = len(waits)
        summary = {
            "missed": len(out),
            "reached": reached,
            "not_reached": len(out) - reached,
            "reached_share": _ratio(reached, len(out)),
            "median_reach_seconds": int(statistics.median(waits)) if waits else None,
        }
        shown = out if limit is None else out[:limit]
        return {"summary": summary, "calls": shown, "truncated": len(shown) < len(out)}


def missed_report(
    records: Iterable[Mapping[str, Any]],
    contacts: Mapping[str, int],
    now_ms: int,
    tz: tzinfo,
    limit: int | None = None,
) -> dict[str, Any]:
    acc = MissedCalls()
    for rec in records:
        acc.add(rec)
    return acc.result(contacts, now_ms, tz, limit)


# ---------------------------------------------------------------- unanswered callers


class Unanswered:
    """The callers still waiting (``unanswered`` ZSET), enriched from their calls.

    ``waiting``: (caller, latest missed ms); ``contacts``: caller → latest contact ms.
    The channel shown is that of the caller's latest attributed call in the range (the
    latest call when none was attributed): what brought them, even if they then rang
    the site's own number.
    """

    def __init__(self, waiting: Sequence[tuple[str, int]], contacts: Mapping[str, int]) -> None:
        self.waiting = dict(waiting)
        self.contacts = contacts
        self.missed: dict[str, int] = defaultdict(int)
        self.since: dict[str, int] = {}
        self.latest: dict[str, Mapping[str, Any]] = {}
        self.attributed: dict[str, Mapping[str, Any]] = {}

    def add(self, rec: Mapping[str, Any]) -> None:
        caller = _party(rec)
        if not _inbound(rec) or caller not in self.waiting:
            return
        started = int(rec.get("started_ms") or 0)
        for seen in (
            (self.latest, self.attributed)
            if rec.get("match") not in (None, "unattributed")
            else (self.latest,)
        ):
            prev = seen.get(caller)
            if prev is None or started >= int(prev.get("started_ms") or 0):
                seen[caller] = rec
        if rec.get("status") in MISSED:
            self.missed[caller] += 1
            if started > self.contacts.get(caller, -1) and started < self.since.get(
                caller, started + 1
            ):
                self.since[caller] = started

    def result(self, now_ms: int, tz: tzinfo, limit: int | None = None) -> dict[str, Any]:
        out = []
        for caller, last_ms in self.waiting.items():
            since = min(self.since.get(caller, last_ms), last_ms)
            last = self.latest.get(caller, {})
            rec = self.attributed.get(caller, last)
            out.append(
                {
                    "caller": caller,
                    "missed_calls": self.missed.get(caller, 0),
                    "since": iso_local(since, tz),
                    "last_missed_at": iso_local(last_ms, tz),
                    "waiting_seconds": max(0, now_ms - since) // 1000,
                    "source": rec.get("source", ""),
                    "medium": rec.get("medium", ""),
                    "campaign": rec.get("campaign", ""),
                    "region": rec.get("region", ""),
                    "pool": rec.get("pool", ""),
                    "match": rec.get("match"),
                    "last_call_id": last.get("call_id"),
                    "called": last.get("called"),
                    "_since": since,
                }
            )
        out.sort(key=lambda row: (row["_since"], row["caller"]))
        for row in out:
            del row["_since"]
        shown = out if limit is None else out[:limit]
        return {"callers": shown, "total": len(out), "truncated": len(shown) < len(out)}


def unanswered_report(
    waiting: Sequence[tuple[str, int]],
    records: Iterable[Mapping[str, Any]],
    contacts: Mapping[str, int],
    now_ms: int,
    tz: tzinfo,
    limit: int | None = None,
) -> dict[str, Any]:
    acc = Unanswered(waiting, contacts)
    for rec in records:
        acc.add(rec)
    return acc.result(now_ms, tz, limit)


# ---------------------------------------------------------------- pools and sizing


def recommended_size(peak: int) -> int:
    """``ceil(peak x 1.25) + 1``: the busiest moment, a quarter more, one to rest."""
    return math.ceil(peak * HEADROOM) + 1


def _numbers(n: int) -> str:
    return f"{n} number{'' if n == 1 else 's'}"


def sizing_advice(
    size: int, peak: int, offered: int, overflow: int, on_exhausted: str = "share-oldest"
) -> dict[str, Any]:
    """What to do with a pool, from its peak and overflow over a range.

    ``status`` is ``grow``, ``shrink``, ``ok`` or ``idle`` (no allocation to judge by).
    """
    if offered == 0:
        return {
            "status": "idle",
            "recommended_size": None,
            "text": f"No visitor was given a number from this pool in this range, so "
            f"there is nothing to size yet; {SIMULATE_HINT}.",
        }
    rec = recommended_size(peak)
    held = f"peak {peak} of {size} numbers held at once"
    if overflow:
        rec = max(rec, recommended_size(size))
        what = (
            "saw the site's own number, so their calls could not be attributed"
            if on_exhausted == "fallback"
            else "got a number another visitor held, so their calls may be ambiguous"
        )
        share = f"{overflow / offered:.1%}"
        return {
            "status": "grow",
            "recommended_size": rec,
            "text": f"The pool ran out: {overflow} of {offered} visitors ({share}) {what}; "
            f"{held}. Add at least {_numbers(rec - size)} (to {rec}). Demand "
            f"beyond the pool cannot be measured, so check this report again "
            f"after adding them; {SIMULATE_HINT}.",
        }
    if peak >= GROW_AT * size and rec > size:
        return {
            "status": "grow",
            "recommended_size": rec,
            "text": f"{held.capitalize()}; add at least {_numbers(rec - size)} (to {rec}) "
            f"so a busier day does not run out; {SIMULATE_HINT}.",
        }
    if peak < SHRINK_BELOW * size and rec < size:
        return {
            "status": "shrink",
            "recommended_size": rec,
            "text": f"{held.capitalize()}; the pool could shrink to {_numbers(rec)} "
            f"and still keep a quarter in reserve; {SIMULATE_HINT}.",
        }
    return {
        "status": "ok",
        "recommended_size": size,
        "text": f"{held.capitalize()}; the size is right for this traffic.",
    }


STAT_FIELDS = ("new", "held", "shared", "fallback", "peak")


def _int(value: Any) -> int:
    if isinstance(value, bytes):
        value = value.decode()
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def pool_report(
    pool_id: str,
    size: int,
    live: int,
    free: int,
    daily: Sequence[tuple[str, Mapping[Any, Any]]],
    on_exhausted: str = "share-oldest",
) -> dict[str, Any]:
    """One pool's load over the range; ``daily``: (UTC day, its ``stats:<day>`` hash)."""
    days, sums = [], dict.fromkeys(STAT_FIELDS, 0)
    peak, peak_day = 0, None
    for day, raw in daily:
        stats = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in raw.items()}
        row: dict[str, Any] = {"day": day, **{f: _int(stats.get(f)) for f in STAT_FIELDS}}
        offered = row["new"] + row["held"] + row["shared"] + row["fallback"]
        row["offered"] = offered
        row["overflow_rate"] = _ratio(row["shared"] + row["fallback"], offered)
        for f in ("new", "held", "shared", "fallback"):
            sums[f] += row[f]
        if row["peak"] > peak:
            peak, peak_day = row["peak"], day
        days.append(row)
    offered = sums["new"] + sums["held"] + sums["shared"] + sums["fallback"]
    overflow = sums["shared"] + sums["fallback"]
    return {
        "pool": pool_id,
        "size": size,
        "on_exhausted": on_exhausted,
        "live": live,
        "free": free,
        "new": sums["new"],
        "held": sums["held"],
        "shared": sums["shared"],
        "fallback": sums["fallback"],
        "offered": offered,
        "overflow": overflow,
        "overflow_rate": _ratio(overflow, offered),
        "peak": peak,
        "peak_day": peak_day,
        "days": days,
        "advice": sizing_advice(size, peak, offered, overflow, on_exhausted),
    }


# ================================================================ Redis reads


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _revenue_key(svc: Services, site: Site) -> str:
    return svc.keys.revenue(site.id)


def _contact_key(svc: Services, site: Site) -> str:
    return svc.keys.contact(site.id)


async def _chunks(
    svc: Services, site: Site, start_ms: int, end_ms: int, revenue: bool = False
) -> AsyncIterator[list[tuple[dict[str, Any], float]]]:
    """Call records started in ``[start_ms, end_ms)``, oldest first, a chunk at a time,
    each with the revenue conversions recorded for it when ``revenue`` is asked."""
    index = svc.keys.calls(site.id)
    offset = 0
    while True:
        ids = [
            _text(i)
            for i in await svc.redis.zrangebyscore(
                index, start_ms, end_ms - 1, start=offset, num=CHUNK
            )
        ]
        if not ids:
            return
        offset += len(ids)
        raws = await svc.redis.mget([svc.keys.call(site.id, i) for i in ids])
        extra: list[Any] = [None] * len(ids)
        if revenue:
            extra = await svc.redis.hmget(_revenue_key(svc, site), ids)
        out = []
        for raw, money in zip(raws, extra, strict=True):
            if raw:  # an id whose record has expired is skipped
                out.append((load_record(raw, site.id), _float(money)))
        yield out
        if len(ids) < CHUNK:
            return


def _float(value: Any) -> float:
    if value is None:
        return 0.0
    try:
        number = float(_text(value))
    except ValueError:
        return 0.0
    return number if math.isfinite(number) else 0.0


async def _contacts(svc: Services, site: Site, callers: Sequence[str]) -> dict[str, int]:
    if not callers:
        return {}
    values = await svc.redis.hmget(_contact_key(svc, site), list(callers))
    return {c: _int(v) for c, v in zip(callers, values, strict=True) if v is not None}


def _context(request: Request) -> tuple[Services, Site, Range, int]:
    svc = services(request)
    site = site_for_key(svc.config, request)
    now_ms = int(time.time() * 1000)
    return svc, site, parse_range(request.query_params, site.timezone, now_ms), now_ms


def _wants_csv(request: Request) -> bool:
    return "text/csv" in request.headers.get("accept", "").lower()


def _csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], name: str) -> Response:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(c)) for c in columns])
    return Response(
        buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


# ================================================================ routes


SOURCES_CSV = (
    "label",
    "source",
    "medium",
    "calls",
    "answered",
    "missed",
    "first_time_callers",
    "unique_callers",
    "ambiguous",
    "attributed_share",
    "answer_rate",
    "share",
    "value",
    "currency",
)
MISSED_CSV = (
    "started_at",
    "call_id",
    "caller",
    "called",
    "status",
    "source",
    "medium",
    "campaign",
    "keyword",
    "region",
    "pool",
    "match",
    "first_time_caller",
    "reached",
    "reached_at",
    "reached_after_seconds",
    "reached_by",
    "waiting_seconds",
)
UNANSWERED_CSV = (
    "caller",
    "missed_calls",
    "since",
    "last_missed_at",
    "waiting_seconds",
    "source",
    "medium",
    "campaign",
    "region",
    "pool",
    "called",
    "last_call_id",
)


async def sources_route(request: Request) -> Response:
    svc, site, rng, _ = _context(request)
    by = request.query_params.get("by", "").strip().lower() or None
    if by in ("source", "medium", "channel"):
        by = None
    if by is not None and by not in BY:
        raise BadRequest(f"by must be one of {', '.join(BY)}", field="by")
    report = SourcesReport(by)
    async for chunk in _chunks(svc, site, rng.start_ms, rng.end_ms, revenue=True):
        for rec, money in chunk:
            report.add(rec, money)
    body = {"site": site.id, **rng.body(), **report.result()}
    if _wants_csv(request):
        columns = list(SOURCES_CSV)
        if by:
            columns.insert(3, by)
        rows = [*body["rows"], {"label": "(total)", **body["totals"]}]
        return _csv(rows, columns, f"sources-{site.id}")
    return json_response(body)


async def missed_route(request: Request) -> Response:
    svc, site, rng, now_ms = _context(request)
    limit = parse_limit(request.query_params)
    acc = MissedCalls()
    async for chunk in _chunks(svc, site, rng.start_ms, rng.end_ms):
        for rec, _ in chunk:
            acc.add(rec)
    pending = acc.pending()
    contacts = await _contacts(svc, site, list(pending))
    # callbacks after the range: read on only while someone known to be reached is open
    if rng.end_ms <= now_ms and any(contacts.get(p, -1) >= ms for p, ms in pending.items()):
        async for chunk in _chunks(svc, site, rng.end_ms, now_ms + 1):
            for rec, _ in chunk:
                acc.add(rec, listing=False)
            still = acc.pending()
            if not any(contacts.get(p, -1) >= ms for p, ms in still.items()):
                break
    body = {
        "site": site.id,
        **rng.body(),
        **acc.result(contacts, now_ms, site.timezone, None if _wants_csv(request) else limit),
    }
    if _wants_csv(request):
        return _csv(body["calls"], MISSED_CSV, f"missed-{site.id}")
    return json_response(body)


async def unanswered_route(request: Request) -> Response:
    svc, site, rng, now_ms = _context(request)
    limit = parse_limit(request.query_params)
    raw = await svc.redis.zrangebyscore(
        svc.keys.unanswered(site.id), rng.start_ms, rng.end_ms - 1, withscores=True
    )
    waiting = [(_text(c), int(ms)) for c, ms in raw]
    contacts = await _contacts(svc, site, [c for c, _ in waiting])
    acc = Unanswered(waiting, contacts)
    if waiting:
        async for chunk in _chunks(svc, site, rng.start_ms, rng.end_ms):
            for rec, _ in chunk:
                acc.add(rec)
    csv_wanted = _wants_csv(request)
    body = {
        "site": site.id,
        **rng.body(),
        **acc.result(now_ms, site.timezone, None if csv_wanted else limit),
    }
    if csv_wanted:
        return _csv(body["callers"], UNANSWERED_CSV, f"unanswered-{site.id}")
    return json_response(body)


async def heatmap_route(request: Request) -> Response:
    svc, site, rng, _ = _context(request)
    grid = Heatmap(site.timezone)
    async for chunk in _chunks(svc, site, rng.start_ms, rng.end_ms):
        for rec, _ in chunk:
            grid.add(rec)
    return json_response({"site": site.id, **rng.body(), **grid.result()})


async def _pool(
    svc: Services, site: Site, pool: Pool, days: Sequence[str], now_ms: int
) -> dict[str, Any]:
    leases = svc.keys.pool_leases(site.id, pool.id)
    pipe = svc.redis.pipeline(transaction=False)
    pipe.zcount(leases, f"({now_ms}", "+inf")
    pipe.zcount(leases, "-inf", now_ms)
    for day in days:
        pipe.hgetall(svc.keys.pool_stats(site.id, pool.id, day))
    live, free, *stats = await pipe.execute()
    size = len(pool.numbers)
    return pool_report(
        pool.id, size, int(live), int(free), list(zip(days, stats, strict=True)), pool.on_exhausted
    )


async def pools_route(request: Request) -> Response:
    svc, site, rng, now_ms = _context(request)
    days = rng.utc_days()
    pools = [await _pool(svc, site, pool, days, now_ms) for pool in site.pools]
    return json_response(
        {
            "site": site.id,
            **rng.body(),
            "rule": SIZING_RULE,
            "simulate": SIMULATE_HINT,
            "pools": pools,
        }
    )


async def delivery_route(request: Request) -> Response:
    from . import outbox

    svc, site, rng, _ = _context(request)
    days = await outbox.delivery_report(svc.redis, svc.keys, site.id, rng.days())
    return json_response({"site": site.id, **rng.body(), "days": days})


# ---------------------------------------------------------------- the dashboard page

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
ASSETS = {"dashboard.js": "application/javascript", "dashboard.css": "text/css"}


@cache
def _asset(name: str) -> tuple[bytes, str]:
    body = resources.files("attribution.static").joinpath(name).read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


def _serve(request: Request, name: str, media_type: str) -> Response:
    body, etag = _asset(name)
    headers = {
        "ETag": etag,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if name.endswith(".html"):
        headers.update({"Content-Security-Policy": CSP, "X-Frame-Options": "DENY"})
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, headers=headers, media_type=media_type)


async def dashboard(request: Request) -> Response:
    return _serve(request, "dashboard.html", "text/html; charset=utf-8")


async def dashboard_asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ASSETS:
        raise NotFound(f"no dashboard file {name!r}")
    return _serve(request, name, ASSETS[name])


ROUTES = [
    Route("/v1/reports/sources", sources_route, methods=["GET"]),
    Route("/v1/reports/missed", missed_route, methods=["GET"]),
    Route("/v1/reports/unanswered", unanswered_route, methods=["GET"]),
    Route("/v1/reports/heatmap", heatmap_route, methods=["GET"]),
    Route("/v1/reports/pools", pools_route, methods=["GET"]),
    Route("/v1/reports/delivery", delivery_route, methods=["GET"]),
    Route("/dashboard", dashboard, methods=["GET"]),
    Route("/dashboard/{name}", dashboard_asset, methods=["GET"]),
]
