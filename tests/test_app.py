"""The app itself over real HTTP: the snippet's routes taken before the middleware keep
the app's error answers and access log; the lifespan leaves the process as it found it."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from support import CHROME_UA, LiveServer, build_app

PAGE = {"site": "acme", "url": "https://acme.example/?utm_source=google&utm_medium=cpc"}
ORIGIN = {"Origin": "https://acme.example", "User-Agent": CHROME_UA}


@pytest.fixture
def app(redis_url: str) -> Iterator[Any]:
    r = redis.Redis.from_url(redis_url)
    r.flushall()
    yield build_app(redis_url)
    r.flushall()
    r.close()


def test_an_unexpected_error_in_the_session_route_is_a_json_500_without_a_trace(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: Any) -> Any:
        raise RuntimeError("secret detail of the failure")

    app.state.services.tracker.start = broken
    caplog.set_level(logging.ERROR, logger="callpath.http")
    with LiveServer(app) as srv:
        resp = httpx.post(f"{srv.url}/v1/sessions", json=PAGE, headers=ORIGIN)
    assert resp.status_code == 500
    assert resp.json() == {"error": "internal", "detail": "internal error; see the server log"}
    assert "secret" not in resp.text and "Traceback" not in resp.text
    assert any("unhandled error on POST /v1/sessions" in m for m in caplog.messages)


def test_a_refused_page_view_names_the_field_and_the_snippet_may_read_it(app: Any) -> None:
    with LiveServer(app) as srv:
        unknown = httpx.post(f"{srv.url}/v1/sessions", json=PAGE | {"site": "x"}, headers=ORIGIN)
        not_json = httpx.post(f"{srv.url}/v1/sessions", content=b"{", headers=ORIGIN)
        ping = httpx.post(f"{srv.url}/v1/sessions/forged.sid/ping", json={}, headers=ORIGIN)
    assert unknown.status_code == 404
    assert unknown.json()["field"] == "site"
    assert not_json.status_code == 400
    assert not_json.json()["field"] == "body"
    assert ping.status_code == 404
    assert ping.json()["field"] == "sid"
    for resp in (unknown, not_json, ping):
        assert resp.headers["access-control-allow-origin"] == "https://acme.example"


def test_every_request_gets_one_access_log_line_without_its_query(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="callpath.http")
    with LiveServer(app) as srv:
        assert httpx.post(f"{srv.url}/v1/sessions", json=PAGE, headers=ORIGIN).status_code == 200
        assert httpx.get(f"{srv.url}/v1/calls?caller=%2B380501112233").status_code == 401
        assert httpx.options(f"{srv.url}/v1/sessions", headers=ORIGIN).status_code == 204
    lines = [m for m in caplog.messages if m.startswith(("POST ", "GET ", "OPTIONS "))]
    assert [line.rsplit(" ", 1)[0] for line in lines] == [
        "POST /v1/sessions 200",
        "GET /v1/calls 401",
        "OPTIONS /v1/sessions 204",
    ]
    assert "380501112233" not in "\n".join(caplog.messages)


def test_the_lifespan_gives_back_the_collector_as_it_found_it(app: Any) -> None:
    before = gc.get_threshold(), gc.get_freeze_count()
    with LiveServer(app) as srv:
        assert httpx.post(f"{srv.url}/v1/sessions", json=PAGE, headers=ORIGIN).status_code == 200
        assert gc.get_freeze_count() > 0
    assert (gc.get_threshold(), gc.get_freeze_count()) == before
