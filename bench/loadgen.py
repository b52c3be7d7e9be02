"""A small closed- and open-loop HTTP/1.1 load generator over raw keep-alive sockets.

Pre-built requests, one outstanding per connection, and each connection a bare asyncio
protocol that parses its answers where they arrive (no stream, no task per
connection), on uvloop where it is installed: on a two-core machine the generator
shares a core with Redis, so every microsecond it spends is taken from the server
under test.  :func:`measure` runs it in its own event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class Result:
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    cpu_seconds: float = 0.0  # the generator's own

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


class _Connection(asyncio.Protocol):
    """One keep-alive connection: send a request, read its whole answer, send the next
    (at once, or when due in an open loop), until ``stop_at``."""

    def __init__(self, load: _Load, first_due: float) -> None:
        self.load = load
        self.due = first_due
        self.buffer = b""
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None
        self.done = load.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self._next()

    def _next(self) -> None:
        """Send the next request: now, or when it is due (open loop)."""
        load = self.load
        if load.interval is not None:
            wait = self.due - time.perf_counter()
            self.due += load.interval
            if wait > 0:
                load.loop.call_later(wait, self._send)
                return
        self._send()

    def _send(self) -> None:
        now = time.perf_counter()
        if now >= self.load.stop_at:
            self._finish()
            return
        self.sent_at = now
        assert self.transport is not None
        self.transport.write(self.load.make())

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            self.buffer = buffer
            return
        head = buffer[:end].lower()
        at = head.find(b"\r\ncontent-length:")
        length = 0
        if at >= 0:
            eol = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : eol if eol >= 0 else end])
        if len(buffer) < end + 4 + length:
            self.buffer = buffer
            return
        self.buffer = buffer[end + 4 + length :]
        load = self.load
        load.latencies.append((time.perf_counter() - self.sent_at) * 1000)
        load.requests += 1
        if int(head[9:12]) >= 400:
            load.errors += 1
        self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(exc or ConnectionError("the server closed the connection"))

    def _finish(self, exc: BaseException | None = None) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        if not self.done.done():
            if exc is None or time.perf_counter() >= self.load.stop_at:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)


class _Load:
    def __init__(self, make: Callable[[], bytes], stop_at: float, interval: float | None) -> None:
        self.loop = asyncio.get_running_loop()
        self.make = make
        self.stop_at = stop_at
        self.interval = interval
        self.latencies: list[float] = []
        self.requests = 0
        self.errors = 0


async def run(
    port: int,
    make: Callable[[], bytes],
    seconds: float,
    connections: int = 32,
    rate: float | None = None,
) -> Result:
    """Closed loop (as fast as the server answers) or open loop at ``rate`` req/s."""
    cpu = time.process_time()
    start = time.perf_counter()
    interval = connections / rate if rate else None
    load = _Load(make, start + seconds, interval)
    conns = []
    for i in range(connections):
        conn = _Connection(load, start + i * (interval or 0) / connections)
        await load.loop.create_connection(lambda conn=conn: conn, "127.0.0.1", port)
        conns.append(conn)
    await asyncio.gather(*(conn.done for conn in conns))
    return Result(
        load.requests,
        time.perf_counter() - start,
        load.latencies,
        load.errors,
        time.process_time() - cpu,
    )


def measure(coro: Coroutine[Any, Any, T]) -> T:
    """Run a load in an event loop of its own: uvloop's where it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return asyncio.run(coro)
    return uvloop.run(coro)


def cycle(items: Sequence[bytes]) -> Callable[[], bytes]:
    it = itertools.cycle(items)
    return lambda: next(it)
