"""Durable GA4 delivery against a real embedded Redis and the stand-in over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from ga4_standin import Standin
from hypothesis import given
from hypothesis import strategies as st
from support import BASE_TOML, TEST_ENV, make_config

from attribution import outbox
from attribution.calls import store_op
from attribution.config import Config
from attribution.errors import NotFound
from attribution.keys import Keys
from attribution.lua import Scripts
from attribution.outbox import GROUP, Tuning

SITE = "acme"
KYIV = ZoneInfo("Europe/Kyiv")
FAST = Tuning(
    block_ms=50,
    min_idle_ms=60_000,
    claim_every_s=0.1,
    backoff_base_s=0.02,
    backoff_cap_s=0.2,
    error_pause_s=0.05,
)
RETENTION_MS = 400 * 86_400_000


# ---------------------------------------------------------------- helpers


@pytest.fixture
def cfg() -> Config:
    return make_config()


@pytest.fixture
def standin(live: Callable[..., Any]) -> Iterator[Standin]:
    s = Standin({"G-ACME123": TEST_ENV["ACME_GA4_SECRET"]})
    with live(s.app) as srv:
        s.url = f"{srv.url}/mp/collect"
        yield s
        s.close()


def make_record(n: int, *, started_ms: int | None = None, **over: Any) -> dict[str, Any]:
    started = started_ms if started_ms is not None else int((time.time() - 300) * 1000)
    rec: dict[str, Any] = {
        "call_id": f"pbx-{n}",
        "site": SITE,
        "direction": "inbound",
        "caller": f"+38067{5550000 + n:07d}",
        "called": "+380577000011",
        "started_at": datetime.fromtimestamp(started / 1000, ZoneInfo("UTC")).isoformat(),
        "started_ms": started,
        "answered_at": None,
        "ended_at": None,
        "status": "answered",
        "duration": 60,
        "billsec": 50,
        "recording_url": f"https://pbx.example/rec/{n}.mp3",
        "match": "exact",
        "candidates": 1,
        "pool": "paid",
        "sid": f"sid-{n:04d}-zz9",
        "source": "google",
        "medium": "cpc",
        "campaign": "spring",
        "keyword": "plumber",
        "region": "kharkiv",
        "landing_page": f"https://acme.example/?gclid=x&n={n}",
        "last_page": "https://acme.example/contact",
        "device": "mobile",
        "time_on_site": 30,
        "first_time_caller": "?",
        "ga_client_id": f"{1000 + n}.{1700000000 + n}",
        "ga_session_id": str(1700000000 + n),
        "value": None,
        "currency": None,
        "received_ms": int(time.time() * 1000),
    }
    rec.update(over)
    return rec


def day_of(rec: dict[str, Any]) -> str:
    return datetime.fromtimestamp(rec["started_ms"] / 1000, KYIV).strftime("%Y-%m-%d")


def not_owed_reason(rec: dict[str, Any]) -> str:
    if rec["direction"] != "inbound":
        return "outbound"
    if rec["match"] == "unattributed":
        return "unattributed"
    if not rec["ga_client_id"]:
        return "no_client_id"
    return ""


async def store(r: Any, keys: Keys, rec: dict[str, Any], cfg: Config | None = None) -> None:
    """Store a call exactly as the CDR path does (store_call.lua)."""
    site = (cfg or make_config()).site(rec["site"])
    assert site is not None
    kept = {
        k: v
        for k, v in rec.items()
        if k not in ("site", "started_at", "answered_at", "ended_at", "first_time_caller")
    }
    await Scripts(r)(*store_op(keys, site, kept, RETENTION_MS, not_owed_reason(rec)))


@contextlib.asynccontextmanager
async def running(
    cfg: Config,
    r: Any,
    keys: Keys,
    standin: Standin,
    tuning: Tuning = FAST,
    name: str | None = None,
    clock: Callable[[], float] | None = None,
) -> AsyncIterator[asyncio.Task[None]]:
    """A worker task (own HTTP client) until the block ends; stopped gracefully."""
    stop = asyncio.Event()
    if clock is None:
        task = asyncio.create_task(
            outbox.run_worker(cfg, r, keys, standin.url, name=name, stop=stop, tuning=tuning)
        )
    else:
        task = asyncio.create_task(_clocked(cfg, r, keys, standin, tuning, name, clock, stop))
    try:
        yield task
    finally:
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), 5)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
            await asyncio.wait({task}, timeout=5)
            assert task.done(), "the worker did not stop when cancelled"


async def _clocked(
    cfg: Config,
    r: Any,
    keys: Keys,
    standin: Standin,
    tuning: Tuning,
    name: str | None,
    clock: Callable[[], float],
    stop: asyncio.Event,
) -> None:
    async with outbox.http_client() as http:
        worker = outbox.Worker(
            cfg,
            r,
            keys,
            outbox.ga4.Sender(http, standin.url),
            name=name,
            tuning=tuning,
            clock=clock,
        )
        await worker.run(stop)


async def until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> None:
    """Poll an async or sync predicate until true, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


async def settled(r: Any, keys: Keys, site: str = SITE) -> bool:
    """Nothing left to do: stream empty, nothing pending, no retry waiting."""
    return (
        await r.xlen(keys.outbox(site)) == 0
        and (await r.xpending(keys.outbox(site), GROUP))["pending"] == 0
        and await r.zcard(keys.retry(site)) == 0
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def report(r: Any, keys: Keys, *days: str) -> list[dict[str, Any]]:
    return await outbox.delivery_report(r, keys, SITE, list(days))


def assert_no_personal_data(standin: Standin, records: list[dict[str, Any]]) -> None:
    """Every body that reached the endpoint is free of the calls' personal data."""
    bodies = [b.decode() for b in standin.bodies]
    assert bodies, "no bodies captured"
    for text in bodies:
        assert not re.search(r"\+\d", text), text
        digits = re.sub(r"\D", "", text)
        for rec in records:
            for party in (rec["caller"], rec["called"]):
                assert party[-9:] not in digits, (party, text)
            for value in (
                rec["sid"],
                rec["recording_url"],
                rec["landing_page"],
                rec["last_page"],
                rec["call_id"],
                "pbx.example",
                "acme.example",
            ):
                assert value not in text, (value, text)


# ---------------------------------------------------------------- delivery


@pytest.mark.anyio
async def test_delivers_a_call_into_the_visitors_session(
    cfg: Config, r: Any, keys: Keys, standin: Standin
) -> None:
    rec = make_record(1, value=25.0, currency="UAH")
    await store(r, keys, rec)
    async with running(cfg, r, keys, standin):
        [got] = await standin.wait_accepted(1)
        await until(lambda: settled(r, keys), what="settled")
    body = got.body
    assert got.query["measurement_id"] == "G-ACME123"
    assert body["client_id"] == rec["ga_client_id"]
    assert body["timestamp_micros"] == rec["started_ms"] * 1000
    [event] = body["events"]
    assert event["name"] == "phone_call"
    params = event["params"]
    assert params["session_id"] == int(rec["ga_session_id"])
    assert params["engagement_time_msec"] >= 1
    assert params["call_status"] == "answered" and params["call_duration"] == 50
    assert params["first_time_caller"] == "yes"
    assert (params["value"], params["currency"]) == (25.0, "UAH")
    assert await r.hexists(keys.sent(SITE), "call:pbx-1")
    [row] = await report(r, keys, day_of(rec))
    assert (row["owed"], row["delivered"], row["pending"], row["dead"]) == (1, 1, 0, 0)
    assert standin.rejected == []
    assert_no_personal_data(standin, [rec])


@pytest.mark.anyio
async def test_outage_then_recovery_delivers_once(
    cfg: Config, r: Any, keys: Keys, standin: Standin
) -> None:
    standin.fail_next(503, 3)
    rec = make_record(2)
    await store(r, keys, rec)
    async with running(cfg, r, keys, standin):
        await standin.wait_accepted(1)
        await until(lambda: settled(r, keys), what="settled")
    assert len(standin.accepted) == 1 and standin.requests == 4
    [row] = await report(r, keys, day_of(rec))
    assert (row["delivered"], row["retried"], row["dead"], row["pending"]) == (1, 3, 0, 0)
    assert standin.rejected == []


@pytest.mark.anyio
async def test_retry_waits_durably_in_redis_and_honours_retry_after(
    cfg: Config, r: Any, keys: Keys, standin: Standin
) -> None:
    standin.fail_next(503, 1, retry_after=5)
    rec = make_record(3)
    t0 = time.time()
    await store(r, keys, rec)
    async with running(cfg, r, keys, standin, tuning=replace(FAST, backoff_cap_s=60)):
        await until(lambda: r.zcard(keys.retry(SITE)), what="a parked retry")
    # the worker is gone; the retry waits in Redis with its due time and attempt count
    [(job, due)] = await r.zrange(keys.retry(SITE), 0, -1, withscores=True)
    fields = json.loads(job)
    assert fields["attempt"] == "1" and fields["id"] == "pbx-3"
    assert fields["last_error"].startswith("http_503")
    assert due >= (t0 + 5) * 1000  # Retry-After beat the tiny backoff
    assert standin.accepted == []
    # another process, five seconds later, takes it from there
    async with running(
        cfg, r, keys, standin, name="another-process", clock=lambda: time.time() + 6
    ):
        await standin.wait_accepted(1)
        await until(lambda: settled(r, keys), what="settled")
    assert len(standin.accepted) == 1
    [row] = await report(r, keys, day_of(rec))
    assert (row["retried"], row["delivered"], row["pending"]) == (1, 1, 0)


@pytest.mark.anyio
async def test_entry_of_a_worker_that_died_before_sending_is_reclaimed(
    cfg: Config, r: Any, keys: Keys, standin: Standin
) -> None:
    rec = make_record(4)
    await store(r, keys, rec)
    stream = keys.outbox(SITE)
    await r.xgroup_create(stream, GROUP, id="0", mkstream=True)
    # a worker read the entry and died: it sits in that consumer's pending list
    read = await r.xreadgroup(GROUP, "crashed:1:dead", {stream: ">"}, count=10)
    assert len(read[0][1]) == 1
    async with running(cfg, r, keys, standin, tuning=replace(FAST, min_idle_ms=300)):
        await standin.wait_accepted(1)
        await until(lambda: settled(r, keys), what="settled")
    assert len(standin.accepted) == 1
    [row] = await report(r, keys, day_of(rec))
    assert (row["delivered"], row["pending"]) == (1, 0)


@pytest.mark.anyio
async def test_worker_killed_mid_delivery_then_another_delivers_once(
    cfg: Config, r: Any, keys: Keys, standin: Standin
) -> None:
    standin.hang_next(1.5)
    rec = make_record(5)
    await store(r, keys, rec)
    stop = asyncio.Event()
    first = asyncio.create_task(
        outbox.run_worker(cfg, r, keys, standin.url, name="w1", stop=stop, tuning=FAST)
    )
    await until(lambda: standin.hanging == 1, what="the request to hang")
    first.cancel()  # killed while GA had not answered
    with contextlib.suppress(asyncio.CancelledError):
        await first
    pending = await r.xpending(keys.outbox(SITE), GROUP)
    assert pending["pending"] == 1
    assert [_text(c["name"]) for c in pending["consumers"]] == ["w1"]
    async with running(cfg, r, keys, standin, name="w2", tuning=replace(FAST, min_idle_ms=200)):
        await standin.wait_accepted(1)
        await until(lambda: settled(r, keys), what="settled")
        await until(lambda: standin.abandoned == 1, what="the killed request to end")
    assert len(standin.accepted) == 1
    [row] = await report(r, keys, day_of(rec))
    assert (row["delivered"], row["pending"], row["dead"]) == (1, 0, 0)


@pytest.mark.anyio
async def test_two_workers_deliver_100_events_exactly_once(
    cfg: Config, r: Any, keys: Keys, standin: Standin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="callpath.outbox")
    records = [make_record(100 + i) for i in range(100)]
    async with running(cfg, r, keys, standin, name="a"), running(cfg, r, keys, standin, name="b"):
        for rec in records:
            await store(r, keys, rec)
        await standin.wait_accepted(100, timeout=20)
        await until(lambda: settled(r, keys), what="settled")
    seen = Counter(body["client_id"] for _, body in standin.events())
    assert len(seen) == 100 and set(seen.values()) == {1}
    by_worker = Counter(
        m.rsplit("worker=", 1)[1] for m in caplog.messages if "outcome=delivered" in m
    )
    assert sum(by_worker.values()) == 100
    assert set(by_worker) == {"a", "b"}, by_worker  # both took part
    assert seen.keys() == {rec["ga_client_id"] for rec in records}
    assert await r.hlen(keys.sent(SITE)) == 100
    rows = await report(r, keys, *sorted({day_of(rec) for rec in records}))
    assert sum(row["delivered"] for row in rows) == 100
    assert all(row["pending"] == 0 and row["consistent"] for row in rows)
    assert standin.rejected == []
    assert_no_personal_data(standin, records)


@pytest.mark.anyio
async def test_counters_stay_exact_when_workers_steal_in_flight_entries(
    cfg: Config, r: Any, keys: Keys, standin: Standin
) -> None:
    # min idle far below the request time: each worker reclaims the other's entries while
    # they are in flight, the one window where GA may get an event twice
    greedy = replace(FAST, min_idle_ms=1, claim_every_s=0.0)
    standin.hang_next(0.05, 40)
    standin.fail_next(503, 5)
    records = [make_record(200 + i) for i in range(60)]
    async with (
        running(cfg, r, keys, standin, name="a", tuning=greedy),
        running(cfg, r, keys, standin, name="b", tuning=greedy),
    ):
        for rec in records:
            await store(r, keys, rec)
        await until(lambda: _all_sent(r, keys, 60), timeout=20, what="all delivered")
        await until(lambda: settled(r, keys), what="settled")
    assert {body["client_id"] for _, body in standin.events()} == {
        rec["ga_client_id"] for rec in records
    }
    rows = await report(r, keys, *sorted({day_of(rec) for rec in records}))
    assert sum(row["delivered"] for row in rows) == 60
    assert sum(row["dead"] for row in rows) == 0
    assert all(row["pending"] == 0 and row["consistent"] for row in rows)
    assert standin.rejected == []


async def _all_sent(r: Any, keys: Keys, n: int) -> bool:
    return bool(await r.hlen(keys.sent(SITE)) == n)


@pytest.mark.anyio
async def test_a_4xx_is_dead_lettered_with_its_reason(
    cfg: Config, r: Any, keys: Keys, standin: Standin
) -> None:
    standin.fail_next(400, 1)
    rec = make_record(6)
    await store(r, keys, rec)
    async with running(cfg, r, keys, standin):
        await until(lambda: r.hexists(keys.dead(SITE), "call:pbx-6"), what="a dead letter")
        await until(lambda: settled(r, keys), what="settled")
    letter = json.loads(await r.hget(keys.dead(SITE), "call:pbx-6"))
    assert letter["reason"] == "http_400" and letter["attempts"] == 1
    assert "HTTP 400" in letter["detail"] and TEST_ENV["ACME_GA4_SECRET"] not in letter["detail"]
    assert letter["at"].endswith("Z")
    [row] = await report(r, keys, day_of(rec))
    assert (row["dead"], row["dead_reasons"], row["pending"]) == (1, {"http_400": 1}, 0)
    assert standin.accepted == []


@pytest.mark.anyio
async def test_out_of_window_is_dead_lettered_without_sending(
    cfg: Config, r: Any, keys: Keys, standin: Standin
) -> None:
    rec = make_record(7, started_ms=int((time.time() - 73 * 3600) * 1000))
    await store(r, keys, rec)
    async with running(cfg, r, keys, standin):
        await until(lambda: r.hexists(keys.dead(SITE), "call:pbx-7"), what="a dead letter")
    assert json.loads(await r.hget(keys.dead(SITE), "call:pbx-7"))["reason"] == "outside_window"
    assert standin.requests == 0
    [row] = await report(r, keys, day_of(rec))
    assert row["dead_reasons"] == {"outside_window": 1}


@pytest.mark.anyio
async def test_an_event_that_leaves_the_window_while_retried_is_dead_lettered(
    cfg: Config, r: Any, keys: Keys, standin: Standin
) -> None:
    shift = [0.0]
    standin.fail_next(503, 1, retry_after=30)  # the retry cannot come due before the shift
    rec = make_record(8, started_ms=int((time.time() - 71 * 3600) * 1000))
    await store(r, keys, rec)
    async with running(
        cfg,
        r,
        keys,
        standin,
        tuning=replace(FAST, backoff_cap_s=60),
        clock=lambda: time.time() + shift[0],
    ):
        await until(lambda: r.zcard(keys.retry(SITE)), what="the retry to be parked")
        shift[0] = 2 * 3600  # two hours pass before the retry comes due
        await until(lambda: r.hexists(keys.dead(SITE), "call:pbx-8"), what="a dead letter")
    letter = json.loads(await r.hget(keys.dead(SITE), "call:pbx-8"))
    assert letter["reason"] == "outside_window" and letter["attempts"] == 2
    assert "http_503" in letter["detail"]
    assert standin.requests == 1 and standin.accepted == []
    [row] = await report(r, keys, day_of(rec))
    assert (row["retried"], row["dead"], row["pending"]) == (1, 1, 0)


@pytest.mark.anyio
async def test_the_ledger_prevents_a_second_send(
    cfg: Config, r: Any, keys: Keys, standin: Standin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="callpath.outbox")
    rec = make_record(9)
    await store(r, keys, rec)
    async with running(cfg, r, keys, standin):
        await standin.wait_accepted(1)
        await until(lambda: settled(r, keys), what="settled")
        # the same event owed again (a replayed entry)
        await r.xadd(keys.outbox(SITE), {"kind": "call", "id": "pbx-9", "day": day_of(rec)})
        await until(lambda: settled(r, keys), what="the replay settled")
    assert len(standin.accepted) == 1
    assert any("event=call:pbx-9 outcome=duplicate skipped" in m for m in caplog.messages)
    [row] = await report(r, keys, day_of(rec))
    assert (row["owed"], row["delivered"], row["pending"]) == (1, 1, 0)


@pytest.mark.anyio
async def test_one_log_line_per_job_without_secrets(
    cfg: Config, r: Any, keys: Keys, standin: Standin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    standin.fail_next(503, 1)
    standin.fail_next(400, 1)
    first, second = make_record(10), make_record(11)
    await store(r, keys, first)
    async with running(cfg, r, keys, standin):
        await until(lambda: r.hexists(keys.dead(SITE), "call:pbx-10"), what="dead letter")
        await store(r, keys, second)
        await standin.wait_accepted(1)
        await until(lambda: settled(r, keys), what="settled")
    lines = [m for m in caplog.messages if m.startswith("ga4 site=acme event=")]
    assert any(
        re.search(
            r"event=call:pbx-10 outcome=retry in [\d.]+s \(http_503\) "
            r"attempt=1 ms=\d+",
            m,
        )
        for m in lines
    ), lines
    assert any(
        re.search(r"event=call:pbx-10 outcome=dead: http_400 attempt=2 ms=\d+", m) for m in lines
    ), lines
    assert any(
        re.search(r"event=call:pbx-11 outcome=delivered attempt=1 ms=\d+", m) for m in lines
    ), lines
    assert len(lines) == 3
    everything = "\n".join(rec.getMessage() for rec in caplog.records)
    assert TEST_ENV["ACME_GA4_SECRET"] not in everything
    for rec in (first, second):
        assert rec["caller"] not in everything and rec["caller"][-9:] not in everything


@pytest.mark.anyio
async def test_no_personal_data_leaves_in_any_body(
    cfg: Config, r: Any, keys: Keys, standin: Standin
) -> None:
    records = [
        make_record(20),
        make_record(21, campaign="call +380 67 555 00 21 now", source="newsletter"),
        make_record(22, campaign="owner@acme.example", status="missed", billsec=0),
        make_record(23, campaign="vip_0675550023", keyword="+380675550023"),
        make_record(24, source="partner-0675550024", value=10.0, currency="UAH"),
        make_record(
            25,
            match="ambiguous",
            candidates=3,
            pool="tollfree",
            landing_page="https://acme.example/?phone=%2B380675550025",
        ),
    ]
    for rec in records:
        await store(r, keys, rec)
    await outbox.enqueue_conversion(r, keys, SITE, "pbx-20", 99.5, "UAH", "CRM-20")
    async with running(cfg, r, keys, standin):
        await standin.wait_accepted(len(records) + 1)
        await until(lambda: settled(r, keys), what="settled")
    assert standin.rejected == []
    assert_no_personal_data(standin, records)


# ---------------------------------------------------------------- conversions


@pytest.mark.anyio
async def test_conversions_are_sent_once_per_transaction_id(
    cfg: Config, r: Any, keys: Keys, standin: Standin
) -> None:
    rec = make_record(30)
    await store(r, keys, rec)
    site = cfg.site(SITE)
    assert site is not None
    assert await outbox.enqueue_conversion(r, keys, site, "pbx-30", 1250.5, "uah", "T-1")
    assert not await outbox.enqueue_conversion(r, keys, site, "pbx-30", 1250.5, "UAH", "T-1")
    assert await outbox.enqueue_conversion(r, keys, SITE, "pbx-30", 300, "UAH", "T-2")
    assert await outbox.enqueue_conversion(r, keys, SITE, "pbx-30", 10, "UAH")  # tx = call id
    assert not await outbox.enqueue_conversion(r, keys, SITE, "pbx-30", 10, "UAH")
    with pytest.raises(NotFound):
        await outbox.enqueue_conversion(r, keys, SITE, "no-such-call", 1, "UAH", "T-9")
    async with running(cfg, r, keys, standin):
        await standin.wait_accepted(4)
        await until(lambda: settled(r, keys), what="settled")
        # replaying a delivered conversion's entry sends nothing
        await r.xadd(
            keys.outbox(SITE),
            {
                "kind": "conversion",
                "id": "pbx-30",
                "tx": "T-1",
                "value": "1250.5",
                "currency": "UAH",
                "day": day_of(rec),
                "at": str(int(time.time() * 1000)),
            },
        )
        await until(lambda: settled(r, keys), what="the replay settled")
    purchases = [e for e, _ in standin.events() if e["name"] == "purchase"]
    assert sorted(p["params"]["transaction_id"] for p in purchases) == ["T-1", "T-2", "pbx-30"]
    t1 = next(p["params"] for p in purchases if p["params"]["transaction_id"] == "T-1")
    assert (t1["value"], t1["currency"], t1["session_id"]) == (
        1250.5,
        "UAH",
        int(rec["ga_session_id"]),
    )
    assert all(body["client_id"] == rec["ga_client_id"] for _, body in standin.events())
    assert await r.hget(keys.tx(SITE), "T-1") == b"pbx-30"
    assert await r.hexists(keys.sent(SITE), "conv:T-1")
    today = datetime.now(KYIV).strftime("%Y-%m-%d")
    utc_today = datetime.now(ZoneInfo("UTC")).strftime("%Y-%m-%d")
    rows = await report(r, keys, *sorted({today, utc_today}))
    assert sum(row["conversions"]["owed"] for row in rows) == 3
    assert sum(row["conversions"]["delivered"] for row in rows) == 3
    assert standin.rejected == []


@pytest.mark.anyio
async def test_a_conversion_ga4_cannot_take_is_counted_not_sent(
    cfg: Config, r: Any, keys: Keys
) -> None:
    rec = make_record(31, ga_client_id="", ga_session_id="")
    await store(r, keys, rec)
    site = cfg.site(SITE)
    assert site is not None
    assert await outbox.enqueue_conversion(r, keys, site, "pbx-31", 5, "UAH", "T-31")
    assert await r.xlen(keys.outbox(SITE)) == 0
    [row] = await report(r, keys, datetime.now(KYIV).strftime("%Y-%m-%d"))
    assert row["conversions"]["not_sent_reasons"] == {"no_client_id": 1}


# ---------------------------------------------------------------- reconciliation


@pytest.mark.anyio
async def test_delivery_report_adds_up(cfg: Config, r: Any, keys: Keys, standin: Standin) -> None:
    started = int((time.time() - 3600) * 1000)
    delivered = [make_record(40 + i, started_ms=started + i) for i in range(4)]
    dead = make_record(44, started_ms=started + 4)
    not_owed = [
        make_record(45, started_ms=started + 5, ga_client_id="", ga_session_id=""),
        make_record(
            46, started_ms=started + 6, match="unattributed", sid="", pool="", ga_client_id=""
        ),
        make_record(47, started_ms=started + 7, direction="outbound"),
    ]
    standin.fail_next(503, 2)
    standin.fail_next(400, 1)
    await store(r, keys, dead)  # first in line: 503, 503, then 400
    async with running(cfg, r, keys, standin):
        await until(lambda: r.hexists(keys.dead(SITE), "call:pbx-44"), what="dead letter")
        for rec in [*delivered, *not_owed]:
            await store(r, keys, rec)
        await standin.wait_accepted(4)
        await until(lambda: settled(r, keys), what="settled")
    late = make_record(48, started_ms=started + 8)  # owed, no worker running: pending
    await store(r, keys, late)
    [row] = await report(r, keys, day_of(late))
    assert row["calls"] == 9 and row["attributed"] == 8
    assert row["owed"] == 6 and row["delivered"] == 4 and row["pending"] == 1
    assert row["dead"] == 1 and row["dead_reasons"] == {"http_400": 1}
    assert row["retried"] == 2
    assert row["not_sent_reasons"] == {"no_client_id": 1, "unattributed": 1, "outbound": 1}
    assert row["calls"] == row["owed"] + row["not_sent"]
    assert row["owed"] == row["delivered"] + row["dead"] + row["pending"]
    assert row["consistent"]
    assert await r.xlen(keys.outbox(SITE)) == 1  # the pending one, still owed
    [empty] = await report(r, keys, "2000-01-01")
    assert empty["calls"] == 0 and empty["consistent"]


# ---------------------------------------------------------------- pieces


def test_autoclaim_replies_of_redis_6_and_7() -> None:
    six = [b"0-0", [(b"1-0", {b"kind": b"call", b"id": b"x"}), (b"2-0", None)]]
    seven = [b"3-0", [(b"1-0", {b"kind": b"call", b"id": b"x"})], [b"2-0"]]
    assert outbox.parse_autoclaim(six) == (
        "0-0",
        [("1-0", {"kind": "call", "id": "x"}), ("2-0", None)],
        [],
    )
    assert outbox.parse_autoclaim(seven) == ("3-0", [("1-0", {"kind": "call", "id": "x"})], ["2-0"])
    assert outbox.parse_autoclaim([b"0-0", []]) == ("0-0", [], [])


@pytest.mark.anyio
async def test_reclaim_on_the_embedded_redis(cfg: Config, r: Any, keys: Keys) -> None:
    rec = make_record(50)
    await store(r, keys, rec)
    stream = keys.outbox(SITE)
    await r.xgroup_create(stream, GROUP, id="0", mkstream=True)
    await r.xreadgroup(GROUP, "gone", {stream: ">"}, count=1)
    reply = await r.xautoclaim(stream, GROUP, "me", 0, "0-0", count=10)
    cursor, entries, _ = outbox.parse_autoclaim(reply)
    assert cursor == "0-0" and entries[0][1] == {"kind": "call", "id": "pbx-50", "day": day_of(rec)}


@given(st.integers(min_value=1, max_value=200), st.floats(0.001, 10), st.floats(0.01, 600))
def test_backoff_is_full_jitter_under_the_cap(failures: int, base: float, cap: float) -> None:
    delay = outbox.backoff_delay(failures, base, cap)
    assert 0 <= delay <= min(cap, base * 2 ** (failures - 1)) + 1e-9


def test_consumer_names_are_unique_per_process_start() -> None:
    a, b = outbox.consumer_name(), outbox.consumer_name()
    assert a != b and a.count(":") == 2


@pytest.mark.anyio
async def test_install_runs_the_worker_only_when_asked(
    cfg: Config, r: Any, keys: Keys, standin: Standin
) -> None:
    app = SimpleNamespace(state=SimpleNamespace(on_start=[]))
    svc = SimpleNamespace(
        config=cfg, redis=r, keys=keys, run_worker=False, http=None, ga4_endpoint=standin.url
    )
    outbox.install(app, tuning=FAST)
    [start] = app.state.on_start
    await asyncio.wait_for(start(svc), 1)  # returns at once: no worker wanted
    svc.run_worker = True
    await store(r, keys, make_record(60))
    task = asyncio.create_task(start(svc))
    try:
        await standin.wait_accepted(1)
        await until(lambda: settled(r, keys), what="settled")
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=5)
    assert task.cancelled()  # the server's shutdown stops its worker
    assert len(standin.accepted) == 1


@pytest.mark.anyio
async def test_the_servers_own_worker_delivers(
    cfg: Config, r: Any, redis_url: str, keys: Keys, standin: Standin, live: Callable[..., Any]
) -> None:
    from attribution.app import create_app
    from attribution.redis_store import client
    from attribution.sessions import Signer

    app_redis = client(redis_url)
    app = create_app(cfg, app_redis, keys=keys, signer=Signer(b"s" * 32), ga4_endpoint=standin.url)
    try:
        with live(app):
            await store(r, keys, make_record(70))
            await standin.wait_accepted(1)
            await until(lambda: settled(r, keys), what="settled")
    finally:
        await app_redis.aclose()
    assert len(standin.accepted) == 1 and standin.rejected == []


# ---------------------------------------------------------------- Redis Cluster

TWO_SITES = (
    BASE_TOML
    + """
[[site]]
id = "beta"
domains = ["beta.example"]
country = "UA"
timezone = "Europe/Kyiv"
replace = ["+380 44 500 00 00"]
api_key_env = "BETA_API_KEY"
ga4 = { measurement_id = "G-BETA456", api_secret_env = "BETA_GA4_SECRET" }

  [[site.pool]]
  id = "all"
  numbers = ["+380 44 500 00 01", "+380 44 500 00 02"]
"""
)
TWO_ENV = {**TEST_ENV, "BETA_API_KEY": "beta-key-0123456789", "BETA_GA4_SECRET": "ga4-beta"}


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from cluster import LocalCluster

    c = LocalCluster(tmp_path_factory.mktemp("outbox-cluster")).start()
    yield c
    c.stop()


@pytest.mark.cluster
@pytest.mark.anyio
async def test_delivery_on_a_redis_cluster(redis_cluster: Any, live: Callable[..., Any]) -> None:
    from attribution.redis_store import client

    redis_cluster.flush()
    cfg = make_config(TWO_SITES, TWO_ENV)
    keys = Keys("cptest")
    rc = client(redis_cluster.url)
    s = Standin({"G-ACME123": TEST_ENV["ACME_GA4_SECRET"], "G-BETA456": "ga4-beta"})
    try:
        with live(s.app) as srv:
            s.url = f"{srv.url}/mp/collect"
            records = [make_record(300 + i, site=("acme", "beta")[i % 2]) for i in range(20)]
            for rec in records:
                await store(rc, keys, rec, cfg)
            assert await outbox.enqueue_conversion(rc, keys, "beta", "pbx-301", 5, "UAH", "B-1")
            s.fail_next(503, 2)
            async with running(cfg, rc, keys, s, name="c1"), running(cfg, rc, keys, s, name="c2"):
                await s.wait_accepted(21, timeout=20)
                for site in ("acme", "beta"):
                    await until(lambda site=site: settled(rc, keys, site), what="settled")
            by_mid = Counter(rec.query["measurement_id"] for rec in s.accepted)
            assert by_mid == {"G-ACME123": 10, "G-BETA456": 11}
            assert s.rejected == []
            assert (
                len(
                    {
                        body["client_id"]
                        for event, body in s.events()
                        if event["name"] == "phone_call"
                    }
                )
                == 20
            )
            for site in ("acme", "beta"):
                rows = await outbox.delivery_report(
                    rc, keys, site, sorted({day_of(rec) for rec in records})
                )
                assert sum(row["delivered"] for row in rows) == 10
                assert all(row["pending"] == 0 and row["consistent"] for row in rows)
            s.close()
    finally:
        await rc.aclose()
