"""Owner reports: the pure aggregations, then the routes over real HTTP and a real Redis."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from support import LiveServer, build_app, flush_redis, make_config

from attribution import reports
from attribution.allocator import Allocator
from attribution.calls import CallLog
from attribution.cdr.record import Cdr
from attribution.errors import BadRequest
from attribution.keys import Keys
from attribution.lua import Scripts
from attribution.matcher import Matcher
from attribution.redis_store import client
from attribution.reports import (
    heatmap,
    missed_report,
    parse_range,
    pool_report,
    recommended_size,
    sizing_advice,
    sources_report,
    unanswered_report,
)

KYIV = ZoneInfo("Europe/Kyiv")
KEY = "acme-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000


def ms(text: str) -> int:
    """UTC ISO → Unix ms."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def rec(
    call_id: str,
    at: int,
    caller: str = "+380671110001",
    status: str = "answered",
    source: str = "google",
    medium: str = "cpc",
    match: str = "exact",
    direction: str = "inbound",
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "call_id": call_id,
        "site": "acme",
        "direction": direction,
        "caller": caller,
        "called": "+380577000011",
        "started_ms": at,
        "status": status,
        "match": match,
        "source": source if match != "unattributed" else "",
        "medium": medium if match != "unattributed" else "",
        "campaign": "",
        "keyword": "",
        "region": "",
        "pool": "paid",
        "first_time_caller": False,
        "value": None,
        "currency": None,
    }
    out.update(extra)
    return out


# ================================================================ time range


NOW = ms("2026-11-24T10:00:00")  # Tuesday 12:00 in Kyiv


def test_default_range_is_the_last_30_days_in_the_site_timezone() -> None:
    rng = parse_range({}, KYIV, NOW)
    assert rng.body() == {
        "timezone": "Europe/Kyiv",
        "from": "2026-10-26T00:00:00+02:00",
        "to": "2026-11-25T00:00:00+02:00",
    }
    assert len(rng.days()) == 30 and rng.days()[-1] == "2026-11-24"


def test_dates_include_the_whole_last_day_and_datetimes_are_read_in_the_site_timezone() -> None:
    rng = parse_range({"from": "2026-11-01", "to": "2026-11-01"}, KYIV, NOW)
    assert (rng.start_ms, rng.end_ms) == (ms("2026-10-31T22:00:00"), ms("2026-11-01T22:00:00"))
    assert rng.days() == ["2026-11-01"]
    assert rng.utc_days() == ["2026-10-31", "2026-11-01"]
    naive = parse_range({"from": "2026-11-01T09:00", "to": "2026-11-01T18:30"}, KYIV, NOW)
    assert naive.start_ms == ms("2026-11-01T07:00:00")
    # an offset wins; a "+" the query string turned into a space still reads as one
    for text in ("2026-11-01T09:00:00+05:00", "2026-11-01T09:00:00 05:00"):
        assert parse_range({"from": text, "to": "2026-11-02"}, KYIV, NOW).start_ms == ms(
            "2026-11-01T04:00:00"
        )
    assert (
        parse_range({"from": "1793000000", "to": "2026-11-02"}, KYIV, NOW).start_ms
        == 1_793_000_000_000
    )


def test_range_across_a_dst_change_keeps_local_days() -> None:
    rng = parse_range({"from": "2026-10-24", "to": "2026-10-26"}, KYIV, NOW)
    assert rng.days() == ["2026-10-24", "2026-10-25", "2026-10-26"]
    # 25 October has 25 hours in Kyiv
    assert rng.end_ms - rng.start_ms == 3 * DAY + HOUR


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2026-11-02", "to": "2026-11-01"}, "to"),
        ({"from": "2026-11-01T10:00", "to": "2026-11-01T10:00"}, "to"),
        ({"from": "2024-01-01", "to": "2026-11-01"}, "from"),
        ({"to": "9999-12-31"}, "to"),
    ],
)
def test_bad_ranges_name_their_field(params: dict[str, str], field: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_range(params, KYIV, NOW)
    assert info.value.field == field


# ================================================================ sources


def sample() -> list[dict[str, Any]]:
    t = ms("2026-11-20T08:00:00")
    return [
        rec(
            "a1",
            t,
            "+380671110001",
            first_time_caller=True,
            value=25.0,
            currency="UAH",
            campaign="spring",
        ),
        rec(
            "a2",
            t + MIN,
            "+380671110002",
            status="missed",
            first_time_caller=True,
            value=25.0,
            currency="UAH",
            campaign="autumn",
        ),
        rec(
            "a3",
            t + 2 * MIN,
            "+380671110001",
            value=25.0,
            currency="UAH",
            campaign="spring",
            match="ambiguous",
            candidates=2,
        ),
        rec(
            "b1",
            t + 3 * MIN,
            "+380671110003",
            status="busy",
            source="(direct)",
            medium="(none)",
            pool="tollfree",
            first_time_caller=True,
        ),
        rec(
            "b2",
            t + 4 * MIN,
            "+380671110003",
            status="failed",
            source="(direct)",
            medium="(none)",
            pool="tollfree",
        ),
        rec(
            "u1",
            t + 5 * MIN,
            "+380671110004",
            match="unattributed",
            pool="paid",
            first_time_caller=True,
        ),
        rec("u2", t + 6 * MIN, "", status="missed", match="unattributed", pool=""),
        rec(
            "s1",
            t + 7 * MIN,
            "+380671110005",
            source="billboard",
            medium="offline",
            match="static",
            pool="static",
            first_time_caller=True,
        ),
        rec("o1", t + 8 * MIN, "+380577000000", direction="outbound", called="+380671110002"),
    ]


def test_sources_counts_inbound_calls_per_channel_with_money_and_totals() -> None:
    body = sources_report(sample(), revenue={"a1": 100.0, "b2": 40.5})
    rows = {r["label"]: r for r in body["rows"]}
    assert [r["label"] for r in body["rows"]] == [
        "google / cpc",
        "(direct) / (none)",
        "(unattributed)",
        "billboard / offline",
    ]
    g = rows["google / cpc"]
    assert (
        g["calls"],
        g["answered"],
        g["missed"],
        g["first_time_callers"],
        g["unique_callers"],
        g["ambiguous"],
    ) == (3, 2, 1, 2, 2, 1)
    assert g["value"] == 150.0 and g["currency"] == "UAH"  # 2 answered x 25 + 100 revenue
    assert g["attributed_share"] == 1.0 and g["answer_rate"] == pytest.approx(0.6667)
    d = rows["(direct) / (none)"]
    assert (d["calls"], d["missed"], d["value"], d["currency"]) == (2, 2, 40.5, None)
    u = rows["(unattributed)"]
    assert (u["source"], u["calls"], u["attributed_share"], u["unique_callers"]) == (
        "(unattributed)",
        2,
        0.0,
        1,
    )
    t = body["totals"]
    assert (
        t["calls"],
        t["answered"],
        t["missed"],
        t["first_time_callers"],
        t["unique_callers"],
        t["attributed"],
    ) == (8, 4, 4, 5, 5, 6)
    assert t["attributed_share"] == 0.75 and t["value"] == 190.5
    assert t["currencies"] == ["UAH"]
    assert sum(r["share"] for r in body["rows"]) == pytest.approx(1.0)


def test_sources_split_by_campaign_and_by_pool() -> None:
    body = sources_report(sample(), by="campaign")
    rows = {r["label"]: r for r in body["rows"]}
    labels = list(rows)
    assert rows["google / cpc · spring"]["calls"] == 2
    assert rows["google / cpc · spring"]["campaign"] == "spring"
    assert "google / cpc · autumn" in labels and "(direct) / (none) · (not set)" in labels
    assert "(unattributed)" in labels
    # by pool, an unattributed call stays with the pool whose number was called
    pools = {r["label"]: r for r in sources_report(sample(), by="pool")["rows"]}
    assert pools["(unattributed) · paid"]["calls"] == 1
    assert pools["(unattributed)"]["calls"] == 1
    assert pools["google / cpc · paid"]["calls"] == 3
    with pytest.raises(ValueError, match="by must be"):
        sources_report([], by="device")


def test_sources_of_nothing() -> None:
    body = sources_report([])
    assert body["rows"] == []
    assert body["totals"]["calls"] == 0 and body["totals"]["attributed_share"] is None


# ================================================================ heatmap


def test_heatmap_puts_calls_on_local_weekday_and_hour_across_dst() -> None:
    calls = [
        rec("m", ms("2026-11-23T03:00:00")),  # Mon 05:00 Kyiv
        rec("m2", ms("2026-11-23T03:59:59"), status="missed"),  # Mon 05:59 Kyiv
        rec("s1", ms("2026-03-29T00:30:00")),  # Sun 02:30 (+02)
        rec("s2", ms("2026-03-29T01:30:00"), status="busy"),  # Sun 04:30 (+03)
        rec("f1", ms("2026-10-25T00:30:00")),  # Sun 03:30 (+03)
        rec("f2", ms("2026-10-25T01:30:00"), status="missed"),  # Sun 03:30 again (+02)
        rec("out", ms("2026-11-23T03:00:00"), direction="outbound"),
    ]
    grid = heatmap(calls, KYIV)
    assert grid["weekdays"][0] == "Mon" and len(grid["calls"]) == 7
    assert all(len(row) == 24 for row in grid["calls"])
    assert grid["calls"][0][5] == 2 and grid["missed"][0][5] == 1
    assert grid["missed_share"][0][5] == 0.5
    assert grid["calls"][6][2] == 1 and grid["calls"][6][3] == 2 and grid["calls"][6][4] == 1
    assert grid["missed"][6][3] == 1 and grid["missed"][6][4] == 1
    assert grid["missed_share"][6][3] == 0.5 and grid["missed_share"][6][4] == 1.0
    assert grid["missed_share"][1][0] is None  # no call: no share
    assert (grid["total_calls"], grid["total_missed"], grid["max_calls"]) == (6, 3, 2)


def test_heatmap_follows_the_site_timezone() -> None:
    moment = [rec("x", ms("2026-11-23T03:00:00"))]
    ny = heatmap(moment, ZoneInfo("America/New_York"))
    tokyo = heatmap(moment, ZoneInfo("Asia/Tokyo"))
    assert ny["calls"][6][22] == 1  # Sunday 22:00
    assert tokyo["calls"][0][12] == 1  # Monday 12:00
    assert heatmap(moment, UTC)["calls"][0][3] == 1


# ================================================================ missed and unanswered


def test_missed_calls_know_whether_and_when_the_caller_was_reached() -> None:
    t = ms("2026-11-20T08:00:00")
    records = [
        rec("m1", t, "+380671110001", status="missed"),
        rec("m2", t + 5 * MIN, "+380671110001", status="busy"),
        rec("back", t + 20 * MIN, "+380577000000", direction="outbound", called="+380671110001"),
        rec("m3", t + HOUR, "+380671110002", status="missed"),
        rec("again", t + 3 * HOUR, "+380671110002", status="answered"),
        rec("m4", t + 4 * HOUR, "+380671110003", status="failed"),
        rec("m5", t + 5 * HOUR, "+380671110004", status="missed"),
        rec("m6", t + 6 * HOUR, "", status="missed"),
        rec("ok", t + 7 * HOUR, "+380671110009"),
    ]
    # caller 4 was reached after the range (only the contact hash knows)
    contacts = {"+380671110004": t + 30 * HOUR}
    body = missed_report(records, contacts, t + DAY, KYIV)
    calls = {c["call_id"]: c for c in body["calls"]}
    assert [c["call_id"] for c in body["calls"]] == ["m6", "m5", "m4", "m3", "m2", "m1"]
    assert calls["m1"]["reached"] and calls["m1"]["reached_by"] == "outbound_call"
    assert calls["m1"]["reached_after_seconds"] == 20 * 60
    assert calls["m2"]["reached_after_seconds"] == 15 * 60
    assert calls["m3"]["reached_by"] == "answered_call"
    assert calls["m3"]["reached_after_seconds"] == 2 * 3600
    assert calls["m3"]["reached_at"] == "2026-11-20T13:00:00+02:00"
    assert not calls["m4"]["reached"] and calls["m4"]["waiting_seconds"] == 20 * 3600
    assert calls["m5"]["reached_by"] == "later_contact"
    assert calls["m5"]["reached_after_seconds"] == 25 * 3600
    assert not calls["m6"]["reached"]
    assert body["summary"] == {
        "missed": 6,
        "reached": 4,
        "not_reached": 2,
        "reached_share": 0.6667,
        "median_reach_seconds": 4200,
    }
    limited = missed_report(records, contacts, t + DAY, KYIV, limit=2)
    assert len(limited["calls"]) == 2 and limited["truncated"]
    assert limited["summary"]["missed"] == 6


def test_unanswered_callers_oldest_first_with_their_channel() -> None:
    t = ms("2026-11-20T08:00:00")
    records = [
        rec("old", t - 2 * DAY, "+380671110001", status="missed", campaign="winter"),
        rec("a1", t, "+380671110001", status="missed", campaign="spring"),
        rec(
            "a2",
            t + HOUR,
            "+380671110001",
            status="busy",
            match="unattributed",
            called="+380577000000",
        ),
        rec("b1", t - HOUR, "+380671110002", status="missed", source="bing"),
        rec("c1", t + 2 * HOUR, "+380671110003", status="missed"),
        rec("x", t + 3 * HOUR, "+380671110009", status="missed"),  # reached: not listed
    ]
    waiting = [
        ("+380671110002", t - HOUR),
        ("+380671110001", t + HOUR),
        ("+380671110003", t + 2 * HOUR),
    ]
    # caller 1 was called back between "old" and "a1"
    contacts = {"+380671110001": t - DAY}
    body = unanswered_report(waiting, records, contacts, t + 4 * HOUR, KYIV)
    assert [c["caller"] for c in body["callers"]] == [
        "+380671110002",
        "+380671110001",
        "+380671110003",
    ]
    one = body["callers"][1]
    assert one["missed_calls"] == 3
    assert one["since"] == "2026-11-20T10:00:00+02:00"  # a1, after the callback
    assert one["last_missed_at"] == "2026-11-20T11:00:00+02:00"
    assert one["waiting_seconds"] == 4 * 3600
    assert (one["source"], one["medium"], one["campaign"]) == ("google", "cpc", "spring")
    assert one["last_call_id"] == "a2" and one["called"] == "+380577000000"
    assert body["callers"][0]["source"] == "bing"
    assert body["total"] == 3 and not body["truncated"]
    # a waiting caller whose calls are outside the records still shows
    lone = unanswered_report([("+380671119999", t)], [], {}, t + MIN, KYIV)["callers"][0]
    assert (lone["missed_calls"], lone["waiting_seconds"], lone["source"]) == (0, 60, "")


# ================================================================ pools and sizing


def test_recommended_size_rule() -> None:
    assert [recommended_size(p) for p in (0, 1, 4, 8, 48)] == [1, 3, 6, 11, 61]


def test_sizing_advice_grows_a_pool_near_its_size() -> None:
    advice = sizing_advice(50, 48, 900, 0)
    assert advice["status"] == "grow" and advice["recommended_size"] == 61
    assert "peak 48 of 50 numbers held at once" in advice["text"].lower()
    assert "add at least 11 numbers" in advice["text"]
    assert "callpath simulate" in advice["text"]
    assert sizing_advice(1, 1, 3, 0)["recommended_size"] == 3


def test_sizing_advice_after_overflow_says_what_visitors_got() -> None:
    shared = sizing_advice(3, 3, 40, 4)
    assert shared["status"] == "grow" and shared["recommended_size"] == 5
    assert "4 of 40 visitors (10.0%)" in shared["text"] and "ambiguous" in shared["text"]
    assert "add at least 2 numbers" in shared["text"].lower()
    fallback = sizing_advice(3, 3, 40, 4, "fallback")
    assert "site's own number" in fallback["text"]


def test_sizing_advice_shrinks_an_idle_pool_and_keeps_a_right_one() -> None:
    shrink = sizing_advice(50, 10, 300, 0)
    assert shrink["status"] == "shrink" and shrink["recommended_size"] == 14
    assert "could shrink to 14 numbers" in shrink["text"]
    ok = sizing_advice(50, 30, 300, 0)
    assert ok["status"] == "ok" and ok["recommended_size"] == 50
    # under half, but the rule's size would not be smaller: keep it
    assert sizing_advice(3, 1, 10, 0)["status"] == "ok"
    assert sizing_advice(4, 1, 10, 0)["recommended_size"] == 3
    idle = sizing_advice(10, 0, 0, 0)
    assert idle["status"] == "idle" and idle["recommended_size"] is None


def test_pool_report_sums_the_daily_counters() -> None:
    daily: list[tuple[str, Mapping[Any, Any]]] = [
        ("2026-11-22", {b"new": b"10", b"held": b"0", b"peak": b"2"}),
        ("2026-11-23", {}),
        ("2026-11-24", {"new": "6", "shared": "2", "fallback": "0", "peak": "3"}),
    ]
    body = pool_report("paid", 3, 1, 2, daily)
    assert (body["new"], body["shared"], body["offered"], body["overflow"]) == (16, 2, 18, 2)
    assert body["overflow_rate"] == pytest.approx(0.1111)
    assert (body["peak"], body["peak_day"]) == (3, "2026-11-24")
    assert body["days"][1] == {
        "day": "2026-11-23",
        "new": 0,
        "held": 0,
        "shared": 0,
        "fallback": 0,
        "peak": 0,
        "offered": 0,
        "overflow_rate": None,
    }
    assert body["advice"]["status"] == "grow"


# ================================================================ routes


class Seeder:
    """Real data for the routes: leases, sessions and CDRs through the call log."""

    OWN = "+380577000000"
    STATIC = "+380577000050"

    def __init__(self, r: Any, keys: Keys, now_ms: int) -> None:
        self.cfg = make_config()
        self.site = self.cfg.sites[0]
        self.scripts = Scripts(r)
        self.alloc = Allocator(self.cfg, self.scripts, keys)
        self.log = CallLog(
            self.cfg, r, self.scripts, keys, Matcher(self.cfg, r, self.scripts, keys)
        )
        self.r, self.keys, self.now = r, keys, now_ms

    async def lease(self, pool: str, sid: str, at: int, **visit: str) -> str:
        await self.r.hset(
            self.keys.session(sid),
            mapping={
                "site": "acme",
                "first_seen": at,
                "last_seen": at,
                "ga_client_id": "111.222",
                **visit,
            },
        )
        pool_cfg = self.site.pool(pool)
        assert pool_cfg is not None
        return (await self.alloc.lease(self.site, pool_cfg, sid, at)).number

    async def call(
        self,
        call_id: str,
        at: int,
        caller: str,
        called: str,
        status: str = "answered",
        direction: str = "inbound",
    ) -> None:
        s = at / 1000
        cdr = Cdr(
            call_id,
            direction,
            caller,
            called,
            s,
            s + 5 if status == "answered" else None,
            s + 65,
            status,
            65,
            60 if status == "answered" else 0,
            None,
        )
        await self.log.ingest(self.site, [self.log.prepare(self.site, cdr)])

    async def seed(self) -> None:
        """Six inbound calls and one callback over the last three days."""
        n = self.now
        await self.alloc.sync()
        g1 = await self.lease(
            "paid", "g1", n - 3 * DAY, source="google", medium="cpc", campaign="spring"
        )
        await self.call("c1", n - 3 * DAY + MIN, "+380671110001", g1)
        g2 = await self.lease(
            "paid", "g2", n - 2 * DAY, source="google", medium="cpc", campaign="=cmd|' /C calc'!A0"
        )
        await self.call("c2", n - 2 * DAY + MIN, "+380671110002", g2, "missed")
        await self.call(
            "c3", n - 2 * DAY + 30 * MIN, self.OWN, "+380671110002", direction="outbound"
        )
        d1 = ""
        for i in range(4):  # tollfree has 3 numbers and falls back: one overflow
            number = await self.lease(
                "tollfree", f"d{i}", n - DAY + i, source="(direct)", medium="(none)"
            )
            d1 = d1 or number
        await self.call("c4", n - DAY + MIN, "+380671110003", d1, "missed")
        await self.call("c5", n - DAY + 2 * HOUR, "+380671110003", self.OWN, "missed")
        await self.call("c6", n - 5 * HOUR, "+380671110004", self.STATIC)
        await self.call("c7", n - 4 * HOUR, "+380671110005", self.OWN, "busy")
        await self.lease("paid", "live1", n, source="google", medium="cpc")
        # a conversion recorded 100 on the first call
        await self.r.hset(self.keys.revenue("acme"), "c1", "100")


def report_app(redis_url: str) -> Any:
    return build_app(redis_url)


async def seed(redis_url: str, now_ms: int) -> None:
    c = client(redis_url)
    try:
        await c.flushall()
        await Seeder(c, Keys("cptest"), now_ms).seed()
    finally:
        await c.aclose()


@pytest.fixture
def server(redis_url: str) -> Iterator[LiveServer]:
    import asyncio

    now_ms = int(time.time() * 1000)
    asyncio.run(seed(redis_url, now_ms))
    with LiveServer(report_app(redis_url)) as srv:
        srv.seeded_at = now_ms  # type: ignore[attr-defined]
        yield srv
    flush_redis(redis_url)


def seeded_at(srv: LiveServer) -> int:
    return int(getattr(srv, "seeded_at"))  # noqa: B009


def get(
    srv: LiveServer, name: str, headers: dict[str, str] | None = None, /, **params: str
) -> httpx.Response:
    return httpx.get(
        f"{srv.url}/v1/reports/{name}",
        params=params,
        headers={**AUTH, **(headers or {})},
        timeout=10,
    )


def test_sources_route(server: LiveServer) -> None:
    res = get(server, "sources")
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["site"] == "acme" and body["timezone"] == "Europe/Kyiv"
    rows = {r["label"]: r for r in body["rows"]}
    assert [r["label"] for r in body["rows"]] == [
        "(unattributed)",
        "google / cpc",
        "(direct) / (none)",
        "billboard / offline",
    ]
    g = rows["google / cpc"]
    assert (g["calls"], g["answered"], g["missed"], g["first_time_callers"]) == (2, 1, 1, 2)
    assert (g["value"], g["currency"]) == (125.0, "UAH")  # 25 per answered call + 100
    assert rows["(unattributed)"]["calls"] == 2
    assert rows["(unattributed)"]["missed"] == 2
    assert rows["billboard / offline"]["answered"] == 1
    t = body["totals"]
    assert (t["calls"], t["missed"], t["unique_callers"], t["first_time_callers"]) == (6, 4, 5, 5)
    assert t["attributed_share"] == pytest.approx(4 / 6, abs=1e-4)

    by_pool = {r["label"]: r for r in get(server, "sources", by="pool").json()["rows"]}
    assert by_pool["(direct) / (none) · tollfree"]["calls"] == 1
    assert by_pool["billboard / offline · static"]["calls"] == 1


def test_sources_csv_is_safe_for_spreadsheets(server: LiveServer) -> None:
    res = get(server, "sources", {"Accept": "text/csv"}, by="campaign")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(res.text)))
    campaigns = {r["campaign"] for r in rows}
    assert "spring" in campaigns
    assert "'=cmd|' /C calc'!A0" in campaigns  # a formula is never live
    assert rows[-1]["label"] == "(total)" and rows[-1]["calls"] == "6"


def test_missed_route(server: LiveServer) -> None:
    body = get(server, "missed").json()
    calls = body["calls"]
    assert [c["call_id"] for c in calls] == ["c7", "c5", "c4", "c2"]
    c2 = calls[-1]
    assert c2["reached"] and c2["reached_by"] == "outbound_call"
    assert c2["reached_after_seconds"] == 29 * 60
    assert c2["caller"] == "+380671110002" and c2["campaign"].startswith("=cmd")
    assert not calls[0]["reached"] and calls[0]["waiting_seconds"] >= 4 * 3600
    assert body["summary"]["missed"] == 4 and body["summary"]["reached"] == 1
    text = get(server, "missed", {"Accept": "text/csv"}).text
    assert text.splitlines()[0].startswith("started_at,call_id,caller")
    assert len(text.strip().splitlines()) == 5


def test_missed_route_finds_callbacks_after_the_range(server: LiveServer) -> None:
    # the range holds the missed call c2 and ends before the callback 29 minutes later
    c2_ms = seeded_at(server) - 2 * DAY + MIN
    window = {
        "from": reports.iso_local(c2_ms - 10 * MIN, KYIV) or "",
        "to": reports.iso_local(c2_ms + 10 * MIN, KYIV) or "",
    }
    body = get(server, "missed", **window).json()
    assert [c["call_id"] for c in body["calls"]] == ["c2"]
    assert body["calls"][0]["reached_by"] == "outbound_call"
    assert body["calls"][0]["reached_after_seconds"] == 29 * 60


def test_unanswered_route(server: LiveServer) -> None:
    body = get(server, "unanswered").json()
    callers = body["callers"]
    assert [c["caller"] for c in callers] == ["+380671110003", "+380671110005"]
    first = callers[0]
    assert first["missed_calls"] == 2
    assert (first["source"], first["medium"]) == ("(direct)", "(none)")
    assert first["waiting_seconds"] >= 86400 - 120
    assert callers[1]["source"] == "" and callers[1]["match"] == "unattributed"
    text = get(server, "unanswered", {"Accept": "text/csv"}).text
    assert "+380671110003" in text and "+380671110002" not in text


def test_heatmap_route(server: LiveServer) -> None:
    body = get(server, "heatmap").json()
    assert body["total_calls"] == 6 and body["total_missed"] == 4
    assert len(body["calls"]) == 7 and all(len(row) == 24 for row in body["calls"])
    c6 = datetime.fromtimestamp((seeded_at(server) - 5 * HOUR) / 1000, KYIV)
    assert body["calls"][c6.weekday()][c6.hour] >= 1


def test_pools_route(server: LiveServer) -> None:
    body = get(server, "pools").json()
    assert "ceil(peak x 1.25) + 1" in body["rule"]
    pools = {p["pool"]: p for p in body["pools"]}
    assert set(pools) == {"kharkiv-paid", "paid", "tollfree"}
    paid = pools["paid"]
    assert (paid["size"], paid["live"], paid["free"], paid["new"]) == (3, 1, 2, 3)
    assert paid["advice"]["status"] in ("ok", "shrink")
    toll = pools["tollfree"]
    assert (toll["new"], toll["fallback"], toll["peak"]) == (3, 1, 3)
    assert toll["overflow_rate"] == 0.25 and toll["live"] == 0 and toll["free"] == 3
    assert toll["advice"]["status"] == "grow" and toll["advice"]["recommended_size"] == 5
    assert "site's own number" in toll["advice"]["text"]
    assert pools["kharkiv-paid"]["advice"]["status"] == "idle"


def test_delivery_route(server: LiveServer) -> None:
    body = get(server, "delivery", **{"from": "2026-11-01", "to": "2026-11-03"}).json()
    assert [d["day"] for d in body["days"]] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    days = get(server, "delivery").json()["days"]
    assert len(days) == 30 and sum(d["calls"] for d in days) == 7


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "last week"}, "from"),
        ({"from": "2026-11-05", "to": "2026-11-01"}, "to"),
        ({"by": "device"}, "by"),
    ],
)
def test_bad_parameters_are_400_with_the_field(
    server: LiveServer, params: dict[str, str], field: str
) -> None:
    res = get(server, "sources", **params)
    assert res.status_code == 400
    body = res.json()
    assert body["error"] == "bad_request" and body["field"] == field and body["detail"]


def test_limit_is_checked(server: LiveServer) -> None:
    assert get(server, "missed", limit="0").json()["field"] == "limit"
    body = get(server, "missed", limit="1").json()
    assert len(body["calls"]) == 1 and body["truncated"]


@pytest.mark.parametrize(
    "name", ["sources", "missed", "unanswered", "heatmap", "pools", "delivery"]
)
def test_reports_need_the_site_key(server: LiveServer, name: str) -> None:
    assert httpx.get(f"{server.url}/v1/reports/{name}").status_code == 401
    res = get(server, name, {"Authorization": "Bearer wrong"})
    assert res.status_code == 401 and res.json()["field"] == "authorization"


def test_dashboard_is_served_with_a_strict_policy(server: LiveServer) -> None:
    page = httpx.get(f"{server.url}/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert '<script src="dashboard/dashboard.js"' in page.text
    assert "<script>" not in page.text and " on" + "click=" not in page.text
    js = httpx.get(f"{server.url}/dashboard/dashboard.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "innerHTML" not in js.text.replace("no innerHTML", "")
    again = httpx.get(
        f"{server.url}/dashboard/dashboard.js", headers={"If-None-Match": js.headers["etag"]}
    )
    assert again.status_code == 304
    assert httpx.get(f"{server.url}/dashboard/dashboard.css").status_code == 200
    assert httpx.get(f"{server.url}/dashboard/secrets.txt").status_code == 404
