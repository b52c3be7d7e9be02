"""A small closed- and open-loop HTTP/1.1 load generator over raw keep-alive sockets.

Pure asyncio with pre-built requests, so the generator costs far less than the server
it measures; it runs in its own process, on the other core.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class Result:
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def request(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: keep-alive"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _worker(
    port: int,
    requests: Callable[[], bytes],
    stop_at: float,
    lat: list[float],
    counts: list[int],
    interval: float | None,
    start: float,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    try:
        while True:
            if interval is not None:
                due = start + n * interval
                n += 1
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            t = time.perf_counter()
            if t >= stop_at:
                return
            writer.write(requests())
            status = await _read_response(reader)
            lat.append((time.perf_counter() - t) * 1000)
            counts[0] += 1
            if status >= 400:
                counts[1] += 1
    finally:
        writer.close()


async def run(
    port: int,
    make: Callable[[], bytes],
    seconds: float,
    connections: int = 32,
    rate: float | None = None,
) -> Result:
    """Closed loop (as fast as the server answers) or open loop at ``rate`` req/s."""
    lat: list[float] = []
    counts = [0, 0]
    start = time.perf_counter()
    stop_at = start + seconds
    interval = connections / rate if rate else None
    await asyncio.gather(
        *(
            _worker(
                port,
                make,
                stop_at,
                lat,
                counts,
                interval,
                start + i * (interval or 0) / connections,
            )
            for i in range(connections)
        )
    )
    return Result(counts[0], time.perf_counter() - start, lat, counts[1])


def cycle(items: Sequence[bytes]) -> Callable[[], bytes]:
    it = itertools.cycle(items)
    return lambda: next(it)
