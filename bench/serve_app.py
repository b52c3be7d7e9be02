"""The real app plus trivial JSON routes, under uvicorn with the production settings.

``/bench/trivial`` is an ordinary route, first in the routing table (no route is
cheaper to reach through the app's middleware and router); ``/bench/trivial-fast`` is
a :class:`JsonRoute`, taken before the middleware like the snippet's own routes.

``/bench/script-only`` answers like the trivial route after making the one Redis call
of a new visitor's page view (``start.lua``, through the tracker's own batcher, with a
fresh sid and a fixed record) and nothing else: no body, classification, device, rate
limit or answer to build.  No session route can be faster than it on this machine."""

from __future__ import annotations

import argparse
import time

import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from attribution import config as configmod
from attribution.app import create_app
from attribution.keys import Keys
from attribution.redis_store import client
from attribution.services import services
from attribution.sessions import Signer
from attribution.sources import Visit
from attribution.web import JsonRoute, json_response

VISIT = Visit("google", "cpc", "c1")
TRIVIAL = {"sid": None, "numbers": [], "hold_seconds": 900, "visit": {}}
RECORD = {  # what a first page view of bench_sessions stores, but for what start.lua sets
    "site": "bench",
    "source": "google",
    "medium": "cpc",
    "campaign": "c1",
    "device": "desktop",
    "landing_page": "https://bench.example/p1?utm_source=google&utm_medium=cpc&utm_campaign=c1",
    "referrer": "https://www.google.com/",
    "ga_client_id": "1.1700",
    "ga_session_id": "1700000000",
}


async def trivial(request: Request) -> Response:
    return json_response(TRIVIAL)


async def trivial_fast(request: Request) -> tuple[dict[str, object], dict[str, str]]:
    return TRIVIAL, {}


async def script_only(request: Request) -> tuple[dict[str, object], dict[str, str]]:
    tracker = services(request).tracker
    site = tracker.config.sites[0]
    fields = [x for kv in RECORD.items() for x in kv]
    sid = tracker.signer.issue(site.id)
    now_ms = int(time.time() * 1000)
    visit = tracker._visit(site, VISIT, "", "desktop")
    await tracker._start_script(site, visit, sid, now_ms, fields, True, None)
    return TRIVIAL, {}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--redis", required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    cfg = configmod.load(args.config).with_secrets()
    app = create_app(
        cfg,
        client(args.redis),
        keys=Keys(),
        signer=Signer(b"b" * 32),
        run_worker=False,
        extra_routes=[
            Route("/bench/trivial-fast", JsonRoute(trivial_fast), methods=["GET"]),
            Route("/bench/script-only", JsonRoute(script_only), methods=["GET"]),
        ],
    )
    app.router.routes.insert(0, Route("/bench/trivial", trivial))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
