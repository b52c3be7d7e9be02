"""Matching a call to the session that held the number at that moment."""

from __future__ import annotations

from typing import Any

import pytest
from support import make_config

from attribution.allocator import Allocator
from attribution.calls import CallLog
from attribution.cdr.record import Cdr
from attribution.keys import Keys
from attribution.lua import Scripts
from attribution.matcher import Matcher

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000_000  # ms
MIN = 60_000


class World:
    def __init__(self, r: Any, keys: Keys, **top: Any) -> None:
        self.cfg = make_config(**top)
        self.site = self.cfg.sites[0]
        self.scripts = Scripts(r)
        self.alloc = Allocator(self.cfg, self.scripts, keys)
        self.matcher = Matcher(self.cfg, r, self.scripts, keys)
        self.log = CallLog(self.cfg, r, self.scripts, keys, self.matcher)
        self.r, self.keys = r, keys

    def pool(self, pid: str) -> Any:
        return self.site.pool(pid)

    async def lease(self, pid: str, sid: str, at: int) -> str:
        await self.r.hset(
            self.keys.session(sid),
            mapping={
                "site": "acme",
                "source": "google",
                "medium": "cpc",
                "campaign": f"c-{sid}",
                "first_seen": at,
                "last_seen": at,
                "ga_client_id": "111.222",
                "landing_page": "https://acme.example/?utm_medium=cpc",
            },
        )
        return (await self.alloc.lease(self.site, self.pool(pid), sid, at)).number

    async def call(
        self,
        called: str,
        at: int,
        caller: str = "+380671112233",
        call_id: str = "c1",
        status: str = "answered",
    ) -> dict[str, Any]:
        cdr = Cdr(
            call_id,
            "inbound",
            caller,
            called,
            at / 1000,
            at / 1000 + 5,
            at / 1000 + 65,
            status,
            65,
            60,
            None,
        )
        (answer,) = await self.log.ingest(self.site, [self.log.prepare(self.site, cdr)])
        return answer


@pytest.fixture
async def world(r: Any, keys: Keys) -> World:
    w = World(r, keys)
    await w.alloc.sync()
    return w


async def test_late_cdr_matches_across_a_reuse_of_the_number(world: World) -> None:
    # hold is 15 minutes; the pool has 3 numbers, so force reuse with 3 early visitors
    first = await world.lease("paid", "early", T0)
    for i in range(2):
        await world.lease("paid", f"other{i}", T0 + 1_000)
    # the early visitor's lease ended at T0+15min; a later visitor gets the same number
    later = await world.lease("paid", "late", T0 + 40 * MIN)
    assert later == first
    # CDRs imported afterwards, out of order
    b = await world.call(first, T0 + 45 * MIN, call_id="b")
    a = await world.call(first, T0 + 10 * MIN, call_id="a")
    assert (a["match"], a["sid"], a["campaign"]) == ("exact", "early", "c-early")
    assert (b["match"], b["sid"]) == ("exact", "late")


async def test_a_call_shortly_after_the_hold_still_matches_when_the_number_rested(
    world: World,
) -> None:
    number = await world.lease("paid", "v", T0)
    ans = await world.call(number, T0 + 20 * MIN)  # hold ended at 15 min
    assert (ans["match"], ans["sid"]) == ("exact", "v")
    gone = await world.call(number, T0 + 31 * MIN, call_id="c2")  # past the grace
    assert gone["match"] == "unattributed"


async def test_shared_number_prefers_the_callers_earlier_session(world: World) -> None:
    numbers = [await world.lease("paid", f"s{i}", T0 + i) for i in range(3)]
    shared = await world.lease("paid", "s3", T0 + 10)  # pool exhausted: shares s0's
    assert shared == numbers[0]
    caller = "+380671234567"
    first = await world.call(shared, T0 + MIN, caller=caller, call_id="x1")
    assert first["match"] == "ambiguous" and first["candidates"] == 2
    # the most recent activity wins when the caller is new: s3 took it last
    assert first["sid"] == "s3"
    await world.r.hset(world.keys.session("s0"), "last_seen", T0 + 2 * MIN)
    again = await world.call(shared, T0 + 3 * MIN, caller=caller, call_id="x2")
    assert again["sid"] == "s3"  # this caller called from s3 before
    other = await world.call(shared, T0 + 3 * MIN, caller="+380501111111", call_id="x3")
    assert other["sid"] == "s0"  # a new caller: the latest activity before the call


async def test_static_number_attributes_to_its_channel(world: World) -> None:
    ans = await world.call("+380577000050", T0)
    assert (ans["match"], ans["source"], ans["medium"]) == ("static", "billboard", "offline")


async def test_own_number_and_unknown_numbers_are_unattributed(world: World) -> None:
    assert (await world.call("+380577000000", T0))["match"] == "unattributed"
    assert (await world.call("+380449999999", T0, call_id="u2"))["match"] == "unattributed"


async def test_retried_cdr_returns_the_first_answer_and_stores_nothing_new(world: World) -> None:
    number = await world.lease("paid", "v", T0)
    first = await world.call(number, T0 + MIN)
    assert first["first_time_caller"] is True
    # a retry after the "crash": same call id, even if it would now match differently
    await world.r.delete(world.keys.pool("acme", "paid") + ":hist:" + number)
    again = await world.call(number, T0 + MIN)
    assert again == first
    assert await world.r.zcard(world.keys.calls("acme")) == 1
    assert await world.r.xlen(world.keys.outbox("acme")) == 1
    second_call = await world.call(number, T0 + 2 * MIN, call_id="c-next")
    assert second_call["first_time_caller"] is False


async def test_missed_call_is_unanswered_until_returned(world: World) -> None:
    caller = "+380671112244"
    await world.call("+380577000000", T0, caller=caller, call_id="m1", status="missed")
    assert await world.r.zscore(world.keys.unanswered("acme"), caller) == T0
    outbound = Cdr(
        "o1",
        "outbound",
        "+380577000000",
        caller,
        (T0 + MIN) / 1000,
        None,
        None,
        "missed",
        0,
        0,
        None,
    )
    await world.log.ingest(world.site, [world.log.prepare(world.site, outbound)])
    assert await world.r.zscore(world.keys.unanswered("acme"), caller) is None


async def test_an_answered_row_upgrades_a_missed_row_with_the_same_call_id(world: World) -> None:
    caller = "+380671112255"
    missed = await world.call(
        "+380577000000", T0, caller=caller, call_id="ring-all", status="missed"
    )
    assert missed["call_id"] == "ring-all"
    assert await world.r.zscore(world.keys.unanswered("acme"), caller) == T0
    await world.call("+380577000000", T0, caller=caller, call_id="ring-all")
    stored = await world.log.get(world.site, "ring-all")
    assert stored is not None
    assert (stored["status"], stored["billsec"]) == ("answered", 60)
    assert stored["started_ms"] == T0 and stored["first_time_caller"] is True
    assert await world.r.zscore(world.keys.unanswered("acme"), caller) is None
    assert await world.r.zcard(world.keys.calls("acme")) == 1


async def test_the_log_forgets_calls_past_retention(r: Any, keys: Keys) -> None:
    w = World(r, keys, calls_days=1)
    await w.alloc.sync()
    await w.call("+380577000000", T0, call_id="old")
    await w.call("+380577000000", T0 + 2 * 86_400_000, call_id="new")
    assert [m.decode() for m in await r.zrange(keys.calls("acme"), 0, -1)] == ["new"]
    stored = await w.log.get(w.site, "new")
    assert stored is not None and stored["site"] == "acme"
    assert stored["started_at"].endswith("Z") and stored["answered_at"] is not None
