"""The Starlette application: routes, and the lifespan that owns clients and workers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import api, metrics, outbox, reports
from .config import Config
from .geo import GeoIP, client_ip
from .keys import Keys
from .redis_store import AnyRedis
from .services import GA4_ENDPOINT, Services, services
from .sessions import Signer
from .web import (
    EXCEPTION_HANDLERS,
    AccessLog,
    JsonRoute,
    cors_for,
    cors_headers,
    first_headers,
    json_object,
    json_response,
    logged,
    preflight,
)

log = logging.getLogger("callpath")

GC_YOUNG_THRESHOLD = 20_000  # allocations between collections of the youngest objects


def _static(name: str) -> bytes:
    return resources.files("attribution.static").joinpath(name).read_bytes()


# ---------------------------------------------------------------- routes


async def healthz(request: Request) -> Response:
    svc = services(request)
    try:
        await asyncio.wait_for(svc.redis.ping(), 2)
    except Exception as exc:  # any Redis failure means unhealthy
        return json_response({"status": "unhealthy", "redis": type(exc).__name__}, 503)
    return json_response({"status": "ok"})


async def metrics_route(request: Request) -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


async def snippet(request: Request) -> Response:
    body: bytes = request.app.state.snippet
    etag = request.app.state.snippet_etag
    headers = {
        "ETag": etag,
        "Cache-Control": "public, max-age=300",
        "Access-Control-Allow-Origin": "*",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, headers=headers, media_type="application/javascript")


async def demo(request: Request) -> Response:
    return HTMLResponse(_static("demo.html"))


async def start_session(request: Request) -> tuple[bytes, dict[str, str]]:
    svc = services(request)
    server = svc.config.server
    first = first_headers(request)
    body = await json_object(request, server.max_body_bytes, first)
    site = svc.tracker.site(body)
    origin = first.get(b"origin", b"").decode("latin-1")
    referer = "" if origin else first.get(b"referer", b"").decode("latin-1")
    cors = cors_for(site, origin, referer)
    peer = request.scope.get("client")
    # the headers are read only when the peer may be a trusted proxy
    headers = request.headers if server.trusted_proxies else {}
    ip = client_ip(peer[0] if peer else None, headers, server.trusted_proxies)
    user_agent = first.get(b"user-agent", b"").decode("latin-1")
    return svc.tracker.encoded(await svc.tracker.start(site, body, user_agent, ip)), cors


async def sessions_preflight(request: Request) -> Response:
    return preflight(services(request).config, request)


async def ping(request: Request) -> tuple[dict[str, Any], dict[str, str]]:
    svc = services(request)
    body = await json_object(request, svc.config.server.max_body_bytes)
    sid = request.path_params["sid"]
    site, record = await svc.tracker.session(sid)
    headers = cors_headers(site, request)  # a foreign page refreshes nothing
    return await svc.tracker.ping(site, sid, record, body), headers


ROUTES = [
    Route("/healthz", healthz),
    Route("/metrics", metrics_route),
    Route("/snippet.js", snippet),
    Route("/demo", demo),
    Route("/v1/sessions", JsonRoute(start_session), methods=["POST"]),
    Route("/v1/sessions", sessions_preflight, methods=["OPTIONS"]),
    Route("/v1/sessions/{sid}/ping", JsonRoute(ping), methods=["POST"]),
    Route("/v1/sessions/{sid}/ping", sessions_preflight, methods=["OPTIONS"]),
    Route("/v1/calls", api.post_calls, methods=["POST"]),
    Route("/v1/calls", api.list_calls, methods=["GET"]),
    Route("/v1/calls/{call_id}/conversion", api.conversion, methods=["POST"]),
    Route("/v1/lookup", api.lookup, methods=["GET"]),
    *reports.ROUTES,
]


class App(Starlette):
    """Starlette, with the snippet's routes (:class:`JsonRoute`) dispatched first.

    Every page view of every visitor reaches ``POST /v1/sessions``: going through the
    middleware stack and the router's list of routes would cost it more than its Redis
    work.  These routes answer their own errors, with the app's handlers, and are
    logged like the rest; everything else takes Starlette's usual way."""

    services: Services  # set by create_app

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast = [
            (route.path_regex, route.methods or set(), route.app)
            for route in self.routes
            if isinstance(route, Route) and isinstance(route.app, JsonRoute)
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            method, path = scope["method"], scope["path"]
            for regex, methods, endpoint in self.fast:
                if method in methods and (match := regex.match(path)):
                    scope["app"] = self
                    scope["path_params"] = match.groupdict()
                    await logged(endpoint, scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def create_app(
    config: Config,
    redis: AnyRedis,
    *,
    keys: Keys | None = None,
    signer: Signer,
    geoip: GeoIP | None = None,
    ga4_endpoint: str = GA4_ENDPOINT,
    run_worker: bool = True,
    extra_routes: list[Route] | None = None,
) -> App:
    """The app for a loaded config and a Redis client (embedded, URL or Cluster)."""
    svc = Services(
        config, redis, keys or Keys(), signer, geoip or GeoIP(None), ga4_endpoint, run_worker
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        svc.http = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, connect=5.0),
            limits=httpx.Limits(max_keepalive_connections=20),
        )
        await svc.allocator.sync()
        for start in app.state.on_start:
            svc.tasks.append(asyncio.create_task(start(svc)))
        thresholds = gc.get_threshold()
        # what startup built (config, parsers' tables, compiled patterns) lives as long
        # as the app: no collection needs to walk it again; and a request's objects are
        # freed by their references, so the youngest collection can wait much longer
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *thresholds[1:])
        try:
            yield
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()
            for task in svc.tasks:
                task.cancel()
            for task in svc.tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            svc.tasks.clear()
            await svc.http.aclose()
            await svc.redis.aclose()  # the app owns the client it was given

    routes = ROUTES + list(extra_routes or [])
    app = App(
        routes=routes,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[Middleware(AccessLog)],
        lifespan=lifespan,
    )
    app.state.services = svc
    app.services = svc  # what services() reads: an attribute, not app.state's lookup
    app.state.on_start = []
    outbox.install(app)
    snippet_body = _static("snippet.js")
    app.state.snippet = snippet_body
    app.state.snippet_etag = '"' + hashlib.sha256(snippet_body).hexdigest()[:16] + '"'
    return app
