"""Which web session is behind a call: the called number at the call's start time.

The lease history of each tracking number (``scripts/match.lua``) answers which
sessions held it at that moment, so a CDR imported days later still finds its
session after the number was reused.  Several holders (a shared number) are
resolved by the caller's own history, then by the latest activity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .config import Config, Pool, Site, Static
from .keys import Keys
from .lua import Scripts
from .redis_store import AnyRedis

HISTORY_SCAN = 50
CLOCK_SKEW_MS = 10_000


@dataclass(frozen=True, slots=True)
class Match:
    kind: str  # exact | ambiguous | static | unattributed
    sid: str = ""
    candidates: int = 0
    pool: Pool | None = None
    static: Static | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """What a dialled number is: a pool's tracking number, a static one, or neither."""

    site: Site | None
    pool: Pool | None = None
    static: Static | None = None


class Matcher:
    def __init__(self, config: Config, redis: AnyRedis, scripts: Scripts, keys: Keys) -> None:
        self.config = config
        self.redis = redis
        self.scripts = scripts
        self.keys = keys
        self.grace_ms = config.hold_ms
        self._routes: dict[str, Route] = {}
        for site in config.sites:
            for own in site.replace:
                self._routes[own.e164] = Route(site)
            for pool in site.pools:
                for n in pool.numbers:
                    self._routes[n.e164] = Route(site, pool=pool)
            for static in site.statics:
                self._routes[static.number.e164] = Route(site, static=static)

    def route(self, number: str) -> Route:
        return self._routes.get(number, Route(None))

    def match_args(self, site: Site, pool: Pool, number: str, at_ms: int) -> tuple[Any, ...]:
        return (
            "match",
            self.keys.pool(site.id, pool.id),
            number,
            at_ms,
            self.grace_ms,
            HISTORY_SCAN,
            CLOCK_SKEW_MS,
        )

    async def candidates(self, site: Site, pool: Pool, number: str, at_ms: int) -> list[Any]:
        result: list[Any] = await self.scripts(*self.match_args(site, pool, number, at_ms))
        return result

    async def resolve(
        self, site: Site, route: Route, raw: Sequence[Any], caller: str, at_ms: int
    ) -> Match:
        """Turn the script's answer into a match, asking Redis only when it is ambiguous."""
        if route.static is not None:
            return Match("static", static=route.static)
        if route.pool is None:
            return Match("unattributed")
        items = [x.decode() if isinstance(x, bytes) else x for x in raw]
        if items and items[-1] == "grace":
            items = items[:-1]
        sids = items[0::3]
        if not sids:
            return Match("unattributed", pool=route.pool)
        if len(sids) == 1:
            return Match("exact", sid=sids[0], candidates=1, pool=route.pool)
        return Match(
            "ambiguous",
            sid=await self._prefer(site, sids, caller, at_ms),
            candidates=len(sids),
            pool=route.pool,
        )

    async def _prefer(self, site: Site, sids: list[str], caller: str, at_ms: int) -> str:
        if caller:
            last = await self.redis.hget(self.keys.lastsid(site.id), caller)
            if last is not None:
                last = last.decode() if isinstance(last, bytes) else last
                if last in sids:
                    return str(last)
        best, best_seen = sids[0], -1
        for sid in sids:
            seen = await self.redis.hget(self.keys.session(sid), "last_seen")
            value = int(seen) if seen else 0
            if value <= at_ms and value > best_seen:
                best, best_seen = sid, value
        return best

    async def match(self, site: Site, number: str, caller: str, at_ms: int) -> Match:
        route = self.route(number)
        raw: list[Any] = []
        if route.pool is not None:
            raw = await self.candidates(site, route.pool, number, at_ms)
        return await self.resolve(site, route, raw, caller, at_ms)
