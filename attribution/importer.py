"""``callpath import-cdr FILE``: bulk ingest of a PBX export, idempotent by call id.

The file is streamed: a worker thread reads and parses the next batch while the
event loop stores the previous ones, up to eight batches in flight so Redis never
waits for the parser, each one pipelined (``CallLog.store``).  Order still holds
where it matters: a call whose caller (or call id) is in a batch still in flight is
held back for the next batch, so first-time-caller flags, callbacks and the caller
history used to resolve shared numbers come out as if the file were stored row by row.

Rows that cannot be stored (a malformed record, another site's number) are listed
with their line numbers after the run; everything else is stored.  Importing the
same file again stores nothing new: the call log answers with the first record.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from .errors import ApiError

if TYPE_CHECKING:
    from .calls import Prepared
    from .config import Config, Site
    from .redis_store import EmbeddedRedis
    from .services import Services

FORMATS = ("asterisk-csv", "json", "freeswitch-json")
BATCH = 250
IN_FLIGHT = 8  # Redis always has the next batch waiting while this one is parsed
SHOW_FAILURES = 50


@dataclass(frozen=True, slots=True)
class Failure:
    line: int  # line (CSV, JSON lines) or record number the parser gave
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"line {self.line}: {where}{self.reason}"


@dataclass
class ImportResult:
    read: int = 0  # records read from the file
    new: int = 0  # stored by this run
    duplicate: int = 0  # already in the call log (same site and call id)
    skipped: int = 0  # well-formed but not a call to store (interim status, B leg…)
    failed: int = 0  # parse errors and refused numbers
    failures: list[Failure] = field(default_factory=list)  # the first ``keep`` of them
    error: str | None = None  # the file itself could not be read on from here
    bytes_read: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.error is None

    @property
    def rate(self) -> float:
        """Records per second over the whole run."""
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        text = (
            f"{self.read} read, {self.new} new, {self.duplicate} already stored, "
            f"{self.failed} failed"
        )
        if self.skipped:
            text += f", {self.skipped} skipped (not a finished call)"
        return text


@dataclass
class _Chunk:
    ready: list[Prepared] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    read: int = 0
    skipped: int = 0
    position: int = 0
    done: bool = False
    error: str | None = None


def order_keys(p: Prepared) -> tuple[str, str]:
    """What two calls must be stored in file order for: the call id and the other party
    (first-time caller, callbacks, the caller's last session)."""
    return "c" + p.cdr.call_id, "p" + p.party if p.party else ""


Flight = tuple["asyncio.Task[list[bool]]", frozenset[str]]


class _Flights:
    """Batches being stored, at most ``limit`` at once, never two that share a key.

    A call whose caller (or call id) is in a batch still in flight is held back, with
    every later call of the same caller, and goes out with the next batch: callers
    keep their file order while unrelated calls keep Redis busy.
    """

    def __init__(self, svc: Services, site: Site, limit: int, result: ImportResult) -> None:
        self.svc = svc
        self.site = site
        self.limit = limit
        self.result = result
        self.flying: list[Flight] = []
        self.held: list[Prepared] = []

    async def settle(self, flight: Flight) -> None:
        self.flying.remove(flight)
        for stored in await flight[0]:
            if stored:
                self.result.new += 1
            else:
                self.result.duplicate += 1

    async def send(self, items: list[Prepared]) -> None:
        """Start storing ``items`` (after any held back), waiting only when it must."""
        todo = self.held + items
        while todo:
            for flight in [f for f in self.flying if f[0].done()]:
                await self.settle(flight)
            if len(self.flying) >= self.limit:
                await self.settle(self.flying[0])
                continue
            busy: set[str] = set().union(*(keys for _, keys in self.flying))
            now: list[Prepared] = []
            later: list[Prepared] = []
            sent: set[str] = set()
            for p in todo:
                call, party = order_keys(p)
                if call in busy or (party and party in busy):
                    busy.add(call)  # its later calls wait too
                    if party:
                        busy.add(party)
                    later.append(p)
                else:
                    now.append(p)
                    sent.add(call)
                    sent.add(party)
            if now:
                task = asyncio.create_task(self.svc.calls.store(self.site, now))
                sent.discard("")
                self.flying.append((task, frozenset(sent)))
                await asyncio.sleep(0)  # let it send its first pipeline
                self.held = later
                return
            await self.settle(self.flying[0])  # all of it waits on the oldest

    async def drain(self) -> None:
        while self.held:
            items, self.held = self.held, []
            await self.send(items)
        while self.flying:
            await self.settle(self.flying[0])

    async def cancel(self) -> None:
        for task, _ in self.flying:
            task.cancel()
        for task, _ in self.flying:
            with contextlib.suppress(BaseException):
                await task
        self.flying = []


class _Reader:
    """Pulls parsed records off ``iter_file`` a batch at a time (in one thread at a time)."""

    def __init__(
        self,
        records: Iterator[tuple[int, Any]],
        svc: Services,
        site: Site,
        batch: int,
        position: Callable[[], int],
    ) -> None:
        self.records = records
        self.svc = svc
        self.site = site
        self.batch = batch
        self.position = position

    def next_chunk(self) -> _Chunk:
        from .cdr import CdrError, CdrNotFinal

        chunk = _Chunk()
        limit = self.batch * 4  # a run of bad rows still reports progress
        try:
            while len(chunk.ready) < self.batch and chunk.read < limit:
                try:
                    line, item = next(self.records)
                except StopIteration:
                    chunk.done = True
                    break
                chunk.read += 1
                if isinstance(item, CdrNotFinal):
                    chunk.skipped += 1
                elif isinstance(item, CdrError):
                    chunk.failures.append(Failure(line, item.field, item.detail))
                else:
                    try:
                        chunk.ready.append(self.svc.calls.prepare(self.site, item))
                    except ApiError as exc:
                        chunk.failures.append(Failure(line, exc.field, exc.detail))
        except CdrError as exc:  # the file as a whole cannot be read on
            chunk.error = f"{exc.field}: {exc.detail}" if exc.field else exc.detail
            chunk.done = True
        chunk.position = self.position()
        return chunk


@contextlib.contextmanager
def _open(
    source: str | os.PathLike[str] | IO[bytes],
) -> Iterator[tuple[IO[bytes], int, Callable[[], int]]]:
    """The binary stream to parse, the file's size and how far into it we are.

    A ``.gz`` file is read decompressed, its progress measured in compressed bytes.
    """
    if isinstance(source, str | os.PathLike):
        raw: IO[bytes] = open(source, "rb")
        owned = True
    else:
        raw, owned = source, False
    try:
        try:
            size = os.fstat(raw.fileno()).st_size
        except (OSError, AttributeError, ValueError):
            size = 0
        head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
        if head == b"\x1f\x8b":
            stream = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
        else:
            stream = raw

        def position() -> int:
            try:
                return raw.tell()
            except (OSError, ValueError):
                return 0

        yield stream, size, position
    finally:
        if owned:
            raw.close()


async def import_file(
    path: str | os.PathLike[str] | IO[bytes],
    site: Site,
    svc: Services,
    fmt: str | None = None,
    batch: int = BATCH,
    progress: Callable[[ImportResult, int], None] | None = None,
    *,
    in_flight: int = IN_FLIGHT,
    keep: int = SHOW_FAILURES,
) -> ImportResult:
    """Stream a CDR file into the site's call log.

    ``progress(result_so_far, total_bytes)`` is called after each batch is read and
    after each is stored.  Failed rows are counted; the first ``keep`` are kept with
    their line numbers and reasons.
    """
    from .calls import parse_context
    from .cdr import iter_file

    if batch < 1 or in_flight < 1:
        raise ValueError("batch and in_flight must be at least 1")
    result = ImportResult()
    began = time.perf_counter()
    ctx = parse_context(site)
    loop = asyncio.get_running_loop()
    flights = _Flights(svc, site, in_flight, result)

    def report(total: int) -> None:
        result.seconds = time.perf_counter() - began
        if progress is not None:
            progress(result, total)

    with _open(path) as (stream, size, position):
        reader = _Reader(iter_file(stream, ctx, fmt), svc, site, batch, position)
        parsing: asyncio.Future[_Chunk] | None = loop.run_in_executor(None, reader.next_chunk)
        try:
            while parsing is not None:
                chunk = await parsing
                # read the next batch while this one is stored
                parsing = None if chunk.done else loop.run_in_executor(None, reader.next_chunk)
                result.read += chunk.read
                result.skipped += chunk.skipped
                result.failed += len(chunk.failures)
                room = keep - len(result.failures)
                if room > 0:
                    result.failures.extend(chunk.failures[:room])
                result.bytes_read = max(result.bytes_read, chunk.position)
                if chunk.error:
                    result.error = chunk.error
                if chunk.ready:
                    await flights.send(chunk.ready)
                report(size)
            await flights.drain()
            if size and result.error is None:
                result.bytes_read = size
            report(size)
        finally:
            await flights.cancel()
            if parsing is not None:  # never close the file under the parser
                with contextlib.suppress(BaseException):
                    await parsing
    return result


# --------------------------------------------------------------------- CLI


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "import-cdr",
        help="bulk ingest a CDR file with a progress bar; idempotent",
        description="Bulk ingest a PBX export into a site's call log: each call is matched "
        "to the web session that held its number at that moment and stored once "
        "(by call id), so running the same file again stores nothing new. Rows "
        "that cannot be stored are listed with their line numbers; exit 1 if "
        "there were any. A .gz file is read as is.",
    )
    p.add_argument(
        "file",
        help="the CDR file (Asterisk Master.csv, JSON array or lines, FreeSWITCH mod_json_cdr)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="the file's format (default: detected from its content)",
    )
    p.add_argument("--site", help="site id (default: the config's only site)")
    p.add_argument("--config", help="pools file (default: CALLPATH_CONFIG or pools.toml)")
    p.add_argument(
        "--redis",
        help="redis://…, unix://… or redis+cluster://… (default: "
        "CALLPATH_REDIS_URL, else the embedded Redis under the data dir)",
    )
    p.add_argument(
        "--data-dir", help="embedded Redis data (default: CALLPATH_DATA_DIR or .callpath)"
    )
    p.add_argument(
        "--batch", type=_batch, default=BATCH, help=f"calls per pipelined batch (default {BATCH})"
    )
    p.set_defaults(func=cmd_import)


def _batch(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError("a whole number of calls, at least 1")
    return value


def choose_site(cfg: Config, site_id: str | None) -> Site:
    """``--site``, or the config's only site; a ValueError saying what to do otherwise."""
    if site_id:
        site = cfg.site(site_id)
        if site is None:
            raise ValueError(
                f"no site {site_id!r} in {cfg.path or 'the config'} "
                f"(sites: {', '.join(s.id for s in cfg.sites)})"
            )
        return site
    if len(cfg.sites) == 1:
        return cfg.sites[0]
    raise ValueError(
        f"{cfg.path or 'the config'} describes {len(cfg.sites)} sites; say which "
        f"one the file belongs to with --site ({', '.join(s.id for s in cfg.sites)})"
    )


def _stop_unless_shared(embedded: EmbeddedRedis) -> None:
    """Stop the embedded Redis this run started, unless a server began using it meanwhile."""
    import redis

    if embedded.process is None:  # the server's own: never ours to stop
        return
    try:
        probe = redis.Redis(unix_socket_path=str(embedded.socket), socket_timeout=2)
        others = len(probe.client_list()) - 1
        probe.close()
    except redis.RedisError:
        others = 0
    if others > 0:
        print(
            f"callpath import-cdr: the embedded Redis at {embedded.socket} is left running: "
            f"{others} other connection(s) use it",
            file=sys.stderr,
        )
        return
    embedded.stop()


def cmd_import(args: argparse.Namespace) -> int:
    from . import config as configmod
    from .errors import ConfigError

    path = args.config or os.environ.get("CALLPATH_CONFIG") or "pools.toml"
    try:
        cfg = configmod.load(path)
        site = choose_site(cfg, args.site)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"callpath import-cdr: {exc}", file=sys.stderr)
        return 2
    file = Path(args.file)
    if not file.is_file():
        print(f"callpath import-cdr: {file}: no such file", file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir or os.environ.get("CALLPATH_DATA_DIR") or ".callpath")
    try:
        return asyncio.run(_run(args, cfg, site, file, data_dir))
    except KeyboardInterrupt:
        print(
            "callpath import-cdr: interrupted; the calls stored so far are kept, and the "
            "same command goes on from there (stored calls are not stored twice)",
            file=sys.stderr,
        )
        return 130


async def _run(
    args: argparse.Namespace, cfg: Config, site: Site, file: Path, data_dir: Path
) -> int:
    import redis
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from .geo import GeoIP
    from .keys import Keys
    from .redis_store import client, resolve
    from .services import Services
    from .sessions import Signer

    console = Console(stderr=True)
    url, embedded = resolve(args.redis, data_dir)
    r = client(url)
    # importing signs nothing: a throwaway secret keeps the data dir untouched
    svc = Services(cfg, r, Keys(), Signer(secrets.token_bytes(32)), GeoIP(None), run_worker=False)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rate]:>8.0f} calls/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    size = file.stat().st_size
    task = bar.add_task(file.name, total=size or None, rate=0.0)

    def progress(res: ImportResult, total: int) -> None:
        bar.update(task, completed=res.bytes_read, total=total or None, rate=res.rate)

    try:
        with bar:
            result = await import_file(file, site, svc, args.format, args.batch, progress)
    except redis.RedisError as exc:
        print(
            f"callpath import-cdr: Redis failed: {exc}\n  calls stored so far are kept; "
            "run the same command again to go on (stored calls are not stored twice)",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:
        print(f"callpath import-cdr: {file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        await r.aclose()
        if embedded:
            _stop_unless_shared(embedded)

    for failure in result.failures:
        print(f"{file}: {failure}", file=sys.stderr)
    if result.failed > len(result.failures):
        print(f"… and {result.failed - len(result.failures)} more failed rows", file=sys.stderr)
    if result.error:
        print(f"{file}: stopped reading: {result.error}", file=sys.stderr)
    print(
        f"{file}: {result.summary()} — site {site.id}, {result.seconds:.1f} s, "
        f"{result.rate:.0f} calls/s"
    )
    return 0 if result.ok else 1
