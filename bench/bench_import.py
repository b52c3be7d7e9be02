"""``callpath import-cdr`` throughput, Redis memory per stored call, and how the cost per
CDR grows with the lease history behind it.  Targets: ≥ 10,000 CDR/s, ≤ 1 KiB per call,
cost per CDR at 1,000,000 leases in history ≤ 1.5x the cost at 10,000.

Everything runs against its own embedded Redis in a temporary directory.  Lease
histories are written by the real allocate script (pipelined, on a synthetic clock):
sessions arrive one a second on a 1,000-number pool with a 15-minute hold, so each
session holds its own number and a call made during its lease is an exact match.
The Asterisk ``cdr_csv`` file calls those numbers at covered moments, from callers
that repeat as real callers do.

    python -m bench.bench_import [--quick]

``--quick`` compares 10,000 with 100,000 leases (not 1,000,000) and says so.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from attribution import config as configmod
from attribution.allocator import utc_day
from attribution.geo import GeoIP
from attribution.importer import ImportResult, import_file
from attribution.keys import Keys
from attribution.redis_store import EmbeddedRedis, client
from attribution.services import Services
from attribution.sessions import Signer

from .memory import used_memory_async

T0 = 1_800_000_000_000  # 2027-01-15, the synthetic clock's start (ms)
POOL = 1000  # numbers in the pool
GAP_MS = 1000  # a new session every second: 900 live at once < POOL
HOLD_MINUTES = 15
WRITE_CHUNK = 5000
LANDING = "https://bench.example/catalog/boilers?utm_source=google&utm_medium=cpc&utm_campaign=w"

TARGET_RATE = 10_000
TARGET_BYTES = 1024
TARGET_RATIO = 1.5


def bench_toml() -> str:
    numbers = ", ".join(f'"+1 646 555 {i:04d}"' for i in range(POOL))
    return f"""
hold_minutes = {HOLD_MINUTES}
history_days = 35

[[site]]
id = "bench"
domains = ["bench.example"]
country = "US"
timezone = "America/New_York"
replace = ["+1 212 555 0100"]
api_key_env = "BENCH_API_KEY"
ga4 = {{ measurement_id = "G-BENCH", api_secret_env = "BENCH_GA4_SECRET" }}

  [[site.pool]]
  id = "paid"
  match = {{ medium = "cpc" }}
  numbers = [{numbers}]
"""


class Bench:
    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.config = configmod.parse(tomllib.loads(bench_toml()))
        self.site = self.config.sites[0]
        pool = self.site.pool("paid")
        assert pool is not None
        self.pool = pool
        self.keys = Keys("cp")
        self.svc = Services(
            self.config,
            redis,
            self.keys,
            Signer(b"bench-secret-0123456789"),
            GeoIP(None),
            run_worker=False,
        )

    async def reset(self) -> None:
        await self.redis.flushall()
        await self.svc.allocator.sync()

    async def write_leases(self, count: int) -> list[tuple[str, str, int]]:
        """``count`` sessions through the allocate script: (sid, number, from ms) each."""
        prefix = self.keys.pool(self.site.id, self.pool.id)
        hold_ms = self.config.hold_ms
        history_ms = self.config.history_days * 86_400_000
        out: list[tuple[str, str, int]] = []
        for base in range(0, count, WRITE_CHUNK):
            pipe = self.redis.pipeline(transaction=False)
            batch = []
            for i in range(base, min(count, base + WRITE_CHUNK)):
                sid, now = f"bench-{i:07d}", T0 + i * GAP_MS
                self.svc.scripts.queue(
                    pipe,
                    "allocate",
                    prefix,
                    sid,
                    now,
                    hold_ms,
                    self.pool.on_exhausted,
                    history_ms,
                    utc_day(now),
                    "1",
                )
                batch.append((sid, now))
            for (sid, now), (number, outcome) in zip(batch, await pipe.execute(), strict=True):
                if outcome != b"new":
                    raise RuntimeError(f"{sid}: expected a free number, got {outcome!r}")
                out.append((sid, number.decode(), now))
        return out

    async def write_sessions(self, leases: list[tuple[str, str, int]]) -> None:
        """What ``POST /v1/sessions`` would have stored for each session."""
        for base in range(0, len(leases), WRITE_CHUNK):
            pipe = self.redis.pipeline(transaction=False)
            for sid, _, now in leases[base : base + WRITE_CHUNK]:
                pipe.hset(
                    self.keys.session(sid),
                    mapping={
                        "site": self.site.id,
                        "first_seen": now,
                        "last_seen": now + 60_000,
                        "landing_page": LANDING,
                        "last_page": "https://bench.example/contacts",
                        "referrer": "https://www.google.com/",
                        "source": "google",
                        "medium": "cpc",
                        "campaign": "winter-boilers",
                        "keyword": "boiler repair",
                        "region": "",
                        "device": "mobile",
                        "os": "Android",
                        "browser": "Chrome",
                        "ga_client_id": f"{now // 1000}.{now % 997}",
                        "ga_session_id": str(now // 1000),
                        "pages": 3,
                    },
                )
            await pipe.execute()

    async def used_memory(self) -> int:
        return await used_memory_async(self.redis)


def write_csv(
    path: Path, leases: list[tuple[str, str, int]], seed: int = 1, tag: int = 0
) -> list[tuple[str, str]]:
    """Asterisk cdr_csv rows (17 columns, with uniqueid), one call per lease, in time order.

    Returns (call id, the session that held the number) for every row.
    """
    rng = random.Random(seed)
    tz = ZoneInfo("America/New_York")
    expected = []
    callers = [
        f"{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        for _ in range(max(1, len(leases) * 6 // 10))
    ]
    rows = []
    hold_s = HOLD_MINUTES * 60
    for n, (sid, number, from_ms) in enumerate(leases):
        start = from_ms / 1000 + rng.uniform(5, hold_s - 60)
        talk = rng.randint(0, 400)
        answered = talk > 20
        ring = rng.randint(3, 20)
        fmt = "%Y-%m-%d %H:%M:%S"
        t_start = datetime.fromtimestamp(start, tz)
        t_answer = datetime.fromtimestamp(start + ring, tz).strftime(fmt) if answered else ""
        t_end = datetime.fromtimestamp(start + ring + (talk if answered else 0), tz)
        caller = rng.choice(callers)
        did = number[2:]  # national 10 digits, as a US trunk sends them
        call_id = f"{int(start)}.{tag}{n:06d}"
        expected.append((call_id, sid))
        rows.append(
            f'"","{caller}","{did}","from-pstn","""Caller"" <{caller}>",'
            f'"SIP/trunk-{n:08x}","SIP/101-{n:08x}","Dial","SIP/101,30",'
            f'"{t_start.strftime(fmt)}","{t_answer}","{t_end.strftime(fmt)}",'
            f"{ring + (talk if answered else 0)},{talk if answered else 0},"
            f'"{"ANSWERED" if answered else "NO ANSWER"}","DOCUMENTATION",'
            f'"{call_id}"\n'
        )
    path.write_text("".join(rows), encoding="utf-8")
    return expected


@dataclass
class Timed:
    result: ImportResult
    wall: float  # seconds
    cpu: float  # seconds of this process's CPU (parsing, the client side)
    redis_cpu: float  # seconds of the Redis server's CPU

    def per_cdr(self) -> tuple[float, float, float]:
        """Microseconds per CDR: wall, our CPU, Redis CPU."""
        n = max(1, self.result.read)
        return 1e6 * self.wall / n, 1e6 * self.cpu / n, 1e6 * self.redis_cpu / n

    def line(self) -> str:
        wall, cpu, rcpu = self.per_cdr()
        return (
            f"{self.result.read / self.wall:,.0f} CDR/s; per CDR {wall:.0f} µs wall, "
            f"{cpu:.0f} µs CPU here + {rcpu:.0f} µs Redis CPU"
        )


async def _redis_cpu(bench: Bench) -> float:
    info = await bench.redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _import(bench: Bench, path: Path) -> Timed:
    r0, c0, t0 = await _redis_cpu(bench), time.process_time(), time.perf_counter()
    result = await import_file(path, bench.site, bench.svc, "asterisk-csv")
    t1, c1, r1 = time.perf_counter(), time.process_time(), await _redis_cpu(bench)
    return Timed(result, t1 - t0, c1 - c0, r1 - r0)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


async def _main(quick: bool, tmp: Path) -> dict[str, Any]:
    server = EmbeddedRedis(tmp / "redis").start()
    redis = client(server.url)
    out: dict[str, Any] = {"quick": quick, "load_before": _load()}
    print(f"  {_load()}")
    try:
        bench = Bench(redis)

        # 1. throughput and memory: 100,000 leases, 100,000 CDRs calling them
        n = 100_000
        await bench.reset()
        t = time.perf_counter()
        leases = await bench.write_leases(n)
        await bench.write_sessions(leases)
        print(
            f"  {n:,} lease histories and sessions written in {time.perf_counter() - t:.1f} s",
            flush=True,
        )
        csv_path = tmp / "Master.csv"
        expected = write_csv(csv_path, leases)
        size_mb = csv_path.stat().st_size / 1e6
        before = await bench.used_memory()
        first = await _import(bench, csv_path)
        after = await bench.used_memory()
        again = await _import(bench, csv_path)
        exact = await _exact(bench, expected[:: max(1, n // 1000)])
        rate = first.result.read / first.wall
        wall, cpu, rcpu = first.per_cdr()
        # what one client process and one Redis could do with no one else on the machine
        bound = 1e6 / max(cpu, rcpu)
        per_call = (after - before) / max(1, first.result.new)
        out.update(
            cdrs=first.result.read,
            file_mb=round(size_mb, 1),
            seconds=round(first.wall, 2),
            cdr_per_s=round(rate),
            target_cdr_per_s=TARGET_RATE,
            rate_ratio=round(rate / TARGET_RATE, 2),
            us_cpu_client_per_cdr=round(cpu),
            us_cpu_redis_per_cdr=round(rcpu),
            cpu_bound_cdr_per_s=round(bound),
            bytes_per_call=round(per_call),
            target_bytes=TARGET_BYTES,
            memory_ratio=round(per_call / TARGET_BYTES, 2),
            first_run=first.result.summary(),
            second_run=again.result.summary(),
            second_run_cdr_per_s=round(again.result.read / again.wall),
            exact_share_sampled=exact,
        )
        print(
            f"  import {first.result.read:,} CDRs ({size_mb:.1f} MB) in {first.wall:.1f} s: "
            f"{first.line()}",
            flush=True,
        )
        print(
            f"    {rate / TARGET_RATE:.2f}x the {TARGET_RATE:,}/s target; CPU-bound ceiling "
            f"(max of client and Redis CPU per CDR) {bound:,.0f} CDR/s = "
            f"{bound / TARGET_RATE:.2f}x"
        )
        print(f"    {first.result.summary()}")
        print(f"  again: {again.result.summary()} ({again.line()})")
        print(
            f"  Redis used_memory per stored call: {per_call:,.0f} B = "
            f"{per_call / TARGET_BYTES:.2f}x the {TARGET_BYTES} B target "
            "(record, call log entry, caller indexes, GA4 outbox entry)"
        )
        print(
            f"  sampled calls matched exactly to the session that held the number: {exact:.1%}",
            flush=True,
        )
        del leases, expected

        # 2. cost per CDR against the depth of the lease history: today's calls, with
        # 10 or 1,000 (quick: 100) earlier leases per number behind them; best of 3
        small, large = (10_000, 100_000) if quick else (10_000, 1_000_000)
        calls, rounds = 10_000, 3
        best: dict[int, tuple[float, float]] = {}
        for depth in (small, large):
            await bench.reset()
            t = time.perf_counter()
            leases = await bench.write_leases(depth)
            recent = leases[-calls:]
            await bench.write_sessions(recent)
            print(
                f"  {depth:,} leases in history ({depth // POOL} per number), written in "
                f"{time.perf_counter() - t:.1f} s",
                flush=True,
            )
            walls, cpus = [], []
            for k in range(rounds):
                path = tmp / f"recent-{depth}-{k}.csv"
                write_csv(path, recent, seed=2 + k, tag=k + 1)
                timed = await _import(bench, path)
                wall, cpu, rcpu = timed.per_cdr()
                walls.append(wall)
                cpus.append(cpu + rcpu)
                print(f"    {timed.result.read:,} CDRs: {timed.line()}", flush=True)
                path.unlink()
            best[depth] = (min(walls), min(cpus))
            del leases, recent
        wall_ratio = best[large][0] / best[small][0]
        cpu_ratio = best[large][1] / best[small][1]
        out.update(
            history_small=small,
            history_large=large,
            us_per_cdr_small=round(best[small][0], 1),
            us_per_cdr_large=round(best[large][0], 1),
            history_ratio=round(wall_ratio, 2),
            history_cpu_ratio=round(cpu_ratio, 2),
            target_history_ratio=TARGET_RATIO,
            load_after=_load(),
        )
        note = " (quick mode: 100,000 stands in for 1,000,000)" if quick else ""
        print(
            f"  cost per CDR at {large:,} vs {small:,} leases{note}: wall {wall_ratio:.2f}x, "
            f"CPU (client + Redis) {cpu_ratio:.2f}x (target ≤ {TARGET_RATIO}x)"
        )
        print(f"  {_load()}")
    finally:
        await redis.aclose()
        server.stop()
    return out


async def _exact(bench: Bench, sample: list[tuple[str, str]]) -> float:
    """Share of a sample of calls matched exactly to the session that held the number."""
    good = 0
    for call_id, sid in sample:
        record = await bench.svc.calls.get(bench.site, call_id)
        if record and record["match"] == "exact" and record["sid"] == sid:
            good += 1
    return good / len(sample) if sample else 0.0


def run(quick: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="callpath-bench-") as tmp:
        result = asyncio.run(_main(quick, Path(tmp)))
    return result


if __name__ == "__main__":
    figures = run(quick="--quick" in sys.argv)
    print(figures)
