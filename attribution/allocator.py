"""Tracking numbers for sessions: one Lua round trip per pool.

The script (``scripts/allocate.lua``) gives the session its own live lease, else
the free number that has rested longest, else applies the pool's ``on_exhausted``
rule; every lease is written to the number's history for the call matcher.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from . import metrics
from .config import Config, Pool, Site
from .keys import Keys
from .lua import Scripts


class Lease(NamedTuple):
    pool: str
    replace: str  # the site's own number (E.164)
    number: str  # what the visitor sees (== replace on fallback)
    outcome: str  # held | new | shared | fallback | lost


def utc_day(ms: int) -> str:
    return _day(ms // 86_400_000)


@lru_cache(maxsize=64)
def _day(days: int) -> str:
    return datetime.fromtimestamp(days * 86_400, UTC).strftime("%Y-%m-%d")


class Allocator:
    def __init__(self, config: Config, scripts: Scripts, keys: Keys) -> None:
        self.config = config
        self.scripts = scripts
        self.keys = keys
        self.history_ms = config.history_days * 86_400_000

    async def sync(self) -> None:
        """Bring every pool's numbers in line with the configuration (at start-up)."""
        for site in self.config.sites:
            for pool in site.pools:
                await self.scripts(
                    "sync_pool", self.keys.pool(site.id, pool.id), *[n.e164 for n in pool.numbers]
                )

    def op(
        self, site: Site, pool: Pool, sid: str, now_ms: int, allocate: bool = True
    ) -> tuple[Any, ...]:
        """The allocate script call, for a :class:`Batcher` or a direct call."""
        return (
            "script",
            "allocate",
            self.keys.pool(site.id, pool.id),
            sid,
            now_ms,
            self.config.hold_ms,
            pool.on_exhausted,
            self.history_ms,
            utc_day(now_ms),
            "1" if allocate else "0",
        )

    @staticmethod
    def result(site: Site, pool: Pool, raw: Sequence[Any]) -> Lease:
        """The lease a script's reply gives (counted)."""
        number, outcome = raw
        metrics.LEASES.add(site.id, pool.id, outcome)
        return Lease(pool.id, pool.replace.e164, shown_number(pool, number), _text(outcome))

    async def lease(
        self, site: Site, pool: Pool, sid: str, now_ms: int | None = None, allocate: bool = True
    ) -> Lease:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        raw = await self.scripts(*self.op(site, pool, sid, now_ms, allocate)[1:])
        return self.result(site, pool, raw)


def shown_number(pool: Pool, number: bytes | str | None) -> str:
    """What the visitor sees of ``pool``, from its script's reply: the number it gave,
    else the site's own."""
    return _text(number) if number else pool.replace.e164


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
