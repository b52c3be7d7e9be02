"""``callpath simulate``: how many tracking numbers a pool needs for a traffic shape.

A day (or several) of visitors is drawn once — Poisson arrivals per hour, session
lengths, and the moment each visitor would call — and then replayed against pools of
different sizes with the allocation rules of ``scripts/allocate.lua``:

- a new session takes the free number released longest ago;
- a session pings every ``hold / 3`` while it is on the site; its lease ends ``hold``
  after the last ping, and the number is free again once every holder's lease ended;
- an exhausted pool shares the number whose latest activity is oldest
  (``share-oldest``) or shows the site's own number (``fallback``).

Calls are then matched the way ``scripts/match.lua`` does it: the leases of the
called number that cover the call's start; none covering, the newest earlier lease
if it ended at most ``hold`` before (the grace window). A call whose number several
sessions held counts as right with probability 1/k; a call after the caller's lease
ran out on a number someone else took since counts as wrong.

Everything is pure Python with heaps: a day of 10,000 visitors replays in a few tens
of milliseconds per pool size.  Not modelled: returning visitors, and the matcher's
use of the caller's history on shared numbers (counted as a 1/k guess instead).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import textwrap
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from heapq import heapify, heappop, heappush
from typing import Any

HISTORY_SCAN = 50  # entries match.lua reads per call (newest first)
SHARE_OLDEST = "share-oldest"
FALLBACK = "fallback"

ASSUMPTIONS = (
    "visitors are those the pool serves; arrivals are Poisson, at a constant rate within "
    "each hour of the profile",
    "each visitor makes one visit; while on the site the page pings every hold/3 "
    "and the lease ends hold after the last ping",
    "the allocator gives the free number released longest ago; an exhausted pool "
    "shares the number with the oldest activity (share-oldest) or shows the site's "
    "own number (fallback), as allocate.lua does",
    "a caller calls once, either during the visit (uniformly within it) or after it, "
    "with an exponential delay",
    "a call is matched as match.lua does: the leases covering its start; none, then the "
    "number's newest earlier lease if it ended at most hold before",
    "a call on a number k sessions held at that moment is right with probability 1/k "
    "(the real matcher also uses the caller's history, so this is pessimistic)",
    "calls do not change which numbers visitors see, so accuracy is the expectation "
    "over every visitor's would-be call; the call rate only scales the call counts",
)


# --------------------------------------------------------------------- traffic


@dataclass(frozen=True, slots=True)
class Traffic:
    """Visitors drawn once and replayed against every pool size (times in minutes)."""

    hold: float
    start: tuple[float, ...]
    until: tuple[float, ...]  # end of the lease: last ping + hold
    call: tuple[float, ...]  # when this visitor would call
    events: tuple[tuple[float, int, int], ...]  # (time, kind, visitor), sorted
    days: float = 1.0
    call_rate: float = 0.03

    @property
    def visitors(self) -> int:
        return len(self.start)

    def peak(self) -> int:
        """Most sessions holding a number at once: no pool this big or bigger overflows."""
        marks = sorted([(s, 1) for s in self.start] + [(u, -1) for u in self.until])
        live = best = 0
        for _, step in marks:  # at equal times an ending lease frees its number first
            live += step
            best = max(best, live)
        return best

    def ceiling(self) -> float:
        """Accuracy with unlimited numbers: only calls after lease + grace are lost."""
        if not self.start:
            return 1.0
        ok = sum(1 for c, u in zip(self.call, self.until, strict=True) if c <= u + self.hold)
        return ok / len(self.start)


PING, ARRIVE = 0, 1


def visitors(
    visitors_per_hour: float | Sequence[float], *, days: float = 1, rng: random.Random
) -> list[float]:
    """Poisson arrival times (minutes) over ``days`` with an hourly profile."""
    profile = (
        [float(visitors_per_hour)] * 24
        if isinstance(visitors_per_hour, int | float)
        else [float(x) for x in visitors_per_hour]
    )
    if len(profile) != 24 or any(x < 0 for x in profile):
        raise ValueError("the profile needs 24 hourly visitor counts, none negative")
    out: list[float] = []
    hours = math.ceil(days * 24)
    for h in range(hours):
        rate = profile[h % 24] / 60.0  # per minute
        end = min((h + 1) * 60.0, days * 1440.0)
        if rate <= 0:
            continue
        t = h * 60.0
        while True:
            t += rng.expovariate(rate)
            if t >= end:
                break
            out.append(t)
    return out


def make_traffic(
    visitors_per_hour: float | Sequence[float] = 100.0,
    *,
    hold_minutes: float = 15.0,
    session_minutes: float = 5.0,
    session_dist: str = "exponential",
    session_sigma: float = 1.0,
    call_rate: float = 0.03,
    call_during: float = 0.7,
    call_delay_minutes: float = 5.0,
    days: float = 1,
    seed: int | None = 0,
) -> Traffic:
    """Draw the visitors, their sessions and their would-be calls."""
    if hold_minutes <= 0:
        raise ValueError("hold_minutes must be above 0")
    if session_minutes <= 0:
        raise ValueError("session_minutes must be above 0")
    if session_dist not in ("exponential", "lognormal"):
        raise ValueError("session_dist is exponential or lognormal")
    if not 0 <= call_during <= 1 or not 0 <= call_rate <= 1:
        raise ValueError("call_rate and call_during are shares between 0 and 1")
    rng = random.Random(seed)
    starts = visitors(visitors_per_hour, days=days, rng=rng)
    mu = math.log(session_minutes) - session_sigma**2 / 2
    durations = []
    for _ in starts:
        if session_dist == "lognormal":
            durations.append(rng.lognormvariate(mu, session_sigma))
        else:
            durations.append(rng.expovariate(1.0 / session_minutes))
    calls = []
    for s, d in zip(starts, durations, strict=True):
        if rng.random() < call_during:
            calls.append(s + rng.random() * d)
        else:
            delay = rng.expovariate(1.0 / call_delay_minutes) if call_delay_minutes > 0 else 0.0
            calls.append(s + d + delay)
    return traffic_from(starts, durations, calls, hold_minutes, days=days, call_rate=call_rate)


def traffic_from(
    starts: Sequence[float],
    durations: Sequence[float],
    calls: Sequence[float],
    hold_minutes: float,
    *,
    days: float = 1,
    call_rate: float = 0.03,
) -> Traffic:
    """Traffic from explicit visits (minutes): arrival, time on site, call moment."""
    ping = hold_minutes / 3.0
    until = []
    events: list[tuple[float, int, int]] = []
    for v, (s, d) in enumerate(zip(starts, durations, strict=True)):
        events.append((s, ARRIVE, v))
        pings = int(d // ping)
        for i in range(1, pings + 1):
            events.append((s + i * ping, PING, v))
        until.append(s + pings * ping + hold_minutes)
    events.sort()
    return Traffic(
        hold_minutes, tuple(starts), tuple(until), tuple(calls), tuple(events), days, call_rate
    )


# --------------------------------------------------------------------- replay


@dataclass(frozen=True, slots=True)
class SizeResult:
    numbers: int
    visitors: int
    peak: int  # most sessions holding a number at once (same for every size)
    overflow: float  # share of visitors shown a shared number (or the site's own)
    overflow_visitors: int
    accuracy: float  # share of calls attributed to the right session (expected)
    ambiguous: float  # share of calls on a number several sessions held then
    reused: float  # share of calls after the lease, on a number taken since: wrong
    expired: float  # share of calls after lease + grace: unattributed
    fallback: float  # share of calls from visitors shown the site's own number
    calls_per_day: float
    wrong_per_day: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def replay(
    traffic: Traffic, size: int, on_exhausted: str = SHARE_OLDEST, peak: int | None = None
) -> SizeResult:
    """Run one pool size over the traffic and match every visitor's would-be call."""
    if size < 1:
        raise ValueError("a pool has at least one number")
    if on_exhausted not in (SHARE_OLDEST, FALLBACK):
        raise ValueError(f"on_exhausted is {SHARE_OLDEST} or {FALLBACK}")
    hold = traffic.hold
    n_vis = traffic.visitors
    free: list[tuple[float, int]] = [(0.0, i) for i in range(size)]  # released at, number
    heapify(free)
    leases: list[tuple[float, int, int]] = []  # (expiry, generation, number), lazy
    score = [0.0] * size  # latest holder expiry of a live number
    gen = [0] * size
    hist_from: list[list[float]] = [[] for _ in range(size)]
    hist_who: list[list[int]] = [[] for _ in range(size)]
    assigned = [-1] * n_vis
    overflow = 0

    for t, kind, v in traffic.events:
        if kind == PING:
            n = assigned[v]
            if n >= 0 and t + hold > score[n]:
                score[n] = t + hold
                heappush(leases, (score[n], gen[n], n))
            continue
        # every number whose leases all ended is free, rested since its last one ended
        while leases:
            s, g, n = leases[0]
            if g != gen[n] or s != score[n]:
                heappop(leases)  # superseded by a later ping
                continue
            if s > t:
                break
            heappop(leases)
            gen[n] += 1
            heappush(free, (s, n))
        if free:
            n = heappop(free)[1]
            score[n] = t + hold
            heappush(leases, (score[n], gen[n], n))
        else:
            overflow += 1
            if on_exhausted == FALLBACK:
                continue
            n = leases[0][2]  # the top is valid after the release loop
            if t + hold > score[n]:
                score[n] = t + hold
                heappush(leases, (score[n], gen[n], n))
        assigned[v] = n
        hist_from[n].append(t)
        hist_who[n].append(v)

    right = ambiguous = reused = expired = fell_back = 0.0
    until = traffic.until
    for v in range(n_vis):
        n = assigned[v]
        if n < 0:
            fell_back += 1
            continue
        c = traffic.call[v]
        froms, who = hist_from[n], hist_who[n]
        i = bisect_right(froms, c)
        covering = [w for w in who[max(0, i - HISTORY_SCAN) : i] if until[w] >= c]
        if covering:
            if v in covering:
                right += 1.0 / len(covering)
                if len(covering) > 1:
                    ambiguous += 1
            else:
                reused += 1
        elif who[i - 1] == v and until[v] + hold >= c:
            right += 1  # the grace window, nobody took it since
        elif who[i - 1] == v:
            expired += 1
        else:
            reused += 1

    per = 1.0 / n_vis if n_vis else 0.0
    accuracy = right * per if n_vis else 1.0
    calls_per_day = n_vis * traffic.call_rate / traffic.days
    return SizeResult(
        numbers=size,
        visitors=n_vis,
        peak=traffic.peak() if peak is None else peak,
        overflow=overflow * per,
        overflow_visitors=overflow,
        accuracy=accuracy,
        ambiguous=ambiguous * per,
        reused=reused * per,
        expired=expired * per,
        fallback=fell_back * per,
        calls_per_day=calls_per_day,
        wrong_per_day=calls_per_day * (1 - accuracy),
    )


def simulate(
    visitors_per_hour: float | Sequence[float] = 100.0,
    sizes: Sequence[int] = (),
    *,
    hold_minutes: float = 15.0,
    session_minutes: float = 5.0,
    session_dist: str = "exponential",
    session_sigma: float = 1.0,
    call_rate: float = 0.03,
    call_during: float = 0.7,
    call_delay_minutes: float = 5.0,
    on_exhausted: str = SHARE_OLDEST,
    days: float = 1,
    seed: int | None = 0,
) -> list[SizeResult]:
    """One result per pool size, all over the same drawn traffic."""
    traffic = make_traffic(
        visitors_per_hour,
        hold_minutes=hold_minutes,
        session_minutes=session_minutes,
        session_dist=session_dist,
        session_sigma=session_sigma,
        call_rate=call_rate,
        call_during=call_during,
        call_delay_minutes=call_delay_minutes,
        days=days,
        seed=seed,
    )
    peak = traffic.peak()
    return [replay(traffic, n, on_exhausted, peak) for n in sizes]


def smallest_size(
    traffic: Traffic,
    target: float,
    on_exhausted: str = SHARE_OLDEST,
    cache: dict[int, SizeResult] | None = None,
    limit: int = 100_000,
) -> SizeResult | None:
    """The smallest pool whose accuracy reaches ``target`` (None when none can)."""
    if traffic.ceiling() < target:
        return None
    cache = {} if cache is None else cache
    peak = traffic.peak()

    def acc(n: int) -> SizeResult:
        if n not in cache:
            cache[n] = replay(traffic, n, on_exhausted, peak)
        return cache[n]

    lo, hi = 0, 1  # acc(lo) < target (lo = 0: none), acc(hi) >= target
    while acc(hi).accuracy < target:
        lo, hi = hi, hi * 2
        if hi > limit:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if acc(mid).accuracy >= target:
            hi = mid
        else:
            lo = mid
    return acc(hi)


# --------------------------------------------------------------------- CLI


def parse_sizes(text: str) -> list[int]:
    """``4,6,8``, ``2-20`` or ``2-40:2`` (and mixes of them)."""
    out: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        step = 1
        if ":" in part:
            part, step_text = part.split(":", 1)
            step = int(step_text)
        if "-" in part:
            a, b = (int(x) for x in part.split("-", 1))
            if a > b or step < 1:
                raise ValueError(f"bad range {part!r}")
            out.update(range(a, b + 1, step))
        else:
            out.add(int(part))
    if not out or min(out) < 1:
        raise ValueError("pool sizes are whole numbers from 1")
    return sorted(out)


def _sizes_arg(text: str) -> list[int]:
    try:
        return parse_sizes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (give e.g. 4,6,8 or 2-20 or 2-40:2)") from None


def _profile_arg(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError("the profile is 24 numbers separated by commas") from None
    if len(values) != 24 or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"the profile needs 24 hourly visitor counts (got {len(values)})"
        )
    return values


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _share(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return value


def _not_negative(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is below 0")
    return value


HELP = (
    """\
Pool sizing: how many tracking numbers a pool needs so calls are attributed to the
right session. Draws a day of visitors and replays it against each pool size with
the allocator's own rules, then matches every call as the call matcher does.

Model:
"""
    + "\n".join(
        textwrap.fill(a, 84, initial_indent="  - ", subsequent_indent="    ") for a in ASSUMPTIONS
    )
    + """

Examples:
  callpath simulate --visitors-per-hour 300 --numbers 5-60:5
  callpath simulate --numbers 10-80:10 --profile \\
      5,3,2,2,2,5,15,40,80,120,140,150,140,130,130,120,110,100,90,80,60,40,20,10
  callpath simulate --config pools.toml --site acme --pool paid --visitors-per-hour 80
"""
)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="pool sizing: attribution accuracy against pool size",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--visitors-per-hour",
        type=_positive,
        default=None,
        metavar="N",
        help="mean visitors per hour reaching the pool, all day (default 100)",
    )
    p.add_argument(
        "--profile",
        type=_profile_arg,
        metavar="V0,…,V23",
        help="24 hourly visitor counts instead of a flat rate",
    )
    p.add_argument("--days", type=_positive, default=1, help="days to simulate (default 1)")
    p.add_argument(
        "--session-minutes",
        type=_positive,
        default=5.0,
        metavar="M",
        help="mean time on site (default 5)",
    )
    p.add_argument(
        "--session-dist",
        choices=("exponential", "lognormal"),
        default="exponential",
        help="session length distribution",
    )
    p.add_argument(
        "--session-sigma",
        type=_positive,
        default=1.0,
        help="sigma of the lognormal session length (default 1.0)",
    )
    p.add_argument(
        "--hold-minutes",
        type=_positive,
        default=None,
        metavar="M",
        help="lease hold after the last ping (default: the config's, else 15)",
    )
    p.add_argument(
        "--call-rate", type=_share, default=0.03, help="share of visitors who call (default 0.03)"
    )
    p.add_argument(
        "--call-during",
        type=_share,
        default=0.7,
        help="share of calls made during the visit (default 0.7)",
    )
    p.add_argument(
        "--call-delay-minutes",
        type=_not_negative,
        default=5.0,
        metavar="M",
        help="mean delay of a call made after the visit (default 5)",
    )
    p.add_argument(
        "--numbers",
        type=_sizes_arg,
        metavar="SIZES",
        help="pool sizes to try: 4,6,8 or 2-20 or 2-40:2 (default: up to the peak)",
    )
    p.add_argument(
        "--on-exhausted",
        choices=(SHARE_OLDEST, FALLBACK),
        default=None,
        help="what an exhausted pool does (default: the pool's, else share-oldest)",
    )
    p.add_argument("--target", type=_share, default=0.95, help="accuracy to reach (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--config", help="a pools file, to take hold_minutes and the pool's size")
    p.add_argument("--site", help="site id in --config (default: its only site)")
    p.add_argument("--pool", help="pool id in --config (default: the site's only pool)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_simulate)


@dataclass(frozen=True, slots=True)
class Current:
    site: str
    pool: str
    numbers: int
    on_exhausted: str


def _from_config(args: argparse.Namespace) -> tuple[float, Current]:
    from . import config as configmod

    cfg = configmod.load(args.config)
    if args.site:
        site = cfg.site(args.site)
        if site is None:
            raise ValueError(
                f"no site {args.site!r} in {args.config} "
                f"(sites: {', '.join(s.id for s in cfg.sites)})"
            )
    elif len(cfg.sites) == 1:
        site = cfg.sites[0]
    else:
        raise ValueError(
            f"{args.config} has {len(cfg.sites)} sites; choose one with --site "
            f"({', '.join(s.id for s in cfg.sites)})"
        )
    if args.pool:
        pool = site.pool(args.pool)
        if pool is None:
            raise ValueError(
                f"site {site.id!r} has no pool {args.pool!r} "
                f"(pools: {', '.join(p.id for p in site.pools) or 'none'})"
            )
    elif len(site.pools) == 1:
        pool = site.pools[0]
    else:
        raise ValueError(
            f"site {site.id!r} has {len(site.pools)} pools; choose one with --pool "
            f"({', '.join(p.id for p in site.pools) or 'none'})"
        )
    return cfg.hold_minutes, Current(site.id, pool.id, len(pool.numbers), pool.on_exhausted)


def _default_sizes(upper: int) -> list[int]:
    if upper <= 24:
        return list(range(1, upper + 1))
    step = upper / 15
    return sorted({max(1, round(i * step)) for i in range(1, 16)} | {1, upper})


def cmd_simulate(args: argparse.Namespace) -> int:
    from .errors import ConfigError

    current: Current | None = None
    hold = args.hold_minutes
    try:
        if args.config:
            cfg_hold, current = _from_config(args)
            hold = hold or cfg_hold
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"callpath simulate: {exc}", file=sys.stderr)
        return 2
    hold = hold or 15.0
    if args.profile and args.visitors_per_hour:
        print("callpath simulate: give --visitors-per-hour or --profile, not both", file=sys.stderr)
        return 2
    shape: float | list[float] = args.profile or args.visitors_per_hour or 100.0
    mode = args.on_exhausted or (current.on_exhausted if current else SHARE_OLDEST)

    traffic = make_traffic(
        shape,
        hold_minutes=hold,
        session_minutes=args.session_minutes,
        session_dist=args.session_dist,
        session_sigma=args.session_sigma,
        call_rate=args.call_rate,
        call_during=args.call_during,
        call_delay_minutes=args.call_delay_minutes,
        days=args.days,
        seed=args.seed,
    )
    peak = traffic.peak()
    cache: dict[int, SizeResult] = {}
    best = smallest_size(traffic, args.target, mode, cache)
    sizes = args.numbers or _default_sizes(
        max(peak, best.numbers if best else 0, current.numbers if current else 0, 1)
    )
    if args.numbers is None:
        sizes = sorted(
            set(sizes)
            | ({best.numbers} if best else set())
            | ({current.numbers} if current else set())
        )
    rows = []
    for n in sizes:
        if n not in cache:
            cache[n] = replay(traffic, n, mode, peak)
        rows.append(cache[n])
    now = None
    if current is not None:
        if current.numbers not in cache:
            cache[current.numbers] = replay(traffic, current.numbers, mode, peak)
        now = cache[current.numbers]

    params = {
        "visitors_per_hour": shape,
        "days": args.days,
        "visitors": traffic.visitors,
        "session_minutes": args.session_minutes,
        "session_dist": args.session_dist,
        "hold_minutes": hold,
        "ping_minutes": hold / 3,
        "call_rate": args.call_rate,
        "call_during": args.call_during,
        "call_delay_minutes": args.call_delay_minutes,
        "on_exhausted": mode,
        "target": args.target,
        "seed": args.seed,
    }
    if args.json:
        doc = {
            "params": params,
            "peak_concurrent": peak,
            "ceiling": traffic.ceiling(),
            "smallest": best.numbers if best else None,
            "current": (
                {**asdict(current), "enough": now.accuracy >= args.target, "result": now.as_dict()}
                if current and now
                else None
            ),
            "sizes": [r.as_dict() for r in rows],
            "assumptions": list(ASSUMPTIONS),
        }
        print(json.dumps(doc, indent=2))
        return 0
    _print_table(traffic, rows, peak, best, current, now, params)
    return 0


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _print_table(
    traffic: Traffic,
    rows: list[SizeResult],
    peak: int,
    best: SizeResult | None,
    current: Current | None,
    now: SizeResult | None,
    params: dict[str, Any],
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    target = params["target"]
    shape = params["visitors_per_hour"]
    rate = (
        f"{shape:g}/h" if isinstance(shape, float) else f"profile {min(shape):g}-{max(shape):g}/h"
    )
    title = (
        f"{traffic.visitors} visitors over {params['days']:g} day(s) ({rate}), "
        f"sessions {params['session_minutes']:g} min ({params['session_dist']}), "
        f"hold {params['hold_minutes']:g} min, {params['on_exhausted']}"
    )
    table = Table(title=title, title_justify="left")
    for name in ("numbers", "overflow", "accuracy", "ambig.", "reused", "late", "wrong/day"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    for r in rows:
        marks = []
        if best and r.numbers == best.numbers:
            marks.append("smallest")
        if current and r.numbers == current.numbers:
            marks.append("current")
        if r.numbers == peak:
            marks.append("peak")
        style = "green" if r.accuracy >= target else None
        table.add_row(
            str(r.numbers),
            _pct(r.overflow),
            _pct(r.accuracy),
            _pct(r.ambiguous),
            _pct(r.reused),
            _pct(r.expired),
            f"{r.wrong_per_day:.1f}",
            ", ".join(marks),
            style=style,
        )
    console.print(table)
    console.print(
        f"peak concurrent sessions holding a number: [bold]{peak}[/bold] "
        f"(a pool this big never shares)"
    )
    console.print(
        f"calls per day: {rows[0].calls_per_day if rows else 0:.1f} "
        f"(call rate {params['call_rate']:g}); best possible accuracy "
        f"{_pct(traffic.ceiling())} (calls more than 2xhold after the visit "
        "are never attributed)"
    )
    if best:
        console.print(
            f"smallest pool reaching {_pct(target)} accuracy: "
            f"[bold]{best.numbers}[/bold] numbers ({_pct(best.accuracy)})"
        )
    else:
        console.print(
            f"[yellow]no pool size reaches {_pct(target)} accuracy with this traffic[/yellow]"
        )
    if current and now:
        verdict = (
            "[green]big enough[/green]"
            if now.accuracy >= target
            else "[red]too small[/red]" + (f": use {best.numbers} numbers" if best else "")
        )
        console.print(
            f"pool {current.site}/{current.pool} has {current.numbers} numbers: "
            f"accuracy {_pct(now.accuracy)}, overflow {_pct(now.overflow)} — "
            f"{verdict}"
        )
    console.print(
        "overflow: visitors shown a shared number (or the site's own); accuracy: calls "
        "attributed to the right session; ambig.: calls on a number several sessions held "
        "at that moment; reused: calls after the lease on a number taken since (wrong); "
        "late: calls after lease + grace (unattributed); wrong/day: expected misattributed "
        "or lost calls per day",
        style="dim",
    )
    console.print("model:\n" + "\n".join(f"  - {a}" for a in ASSUMPTIONS), style="dim")
