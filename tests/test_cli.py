"""The smaller CLI commands, run as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
from ga4_standin import Standin
from support import BASE_TOML, TEST_ENV, LiveServer

from attribution.cli import main


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
