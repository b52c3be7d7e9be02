"""A stand-in for Google's Measurement Protocol endpoint, served over real HTTP on loopback.

``/mp/collect`` behaves like Google's: it answers 204 to anything it can read, also to a
body GA4 would drop; such bodies are recorded in ``rejected`` (tests assert it stays
empty) and good ones in ``accepted``.  ``/debug/mp/collect`` answers
``{"validationMessages": [...]}``.  Both apply :func:`attribution.ga4.validation_messages`
(the same rules the sender obeys) plus the transport rules: ``measurement_id`` and
``api_secret`` must name a configured pair, the body must be JSON of at most 130 kB.

Faults on demand: ``fail_next(503, n)``, ``fail_next(400, n)``, ``hang_next(seconds, n)``.
A hanging request whose client went away meanwhile is counted in ``abandoned``, never
accepted.  Handlers run in the server's thread; every shared field is behind a lock.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from attribution import ga4


@dataclass
class Received:
    body: dict[str, Any]
    raw: bytes
    query: dict[str, str]
    at: float


@dataclass
class Rejected:
    raw: bytes
    query: dict[str, str]
    reasons: list[str]
    at: float


@dataclass
class _Faults:
    fail: list[tuple[int, float | None]] = field(default_factory=list)
    hang: list[float] = field(default_factory=list)


class Standin:
    """The endpoint's state; ``app`` is the ASGI app to serve with the ``live`` fixture."""

    def __init__(self, credentials: dict[str, str], clock: Callable[[], float] = time.time) -> None:
        self.credentials = dict(credentials)  # measurement_id -> api_secret
        self.clock = clock
        self.url = ""  # set by the fixture: http://127.0.0.1:<port>/mp/collect
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._faults = _Faults()
        self._accepted: list[Received] = []
        self._rejected: list[Rejected] = []
        self._bodies: list[bytes] = []
        self.requests = 0
        self.hanging = 0
        self.abandoned = 0
        self.app = Starlette(
            routes=[
                Route("/mp/collect", self.collect, methods=["POST"]),
                Route("/debug/mp/collect", self.debug, methods=["POST"]),
            ]
        )

    # ------------------------------------------------------------ test controls

    def fail_next(self, status: int, n: int = 1, retry_after: float | None = None) -> None:
        """Answer ``status`` to the next ``n`` requests (before looking at them)."""
        with self._lock:
            self._faults.fail.extend([(status, retry_after)] * n)

    def hang_next(self, seconds: float, n: int = 1) -> None:
        """Hold the next ``n`` requests for ``seconds`` before handling them."""
        with self._lock:
            self._faults.hang.extend([seconds] * n)

    def close(self) -> None:
        """Release hanging requests (the server is going away)."""
        self._closing.set()

    @property
    def accepted(self) -> list[Received]:
        with self._lock:
            return list(self._accepted)

    @property
    def rejected(self) -> list[Rejected]:
        with self._lock:
            return list(self._rejected)

    @property
    def bodies(self) -> list[bytes]:
        """Every body that reached the endpoint, whatever became of it."""
        with self._lock:
            return list(self._bodies)

    def events(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """``(event, request body)`` for every accepted event."""
        return [(event, rec.body) for rec in self.accepted for event in rec.body["events"]]

    async def wait_for(
        self, predicate: Callable[[Standin], bool], timeout: float = 10.0, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"stand-in: timed out after {timeout}s waiting for {what}; "
                    f"accepted={len(self.accepted)} rejected="
                    f"{[r.reasons for r in self.rejected]} "
                    f"requests={self.requests}"
                )
            await asyncio.sleep(0.01)

    async def wait_accepted(self, n: int, timeout: float = 10.0) -> list[Received]:
        await self.wait_for(lambda s: len(s.accepted) >= n, timeout, f"{n} accepted")
        return self.accepted

    # ------------------------------------------------------------ handlers

    async def _read(self, request: Request) -> tuple[bytes, bool]:
        raw = bytearray()
        try:
            async for chunk in request.stream():
                raw.extend(chunk)
                if len(raw) > ga4.LIMITS.payload_bytes:
                    return bytes(raw), True
        except ClientDisconnect:
            pass
        return bytes(raw), False

    async def _faulted(self, request: Request) -> Response | None:
        with self._lock:
            self.requests += 1
            hang = self._faults.hang.pop(0) if self._faults.hang else None
        if hang is not None:
            with self._lock:
                self.hanging += 1
            deadline = time.monotonic() + hang
            while time.monotonic() < deadline and not self._closing.is_set():
                await asyncio.sleep(0.01)
            with self._lock:
                self.hanging -= 1
            if await request.is_disconnected():
                with self._lock:
                    self.abandoned += 1
                return Response(status_code=499)
        with self._lock:
            fail = self._faults.fail.pop(0) if self._faults.fail else None
        if fail is not None:
            status, retry_after = fail
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            return Response(b"injected failure", status_code=status, headers=headers)
        return None

    def _credentials(self, query: dict[str, str]) -> list[dict[str, str]]:
        mid, secret = query.get("measurement_id", ""), query.get("api_secret", "")
        out = []
        if not mid:
            out.append(
                {
                    "fieldPath": "measurement_id",
                    "validationCode": "VALUE_REQUIRED",
                    "description": "measurement_id query parameter is required",
                }
            )
        if not secret:
            out.append(
                {
                    "fieldPath": "api_secret",
                    "validationCode": "VALUE_REQUIRED",
                    "description": "api_secret query parameter is required",
                }
            )
        if mid and secret and self.credentials.get(mid) != secret:
            out.append(
                {
                    "fieldPath": "api_secret",
                    "validationCode": "VALUE_INVALID",
                    "description": "api_secret does not belong to this measurement_id",
                }
            )
        return out

    def _check(self, raw: bytes, query: dict[str, str]) -> tuple[Any, list[dict[str, str]]]:
        messages = self._credentials(query)
        try:
            body = json.loads(raw)
        except ValueError:
            return None, [
                *messages,
                {
                    "fieldPath": "",
                    "validationCode": "VALUE_INVALID",
                    "description": "the body is not JSON",
                },
            ]
        messages += ga4.validation_messages(body, now_s=self.clock(), size=len(raw))
        return body, messages

    async def collect(self, request: Request) -> Response:
        raw, too_large = await self._read(request)  # first: a hang then looks for a hang-up
        faulted = await self._faulted(request)
        if faulted is not None:
            return faulted
        query = dict(request.query_params)
        with self._lock:
            self._bodies.append(raw)
        if too_large:
            with self._lock:
                self._rejected.append(Rejected(raw, query, ["body over 130 kB"], self.clock()))
            return Response(status_code=413)
        body, messages = self._check(raw, query)
        with self._lock:
            if messages:
                self._rejected.append(
                    Rejected(raw, query, [ga4.render(m) for m in messages], self.clock())
                )
            else:
                self._accepted.append(Received(body, raw, query, self.clock()))
        return Response(status_code=204)

    async def debug(self, request: Request) -> Response:
        raw, too_large = await self._read(request)
        faulted = await self._faulted(request)
        if faulted is not None:
            return faulted
        if too_large:
            return Response(status_code=413)
        _body, messages = self._check(raw, dict(request.query_params))
        return JSONResponse({"validationMessages": messages})
