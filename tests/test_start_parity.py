"""``start.lua`` (a single Redis: one round trip) and the Cluster's steps (rate limit,
one allocate per pool, the record's commands) give the same answers and leave the same
sessions and leases behind."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from support import make_config

from attribution.allocator import utc_day
from attribution.errors import RateLimited
from attribution.geo import GeoIP
from attribution.keys import Keys
from attribution.services import Services
from attribution.sessions import Signer
from attribution.web import compact_json

pytestmark = pytest.mark.anyio

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
PAID = "https://acme.example/p?utm_source=google&utm_medium=cpc&utm_campaign=spring"


def utc_day_now() -> str:
    return utc_day(int(time.time() * 1000))


async def _visits(r: Any, ns: str, one_script: bool) -> tuple[list[Any], list[dict[str, str]]]:
    cfg = make_config(server={"sessions_per_minute": 5})
    svc = Services(cfg, r, Keys(ns), Signer(b"p" * 32), GeoIP(None))
    svc.tracker.one_script = one_script
    await svc.allocator.sync()
    site = cfg.site("acme")
    assert site is not None
    seen: list[Any] = []
    sids: list[str] = []

    async def visit(body: dict[str, Any], ip: str) -> None:
        try:
            got = await svc.tracker.start(site, {"site": "acme", **body}, UA, ip)
        except RateLimited as exc:
            seen.append(("429", exc.headers.get("Retry-After") is not None))
            return
        # the route's JSON, its numbers encoded once per list, is the answer's own
        assert svc.tracker.encoded(got) == compact_json(got).encode()
        seen.append([(n["replace"], n["number"] != n["replace"]) for n in got["numbers"]])
        seen.append(got["visit"])
        if got["sid"]:
            sids.append(got["sid"])

    for i in range(4):  # a paid pool of three, then share-oldest; toll-free falls back
        await visit({"url": PAID, "ga_client_id": f"{i}.17", "region": "kharkiv"}, f"10.0.0.{i}")
    await visit({"url": "https://acme.example/next", "sid": sids[0]}, "10.0.0.0")  # returns
    # a zero byte ends each value of start.lua's lists: one inside a value is a space
    await visit({"url": "https://acme.example/?q=a\u0000b", "referrer": "x\u0000"}, "10.0.0.7")
    for _ in range(6):  # the same address: the sixth new session in a minute is refused
        await visit({"url": "https://acme.example/"}, "10.0.0.9")
    records = []
    for sid in sids:
        raw = await r.hgetall(svc.keys.session(sid))
        rec = {k.decode(): v.decode() for k, v in raw.items()}
        for stamp in ("first_seen", "last_seen"):
            assert rec.pop(stamp).isdigit()
        records.append(rec)
    for pool in site.pools:  # live leases and the day's counters, per pool
        leases = await r.zcard(svc.keys.pool_leases(site.id, pool.id))
        stats = await r.hgetall(svc.keys.pool_stats(site.id, pool.id, utc_day_now()))
        seen.append((pool.id, leases, sorted(stats.items())))
    return seen, records


async def test_one_script_and_the_cluster_steps_agree(r: Any) -> None:
    lua = await _visits(r, "lua", one_script=True)
    steps = await _visits(r, "steps", one_script=False)
    assert lua == steps
    seen, records = lua
    assert ("429", True) in seen
    assert records[0]["pages"] == "2" and records[0]["last_page"] == "https://acme.example/next"
    assert records[0]["landing_page"] == PAID and records[0]["region_chosen"] == "1"
    (zero,) = [rec for rec in records if rec["landing_page"].startswith("https://acme.example/?")]
    assert zero["landing_page"] == "https://acme.example/?q=a b" and zero["referrer"] == "x "


async def test_an_answer_written_by_hand_is_the_json_of_the_answer(r: Any) -> None:
    """A bot's answer (no sid), numbers the tracker never listed, and a visit whose
    campaign needs escaping come out as the standard encoder writes them."""
    cfg = make_config()
    svc = Services(cfg, r, Keys("enc"), Signer(b"p" * 32), GeoIP(None))
    answer = {
        "sid": None,
        "numbers": [{"replace": "+380441234567", "number": "+380441234567"}],
        "hold_seconds": 900,
        "visit": {"source": "google", "campaign": 'весна "2026" \\ \u2028', "keyword": ""},
    }
    assert svc.tracker.encoded(answer) == compact_json(answer).encode()
    assert json.loads(svc.tracker.encoded({**answer, "sid": "a.b"}))["sid"] == "a.b"
