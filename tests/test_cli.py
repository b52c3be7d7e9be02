"""The smaller CLI commands, run as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from ga4_standin import Standin
from support import BASE_TOML, TEST_ENV, LiveServer, free_port

from attribution.cli import main
from attribution.redis_store import EmbeddedRedis


def test_ga4_validate_prints_what_the_validation_endpoint_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pools = tmp_path / "pools.toml"
    pools.write_text(BASE_TOML)
    for k, v in TEST_ENV.items():
        monkeypatch.setenv(k, v)
    good = Standin({"G-ACME123": TEST_ENV["ACME_GA4_SECRET"]})
    with LiveServer(good.app) as srv:
        monkeypatch.setenv("CALLPATH_GA4_ENDPOINT", f"{srv.url}/mp/collect")
        assert main(["ga4", "validate", "--site", "acme", "--config", str(pools)]) == 0
        assert "'phone_call' for G-ACME123: valid" in capsys.readouterr().out
    monkeypatch.setenv("ACME_GA4_SECRET", "not-the-secret")
    with LiveServer(good.app) as srv:
        monkeypatch.setenv("CALLPATH_GA4_ENDPOINT", f"{srv.url}/mp/collect")
        code = main(["ga4", "validate", "--site", "acme", "--config", str(pools)])
    out = capsys.readouterr().out
    assert code == 1 and "problem" in out


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("serve", "worker", "check", "import-cdr", "simulate", "audit", "ga4"):
        assert command in out


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_stops_its_embedded_redis_however_it_is_stopped(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """Ctrl-C at a terminal, SIGTERM from systemd or `docker stop`: no Redis is left behind."""
    pools = tmp_path / "pools.toml"
    pools.write_text(BASE_TOML)
    port = free_port()
    data = tmp_path / "data"
    serve = ["serve", "--config", str(pools), "--port", str(port), "--data-dir", str(data)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "attribution", *serve, "--no-worker"],
        env=os.environ | TEST_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _until_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        assert EmbeddedRedis(data)._alive()
        proc.send_signal(stop)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "embedded redis stopped" in out
    assert not EmbeddedRedis(data)._alive()


def _until_healthy(url: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {timeout} s")
