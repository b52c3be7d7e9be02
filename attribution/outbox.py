"""Durable GA4 delivery: each site's outbox stream, read by any number of workers.

``store_call.lua`` (and :func:`enqueue_conversion`) XADD an entry to the site's stream
``S:outbox`` in the same atomic step that stores what it describes.  Workers read it
through the consumer group ``ga4``, one task per site (one stream, one Cluster slot, no
multi-key command across sites), in the server process (:func:`install`) or as separate
``callpath worker`` processes (:func:`run_worker`).

Per entry, in order:

1. Ledger ``S:sent`` (event id → delivered ms; ``call:<id>`` / ``conv:<tx>``) already has
   it, or ``S:dead`` does: acknowledge, send nothing.
2. Build the body from the stored call record (:mod:`attribution.ga4`) and POST it.
3. Settle, each in one Lua script:

   - 2xx → ``outbox_delivered``: HSETNX ledger, XACK + XDEL, HINCRBY ``delivered``.
   - transient (network, timeout, 408, 429, 5xx) → ``outbox_retry``: XACK + XDEL and
     ZADD the entry's fields to ``S:retry`` scored by its due time, HINCRBY ``retried``.
     The delay is exponential with full jitter: uniform(0, min(cap, base·2^(n-1))) after
     the n-th failure, at least the server's ``Retry-After``.  ``outbox_requeue`` moves
     due entries back onto the stream atomically.  Both sets live in Redis, so a backoff
     survives worker crashes and Redis restarts (AOF).
   - permanent (4xx, outside GA's 72-hour window, record missing, no client id) →
     ``outbox_dead``: HSETNX ``S:dead`` with ``{reason, detail, at, attempts}``, XACK +
     XDEL, HINCRBY ``dead`` and ``dead:<reason>``.  An event retried until its timestamp
     left GA's window is dead-lettered ``outside_window`` with its last error.

Entries of a worker that died (read but never settled) are taken over by another with
XAUTOCLAIM once idle for ``min_idle_ms``, which must exceed the HTTP timeout.

Exactly once: the ledger is written in the same atomic step that acknowledges the
entry, and every worker checks it before sending, so an event GA4 answered 2xx for is
never sent again.  What remains is the window between GA4 accepting a request and that
script running (a worker killed or cut off from Redis in between, or one that stalls
longer than ``min_idle_ms``): the entry is then delivered again — at least once, never
lost.  Counters stay exact even then (HSETNX).

Counters per site-local day (``S:day:<date>``): call events ``owed`` (by store_call),
``delivered``, ``retried`` (attempts that failed and were rescheduled), ``dead``,
``dead:<reason>``; conversions the same with a ``conv_`` prefix.  Pending is
``owed - delivered - dead``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import signal
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from redis.exceptions import ResponseError

from . import ga4, metrics
from .calls import load_record
from .config import Config, Site
from .errors import NotFound, PermanentDeliveryError, TransientDeliveryError
from .keys import Keys
from .lua import Scripts
from .redis_store import AnyRedis

log = logging.getLogger("callpath.outbox")

GROUP = "ga4"
DEFAULT_RETENTION_MS = 400 * 86_400_000
LAST_ERROR_MAX = 200


@dataclass(frozen=True, slots=True)
class Tuning:
    """Worker knobs; the defaults suit production, tests shrink the times."""

    block_ms: int = 1000  # XREADGROUP BLOCK
    batch: int = 16  # entries read (and sent concurrently) per round
    min_idle_ms: int = 30_000  # XAUTOCLAIM: take over entries idle this long
    claim_every_s: float = 5.0  # how often a site task looks for abandoned entries
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    requeue_batch: int = 200  # retries moved back per round
    error_pause_s: float = 1.0  # pause after a Redis error before trying again


def consumer_name() -> str:
    """Unique per process and start: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def backoff_delay(
    failures: int, base_s: float, cap_s: float, rng: random.Random | None = None
) -> float:
    """Full-jitter exponential backoff after the ``failures``-th failed attempt."""
    ceiling = min(cap_s, base_s * (2 ** min(max(failures, 1) - 1, 62)))
    return (rng or random).uniform(0.0, ceiling)


def _s(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _fields(raw: Mapping[Any, Any] | None) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in (raw or {}).items()}


def parse_autoclaim(
    reply: Sequence[Any],
) -> tuple[str, list[tuple[str, dict[str, str] | None]], list[str]]:
    """XAUTOCLAIM's answer: 2 items on Redis 6.2, 3 on 7.x (the ids it found deleted).

    Returns ``(next cursor, [(entry id, fields or None if deleted)], deleted ids)``.
    """
    cursor = _s(reply[0]) if reply else "0-0"
    entries: list[tuple[str, dict[str, str] | None]] = []
    for item in reply[1] if len(reply) > 1 and reply[1] else []:
        if item is None:
            continue
        entry_id, raw = item[0], item[1] if len(item) > 1 else None
        if entry_id is None:
            continue
        if isinstance(raw, list | tuple):  # an unparsed flat list
            raw = dict(zip(raw[::2], raw[1::2], strict=False))
        entries.append((_s(entry_id), _fields(raw) if raw is not None else None))
    deleted = [_s(x) for x in reply[2]] if len(reply) > 2 and reply[2] else []
    return cursor, entries, deleted


def _read_entries(reply: Any) -> list[tuple[str, dict[str, str] | None]]:
    """XREADGROUP's answer for one stream, in any of redis-py's shapes.

    RESP2 ``[[stream, [(id, fields), …]]]``, RESP3 ``{stream: [[(id, fields), …]]}`` or
    the unified ``{stream: [(id, fields), …]}``.
    """
    if not reply:
        return []
    groups = list(reply.values()) if isinstance(reply, dict) else [item[1] for item in reply]
    out: list[tuple[str, dict[str, str] | None]] = []
    for messages in groups:
        messages = list(messages or [])
        if (
            len(messages) == 1
            and isinstance(messages[0], list)
            and messages[0]
            and isinstance(messages[0][0], list | tuple)
        ):
            messages = messages[0]
        for message in messages:
            if not message or message[0] is None:
                continue
            raw = message[1] if len(message) > 1 else None
            if isinstance(raw, list | tuple):
                raw = dict(zip(raw[::2], raw[1::2], strict=False))
            out.append((_s(message[0]), _fields(raw) if raw is not None else None))
    return out


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _event_id(fields: Mapping[str, str]) -> str:
    if fields.get("kind") == "conversion":
        return f"conv:{fields.get('tx', '')}"
    return f"call:{fields.get('id', '')}"


class Worker:
    """Delivers every site's outbox; run one or many, in any number of processes."""

    def __init__(
        self,
        config: Config,
        redis: AnyRedis,
        keys: Keys,
        sender: ga4.Sender,
        *,
        name: str | None = None,
        tuning: Tuning | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.redis = redis
        self.keys = keys
        self.sender = sender
        self.name = name or consumer_name()
        self.tuning = tuning or Tuning()
        self.clock = clock
        self.scripts = Scripts(redis)
        self.retention_ms = max(1, config.calls_days) * 86_400_000

    # ------------------------------------------------------------ running

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """One task per site until ``stop`` is set (or the task is cancelled)."""
        stop = stop or asyncio.Event()
        log.info("ga4 worker %s delivering for %d site(s)", self.name, len(self.config.sites))
        tasks = [
            asyncio.create_task(self.run_site(site, stop), name=f"ga4:{site.id}")
            for site in self.config.sites
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def ensure_group(self, site: Site) -> None:
        try:
            await self.redis.xgroup_create(self.keys.outbox(site.id), GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run_site(self, site: Site, stop: asyncio.Event) -> None:
        ready = False
        next_claim = 0.0
        task = asyncio.current_task()
        while not stop.is_set():
            if task is not None and task.cancelling():
                # cancelled, but a library caught it on the way (a shutdown must not
                # wait on this loop forever)
                raise asyncio.CancelledError
            try:
                if not ready:
                    await self.ensure_group(site)
                    ready = True
                next_due = await self.requeue(site)
                if time.monotonic() >= next_claim:
                    await self.reclaim(site)
                    next_claim = time.monotonic() + self.tuning.claim_every_s
                block = self.tuning.block_ms
                if next_due is not None:
                    block = int(min(block, max(1.0, next_due - self.clock() * 1000)))
                reply = await self.redis.xreadgroup(
                    GROUP,
                    self.name,
                    {self.keys.outbox(site.id): ">"},
                    count=self.tuning.batch,
                    block=max(1, block),
                )
                await self.process(site, _read_entries(reply))
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    ready = False
                    continue
                await self._pause(site, exc, stop)
            except Exception as exc:  # Redis down, a bug: log, wait, carry on
                await self._pause(site, exc, stop)

    async def _pause(self, site: Site, exc: Exception, stop: asyncio.Event) -> None:
        log.warning(
            "ga4 site=%s worker=%s error %s: %s; retrying in %.1fs",
            site.id,
            self.name,
            type(exc).__name__,
            exc,
            self.tuning.error_pause_s,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self.tuning.error_pause_s)

    async def requeue(self, site: Site) -> float | None:
        """Move due retries back onto the stream; the next one's due ms (or None)."""
        moved, next_due = await self.scripts(
            "outbox_requeue",
            self.keys.site(site.id),
            int(self.clock() * 1000),
            self.tuning.requeue_batch,
        )
        nxt = _s(next_due)
        if int(moved) >= self.tuning.requeue_batch:
            return self.clock() * 1000  # more are due: do not block
        return float(nxt) if nxt else None

    async def reclaim(self, site: Site) -> int:
        """Take over entries another (dead) worker read but never settled."""
        stream = self.keys.outbox(site.id)
        start, total = "0-0", 0
        for _ in range(50):
            reply = await self.redis.xautoclaim(
                stream, GROUP, self.name, self.tuning.min_idle_ms, start, count=self.tuning.batch
            )
            cursor, entries, _deleted = parse_autoclaim(reply)
            live = [(i, f) for i, f in entries if f is not None]
            gone = [i for i, f in entries if f is None]
            if gone:  # 6.2 hands back entries deleted from the stream: forget them
                await self.redis.xack(stream, GROUP, *gone)
            if live:
                log.info(
                    "ga4 site=%s worker=%s reclaimed %d entr%s idle > %d ms",
                    site.id,
                    self.name,
                    len(live),
                    "y" if len(live) == 1 else "ies",
                    self.tuning.min_idle_ms,
                )
                await self.process(site, live)
                total += len(live)
            if cursor in ("0-0", "0"):
                break
            start = cursor
        return total

    async def process(
        self, site: Site, entries: Iterable[tuple[str, dict[str, str] | None]]
    ) -> None:
        jobs = []
        for entry_id, fields in entries:
            if fields is None:
                await self.redis.xack(self.keys.outbox(site.id), GROUP, entry_id)
                continue
            jobs.append(self.handle(site, entry_id, fields))
        if jobs:
            await asyncio.gather(*jobs)

    # ------------------------------------------------------------ one entry

    async def handle(self, site: Site, entry_id: str, fields: dict[str, str]) -> str:
        """Deliver one entry and settle it; returns the outcome logged."""
        t0 = time.monotonic()
        event = _event_id(fields)
        failures = int(fields.get("attempt", "0") or 0)
        attempt = failures + 1
        try:
            outcome = await self._handle(site, entry_id, fields, event, attempt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # settling failed (Redis): the entry stays pending
            outcome = f"unsettled ({type(exc).__name__}: {exc}); reclaimed later"
            log.warning(
                "ga4 site=%s event=%s outcome=%s attempt=%d ms=%d worker=%s",
                site.id,
                event,
                outcome,
                attempt,
                (time.monotonic() - t0) * 1000,
                self.name,
            )
            return outcome
        ms = (time.monotonic() - t0) * 1000
        level = logging.INFO if outcome in ("delivered", "duplicate skipped") else logging.WARNING
        log.log(
            level,
            "ga4 site=%s event=%s outcome=%s attempt=%d ms=%d worker=%s",
            site.id,
            event,
            outcome,
            attempt,
            ms,
            self.name,
        )
        return outcome

    async def _handle(
        self, site: Site, entry_id: str, fields: dict[str, str], event: str, attempt: int
    ) -> str:
        prefix_key = self.keys.site(site.id)
        counter = "conv_" if fields.get("kind") == "conversion" else ""
        day = fields.get("day") or datetime.now(site.timezone).strftime("%Y-%m-%d")
        if await self.redis.hexists(self.keys.sent(site.id), event):
            await self._forget(site, entry_id)
            metrics.count(metrics.GA4, site.id, "duplicate")
            return "duplicate skipped"
        if await self.redis.hexists(self.keys.dead(site.id), event):
            await self._forget(site, entry_id)
            metrics.count(metrics.GA4, site.id, "duplicate")
            return "duplicate skipped (already dead-lettered)"
        try:
            payload = await self.build(site, fields)
            await self.sender.send(site, payload)
        except PermanentDeliveryError as exc:
            reason = ga4.reason_of(exc)
            detail = ga4.detail_of(exc)
            if reason == "outside_window" and fields.get("last_error"):
                detail += f"; after {attempt - 1} failed attempt(s), last: {fields['last_error']}"
            letter = json.dumps(
                {
                    "reason": reason,
                    "detail": detail[:500],
                    "at": _iso(self.clock() * 1000),
                    "attempts": attempt,
                    "kind": fields.get("kind", "call"),
                    "id": fields.get("id", ""),
                },
                separators=(",", ":"),
            )
            await self.scripts(
                "outbox_dead",
                prefix_key,
                entry_id,
                event,
                letter,
                day,
                counter,
                reason,
                self.retention_ms,
            )
            metrics.count(metrics.GA4, site.id, "dead")
            return f"dead: {reason}"
        except (TransientDeliveryError, Exception) as exc:
            transient = isinstance(exc, TransientDeliveryError)
            reason = ga4.reason_of(exc) if transient else "internal"
            if not transient:
                log.exception("ga4 site=%s event=%s failed unexpectedly", site.id, event)
            delay = backoff_delay(attempt, self.tuning.backoff_base_s, self.tuning.backoff_cap_s)
            retry_after = getattr(exc, "retry_after", None)
            if isinstance(retry_after, int | float):
                delay = max(delay, min(float(retry_after), self.tuning.backoff_cap_s))
            now_ms = self.clock() * 1000
            job = {k: v for k, v in fields.items() if k not in ("attempt", "last_error")}
            job["attempt"] = str(attempt)
            job.setdefault("first_ms", str(int(now_ms)))
            job["last_error"] = f"{reason}: {ga4.detail_of(exc)}"[:LAST_ERROR_MAX]
            await self.scripts(
                "outbox_retry",
                prefix_key,
                entry_id,
                event,
                json.dumps(job, sort_keys=True, separators=(",", ":")),
                int(now_ms + delay * 1000),
                day,
                counter,
                self.retention_ms,
            )
            metrics.count(metrics.GA4, site.id, "retry")
            return f"retry in {delay:.1f}s ({reason})"
        await self.scripts(
            "outbox_delivered",
            prefix_key,
            entry_id,
            event,
            int(self.clock() * 1000),
            day,
            counter,
            self.retention_ms,
        )
        metrics.count(metrics.GA4, site.id, "delivered")
        return "delivered"

    async def _forget(self, site: Site, entry_id: str) -> None:
        stream = self.keys.outbox(site.id)
        await self.redis.xack(stream, GROUP, entry_id)
        await self.redis.xdel(stream, entry_id)

    async def build(self, site: Site, fields: Mapping[str, str]) -> dict[str, Any]:
        """The request body for an entry, or a PermanentDeliveryError."""
        kind, call_id = fields.get("kind", ""), fields.get("id", "")
        if kind not in ("call", "conversion") or not call_id:
            raise ga4.Refused("bad_entry", f"unknown outbox entry kind={kind!r}")
        raw = await self.redis.get(self.keys.call(site.id, call_id))
        if raw is None:
            raise ga4.Refused("record_missing", f"call {call_id!r} is no longer stored")
        try:
            call = load_record(raw, site.id)
        except ValueError:
            raise ga4.Refused("bad_record", f"call {call_id!r} is not JSON") from None
        now_s = self.clock()
        if kind == "call":
            return ga4.call_event(call, site, now_s)
        try:
            value = float(fields.get("value", ""))
            at_s = int(fields.get("at", "")) / 1000
        except ValueError:
            raise ga4.Refused("bad_entry", "conversion entry without value or time") from None
        return ga4.conversion_event(
            call, site, value, fields.get("currency", ""), fields.get("tx", ""), now_s, at_s=at_s
        )


# ---------------------------------------------------------------- entry points


def http_client() -> httpx.AsyncClient:
    """The keep-alive client a worker process uses for GA4."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(10.0, connect=5.0),
        limits=httpx.Limits(max_keepalive_connections=20, max_connections=64),
    )


async def run_worker(
    config: Config,
    redis: AnyRedis,
    keys: Keys,
    endpoint: str,
    *,
    name: str | None = None,
    stop: asyncio.Event | None = None,
    tuning: Tuning | None = None,
) -> None:
    """A delivery worker with its own HTTP client, until ``stop`` (or SIGTERM/SIGINT)."""
    own_stop = stop is None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if own_stop:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
    try:
        async with http_client() as http:
            worker = Worker(
                config, redis, keys, ga4.Sender(http, endpoint), name=name, tuning=tuning
            )
            await worker.run(stop)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


def install(app: Any, tuning: Tuning | None = None) -> None:
    """Run the delivery worker inside the server (unless ``svc.run_worker`` is false)."""

    async def start(svc: Any) -> None:
        if not svc.run_worker:
            return
        http = svc.http if svc.http is not None else http_client()
        try:
            worker = Worker(
                svc.config, svc.redis, svc.keys, ga4.Sender(http, svc.ga4_endpoint), tuning=tuning
            )
            await worker.run()
        finally:
            if http is not svc.http:
                await http.aclose()

    app.state.on_start.append(start)


# ---------------------------------------------------------------- conversions


def _site_day(site: Site | str, now_ms: int) -> str:
    tz = site.timezone if isinstance(site, Site) else UTC
    return datetime.fromtimestamp(now_ms / 1000, tz).strftime("%Y-%m-%d")


async def enqueue_conversion(
    redis: AnyRedis,
    keys: Keys,
    site: Site | str,
    call_id: str,
    value: float,
    currency: str,
    transaction_id: str | None = None,
    *,
    now_ms: int | None = None,
    retention_ms: int = DEFAULT_RETENTION_MS,
) -> bool:
    """Owe GA4 the conversion of a stored call, once per transaction id.

    True when new (queued), False when the transaction id was already known.  Raises
    NotFound when the call is not stored.  Counted on the conversion's day: site-local
    when ``site`` is a :class:`Site`, UTC when it is a site id.
    """
    site_id = site.id if isinstance(site, Site) else site
    has_ga4 = site.ga4 is not None if isinstance(site, Site) else True
    now = int(time.time() * 1000) if now_ms is None else now_ms
    tx = transaction_id or call_id
    result = await Scripts(redis)(
        "enqueue_conversion",
        keys.site(site_id),
        call_id,
        tx,
        repr(float(value)),
        currency.upper(),
        _site_day(site, now),
        now,
        "1" if has_ga4 else "0",
        retention_ms,
    )
    if int(result) < 0:
        raise NotFound(f"no call {call_id!r} in this site's log", field="call_id")
    return int(result) == 1


# ---------------------------------------------------------------- reconciliation


def _count(raw: Mapping[str, str], name: str) -> int:
    try:
        return int(raw.get(name, "0"))
    except ValueError:
        return 0


def _reasons(raw: Mapping[str, str], prefix: str) -> dict[str, int]:
    return {
        k[len(prefix) :]: int(v)
        for k, v in sorted(raw.items())
        if k.startswith(prefix) and int(v) != 0
    }


def _delivery(raw: Mapping[str, str], p: str) -> dict[str, Any]:
    owed, delivered, dead = (
        _count(raw, p + "owed"),
        _count(raw, p + "delivered"),
        _count(raw, p + "dead"),
    )
    not_sent = _reasons(raw, p + "not_sent:")
    return {
        "owed": owed,
        "delivered": delivered,
        "pending": owed - delivered - dead,
        "retried": _count(raw, p + "retried"),
        "dead": dead,
        "dead_reasons": _reasons(raw, p + "dead:"),
        "not_sent": sum(not_sent.values()),
        "not_sent_reasons": not_sent,
    }


async def delivery_report(
    redis: AnyRedis, keys: Keys, site: Site | str, days: Sequence[str]
) -> list[dict[str, Any]]:
    """Per site-local day: what was owed to GA4 and what became of it.

    ``calls = owed + not_sent`` (each call is owed an event or has a reason not to be),
    ``owed = delivered + dead + pending``, ``dead = Σ dead_reasons``; ``retried`` counts
    failed attempts that were rescheduled.  ``conversions`` holds the same for
    conversions (``owed`` there counts queued ones).  ``consistent`` checks the sums.
    """
    site_id = site.id if isinstance(site, Site) else site
    out = []
    for day in days:
        raw = _fields(await redis.hgetall(keys.day(site_id, day)))
        calls = _delivery(raw, "")
        conv = _delivery(raw, "conv_")
        row: dict[str, Any] = {
            "day": day,
            "calls": _count(raw, "calls"),
            "attributed": _count(raw, "attributed"),
            **calls,
            "conversions": conv,
        }
        row["consistent"] = row["calls"] == calls["owed"] + calls["not_sent"] and all(
            d["pending"] >= 0 and d["dead"] == sum(d["dead_reasons"].values())
            for d in (calls, conv)
        )
        out.append(row)
    return out
