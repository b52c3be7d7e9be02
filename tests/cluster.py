"""A real 3-node Redis Cluster on loopback, from the same redis-server binary."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster

from attribution.redis_store import server_binary


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _ask(client: Any, question: Callable[[Any], Any]) -> Any:
    """One answer from a client made for it, closed at once: a client left to the
    collector closes its socket whenever a later test happens to collect it, which
    filterwarnings=error turns into that test's failure."""
    with client as r:
        return question(r)


class LocalCluster:
    def __init__(self, root: Path, nodes: int = 3) -> None:
        self.root = root
        self.ports = [cluster_port() for _ in range(nodes)]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self) -> LocalCluster:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> LocalCluster:
        for port in self.ports:
            d = self.root / str(port)
            d.mkdir(parents=True)
            self.procs.append(
                subprocess.Popen(
                    [
                        server_binary(),
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--dir",
                        str(d),
                        "--appendonly",
                        "no",
                        "--save",
                        "",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in self.ports:
            self._wait(lambda p=port: _ask(redis.Redis(port=p), lambda r: r.ping()))
        cli = Path(server_binary()).with_name("redis-cli")
        subprocess.run(
            [
                str(cli),
                "--cluster",
                "create",
                *[f"127.0.0.1:{p}" for p in self.ports],
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self._wait(
            lambda: (
                _ask(redis.Redis(port=self.ports[0]), lambda r: r.cluster("info"))["cluster_state"]
                == "ok"
            )
        )
        self._wait(
            lambda: _ask(RedisCluster(host="127.0.0.1", port=self.ports[0]), lambda r: r.ping())
        )
        return self

    @staticmethod
    def _wait(check: object, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():  # type: ignore[operator]
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis cluster did not come up")
            time.sleep(0.05)

    def flush(self) -> None:
        for port in self.ports:
            _ask(redis.Redis(port=port), lambda r: r.flushall())

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(10)
