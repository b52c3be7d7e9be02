"""The embedded Redis: started from the wheel's binary, persisted, reused, stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from attribution.redis_store import EmbeddedRedis, mask_url, resolve


def test_embedded_redis_persists_with_aof_across_a_restart(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path).start()
    with redis.Redis(unix_socket_path=str(first.socket)) as c:
        assert c.config_get("appendonly") == {"appendonly": "yes"}
        c.set("call", "acknowledged")
    first.stop()
    assert not first.socket.exists() or not first._alive()
    second = EmbeddedRedis(tmp_path).start()
    with redis.Redis(unix_socket_path=str(second.socket)) as c:
        assert c.get("call") == b"acknowledged"
    assert (tmp_path / "redis.log").exists()
    second.stop()


def test_a_running_embedded_redis_is_reused_not_restarted(tmp_path: Path) -> None:
    owner = EmbeddedRedis(tmp_path).start()
    other = EmbeddedRedis(tmp_path).start()
    assert other.process is None  # reused; the first owner keeps it
    other.stop()  # stopping a non-owner leaves it running
    with redis.Redis(unix_socket_path=str(owner.socket)) as c:
        assert c.ping()
    owner.stop()


def test_a_url_skips_the_embedded_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLPATH_REDIS_URL", raising=False)
    url, embedded = resolve("redis://example.invalid:6379/0", tmp_path)
    assert (url, embedded) == ("redis://example.invalid:6379/0", None)
    assert not (tmp_path / "redis.sock").exists()


def test_passwords_are_masked_in_printed_urls() -> None:
    assert mask_url("redis://user:hunter2@db:6379/0") == "redis://***@db:6379/0"


def test_serve_starts_and_ctrl_c_stops_both(tmp_path: Path) -> None:
    """`callpath serve` with no URL: embedded Redis + server; SIGINT stops both cleanly."""
    from support import ROOT, free_port

    port = free_port()
    env = os.environ | {
        "DEMO_API_KEY": "k" * 20,
        "TEKHNOMARKET_API_KEY": "k" * 20,
        "TEKHNOMARKET_GA4_SECRET": "s",
        "KLINIKA_API_KEY": "k" * 20,
        "KLINIKA_GA4_SECRET": "s",
    }
    env.pop("CALLPATH_REDIS_URL", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "attribution",
            "serve",
            "--config",
            str(ROOT / "pools.toml"),
            "--port",
            str(port),
            "--data-dir",
            "data",  # relative, as `make run` gives it
            "--no-worker",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if "Application startup complete" in line:
            break
    text = "".join(seen)
    assert f"http://127.0.0.1:{port}/" in text
    assert "redis.sock" in text and "data dir" in text
    import httpx

    assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "embedded redis stopped" in out
    assert not EmbeddedRedis(tmp_path / "data")._alive()
