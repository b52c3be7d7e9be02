"""The allocator against a real Redis: no double-booking, holds, reuse, exhaustion."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import BASE_TOML, make_config

from attribution.allocator import Allocator, Lease
from attribution.config import Config
from attribution.keys import Keys
from attribution.lua import Scripts
from attribution.redis_store import client

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000_000


def pool_config(size: int, on_exhausted: str = "fallback", hold: float = 15) -> Config:
    numbers = ", ".join(f'"+380 57 710 {i // 100:02d} {i % 100:02d}"' for i in range(size))
    text = BASE_TOML.replace(
        'numbers = ["+380 57 700 00 11", "+380 57 700 00 12", "+380 57 700 00 13"]',
        f'numbers = [{numbers}]\n  on_exhausted = "{on_exhausted}"',
    )
    return make_config(text, hold_minutes=hold)


async def setup(r: Any, keys: Keys, cfg: Config) -> Allocator:
    alloc = Allocator(cfg, Scripts(r), keys)
    await alloc.sync()
    return alloc


def paid(cfg: Config) -> tuple[Any, Any]:
    site = cfg.sites[0]
    pool = site.pool("paid")
    assert pool is not None
    return site, pool


async def test_same_visitor_keeps_their_number(r: Any, keys: Keys) -> None:
    cfg = pool_config(3)
    alloc = await setup(r, keys, cfg)
    site, pool = paid(cfg)
    first = await alloc.lease(site, pool, "sid-a", T0)
    again = await alloc.lease(site, pool, "sid-a", T0 + 60_000)
    other = await alloc.lease(site, pool, "sid-b", T0 + 61_000)
    assert first.outcome == "new" and again.outcome == "held"
    assert again.number == first.number
    assert other.number != first.number


async def two_held(r: Any, keys: Keys) -> tuple[Allocator, Any, Any, Lease, Lease]:
    """A pool of two numbers held 30 s (a fractional ``hold_minutes``): a takes one at
    T0, b the other at T0 + 10 s."""
    cfg = pool_config(2, hold=0.5)
    alloc = await setup(r, keys, cfg)
    site, pool = paid(cfg)
    a = await alloc.lease(site, pool, "a", T0)
    b = await alloc.lease(site, pool, "b", T0 + 10_000)
    return alloc, site, pool, a, b


async def test_fractional_hold_expires_and_least_recently_released_is_reused(
    r: Any, keys: Keys
) -> None:
    alloc, site, pool, a, b = await two_held(r, keys)
    full = await alloc.lease(site, pool, "c", T0 + 29_000)
    assert full.outcome == "fallback" and full.number == pool.replace.e164
    # a's lease ran out at T0+30s, b's at T0+40s: at T0+45s both are free again and the
    # one released first (a's) is given first
    d = await alloc.lease(site, pool, "d", T0 + 45_000)
    e = await alloc.lease(site, pool, "e", T0 + 45_001)
    assert (d.number, e.number) == (a.number, b.number)
    # a ping keeps a lease alive past its original hold
    await alloc.lease(site, pool, "d", T0 + 70_000, allocate=False)
    late = await alloc.lease(site, pool, "f", T0 + 80_000)
    assert late.number == e.number


async def test_a_visitor_back_after_their_lease_ran_out_gets_the_number_resting_longest(
    r: Any, keys: Keys
) -> None:
    alloc, site, pool, a, b = await two_held(r, keys)
    await alloc.lease(site, pool, "a", T0 + 25_000, allocate=False)  # a's runs to T0+55s
    # at T0+60s both have run out: b's number at T0+40s, a's at T0+55s; a comes back
    # and takes the one that has rested longest, b's, while a's own rests on
    back = await alloc.lease(site, pool, "a", T0 + 60_000)
    assert back.outcome == "new" and back.number == b.number
    c = await alloc.lease(site, pool, "c", T0 + 60_001)
    assert c.number == a.number


async def test_share_oldest_shares_the_least_active_lease(r: Any, keys: Keys) -> None:
    cfg = pool_config(2, on_exhausted="share-oldest")
    alloc = await setup(r, keys, cfg)
    site, pool = paid(cfg)
    a = await alloc.lease(site, pool, "a", T0)
    b = await alloc.lease(site, pool, "b", T0 + 1_000)
    await alloc.lease(site, pool, "a", T0 + 2_000)  # a pings: b is now the oldest
    c = await alloc.lease(site, pool, "c", T0 + 3_000)
    assert c.outcome == "shared" and c.number == b.number
    assert a.number != b.number
    stats = await r.hgetall(keys.pool_stats(site.id, pool.id, "2027-01-15"))
    assert int(stats[b"shared"]) == 1 and int(stats[b"new"]) == 2


async def test_a_lost_lease_is_reported_on_a_ping_only(r: Any, keys: Keys) -> None:
    cfg = pool_config(1, hold=1)
    alloc = await setup(r, keys, cfg)
    site, pool = paid(cfg)
    await alloc.lease(site, pool, "a", T0)
    lost = await alloc.lease(site, pool, "a", T0 + 120_000, allocate=False)
    assert lost.outcome == "lost"


async def test_200_concurrent_allocations_on_50_numbers_never_double_book(
    redis_url: str, r: Any, keys: Keys
) -> None:
    cfg = pool_config(50)
    await setup(r, keys, cfg)
    site, pool = paid(cfg)
    clients = [client(redis_url) for _ in range(8)]
    allocators = [Allocator(cfg, Scripts(c), keys) for c in clients]
    leases = await asyncio.gather(
        *(
            allocators[i % 8].lease(site, pool, f"sid-{i}", T0 + random.randint(0, 1000))
            for i in range(200)
        )
    )
    for c in clients:
        await c.aclose()
    given_out = [x.number for x in leases if x.outcome == "new"]
    assert len(given_out) == 50 == len(set(given_out))
    assert sum(1 for x in leases if x.outcome == "fallback") == 150


OPS = st.lists(
    st.tuples(
        st.sampled_from(["lease", "ping", "tick"]), st.integers(0, 79), st.integers(1, 400_000)
    ),
    min_size=20,
    max_size=120,
)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=OPS)
def test_no_number_is_ever_held_by_two_live_sessions(redis_url: str, ops: list[Any]) -> None:
    """Random interleavings of new sessions, pings and the clock moving on (fallback pool)."""

    async def run() -> None:
        c = client(redis_url)
        await c.flushall()
        cfg = pool_config(50, hold=5)
        keys = Keys("prop")
        alloc = Allocator(cfg, Scripts(c), keys)
        await alloc.sync()
        site, pool = paid(cfg)
        now = T0
        holders: dict[str, tuple[str, int]] = {}  # sid -> (number, expires)
        for op, who, step in ops:
            sid = f"s{who}"
            if op == "tick":
                now += step
                continue
            lease = await alloc.lease(site, pool, sid, now, allocate=(op == "lease"))
            if lease.outcome in ("new", "held"):
                holders[sid] = (lease.number, now + cfg.hold_ms)
            else:
                holders.pop(sid, None)
            live = [n for n, exp in holders.values() if exp > now]
            assert len(live) == len(set(live)), f"double-booked at {now}: {live}"
        await c.aclose()

    asyncio.run(run())


async def test_sync_adds_and_removes_configured_numbers(r: Any, keys: Keys) -> None:
    cfg, smaller = pool_config(3), pool_config(2)
    alloc = await setup(r, keys, cfg)
    site, pool = paid(cfg)
    (gone,) = {n.e164 for n in pool.numbers} - {n.e164 for n in paid(smaller)[1].numbers}
    held = await alloc.lease(site, pool, "a", T0)  # never-used numbers: in file order
    assert held.number != gone
    await Allocator(smaller, Scripts(r), keys).sync()
    # a new visitor gets the one number still free; the next, none: the third is gone
    b = await alloc.lease(site, pool, "b", T0 + 1)
    c = await alloc.lease(site, pool, "c", T0 + 2)
    assert b.outcome == "new" and b.number not in (held.number, gone)
    assert c.outcome == "fallback"
    # a's lease keeps its number while it lives; back in the file, the number is free
    assert (await alloc.lease(site, pool, "a", T0 + 3, allocate=False)).outcome == "held"
    await alloc.sync()
    assert (await alloc.lease(site, pool, "d", T0 + 4)).number == gone


async def test_sync_takes_over_the_free_list_of_an_earlier_version(r: Any, keys: Keys) -> None:
    cfg = pool_config(3)
    site, pool = paid(cfg)
    first, second, third = (n.e164 for n in pool.numbers)
    prefix = keys.pool(site.id, pool.id)
    # as an earlier version left them: the third released before the first, the
    # second held until T0 + 60 s
    await r.zadd(f"{prefix}:free", {first: T0 - 1_000, third: T0 - 5_000})
    await r.zadd(f"{prefix}:leases", {second: T0 + 60_000})
    await r.zadd(f"{prefix}:h:{second}", {"old": T0 + 60_000})
    await r.hset(f"{prefix}:sess", "old", f"{second}|{T0 - 840_000}")
    await r.sadd(f"{prefix}:numbers", first, second, third)
    alloc = await setup(r, keys, cfg)
    assert not await r.exists(f"{prefix}:free")
    got = [(await alloc.lease(site, pool, sid, T0)).number for sid in ("a", "b", "c")]
    assert got == [third, first, pool.replace.e164]
    assert (await alloc.lease(site, pool, "old", T0 + 1_000, allocate=False)).number == second
