"""Shared fixtures: one embedded Redis per test session, live HTTP servers on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from support import BASE_TOML, ROOT, TEST_ENV, LiveServer, free_port, make_config

from attribution.keys import Keys
from attribution.redis_store import EmbeddedRedis, client

__all__ = ["BASE_TOML", "ROOT", "TEST_ENV", "LiveServer", "free_port", "make_config"]

# how fast examples are drawn says something of the machine, not of callpath: on a busy
# CI runner the "too slow" health check failed property tests that had found nothing
settings.register_profile("callpath", suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("callpath")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[Any]:
    """A client on the session's embedded Redis, flushed after each test."""
    c = client(redis_url)
    await c.flushall()
    yield c
    await c.flushall()
    await c.aclose()


@pytest.fixture
def keys() -> Keys:
    return Keys("cptest")


@pytest.fixture
def live() -> Callable[..., LiveServer]:
    """``with live(app) as srv: httpx.get(srv.url + ...)``"""
    return LiveServer
