"""The call log's two ways of storing a call build the same record.

On one Redis a call is matched, joined to its session and stored by one script
(``ingest.lua``); a Cluster keeps sessions in other slots, so there the steps are taken
from Python.  Both must give the analyst the same call log, answers and counters.
"""

from __future__ import annotations

from typing import Any

import pytest
from support import make_config

from attribution.allocator import Allocator
from attribution.calls import CallLog, load_record, record_body
from attribution.cdr.record import Cdr
from attribution.keys import Keys
from attribution.lua import Scripts
from attribution.matcher import Matcher

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000_000  # ms
MIN = 60_000
OWN = "+380577000000"
STATIC = "+380577000050"
LONG_PAGE = "https://acme.example/каталог/" + "х" * 400 + '?q="boiler"\\'


class Way:
    """One namespace, storing every call either in Lua or in steps."""

    def __init__(self, r: Any, ns: str, in_lua: bool) -> None:
        self.cfg = make_config()
        self.site = self.cfg.sites[0]
        self.keys = Keys(ns)
        scripts = Scripts(r)
        self.alloc = Allocator(self.cfg, scripts, self.keys)
        self.log = CallLog(
            self.cfg, r, scripts, self.keys, Matcher(self.cfg, r, scripts, self.keys)
        )
        self.r, self.in_lua = r, in_lua

    async def visit(self, sid: str, at: int, **fields: Any) -> str:
        session = {
            "site": "acme",
            "source": "google",
            "medium": "cpc",
            "campaign": f"c-{sid}",
            "keyword": 'boiler "repair"\\',
            "first_seen": at - 5 * MIN,
            "last_seen": at,
            "ga_client_id": "111.222",
            "ga_session_id": "1800000000",
            "landing_page": LONG_PAGE,
            "device": "mobile",
        }
        session.update(fields)
        await self.r.hset(self.keys.session(sid), mapping={k: v for k, v in session.items()})
        pool = self.site.pool("paid")
        assert pool is not None
        return (await self.alloc.lease(self.site, pool, sid, at)).number

    async def store(self, *cdrs: Cdr) -> list[tuple[dict[str, Any], bool]]:
        items = [self.log.prepare(self.site, c) for c in cdrs]
        return await self.log.ingest_new(self.site, items, in_lua=self.in_lua)

    async def state(self) -> dict[str, Any]:
        ids = [i.decode() for i in await self.r.zrange(self.keys.calls("acme"), 0, -1)]
        records = {i: await self.log.get(self.site, i) for i in ids}
        days = {
            k.decode().rpartition(":")[2]: await self.r.hgetall(k)
            for k in await self.r.keys(self.keys.site("acme") + ":day:*")
        }
        outbox = [
            {k: v for k, v in fields.items()}
            for _, fields in await self.r.xrange(self.keys.outbox("acme"))
        ]
        return {
            "records": records,
            "days": days,
            "outbox": outbox,
            "unanswered": await self.r.zrange(self.keys.unanswered("acme"), 0, -1, withscores=True),
            "contact": await self.r.hgetall(self.keys.contact("acme")),
            "lastsid": await self.r.hgetall(self.keys.lastsid("acme")),
        }


def cdr(
    call_id: str,
    called: str,
    at: int,
    caller: str = "+380671112233",
    status: str = "answered",
    direction: str = "inbound",
) -> Cdr:
    answered = status == "answered"
    return Cdr(
        call_id,
        direction,
        caller,
        called,
        at / 1000,
        at / 1000 + 5 if answered else None,
        at / 1000 + 65,
        status,
        65,
        60 if answered else 0,
        "https://pbx.example/rec/1.mp3" if answered else None,
    )


async def scenario(way: Way) -> list[Any]:
    """Every kind of call, in batches and one by one; returns every answer given."""
    await way.alloc.sync()
    await way.visit("s0", T0)
    n1 = await way.visit("s1", T0 + 1)
    n2 = await way.visit("s2", T0 + 2, ga_client_id="")  # GA4 cannot take its calls
    shared = await way.visit("s3", T0 + 10)  # the pool of three is full: shares s0's
    answers = []
    answers += await way.store(
        cdr("exact", n1, T0 + MIN),
        cdr("amb-1", shared, T0 + 2 * MIN, caller="+380671234567"),
        cdr("amb-2", shared, T0 + 3 * MIN, caller="+380671234567"),
        cdr("static", STATIC, T0 + 4 * MIN, caller="+380501111111"),
        cdr("own", OWN, T0 + 5 * MIN, caller="+380502222222", status="missed"),
        cdr("unknown", "+380449999999", T0 + 6 * MIN, caller=""),
    )
    answers += await way.store(
        cdr("ring", OWN, T0 + 7 * MIN, caller="+380503333333", status="missed")
    )
    answers += await way.store(cdr("ring", OWN, T0 + 7 * MIN, caller="+380503333333"))
    answers += await way.store(
        cdr("back", OWN, T0 + 8 * MIN, caller=OWN, direction="outbound"),
        cdr("exact", n1, T0 + MIN),  # a retry
        cdr("late", n1, T0 + 400 * MIN),  # nobody held it then
        cdr("no-cid", n2, T0 + 9 * MIN, caller="+380504444444"),
    )
    return answers


async def test_lua_and_steps_store_the_same_calls(r: Any, keys: Keys) -> None:
    in_lua = Way(r, keys.ns + "-lua", in_lua=True)
    in_steps = Way(r, keys.ns + "-steps", in_lua=False)
    assert await scenario(in_lua) == await scenario(in_steps)
    lua, steps = await in_lua.state(), await in_steps.state()
    assert lua == steps
    records = lua["records"]
    exact = records["exact"]
    assert (exact["match"], exact["sid"], exact["campaign"]) == ("exact", "s1", "c-s1")
    assert exact["keyword"] == 'boiler "repair"\\'
    assert exact["landing_page"] == LONG_PAGE[:300]  # characters, not bytes
    assert exact["time_on_site"] == 359 and exact["first_time_caller"] is True
    assert records["amb-1"]["match"] == "ambiguous" and records["amb-1"]["candidates"] == 2
    assert records["amb-2"]["sid"] == records["amb-1"]["sid"]  # the caller's earlier session
    assert (records["static"]["match"], records["static"]["medium"]) == ("static", "offline")
    assert records["ring"]["status"] == "answered"  # the answered row won
    assert records["late"]["match"] == "unattributed" and records["late"]["pool"] == "paid"
    assert records["back"]["direction"] == "outbound"
    assert records["no-cid"]["match"] == "exact" and records["no-cid"]["ga_client_id"] == ""
    assert lua["unanswered"] == [(b"+380502222222", float(T0 + 5 * MIN))]
    # GA4 is owed the attributed calls with a GA client id, and told why not the rest
    assert [e[b"id"] for e in lua["outbox"]] == [b"exact", b"amb-1", b"amb-2"]
    day = lua["days"]["2027-01-15"]
    assert (day[b"calls"], day[b"owed"], day[b"not_sent:no_client_id"]) == (b"10", b"3", b"2")


async def test_a_stored_record_is_compact_and_reads_back_whole() -> None:
    rec = {
        "call_id": "x",
        "direction": "inbound",
        "caller": "+380671112233",
        "called": OWN,
        "started_ms": T0,
        "status": "missed",
        "duration": 0,
        "billsec": 0,
        "pool": "",
        "candidates": 0,
        "match": "unattributed",
    }
    body = record_body(rec) + "}"
    # defaults are left out, names are short
    assert "inbound" not in body and "pool" not in body and '"nc"' not in body
    back = load_record(body, "acme")
    assert {k: back[k] for k in rec} == rec
    assert back["site"] == "acme" and back["first_time_caller"] is False
    assert back["started_at"] == "2027-01-15T08:00:00Z"
