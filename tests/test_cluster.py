"""The same flows on a real 3-node Redis Cluster: every script runs in one slot."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster import LocalCluster
from support import CHROME_UA, LiveServer, build_app

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(Path(tmp_path_factory.mktemp("cluster"))).start()
    yield c
    c.stop()


@pytest.fixture
def server(cluster: LocalCluster) -> Iterator[LiveServer]:
    cluster.flush()
    with LiveServer(build_app(cluster.url)) as srv:
        yield srv


def key_header() -> dict[str, str]:
    return {"Authorization": "Bearer acme-key-0123456789"}


def session(srv: LiveServer) -> dict[str, Any]:
    resp = httpx.post(
        f"{srv.url}/v1/sessions",
        json={
            "site": "acme",
            "url": "https://acme.example/?utm_source=google&utm_medium=cpc",
            "ga_client_id": "123.456",
            "ga_session_id": "1700000000",
        },
        headers={"User-Agent": CHROME_UA},
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_sessions_calls_and_log_on_a_cluster(server: LiveServer) -> None:
    visitors = [session(server) for _ in range(3)]
    numbers = {v["numbers"][0]["number"] for v in visitors}
    assert len(numbers) == 3  # a 3-number pool, no double booking
    ping = httpx.post(
        f"{server.url}/v1/sessions/{visitors[0]['sid']}/ping",
        json={"url": "https://acme.example/cart"},
    )
    assert ping.status_code == 200
    called = visitors[0]["numbers"][0]["number"]
    cdr = {
        "call_id": "cl-1",
        "caller": "+380671112233",
        "called": called,
        "started_at": int(time.time()),
        "status": "missed",
    }
    stored = httpx.post(f"{server.url}/v1/calls", json=cdr, headers=key_header())
    assert stored.status_code == 200, stored.text
    assert stored.json()["match"] == "exact"
    assert stored.json()["sid"] == visitors[0]["sid"]
    again = httpx.post(f"{server.url}/v1/calls", json=cdr, headers=key_header())
    assert again.json() == stored.json()
    log = httpx.get(f"{server.url}/v1/calls", headers=key_header()).json()
    assert [c["call_id"] for c in log["calls"]] == ["cl-1"]
