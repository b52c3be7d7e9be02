"""``callpath`` (also ``python -m attribution``): serve, worker, check, import-cdr, …"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from . import audit, importer, simulate
from . import config as configmod
from .errors import ConfigError

log = logging.getLogger("callpath")


def _setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _config_path(arg: str | None) -> str:
    return arg or os.environ.get("CALLPATH_CONFIG") or "pools.toml"


def _load(path: str, secrets: bool = True) -> configmod.Config:
    cfg = configmod.load(path)
    return cfg.with_secrets() if secrets else cfg


# ---------------------------------------------------------------- check


def cmd_check(args: argparse.Namespace) -> int:
    path = _config_path(args.file)
    try:
        cfg = configmod.load(path)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    print(summary(cfg))
    return 0


def summary(cfg: configmod.Config) -> str:
    lines = [
        f"{cfg.path}: ok — {len(cfg.sites)} site(s), hold {cfg.hold_minutes:g} min, "
        f"history {cfg.history_days} days"
    ]
    for site in cfg.sites:
        ga = f"GA4 {site.ga4.measurement_id}" if site.ga4 else "no GA4"
        lines.append(
            f"  {site.id} ({site.country}, {site.timezone.key}, {ga}) — "
            f"own numbers: {', '.join(p.e164 for p in site.replace)}"
        )
        if site.regions:
            lines.append(f"    regions: {', '.join(r.id for r in site.regions)}")
        for pool in site.pools:
            match = ", ".join(f"{k}={v}" for k, v in pool.match) or "everyone"
            lines.append(
                f"    pool {pool.id}: {len(pool.numbers)} numbers for "
                f"{pool.replace.e164}, match {match}, on_exhausted {pool.on_exhausted}"
            )
        for static in site.statics:
            lines.append(f"    static {static.number.e164}: {static.source}/{static.medium}")
    return "\n".join(lines)


# ---------------------------------------------------------------- serve


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .redis_store import mask_url, resolve

    path = _config_path(args.config)
    try:
        _load(path)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir or os.environ.get("CALLPATH_DATA_DIR") or ".callpath")
    url, embedded = resolve(args.redis, data_dir)
    os.environ.update(CALLPATH_CONFIG=path, CALLPATH_REDIS_URL=url, CALLPATH_DATA_DIR=str(data_dir))
    if args.no_worker:
        os.environ["CALLPATH_NO_WORKER"] = "1"
    where = f"embedded, {embedded.socket}" if embedded else mask_url(url)
    print(
        f"callpath: http://{args.host}:{args.port}/ (demo /demo, dashboard /dashboard)\n"
        f"  config   {path}\n  data dir {data_dir.resolve()}\n  redis    {where}",
        flush=True,
    )
    # uvicorn shuts down gracefully on SIGTERM and then raises the signal again with
    # the handler it found: this one turns that into a clean exit through `finally`,
    # so a service manager's stop also stops the embedded Redis (Ctrl-C already did)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        uvicorn.run(
            "attribution.server:build",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="info",
            access_log=False,
            proxy_headers=False,
        )
    finally:
        if embedded:
            embedded.stop()
            print("callpath: embedded redis stopped (data kept in AOF)", flush=True)
    return 0


# ---------------------------------------------------------------- worker


def cmd_worker(args: argparse.Namespace) -> int:
    from .keys import Keys
    from .outbox import run_worker
    from .redis_store import client
    from .services import GA4_ENDPOINT

    try:
        cfg = _load(_config_path(args.config))
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    url = args.redis or os.environ.get("CALLPATH_REDIS_URL")
    if not url:
        print(
            "callpath worker: give --redis URL or CALLPATH_REDIS_URL (the server's Redis)",
            file=sys.stderr,
        )
        return 2
    endpoint = os.environ.get("CALLPATH_GA4_ENDPOINT", GA4_ENDPOINT)
    try:
        asyncio.run(run_worker(cfg, client(url), Keys(), endpoint))
    except KeyboardInterrupt:
        pass
    return 0


# ---------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="callpath",
        description="Call tracking with dynamic number insertion, joined to Google Analytics 4.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the HTTP server (embedded Redis unless --redis)")
    s.add_argument("--config", help="pools file (default: CALLPATH_CONFIG or pools.toml)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--redis", help="redis://…, unix://…, or redis+cluster://host:port")
    s.add_argument(
        "--data-dir",
        help="embedded Redis data and the generated secret "
        "(default: CALLPATH_DATA_DIR or .callpath)",
    )
    s.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    s.add_argument("--no-worker", action="store_true", help="do not deliver GA4 events here")
    s.set_defaults(func=cmd_serve)

    w = sub.add_parser("worker", help="deliver GA4 events (any number of these)")
    w.add_argument("--config")
    w.add_argument("--redis")
    w.set_defaults(func=cmd_worker)

    c = sub.add_parser("check", help="validate a pools file; exit 1 listing every problem")
    c.add_argument("file", nargs="?")
    c.set_defaults(func=cmd_check)

    importer.add_parser(sub)
    simulate.add_parser(sub)
    audit.add_parser(sub)
    _add_ga4(sub)
    return p


def cmd_ga4_validate(args: argparse.Namespace) -> int:
    """Send a sample call event to GA4's validation endpoint and print what it says."""
    import time

    import httpx

    from . import ga4
    from .services import GA4_ENDPOINT

    try:
        cfg = _load(_config_path(args.config))
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    site = cfg.site(args.site)
    if site is None or site.ga4 is None:
        print(
            f"callpath ga4 validate: site {args.site!r} is not configured with ga4", file=sys.stderr
        )
        return 2
    now = time.time()
    sample = {
        "call_id": "validate-sample",
        "site": site.id,
        "direction": "inbound",
        "status": "answered",
        "started_ms": int(now * 1000),
        "duration": 95,
        "billsec": 80,
        "match": "exact",
        "pool": site.pools[0].id if site.pools else "",
        "source": "google",
        "medium": "cpc",
        "campaign": "validate",
        "first_time_caller": True,
        "ga_client_id": "1234567890.1700000000",
        "ga_session_id": str(int(now) - 60),
        "value": None,
        "currency": None,
    }
    payload = ga4.call_event(sample, site, now)
    endpoint = os.environ.get("CALLPATH_GA4_ENDPOINT", GA4_ENDPOINT)

    async def go() -> list[str]:
        async with httpx.AsyncClient(timeout=10) as http:
            return await ga4.Sender(http, endpoint).validate(site, payload)

    messages = asyncio.run(go())
    print(
        f"event {site.ga4.event_name!r} for {site.ga4.measurement_id}: "
        f"{'valid' if not messages else f'{len(messages)} problem(s)'}"
    )
    for message in messages:
        print(f"  {message}")
    return 1 if messages else 0


def _add_ga4(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    g = sub.add_parser("ga4", help="GA4 Measurement Protocol tools")
    gsub = g.add_subparsers(dest="ga4_command", required=True)
    v = gsub.add_parser("validate", help="send a sample event to GA's validation endpoint")
    v.add_argument("--site", required=True)
    v.add_argument("--config")
    v.set_defaults(func=cmd_ga4_validate)


def main(argv: Sequence[str] | None = None) -> int:
    _setup_logging(os.environ.get("CALLPATH_LOG_LEVEL", "INFO"))
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
