"""``callpath import-cdr``: streamed, batched, matched against the lease history, idempotent."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from support import BASE_TOML, flush_redis, make_config

from attribution.cli import main
from attribution.config import Config, Site
from attribution.geo import GeoIP
from attribution.importer import ImportResult, choose_site, import_file
from attribution.keys import Keys
from attribution.services import Services
from attribution.sessions import Signer

T0 = 1_800_000_000_000  # ms; 2027-01-15 10:00 in Kyiv
OTHER_SITE = """
[[site]]
id = "other"
domains = ["other.example"]
country = "UA"
timezone = "Europe/Kyiv"
replace = ["+380 44 500 00 00"]
api_key_env = "OTHER_API_KEY"

  [[site.pool]]
  id = "all"
  numbers = ["+380 44 500 00 01"]
"""
TWO_SITES_ENV = {
    "ACME_API_KEY": "acme-key-0123456789",
    "ACME_GA4_SECRET": "ga4-secret-acme",
    "OTHER_API_KEY": "other-key-0123456789",
}


def services(r: Any, keys: Keys, cfg: Config | None = None) -> Services:
    return Services(
        cfg or make_config(),
        r,
        keys,
        Signer(b"test-secret-0123456789"),
        GeoIP(None),
        run_worker=False,
    )


def local(ms: int, site: Site) -> str:
    return datetime.fromtimestamp(ms / 1000, site.timezone).strftime("%Y-%m-%d %H:%M:%S")


def row(
    site: Site, call_id: str, caller: str, called: str, at_ms: int, disposition: str = "ANSWERED"
) -> str:
    """An Asterisk cdr_csv line with a uniqueid column (17 columns)."""
    start = local(at_ms, site)
    answer = start if disposition == "ANSWERED" else ""
    return (
        f'"","{caller}","{called}","from-pstn","""Caller"" <{caller}>","SIP/t-1",'
        f'"SIP/101-2","Dial","SIP/101","{start}","{answer}","{start}",30,'
        f'{30 if answer else 0},"{disposition}","DOCUMENTATION","{call_id}"\n'
    )


async def lease(svc: Services, sid: str, at_ms: int, pool: str = "paid") -> str:
    site = svc.config.sites[0]
    p = site.pool(pool)
    assert p is not None
    got = await svc.allocator.lease(site, p, sid, at_ms)
    assert got.outcome == "new"
    return got.number


@pytest.mark.anyio
async def test_import_matches_stores_and_is_idempotent(r: Any, keys: Keys, tmp_path: Path) -> None:
    svc = services(r, keys)
    await svc.allocator.sync()
    site = svc.config.sites[0]
    a = await lease(svc, "sid-a", T0)
    b = await lease(svc, "sid-b", T0 + 60_000)
    path = tmp_path / "Master.csv"
    path.write_text(
        row(site, "1800000120.1", "0501111111", a, T0 + 120_000)
        + row(site, "1800000180.2", "0502222222", b, T0 + 180_000, "NO ANSWER")
        + row(site, "1800000240.3", "0503333333", "+380 57 700 00 50", T0 + 240_000)
        + row(site, "1800000300.4", "0504444444", "0 800 300 100", T0 + 300_000)
    )
    seen: list[tuple[int, int]] = []
    first = await import_file(
        path, site, svc, progress=lambda res, total: seen.append((res.bytes_read, total))
    )
    assert first.summary() == "4 read, 4 new, 0 already stored, 0 failed"
    assert first.ok and first.failures == []
    assert seen[-1] == (path.stat().st_size, path.stat().st_size)

    call_a = await svc.calls.get(site, "1800000120.1")
    call_b = await svc.calls.get(site, "1800000180.2")
    billboard = await svc.calls.get(site, "1800000240.3")
    own = await svc.calls.get(site, "1800000300.4")
    assert call_a and call_b and billboard and own
    assert (call_a["match"], call_a["sid"], call_a["caller"]) == ("exact", "sid-a", "+380501111111")
    assert (call_b["match"], call_b["sid"], call_b["status"]) == ("exact", "sid-b", "missed")
    assert (billboard["match"], billboard["source"]) == ("static", "billboard")
    assert own["match"] == "unattributed"

    again = await import_file(path, site, svc)
    assert again.summary() == "4 read, 0 new, 4 already stored, 0 failed"
    assert await r.zcard(keys.calls(site.id)) == 4


@pytest.mark.anyio
async def test_bad_rows_are_listed_by_line_and_the_rest_stored(
    r: Any, keys: Keys, tmp_path: Path
) -> None:
    cfg = make_config(BASE_TOML + OTHER_SITE, env=TWO_SITES_ENV)
    svc = services(r, keys, cfg)
    await svc.allocator.sync()
    site = cfg.sites[0]
    a = await lease(svc, "sid-a", T0)
    path = tmp_path / "Master.csv"
    path.write_text(
        row(site, "1800000120.1", "0501111111", a, T0 + 120_000)
        + "just,three,columns\n"
        + row(site, "1800000130.2", "0502222222", "+380 44 500 00 01", T0 + 130_000)
        + row(site, "1800000140.3", "0503333333", "not a number", T0 + 140_000)
        + row(site, "1800000150.4", "0504444444", a, T0 + 150_000)
    )
    result = await import_file(path, site, svc)
    assert result.summary() == "5 read, 2 new, 0 already stored, 3 failed"
    assert not result.ok
    assert [(f.line, f.field) for f in result.failures] == [(2, "row"), (3, "called"), (4, "dst")]
    assert "another site" in result.failures[1].reason
    assert str(result.failures[0]).startswith("line 2: row: ")
    assert await svc.calls.get(site, "1800000150.4") is not None


@pytest.mark.anyio
@pytest.mark.parametrize(("callers", "batch"), [(7, 10), (60, 16)])
async def test_batches_in_flight_keep_each_callers_order(
    r: Any, keys: Keys, tmp_path: Path, callers: int, batch: int
) -> None:
    """First-time-caller flags come out as if the file were stored row by row."""
    svc = services(r, keys)
    await svc.allocator.sync()
    site = svc.config.sites[0]
    number = await lease(svc, "sid-a", T0)
    rng = random.Random(callers)
    who = [f"0500000{rng.randrange(callers):03d}" for _ in range(300)]
    lines = [
        row(site, f"1800000{i:03d}.{i}", caller, number, T0 + 1000 * i)
        for i, caller in enumerate(who)
    ]
    lines.append(row(site, "1800000000.0", who[0], number, T0))  # a repeated row
    path = tmp_path / "Master.csv"
    path.write_text("".join(lines))
    result = await import_file(path, site, svc, batch=batch, in_flight=3)
    assert result.summary() == "301 read, 300 new, 1 already stored, 0 failed"
    firsts = []
    for i in range(300):
        call = await svc.calls.get(site, f"1800000{i:03d}.{i}")
        assert call is not None
        if call["first_time_caller"]:
            firsts.append(i)
    assert firsts == sorted(who.index(c) for c in set(who))


@pytest.mark.anyio
async def test_json_lines_gzipped_and_file_objects(r: Any, keys: Keys, tmp_path: Path) -> None:
    svc = services(r, keys)
    await svc.allocator.sync()
    site = svc.config.sites[0]
    number = await lease(svc, "sid-j", T0)
    records = [
        {
            "call_id": f"j-{i}",
            "caller": "+380671234567",
            "called": number,
            "started_at": (T0 + 1000 * i) / 1000,
            "status": "answered",
        }
        for i in range(5)
    ]
    records.insert(2, {"call_id": "j-bad", "called": number})  # no started_at
    text = "\n".join(json.dumps(x) for x in records) + "\n"
    path = tmp_path / "calls.jsonl.gz"
    path.write_bytes(gzip.compress(text.encode()))
    result = await import_file(path, site, svc)
    assert result.summary() == "6 read, 5 new, 0 already stored, 1 failed"
    assert result.failures[0].line == 3
    call = await svc.calls.get(site, "j-4")
    assert call is not None and call["sid"] == "sid-j"
    # a binary file object works too; the format can be forced
    again = await import_file(io.BytesIO(text.encode()), site, svc, fmt="json")
    assert again.summary() == "6 read, 0 new, 5 already stored, 1 failed"


@pytest.mark.anyio
async def test_an_unreadable_file_is_an_error_not_a_crash(
    r: Any, keys: Keys, tmp_path: Path
) -> None:
    svc = services(r, keys)
    site = svc.config.sites[0]
    path = tmp_path / "notes.bin"
    path.write_text("hello\nworld\n")
    result = await import_file(path, site, svc)
    assert result.read == 0 and not result.ok
    assert result.error and "format" in result.error


@pytest.mark.anyio
async def test_concurrent_imports_store_each_call_once(r: Any, keys: Keys, tmp_path: Path) -> None:
    svc = services(r, keys)
    await svc.allocator.sync()
    site = svc.config.sites[0]
    number = await lease(svc, "sid-m", T0)
    path = tmp_path / "Master.csv"
    path.write_text(
        "".join(
            row(site, f"1800000000.{i}", f"067{i:07d}", number, T0 + 10 * i)
            + ("broken\n" if i % 97 == 0 else "")
            for i in range(1200)
        )
    )
    # two imports of the same file at once, in different batch sizes: each call is
    # stored exactly once between them
    results: list[ImportResult] = await asyncio.gather(
        *(import_file(path, site, svc, batch=b) for b in (7, 333))
    )
    assert sum(x.new for x in results) == 1200
    assert all(x.read == 1200 + 13 and x.failed == 13 for x in results)
    assert all(x.new + x.duplicate == 1200 for x in results)
    assert len(results[0].failures) == 13  # all kept: fewer than 50


def test_site_is_named_or_the_only_one() -> None:
    one = make_config()
    assert choose_site(one, None).id == "acme"
    two = make_config(BASE_TOML + OTHER_SITE, env=TWO_SITES_ENV)
    assert choose_site(two, "other").id == "other"
    with pytest.raises(ValueError, match="--site"):
        choose_site(two, None)
    with pytest.raises(ValueError, match="no site 'nope'"):
        choose_site(two, "nope")


def _cli_files(tmp_path: Path, bad: bool = False) -> tuple[Path, Path]:
    cfg = make_config()
    site = cfg.sites[0]
    config = tmp_path / "pools.toml"
    config.write_text(BASE_TOML)
    data = tmp_path / "Master.csv"
    text = row(site, "1800000000.1", "0501111111", "0577000011", T0) + row(
        site, "1800000001.2", "0502222222", "0577000012", T0 + 1000
    )
    if bad:
        text += "a,b\n" * 60
    data.write_text(text)
    return config, data


def test_cli_import_twice(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flush_redis(redis_url)
    config, data = _cli_files(tmp_path)
    args = ["import-cdr", str(data), "--config", str(config), "--redis", redis_url]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "2 read, 2 new, 0 already stored, 0 failed" in out and "site acme" in out
    assert err == ""  # not a terminal: no progress bar, just the last line
    assert main([*args, "--format", "asterisk-csv", "--batch", "1"]) == 0
    assert "2 read, 0 new, 2 already stored, 0 failed" in capsys.readouterr().out
    flush_redis(redis_url)


def test_cli_lists_failures_and_exits_1(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flush_redis(redis_url)
    config, data = _cli_files(tmp_path, bad=True)
    assert main(["import-cdr", str(data), "--config", str(config), "--redis", redis_url]) == 1
    captured = capsys.readouterr()
    assert "62 read, 2 new, 0 already stored, 60 failed" in captured.out
    listed = [line for line in captured.err.splitlines() if ": line " in line]
    assert len(listed) == 50 and listed[0].endswith(
        "line 3: row: a cdr_csv row has 16 to 21 columns, this one has 2"
    )
    assert "… and 10 more failed rows" in captured.err
    flush_redis(redis_url)


def test_cli_uses_the_embedded_redis_under_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CALLPATH_REDIS_URL", raising=False)
    config, data = _cli_files(tmp_path)
    args = ["import-cdr", str(data), "--config", str(config), "--data-dir", str(tmp_path / "data")]
    assert main(args) == 0
    assert "2 new" in capsys.readouterr().out
    assert any(p.name.startswith("appendonly") for p in (tmp_path / "data").iterdir())
    # stopped after the run; the next one starts it again on the same data
    assert main(args) == 0
    assert "0 new, 2 already stored" in capsys.readouterr().out
    assert not (tmp_path / "data" / "secret").exists()


def test_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "pools.toml"
    config.write_text(BASE_TOML + OTHER_SITE)
    data = tmp_path / "Master.csv"
    data.write_text("")
    assert main(["import-cdr", str(data), "--config", str(config)]) == 2
    assert "--site" in capsys.readouterr().err
    assert (
        main(
            ["import-cdr", str(tmp_path / "missing.csv"), "--config", str(config), "--site", "acme"]
        )
        == 2
    )
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["import-cdr", str(data), "--batch", "0"])


def test_the_embedded_redis_is_left_to_a_server_that_began_using_it(tmp_path: Path) -> None:
    from attribution.importer import _stop_unless_shared
    from attribution.redis_store import EmbeddedRedis

    embedded = EmbeddedRedis(tmp_path / "data").start()
    try:
        server = redis.Redis(unix_socket_path=str(embedded.socket))
        assert server.ping()
        _stop_unless_shared(embedded)
        assert embedded.process is not None and embedded.process.poll() is None
        server.close()
        _stop_unless_shared(embedded)
        assert embedded.process is None
    finally:
        embedded.stop()
