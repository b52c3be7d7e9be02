"""POST /v1/sessions throughput against a trivial JSON route of the same app (an ordinary
route, and one on the snippet's own path), p99 at half load, and Redis memory per held
session.  Targets: ≥ 0.5×, p99 < 10 ms, ≤ 1 KiB.

The ratio's requests are new visitors' first page views; a returning visitor's next
page is measured beside them, and the p99 of half-load rounds in which an AOF rewrite
ran (a fork, then a child process beside Redis) is told from the others'.  The
main rounds' pool of 2,000
numbers held 15 minutes runs out within a second, so most visitors there share a
number; :func:`steady` measures the ratio again where a pool never runs out and each
visitor takes a number somebody held before.

Also measured in the same rounds: the ceiling, a route that makes only a new visitor's
Redis call (``/bench/script-only`` in ``serve_app``), and the CPU that Redis's own
background AOF rewrites took meanwhile (they share the machine with the server), and the
CPU per request of the server process and of Redis for the trivial route and the sessions
route: one server process's CPU per request bounds its rate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis

from attribution.allocator import utc_day
from attribution.keys import Keys
from attribution.redis_store import EmbeddedRedis

from . import loadgen
from .memory import used_memory

WARM_UP = 20
STEADY_NUMBERS = 20_000
STEADY_HOLD_MINUTES = 0.01
ORIGIN = "https://bench.example"
UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def bench_config(numbers: int, hold_minutes: float = 15) -> str:
    nums = ", ".join(f'"+1 415 55{i // 10000} {i % 10000:04d}"' for i in range(1, numbers + 1))
    return f"""
hold_minutes = {hold_minutes}
[server]
sessions_per_minute = 100000000
[[site]]
id = "bench"
domains = ["bench.example"]
country = "US"
timezone = "America/New_York"
replace = ["+1 212 555 0100"]
api_key_env = "BENCH_API_KEY"
  [[site.pool]]
  id = "all"
  numbers = [{nums}]
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, tmp: Path, numbers: int, hold_minutes: float = 15) -> None:
        self.cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        self.redis = EmbeddedRedis(tmp / "redis").start()
        cfg = tmp / "pools.toml"
        cfg.write_text(bench_config(numbers, hold_minutes))
        self.port = free_port()
        env = os.environ | {"BENCH_API_KEY": "bench-key-0123456789"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.serve_app",
                "--config",
                str(cfg),
                "--redis",
                self.redis.url,
                "--port",
                str(self.port),
            ],
            env=env,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/healthz").raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def pin(self) -> str:
        """On two cores or more: the server alone on the first, Redis (its rewrites too)
        and the load generator on the second.  Left to itself the scheduler now and then
        runs two of them on one core while the other idles, which here moved a round's
        ratio by a fifth either way; the baseline and the sessions route run pinned alike."""
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else []
        if len(cores) < 2:
            return "not pinned (one core)"
        assert self.redis.process is not None
        os.sched_setaffinity(self.proc.pid, {cores[0]})
        os.sched_setaffinity(self.redis.process.pid, {cores[1]})
        os.sched_setaffinity(0, {cores[1]})
        return f"server on core {cores[0]}, Redis and the load generator on core {cores[1]}"

    def stop(self) -> None:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, self.cores)
        self.proc.terminate()
        self.proc.wait(10)
        self.redis.stop()


def first_page(i: int) -> dict[str, str]:
    """The body of visitor ``i``'s first page view: from a Google ad."""
    return {
        "site": "bench",
        "url": f"https://bench.example/p{i}?utm_source=google&utm_medium=cpc&utm_campaign=c{i % 7}",
        "referrer": "https://www.google.com/",
        "ga_client_id": f"{i}.1700",
        "ga_session_id": "1700000000",
    }


def session_request(body: dict[str, str]) -> bytes:
    # as the snippet's fetch from a page of the site sends it
    headers = {"User-Agent": UA, "Content-Type": "text/plain", "Origin": ORIGIN}
    return loadgen.request("POST", "/v1/sessions", json.dumps(body).encode(), headers)


def session_requests(n: int = 200) -> list[bytes]:
    return [session_request(first_page(i)) for i in range(n)]


def returning_requests(srv: Server, n: int = 200) -> list[bytes]:
    """Next pages of ``n`` visitors whose first page view is made here: a link on the
    site, with the visitor's sid (a direct return: the session keeps its ad's source)."""
    out = []
    with httpx.Client(headers={"User-Agent": UA}) as c:
        for i in range(n):
            first = first_page(i)
            answer = c.post(f"http://127.0.0.1:{srv.port}/v1/sessions", json=first).json()
            url = f"https://bench.example/p{i}/next"
            body = first | {"url": url, "referrer": first["url"], "sid": answer["sid"]}
            out.append(session_request(body))
    return out


def run(quick: bool = False) -> dict[str, Any]:
    """The routes take turns, 1.5 s each (1 s with --quick), and each ratio is the median
    of the rounds' ratios (ten, or four): on a shared machine a slow spell then hits
    every side of a round.

    Two baselines: an ordinary JSON route, first in the app's routing table, and one on
    the path the snippet's routes take (before the middleware and the router)."""
    rounds, seconds = (4, 1.0) if quick else (10, 1.5)
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(Path(tmp), 2000)
        try:
            pinning = srv.pin()
            memory = held_session_bytes(srv, 1500)
            trivial_req = loadgen.request("GET", "/bench/trivial")
            fast_req = loadgen.request("GET", "/bench/trivial-fast")
            script_req = loadgen.request("GET", "/bench/script-only")
            make = loadgen.cycle(session_requests())
            back = loadgen.cycle(returning_requests(srv))
            for warm in (lambda: trivial_req, lambda: fast_req, lambda: script_req, make, back):
                loadgen.measure(loadgen.run(srv.port, warm, 1.0))
            rewrites_before = rewrite_cpu(srv)
            rows: list[dict[str, loadgen.Result]] = []
            spent = new_spent()
            for i in range(rounds):
                base, sess = paired(srv, trivial_req, make, seconds, i, spent)
                rows.append({"base": base, "sess": sess})
                for name, req in (("fast", fast_req), ("only", script_req)):
                    rows[-1][name] = loadgen.measure(
                        loadgen.run(srv.port, lambda r=req: r, seconds)
                    )
                rows[-1]["back"] = loadgen.measure(loadgen.run(srv.port, back, seconds))
            rewrites = rewrite_cpu(srv) - rewrites_before
            ratios = {  # per round: what over what
                "sessions": [row["sess"].rps / row["base"].rps for row in rows],
                "fast": [row["sess"].rps / row["fast"].rps for row in rows],
                "ceiling": [row["only"].rps / row["base"].rps for row in rows],
                "returning": [row["back"].rps / row["base"].rps for row in rows],
            }
            middle = rows[median_round(ratios["sessions"])]
            base, sess = middle["base"], middle["sess"]
            fast = rows[median_round(ratios["fast"])]["fast"]
            half_load = sess.rps / 2
            halves, forked = [], []
            for _ in range(rounds):
                forks, running = rewrite_state(srv)
                halves.append(
                    loadgen.measure(
                        loadgen.run(srv.port, make, seconds, connections=16, rate=half_load)
                    )
                )
                forked.append(running or rewrite_state(srv)[0] > forks)
            half = sorted(halves, key=lambda h: h.pct(99))[len(halves) // 2]
        finally:
            srv.stop()
    ratio = {name: sorted(xs)[rounds // 2] for name, xs in ratios.items()}
    print(
        f"sessions: trivial route {base.rps:,.0f} req/s, POST /v1/sessions {sess.rps:,.0f} "
        f"req/s → ratio {ratio['sessions']:.2f}× ({of_rounds(ratios['sessions'])}; target "
        f"≥ 0.5×); errors {sum(row['sess'].errors for row in rows)}"
    )
    print(
        f"sessions: a returning visitor's next page (a link on the site, with its sid) "
        f"{ratio['returning']:.2f}× the trivial route ({of_rounds(ratios['returning'])})"
    )
    print(
        f"sessions: trivial route on the snippet's path {fast.rps:,.0f} req/s → ratio "
        f"{ratio['fast']:.2f}× ({of_rounds(ratios['fast'])})"
    )
    print(
        f"sessions: ceiling, the page view's Redis call alone (no other work) "
        f"{ratio['ceiling']:.2f}× the trivial route ({of_rounds(ratios['ceiling'])}); "
        f"Redis's background AOF rewrites took {rewrites:.1f} s of CPU during the "
        f"{rounds * 5 * seconds:.0f} s of rounds"
    )
    print(
        f"sessions: at half load ({half.rps:,.0f} req/s) p50 {half.pct(50):.2f} ms, "
        f"p99 {half.pct(99):.2f} ms ({of_rounds([h.pct(99) for h in halves])}; "
        f"target < 10 ms); an AOF rewrite ran in {sum(forked)} of these rounds "
        f"(p99 {rewrite_p99(halves, forked)})"
    )
    per_request, cpu_line = cpu_per_request(spent)
    print(
        f"sessions: CPU per request, server process, Redis and the load generator: {cpu_line}"
        " (one server process: its CPU per request bounds its rate; Redis and the"
        " generator share the other core)"
    )
    print(f"sessions: Redis memory per held session {memory:.0f} B (target ≤ 1024 B)")
    print(f"sessions: {pinning}")
    steady_pool = steady(*((3, 1.0) if quick else (6, 1.5)))
    return {
        "trivial_rps": base.rps,
        "trivial_fast_rps": fast.rps,
        "sessions_rps": sess.rps,
        "ratio": ratio["sessions"],
        "ratio_fast": ratio["fast"],
        "ratio_returning": ratio["returning"],
        "ceiling": ratio["ceiling"],
        "aof_rewrite_cpu_s": rewrites,
        "half_load_p99_ms": half.pct(99),
        "bytes_per_session": memory,
        "cpu_us": per_request,
        "steady": steady_pool,
    }


def median_round(values: list[float]) -> int:
    """The round whose value is the median (the upper one of an even count)."""
    return sorted(range(len(values)), key=values.__getitem__)[len(values) // 2]


def of_rounds(values: list[float]) -> str:
    return "median of rounds " + ", ".join(f"{v:.2f}" for v in values)


def paired(
    srv: Server,
    trivial_req: bytes,
    make: Callable[[], bytes],
    seconds: float,
    i: int,
    spent: dict[str, list[Any]],
) -> tuple[loadgen.Result, loadgen.Result]:
    """Round ``i``: the trivial route and the sessions route, first and second by turns,
    so that a machine slowing or speeding up within a round evens out; their CPU is
    added to ``spent``."""
    results: dict[str, loadgen.Result] = {}
    for name in ("trivial", "sessions")[:: 1 if i % 2 == 0 else -1]:
        before = cpu(srv)
        results[name] = loadgen.measure(
            loadgen.run(srv.port, make if name == "sessions" else lambda: trivial_req, seconds)
        )
        tally(spent[name], cpu(srv), before, results[name])
    return results["trivial"], results["sessions"]


def steady(rounds: int, seconds: float) -> dict[str, Any]:
    """The same ratio in a pool that never runs out, as a pool sized as the pools
    report advises runs: every new visitor takes the number released longest ago, which
    somebody held before (that lease is closed then).  ``STEADY_NUMBERS`` numbers held
    ``STEADY_HOLD_MINUTES``: at the rates seen here, fewer than half of them are held
    at once.  Every number is held once before the rounds."""
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(Path(tmp), STEADY_NUMBERS, STEADY_HOLD_MINUTES)
        try:
            srv.pin()
            trivial_req = loadgen.request("GET", "/bench/trivial")
            make = loadgen.cycle(session_requests())
            loadgen.measure(loadgen.run(srv.port, lambda: trivial_req, 1.0))
            r = redis.Redis(unix_socket_path=str(srv.redis.socket))
            leases = Keys().pool_leases("bench", "all")
            while r.zcount(leases, "-inf", 0):  # numbers never held yet
                loadgen.measure(loadgen.run(srv.port, make, 1.0))
            spent = new_spent()
            rows = [paired(srv, trivial_req, make, seconds, i, spent) for i in range(rounds)]
            stats = r.hgetall(Keys().pool_stats("bench", "all", utc_day(int(time.time() * 1000))))
            r.close()
        finally:
            srv.stop()
    ratios = [sess.rps / base.rps for base, sess in rows]
    ratio = sorted(ratios)[len(ratios) // 2]
    overflow = sum(int(stats.get(k, 0)) for k in (b"shared", b"fallback"))
    per_request, cpu_line = cpu_per_request(spent)
    print(
        f"sessions: in a pool that never runs out ({STEADY_NUMBERS:,} numbers held "
        f"{STEADY_HOLD_MINUTES * 60:g} s; pool overflows {overflow}) ratio {ratio:.2f}× "
        f"({of_rounds(ratios)}); CPU per request, server, Redis and the load generator: "
        f"{cpu_line}"
    )
    return {"ratio": ratio, "overflow": overflow, "cpu_us": per_request}


def new_spent() -> dict[str, list[Any]]:
    """CPU seconds of the server, Redis and the generator, and requests, per route."""
    return {"trivial": [0.0, 0.0, 0.0, 0], "sessions": [0.0, 0.0, 0.0, 0]}


def cpu_per_request(spent: dict[str, list[Any]]) -> tuple[dict[str, tuple[float, ...]], str]:
    """µs per request of the server, Redis and the generator, per route, and as text."""
    per = {name: tuple(1e6 * x / n for x in xs) for name, (*xs, n) in spent.items()}
    text = "; ".join(f"{name} {a:.0f} + {b:.0f} + {c:.0f} µs" for name, (a, b, c) in per.items())
    return per, text


def cpu(srv: Server) -> tuple[float, float]:
    """CPU seconds used so far by the server process and by Redis (not its children)."""
    fields = Path(f"/proc/{srv.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    server = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    info = redis_info(srv)
    return server, float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def tally(
    into: list[Any], after: tuple[float, float], before: tuple[float, float], run: loadgen.Result
) -> None:
    into[0] += after[0] - before[0]
    into[1] += after[1] - before[1]
    into[2] += run.cpu_seconds
    into[3] += run.requests


def rewrite_cpu(srv: Server) -> float:
    """CPU seconds Redis's children (AOF rewrites) have used so far."""
    info = redis_info(srv)
    return float(info["used_cpu_user_children"]) + float(info["used_cpu_sys_children"])


def rewrite_state(srv: Server) -> tuple[int, bool]:
    """Redis's forks so far (each an AOF rewrite: the bench's Redis saves no RDB), and
    whether one is running."""
    info = redis_info(srv, "all")
    return int(info["total_forks"]), bool(info["aof_rewrite_in_progress"])


def rewrite_p99(halves: list[loadgen.Result], forked: list[bool]) -> str:
    """The p99 of the rounds in which a rewrite ran, against that of the others."""
    during = [h.pct(99) for h, f in zip(halves, forked, strict=True) if f]
    other = [h.pct(99) for h, f in zip(halves, forked, strict=True) if not f]
    parts = [
        f"{max(xs):.2f} ms at most {what}"
        for xs, what in ((during, "in those"), (other, "in the others"))
        if xs
    ]
    return ", ".join(parts)


def redis_info(srv: Server, section: str = "cpu") -> dict[str, Any]:
    r = redis.Redis(unix_socket_path=str(srv.redis.socket))
    info: dict[str, Any] = r.info(section)
    r.close()
    return info


def held_session_bytes(srv: Server, n: int) -> float:
    """Memory growth per new session that holds its own number (pool not exhausted).

    The first sessions are not counted: they make the server's connection and its
    buffers, which every later session shares."""
    r = redis.Redis(unix_socket_path=str(srv.redis.socket))
    bodies = [raw.split(b"\r\n\r\n", 1)[1] for raw in session_requests(n + WARM_UP)]
    with httpx.Client() as c:
        for i, body in enumerate(bodies):
            if i == WARM_UP:
                before = used_memory(r)
            c.post(
                f"http://127.0.0.1:{srv.port}/v1/sessions", content=body, headers={"User-Agent": UA}
            ).raise_for_status()
    after = used_memory(r)
    r.close()
    return (after - before) / n


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
