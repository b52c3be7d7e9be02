"""Everything a route needs, made once per app; the HTTP client comes from the lifespan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request

from .allocator import Allocator
from .calls import CallLog
from .config import Config
from .geo import GeoIP
from .keys import Keys
from .lua import Scripts
from .matcher import Matcher
from .redis_store import AnyRedis
from .sessions import Signer
from .tracking import Tracker

GA4_ENDPOINT = "https://www.google-analytics.com/mp/collect"


@dataclass
class Services:
    """Everything a route needs, made once per app (or in its lifespan)."""

    config: Config
    redis: AnyRedis
    keys: Keys
    signer: Signer
    geoip: GeoIP
    ga4_endpoint: str = GA4_ENDPOINT
    run_worker: bool = True
    scripts: Scripts = field(init=False)
    allocator: Allocator = field(init=False)
    tracker: Tracker = field(init=False)
    matcher: Matcher = field(init=False)
    calls: CallLog = field(init=False)
    http: httpx.AsyncClient | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.scripts = Scripts(self.redis)
        self.allocator = Allocator(self.config, self.scripts, self.keys)
        self.tracker = Tracker(
            self.config, self.redis, self.allocator, self.keys, self.signer, self.geoip
        )
        self.matcher = Matcher(self.config, self.redis, self.scripts, self.keys)
        self.calls = CallLog(self.config, self.redis, self.scripts, self.keys, self.matcher)


def services(request: Request) -> Services:
    svc: Services = request.scope["app"].services
    return svc
