"""The Batcher: one multiplexed connection; every caller gets its own replies, in order,
and a failure reaches exactly the callers it concerns."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.exceptions
from redis.exceptions import ResponseError

from attribution import batching
from attribution.batching import Batcher
from attribution.lua import Scripts

pytestmark = pytest.mark.anyio


@pytest.fixture
def batch(r: Any) -> Batcher:
    return Batcher(r, Scripts(r))


async def test_concurrent_callers_each_get_their_own_replies_in_order(batch: Batcher) -> None:
    async def caller(i: int) -> list[Any]:
        return await batch(("SET", f"k{i}", i), ("INCR", f"k{i}"), ("GET", f"k{i}"))

    results = await asyncio.gather(*(caller(i) for i in range(200)))
    assert [int(res[2]) for res in results] == [i + 1 for i in range(200)]
    assert all(res[1] == i + 1 for i, res in enumerate(results))


async def test_a_hash_reads_as_a_dict(batch: Batcher) -> None:
    await batch(("HSET", "h", "a", "1", "b", "2"))
    (got,) = await batch(("HGETALL", "h"))
    assert got == {b"a": b"1", b"b": b"2"}


async def test_an_error_fails_only_the_caller_whose_command_it_was(batch: Batcher) -> None:
    good = batch(("SET", "a", "1"), ("GET", "a"))
    bad = batch(("SET", "b", "x"), ("INCR", "b"))
    also_good = batch(("INCR", "c"))
    results = await asyncio.gather(good, bad, also_good, return_exceptions=True)
    assert results[0] == [b"OK", b"1"]
    assert isinstance(results[1], ResponseError)
    assert results[2] == [1]


async def test_scripts_run_and_are_loaded_again_after_redis_forgets_them(
    batch: Batcher, r: Any
) -> None:
    (first,) = await batch(("script", "ratelimit", "rl", 60_000))
    await r.script_flush()
    (second,) = await batch(("script", "ratelimit", "rl", 60_000))
    assert (first, second) == (1, 2)


async def test_a_dropped_connection_fails_its_callers_and_the_next_call_reconnects(
    batch: Batcher, r: Any
) -> None:
    await batch(("SET", "x", "1"))
    # a slow script holds our connection's replies back while Redis drops it
    waiting = asyncio.ensure_future(batch(("BLPOP", "never", 5)))
    await asyncio.sleep(0)  # let the batch be written
    while not any(c.get("cmd") == "blpop" for c in await r.client_list()):
        await asyncio.sleep(0.01)
    await r.client_kill_filter(_type="normal", skipme=True)
    with pytest.raises(redis.exceptions.ConnectionError):
        await waiting
    assert await batch(("GET", "x")) == [b"1"]


async def test_calls_made_while_a_dead_connection_is_closed_are_still_answered(
    batch: Batcher, r: Any
) -> None:
    await batch(("SET", "x", "1"))
    waiting = asyncio.ensure_future(batch(("BLPOP", "never", 5)))
    while not any(c.get("cmd") == "blpop" for c in await r.client_list()):
        await asyncio.sleep(0.01)
    await r.client_kill_filter(_type="normal", skipme=True)
    # callers arriving right after the failure, while the old connection is torn down
    failed = await asyncio.gather(waiting, return_exceptions=True)
    later = await asyncio.gather(*(batch(("INCR", "n")) for _ in range(20)))
    assert isinstance(failed[0], redis.exceptions.ConnectionError)
    assert sorted(x[0] for x in later) == list(range(1, 21))


async def test_a_redis_that_stops_answering_fails_its_callers_in_time_then_serves_again(
    batch: Batcher, r: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batching, "READ_TIMEOUT_S", 0.3)
    assert await batch(("SET", "a", "1")) == [b"OK"]
    await r.execute_command("CLIENT", "PAUSE", 1500, "ALL")  # Redis reads, answers nobody
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(redis.exceptions.ConnectionError):
        await batch(("GET", "a"))
    assert loop.time() - began < 1.2  # failed by the timeout, not by the pause ending
    assert await r.get("a") == b"1"  # answered once the pause is over
    assert await batch(("GET", "a")) == [b"1"]


async def test_a_value_redis_cannot_take_fails_only_the_caller_who_gave_it(
    batch: Batcher,
) -> None:
    callers = [batch(("SET", f"v{i}", "\ud800" if i == 1 else str(i))) for i in range(8)]
    results = await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True), 5)
    assert isinstance(results[1], UnicodeEncodeError)
    assert [res for i, res in enumerate(results) if i != 1] == [[b"OK"]] * 7


async def test_server_pushes_reach_no_caller(batch: Batcher, r: Any) -> None:
    await batch(("HELLO", "3"), ("CLIENT", "TRACKING", "on"))
    _, before = await batch(("GET", "t"), ("CLIENT", "ID"))  # t is tracked from now on
    # a caller waits while Redis pushes t's invalidation down the same connection
    waiting = asyncio.ensure_future(batch(("BLPOP", "q", 5)))
    while not any(c.get("cmd") == "blpop" for c in await r.client_list()):
        await asyncio.sleep(0.01)
    async with r.pipeline(transaction=True) as pipe:
        await pipe.set("t", "1").rpush("q", "x").execute()
    assert await waiting == [[b"q", b"x"]]
    assert await batch(("GET", "t"), ("CLIENT", "ID")) == [b"1", before]  # same connection
