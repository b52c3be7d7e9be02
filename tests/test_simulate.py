"""Pool sizing simulation: the allocator's rules replayed in Python, calls matched as the
matcher does, checked on hand-worked scenarios and statistically."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest
from support import BASE_TOML

from attribution.cli import main
from attribution.simulate import (
    FALLBACK,
    Traffic,
    make_traffic,
    parse_sizes,
    replay,
    simulate,
    smallest_size,
    traffic_from,
)

# Four visits, hold 15 min (pings every 5), times in minutes:
#   v0 0-2 calls at 1, v1 10-12 calls at 12, v2 30-32 calls at 55, v3 50-52 calls at 52.
# Without pings each lease ends 15 min after arrival: 15, 25, 45, 65.
STARTS = [0.0, 10.0, 30.0, 50.0]
DURATIONS = [2.0, 2.0, 2.0, 2.0]
CALLS = [1.0, 12.0, 55.0, 52.0]


def test_one_number_by_hand() -> None:
    traffic = traffic_from(STARTS, DURATIONS, CALLS, hold_minutes=15)
    r = replay(traffic, 1)
    # v1 arrives while v0 still holds the only number: it is shared (overflow);
    # it comes free at 25, so v2 (30) and v3 (50) each take it in turn.
    assert r.overflow_visitors == 1 and r.overflow == 0.25
    # v0 right; v1 on a number two sessions held: 1/2; v2 calls at 55 after its lease
    # (45) on the number v3 took at 50: wrong; v3 right.
    assert r.accuracy == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert r.ambiguous == 0.25 and r.reused == 0.25 and r.expired == 0
    assert r.peak == 2


def test_two_numbers_by_hand() -> None:
    traffic = traffic_from(STARTS, DURATIONS, CALLS, hold_minutes=15)
    r = replay(traffic, 2)
    # v0 → n0, v1 → n1; at 30 both are free, n0 released first (15) so v2 takes it;
    # at 50 n1 (released 25) has rested longer than n0 (45), so v3 takes n1 and
    # v2's late call at 55 still finds its own lease inside the grace window.
    assert r.overflow_visitors == 0
    assert r.accuracy == 1.0
    assert r.reused == 0 and r.ambiguous == 0


def test_pings_hold_a_number_and_decide_which_one_is_shared() -> None:
    # hold 3 min, pings every minute. a: 0-2.5 pings at 1 and 2 (lease to 5);
    # b: 0.5-0.6, no ping (lease to 3.5); c arrives at 2.2 on a full pool of 2.
    # The oldest activity is b's, so c shares b's number (as allocate.lua does after
    # a's pings), and b's call at 3.4 lands on a number two sessions hold.
    traffic = traffic_from([0.0, 0.5, 2.2], [2.5, 0.1, 0.5], [1.0, 3.4, 2.3], hold_minutes=3)
    r = replay(traffic, 2)
    assert r.overflow_visitors == 1
    assert r.accuracy == pytest.approx((1 + 0.5 + 0.5) / 3)
    # a ping keeps a lease: without a's pings its lease ends at 3, a new visitor at
    # 4 takes a free number; with them it must share
    held = traffic_from([0.0, 4.0], [2.5, 1.0], [1.0, 4.5], hold_minutes=3)
    assert replay(held, 1).overflow_visitors == 1
    gone = traffic_from([0.0, 4.0], [0.5, 1.0], [1.0, 4.5], hold_minutes=3)
    assert replay(gone, 1).overflow_visitors == 0


def test_fallback_shows_the_sites_number_and_loses_those_calls() -> None:
    traffic = traffic_from(STARTS, DURATIONS, CALLS, hold_minutes=15)
    r = replay(traffic, 1, FALLBACK)
    assert r.overflow_visitors == 1 and r.fallback == 0.25
    # v1 is unattributable; v2's late call hits v3's lease: wrong
    assert r.accuracy == pytest.approx(2 / 4)


def test_a_call_after_lease_and_grace_is_lost_whatever_the_pool() -> None:
    traffic = traffic_from([0.0], [1.0], [31.0], hold_minutes=15)  # lease to 15, grace 30
    r = replay(traffic, 5)
    assert r.accuracy == 0 and r.expired == 1
    assert traffic.ceiling() == 0


def day(seed: int) -> Traffic:
    """250 visitors an hour, 4-minute sessions, 15-minute hold."""
    return make_traffic(250.0, session_minutes=4.0, hold_minutes=15.0, seed=seed)


def test_accuracy_grows_with_the_pool() -> None:
    sizes = [2, 5, 10, 20, 40, 60, 80, 100, 120]
    results = simulate(250.0, sizes, session_minutes=4.0, hold_minutes=15.0, seed=11)
    accuracy = [r.accuracy for r in results]
    for small, large in itertools.pairwise(accuracy):
        assert large >= small - 0.005, accuracy
    assert accuracy[-1] - accuracy[0] > 0.5
    overflow = [r.overflow for r in results]
    assert overflow == sorted(overflow, reverse=True)


@pytest.mark.parametrize("mode", ["share-oldest", "fallback"])
def test_no_overflow_from_the_peak_up(mode: str) -> None:
    traffic = make_traffic(
        120.0, hold_minutes=10, session_minutes=6, session_dist="lognormal", seed=5
    )
    peak = traffic.peak()
    assert peak > 5
    assert replay(traffic, peak, mode).overflow_visitors == 0
    assert replay(traffic, peak + 3, mode).overflow_visitors == 0
    assert replay(traffic, peak - 1, mode).overflow_visitors > 0


def test_smallest_size_is_the_first_to_reach_the_target() -> None:
    traffic = day(3)
    best = smallest_size(traffic, 0.95)
    assert best is not None
    assert best.accuracy >= 0.95
    assert replay(traffic, best.numbers - 1).accuracy < 0.95
    assert smallest_size(traffic, 1.0001) is None


def test_the_same_seed_gives_the_same_answer() -> None:
    assert simulate(80.0, [10, 30], seed=9) == simulate(80.0, [10, 30], seed=9)
    assert [replay(day(9), n) for n in (10, 30)] == [replay(day(9), n) for n in (10, 30)]


def test_a_day_of_10000_visitors_replays_well_under_a_second() -> None:
    traffic = make_traffic(visitors_per_hour=10_000 / 24, seed=1)
    assert 9_500 < traffic.visitors < 10_500
    began = time.perf_counter()
    replay(traffic, 60)
    assert time.perf_counter() - began < 1.0


def test_hourly_profile_shapes_the_day() -> None:
    profile = [0.0] * 24
    profile[12] = 600.0
    traffic = make_traffic(profile, seed=2)
    assert all(720 <= s < 780 for s in traffic.start)
    assert 500 < traffic.visitors < 700


def test_pool_sizes_are_parsed() -> None:
    assert parse_sizes("4,6,8") == [4, 6, 8]
    assert parse_sizes("2-6") == [2, 3, 4, 5, 6]
    assert parse_sizes("10-40:10, 3") == [3, 10, 20, 30, 40]
    for bad in ("0", "5-2", "x", ""):
        with pytest.raises(ValueError):
            parse_sizes(bad)


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "simulate",
                "--visitors-per-hour",
                "60",
                "--numbers",
                "5,10,30",
                "--seed",
                "4",
                "--json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert [s["numbers"] for s in doc["sizes"]] == [5, 10, 30]
    assert doc["peak_concurrent"] >= 1 and doc["smallest"] >= 1
    assert doc["params"]["hold_minutes"] == 15 and doc["assumptions"]
    assert doc["current"] is None


def test_cli_table_says_whether_the_configured_pool_is_enough(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "pools.toml"
    cfg.write_text(BASE_TOML.replace("hold_minutes = 15", "hold_minutes = 10"))
    assert (
        main(
            [
                "simulate",
                "--config",
                str(cfg),
                "--site",
                "acme",
                "--pool",
                "paid",
                "--visitors-per-hour",
                "100",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "pool acme/paid has 3 numbers" in out and "too small" in out
    assert "hold 10 min" in out and "smallest pool reaching 95.0% accuracy" in out
    assert "model:" in out and "Poisson" in out
    assert (
        main(
            [
                "simulate",
                "--config",
                str(cfg),
                "--visitors-per-hour",
                "0.5",
                "--site",
                "acme",
                "--pool",
                "paid",
                "--json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["current"]["numbers"] == 3 and doc["current"]["enough"] is True


def test_cli_refuses_an_unknown_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "pools.toml"
    cfg.write_text(BASE_TOML)
    assert main(["simulate", "--config", str(cfg), "--pool", "nope"]) == 2
    assert "no pool 'nope'" in capsys.readouterr().err
    assert main(["simulate", "--config", str(cfg)]) == 2
    assert "choose one with --pool" in capsys.readouterr().err
