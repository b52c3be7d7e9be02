"""The real app plus two trivial JSON routes, under uvicorn with the production settings.

``/bench/trivial`` is an ordinary route, first in the routing table (no route is
cheaper to reach through the app's middleware and router); ``/bench/trivial-fast`` is
a :class:`JsonRoute`, taken before the middleware like the snippet's own routes."""

from __future__ import annotations

import argparse

import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from attribution import config as configmod
from attribution.app import create_app
from attribution.keys import Keys
from attribution.redis_store import client
from attribution.sessions import Signer
from attribution.web import JsonRoute, json_response

TRIVIAL = {"sid": None, "numbers": [], "hold_seconds": 900, "visit": {}}


async def trivial(request: Request) -> Response:
    return json_response(TRIVIAL)


async def trivial_fast(request: Request) -> tuple[dict[str, object], dict[str, str]]:
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
        extra_routes=[Route("/bench/trivial-fast", JsonRoute(trivial_fast), methods=["GET"])],
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
