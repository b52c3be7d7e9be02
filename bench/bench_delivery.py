"""From a CDR accepted by ``POST /v1/calls`` to its event received by a GA4 stand-in, with
the in-process worker; and how long 1,000 queued events take to drain.
Targets: p50 < 200 ms, p99 < 2 s; drain < 10 s.  The baseline is the stand-in itself:
1,000 bare posts to it from one client, measured in the same run.

The stand-in (tests/ga4_standin.py, GA's validation rules) runs in its own process.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support import CHROME_UA, TEST_ENV, LiveServer, build_app, free_port  # noqa: E402

from attribution.redis_store import EmbeddedRedis  # noqa: E402

STANDIN = """
import sys
sys.path.insert(0, {tests!r})
import uvicorn
from starlette.responses import JSONResponse
from starlette.routing import Route
from ga4_standin import Standin
st = Standin({{"G-ACME123": {secret!r}}})
async def stats(request):
    start = int(request.query_params.get("from", "0"))
    return JSONResponse({{"n": len(st.accepted), "rejected": len(st.rejected),
                          "at": [a.at for a in st.accepted[start:]]}})
st.app.router.routes.append(Route("/stats", stats))
uvicorn.run(st.app, host="127.0.0.1", port={port}, log_level="warning", access_log=False)
"""
AUTH = {"Authorization": f"Bearer {TEST_ENV['ACME_API_KEY']}"}


async def _count(http: httpx.AsyncClient, base: str, start: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = (await http.get(f"{base}/stats", params={"from": start})).json()
    return out


async def _main(quick: bool, tmp: Path) -> dict[str, Any]:
    redis = EmbeddedRedis(tmp / "redis").start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ga = subprocess.Popen(
        [
            sys.executable,
            "-c",
            STANDIN.format(
                tests=str(ROOT / "tests"), secret=TEST_ENV["ACME_GA4_SECRET"], port=port
            ),
        ]
    )
    http = httpx.AsyncClient(timeout=30)
    n_lat = 100 if quick else 500
    try:
        for _ in range(400):
            try:
                await http.get(f"{base}/stats")
                break
            except httpx.HTTPError:
                await asyncio.sleep(0.05)
        # baseline: bare posts to the stand-in
        t0 = time.perf_counter()
        for _ in range(200):
            await http.post(f"{base}/mp/collect", json={})
        bare_ms = (time.perf_counter() - t0) / 200 * 1000

        app = build_app(redis.url, run_worker=True, ga4_endpoint=f"{base}/mp/collect")
        lat = []
        with LiveServer(app) as srv:
            sess = (
                await http.post(
                    f"{srv.url}/v1/sessions",
                    headers={"User-Agent": CHROME_UA},
                    json={
                        "site": "acme",
                        "url": "https://acme.example/?utm_medium=cpc",
                        "ga_client_id": "123.456",
                        "ga_session_id": str(int(time.time())),
                    },
                )
            ).json()
            called = sess["numbers"][0]["number"]
            for i in range(n_lat):
                t = time.time()
                resp = await http.post(
                    f"{srv.url}/v1/calls",
                    headers=AUTH,
                    json={
                        "call_id": f"lat-{i}",
                        "caller": "+380671112233",
                        "called": called,
                        "started_at": t,
                        "status": "answered",
                    },
                )
                resp.raise_for_status()
                while (s := await _count(http, base, i))["n"] <= i:
                    await asyncio.sleep(0.001)
                lat.append((s["at"][0] - t) * 1000)
        lat.sort()
        p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]

        # drain: 1,000 CDRs accepted while no worker runs, then a server with one
        queued = build_app(redis.url, run_worker=False)
        before = await _count(http, base)
        n0 = before["n"]
        with LiveServer(queued) as srv:
            batch = [
                {
                    "call_id": f"drain-{i}",
                    "caller": "+380671112233",
                    "called": called,
                    "started_at": time.time(),
                    "status": "answered",
                }
                for i in range(1000)
            ]
            (await http.post(f"{srv.url}/v1/calls", headers=AUTH, json=batch)).raise_for_status()
        with LiveServer(build_app(redis.url, run_worker=True, ga4_endpoint=f"{base}/mp/collect")):
            t0 = time.perf_counter()
            while (s := await _count(http, base, n0))["n"] < n0 + 1000:
                await asyncio.sleep(0.02)
            drain = time.perf_counter() - t0
        rejected = s["rejected"] - before["rejected"]
    finally:
        await http.aclose()
        ga.terminate()
        ga.wait()
        redis.stop()
    print(
        f"delivery: CDR accepted → event at the stand-in, n={n_lat}: p50 {p50:.1f} ms "
        f"(target < 200 ms), p99 {p99:.1f} ms (target < 2000 ms); a bare post to the "
        f"stand-in {bare_ms:.1f} ms → p50 {p50 / bare_ms:.1f}x"
    )
    print(
        f"delivery: 1,000 queued events drained in {drain:.2f} s (target < 10 s) = "
        f"{drain / bare_ms:.2f}x 1,000 bare posts; rejected by the "
        f"stand-in: {rejected}"
    )
    return {"p50_ms": p50, "p99_ms": p99, "drain_s": drain, "bare_post_ms": bare_ms}


def run(quick: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(_main(quick, Path(tmp)))


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
