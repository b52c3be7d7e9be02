"""Test support shared by the suites: the example config, live servers on loopback."""

from __future__ import annotations

import socket
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import redis
import uvicorn

from attribution import config as configmod

ROOT = Path(__file__).resolve().parent.parent

BASE_TOML = """
hold_minutes = 15
history_days = 35

[[site]]
id = "acme"
domains = ["acme.example", "localhost", "127.0.0.1"]
country = "UA"
timezone = "Europe/Kyiv"
replace = ["+380 57 700 00 00", "0 800 300 100"]
api_key_env = "ACME_API_KEY"
ga4 = { measurement_id = "G-ACME123", api_secret_env = "ACME_GA4_SECRET" }

  [[site.region]]
  id = "kharkiv"
  geoip = { countries = ["UA"], subdivisions = ["63"] }

  [[site.pool]]
  id = "kharkiv-paid"
  match = { region = "kharkiv", medium = "cpc" }
  numbers = ["+380 57 700 00 01", "+380 57 700 00 02"]

  [[site.pool]]
  id = "paid"
  match = { medium = "cpc" }
  numbers = ["+380 57 700 00 11", "+380 57 700 00 12", "+380 57 700 00 13"]
  value = 25
  currency = "UAH"

  [[site.pool]]
  id = "tollfree"
  replace = "0 800 300 100"
  numbers = ["0 800 300 101", "0 800 300 102", "0 800 300 103"]
  on_exhausted = "fallback"

  [[site.static]]
  number = "+380 57 700 00 50"
  source = "billboard"
  medium = "offline"
"""

TEST_ENV = {"ACME_API_KEY": "acme-key-0123456789", "ACME_GA4_SECRET": "ga4-secret-acme"}


def make_config(
    text: str = BASE_TOML, env: dict[str, str] | None = None, **top: Any
) -> configmod.Config:
    data = tomllib.loads(text)
    data.update(top)
    return configmod.parse(data).with_secrets(env or TEST_ENV)


def flush_redis(url: str) -> None:
    """Empty the test Redis with a client closed at once (one left to the collector
    closes its socket in whichever later test collects it: a ResourceWarning there)."""
    with redis.Redis.from_url(url) as client:
        client.flushall()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """An ASGI app under uvicorn in a thread, on a loopback port; lifespan runs."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            access_log=False,
            proxy_headers=False,
        )
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def build_app(redis_url: str, cfg: configmod.Config | None = None, **kwargs: Any) -> Any:
    """The real app on the test Redis (a fresh asyncio client bound to the server's loop)."""
    from attribution.app import create_app
    from attribution.keys import Keys
    from attribution.redis_store import client
    from attribution.sessions import Signer

    kwargs.setdefault("run_worker", False)
    kwargs.setdefault("keys", Keys("cptest"))
    return create_app(cfg or make_config(), client(redis_url), signer=Signer(b"s" * 32), **kwargs)


CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
GOOGLEBOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
