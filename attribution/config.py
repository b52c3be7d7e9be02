"""pools.toml → frozen dataclasses, parsed once and validated whole.

Every problem is collected with its key path (``site[0].pool[1].numbers[2]``) so
``callpath check`` can list them all at once.  Secrets named by ``*_env`` keys are
read from the environment only at serve time (:func:`Config.with_secrets`).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from .errors import ConfigError
from .geo import RegionRule

ON_EXHAUSTED = ("share-oldest", "fallback")
MATCH_KEYS = ("source", "medium", "campaign", "keyword", "region")


class Secret(str):
    """A string that never shows itself in a repr or a log line."""

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True, slots=True)
class Phone:
    """A number as configured: E.164 plus the parts the snippet matches on."""

    e164: str
    country_code: str
    national: str

    def __str__(self) -> str:
        return self.e164


@dataclass(frozen=True, slots=True)
class Ga4:
    measurement_id: str
    api_secret_env: str
    event_name: str = "phone_call"
    api_secret: Secret | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Pool:
    id: str
    match: tuple[tuple[str, str], ...]
    replace: Phone
    numbers: tuple[Phone, ...]
    on_exhausted: str = "share-oldest"
    value: float | None = None
    currency: str | None = None

    def matches(self, visit: Mapping[str, str]) -> bool:
        return all(visit.get(k, "").lower() == v.lower() for k, v in self.match)


@dataclass(frozen=True, slots=True)
class Static:
    number: Phone
    source: str
    medium: str
    campaign: str = ""
    keyword: str = ""
    region: str = ""


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    domains: tuple[str, ...]
    country: str
    timezone: ZoneInfo
    replace: tuple[Phone, ...]
    api_key_env: str
    pools: tuple[Pool, ...]
    regions: tuple[RegionRule, ...] = ()
    statics: tuple[Static, ...] = ()
    ga4: Ga4 | None = None
    asterisk_called: str = "dst"
    asterisk_timezone: ZoneInfo | None = None  # cdr_csv with usegmtime=yes: "UTC"
    api_key: Secret | None = field(default=None, repr=False)

    def pool(self, pool_id: str) -> Pool | None:
        return next((p for p in self.pools if p.id == pool_id), None)

    def choose_pools(self, visit: Mapping[str, str]) -> dict[str, Pool | None]:
        """For each of the site's own numbers, the most specific matching pool.

        More matched keys wins, then file order; ``None`` means the visitor sees
        the site's own number.
        """
        chosen: dict[str, Pool | None] = {}
        for own in self.replace:
            best: Pool | None = None
            for pool in self.pools:
                if pool.replace.e164 != own.e164 or not pool.matches(visit):
                    continue
                if best is None or len(pool.match) > len(best.match):
                    best = pool
            chosen[own.e164] = best
        return chosen


@dataclass(frozen=True, slots=True)
class Server:
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    max_body_bytes: int = 64 * 1024
    sessions_per_minute: int = 120


@dataclass(frozen=True, slots=True)
class Config:
    sites: tuple[Site, ...]
    hold_minutes: float = 15.0
    history_days: int = 35
    calls_days: int = 400
    server: Server = Server()
    path: str = ""
    _by_id: dict[str, Site] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # every page view and ping looks its site up (ids are unique: parse refuses twins)
        object.__setattr__(self, "_by_id", {s.id: s for s in self.sites})

    @property
    def hold_ms(self) -> int:
        return int(self.hold_minutes * 60_000)

    def site(self, site_id: str) -> Site | None:
        return self._by_id.get(site_id)

    def owner_of(self, e164: str) -> tuple[Site, Pool | None, Static | None] | None:
        """The site (and pool or static entry) a tracking or own number belongs to."""
        for site in self.sites:
            for pool in site.pools:
                if any(n.e164 == e164 for n in pool.numbers):
                    return site, pool, None
            for static in site.statics:
                if static.number.e164 == e164:
                    return site, None, static
            if any(n.e164 == e164 for n in site.replace):
                return site, None, None
        return None

    def with_secrets(self, env: Mapping[str, str] | None = None) -> Config:
        """Fill each site's key and GA4 secret from the environment, or refuse to start."""
        env = os.environ if env is None else env
        problems: list[tuple[str, str]] = []
        sites = []
        for i, site in enumerate(self.sites):
            key = env.get(site.api_key_env, "")
            if not key:
                problems.append(
                    (
                        f"site[{i}].api_key_env",
                        f"environment variable {site.api_key_env} "
                        f"is not set (the API key of site {site.id!r})",
                    )
                )
            ga4 = site.ga4
            if ga4 is not None:
                secret = env.get(ga4.api_secret_env, "")
                if not secret:
                    problems.append(
                        (
                            f"site[{i}].ga4.api_secret_env",
                            f"environment variable "
                            f"{ga4.api_secret_env} is not set (GA4 API secret of site {site.id!r})",
                        )
                    )
                ga4 = replace(ga4, api_secret=Secret(secret))
            sites.append(replace(site, api_key=Secret(key), ga4=ga4))
        if problems:
            raise ConfigError(problems)
        return replace(self, sites=tuple(sites))


# --------------------------------------------------------------------------- parsing


class _Reader:
    """Collects problems while walking the TOML tree."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def err(self, path: str, msg: str) -> None:
        self.problems.append((path, msg))

    def known(self, table: Mapping[str, Any], path: str, allowed: Sequence[str]) -> None:
        for key in table:
            if key not in allowed:
                near = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                where = f"{path}.{key}" if path else key
                self.err(where, f"unknown key{hint}; allowed: {', '.join(allowed)}")

    def get(
        self,
        table: Mapping[str, Any],
        key: str,
        path: str,
        kind: type | tuple[type, ...],
        default: Any = None,
        required: bool = False,
    ) -> Any:
        where = f"{path}.{key}" if path else key
        if key not in table:
            if required:
                self.err(where, "is required")
            return default
        value = table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.err(where, f"must be a {_tomltype(names)}, got {value!r}")
            return default
        return value

    def str_list(
        self, table: Mapping[str, Any], key: str, path: str, required: bool = False
    ) -> list[str]:
        value = self.get(table, key, path, list, [], required)
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.err(f"{path}.{key}[{i}]", f"must be a string, got {item!r}")
            else:
                out.append(item)
        return out

    def phone(self, text: Any, country: str, path: str) -> Phone | None:
        if not isinstance(text, str):
            self.err(path, f"must be a phone number string, got {text!r}")
            return None
        return parse_phone(text, country, path, self)


def _tomltype(name: str) -> str:
    return {
        "str": "string",
        "int": "integer",
        "float": "number",
        "list": "list",
        "dict": "table",
        "bool": "boolean",
    }.get(name, name)


def parse_phone(
    text: str, country: str, path: str = "number", reader: _Reader | None = None
) -> Phone | None:
    """Parse a configured number with the site's country; None (and a problem) if it can't."""
    try:
        num = phonenumbers.parse(text, country or None)
    except phonenumbers.NumberParseException as exc:
        if reader:
            reader.err(path, f"{text!r} is not a phone number ({exc})")
        return None
    if not phonenumbers.is_possible_number(num):
        if reader:
            reader.err(
                path, f"{text!r} is not a possible phone number for country {country or '(none)'}"
            )
        return None
    e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    return Phone(e164, str(num.country_code), phonenumbers.national_significant_number(num))


SITE_KEYS = (
    "id",
    "domains",
    "country",
    "timezone",
    "replace",
    "api_key_env",
    "ga4",
    "asterisk_called",
    "asterisk_timezone",
    "region",
    "pool",
    "static",
)
POOL_KEYS = ("id", "match", "replace", "numbers", "on_exhausted", "value", "currency")
STATIC_KEYS = ("number", "source", "medium", "campaign", "keyword", "region")
REGION_KEYS = ("id", "geoip")
GEOIP_KEYS = ("countries", "subdivisions", "cities")
GA4_KEYS = ("measurement_id", "api_secret_env", "event_name")
TOP_KEYS = ("hold_minutes", "history_days", "calls_days", "server", "site")
SERVER_KEYS = ("trusted_proxies", "max_body_bytes", "sessions_per_minute")


def parse(data: Mapping[str, Any], path: str = "") -> Config:
    """Validate a parsed TOML document; raise ConfigError listing every problem."""
    r = _Reader()
    r.known(data, "", TOP_KEYS)
    hold = r.get(data, "hold_minutes", "", float, 15.0)
    if hold <= 0:
        r.err("hold_minutes", f"must be above 0, got {hold}")
    history = r.get(data, "history_days", "", int, 35)
    if history < 1:
        r.err("history_days", f"must be at least 1, got {history}")
    calls_days = r.get(data, "calls_days", "", int, 400)
    if calls_days < 1:
        r.err("calls_days", f"must be at least 1, got {calls_days}")
    server = _server(r, r.get(data, "server", "", dict, {}))
    raw_sites = r.get(data, "site", "", list, [], required=True)
    if "site" in data and not raw_sites:
        r.err("site", "at least one [[site]] is required")
    sites = []
    seen_sites: dict[str, str] = {}
    owners: dict[str, str] = {}
    for i, raw in enumerate(raw_sites):
        spath = f"site[{i}]"
        if not isinstance(raw, dict):
            r.err(spath, "must be a table ([[site]])")
            continue
        site = _site(r, raw, spath, owners)
        if site is None:
            continue
        if site.id in seen_sites:
            r.err(f"{spath}.id", f"duplicate site id {site.id!r} (also {seen_sites[site.id]})")
        seen_sites[site.id] = spath
        sites.append(site)
    if r.problems:
        raise ConfigError(r.problems, source=path)
    return Config(tuple(sites), hold, history, calls_days, server, path)


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a pools file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("(file)", f"cannot read {p}: {exc.strerror}")], source=str(p)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("(syntax)", str(exc))], source=str(p)) from None
    return parse(data, str(p))


def _server(r: _Reader, raw: Mapping[str, Any]) -> Server:
    r.known(raw, "server", SERVER_KEYS)
    nets = []
    for i, text in enumerate(r.str_list(raw, "trusted_proxies", "server")):
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            r.err(f"server.trusted_proxies[{i}]", f"{text!r} is not an IP address or network")
    body = r.get(raw, "max_body_bytes", "server", int, 64 * 1024)
    if body < 1024:
        r.err("server.max_body_bytes", f"must be at least 1024, got {body}")
    rate = r.get(raw, "sessions_per_minute", "server", int, 120)
    if rate < 1:
        r.err("server.sessions_per_minute", f"must be at least 1, got {rate}")
    return Server(tuple(nets), body, rate)


def _site(r: _Reader, raw: Mapping[str, Any], path: str, owners: dict[str, str]) -> Site | None:
    r.known(raw, path, SITE_KEYS)
    sid = r.get(raw, "id", path, str, "", required=True)
    if "id" in raw and not _is_ident(sid):
        r.err(f"{path}.id", f"{sid!r} must be letters, digits, '-' or '_'")
    domains = r.str_list(raw, "domains", path, required=True)
    if "domains" in raw and not domains:
        r.err(f"{path}.domains", "list at least one domain the snippet runs on")
    country = r.get(raw, "country", path, str, "", required=True).upper()
    if country and country not in phonenumbers.SUPPORTED_REGIONS:
        r.err(f"{path}.country", f"{country!r} is not an ISO 3166 country code phonenumbers knows")
        country = ""
    tzname = r.get(raw, "timezone", path, str, "UTC")
    try:
        tz = ZoneInfo(tzname)
    except (ZoneInfoNotFoundError, ValueError):
        r.err(f"{path}.timezone", f"{tzname!r} is not an IANA timezone (e.g. 'Europe/Kyiv')")
        tz = ZoneInfo("UTC")
    own = []
    for j, text in enumerate(r.get(raw, "replace", path, list, [], required=True)):
        phone = r.phone(text, country, f"{path}.replace[{j}]")
        if phone:
            own.append(phone)
    if "replace" in raw and not raw["replace"]:
        r.err(f"{path}.replace", "list at least one of the site's own numbers")
    own_set = {p.e164 for p in own}
    key_env = r.get(raw, "api_key_env", path, str, "", required=True)
    ga4 = None
    if "ga4" in raw:
        g = r.get(raw, "ga4", path, dict, {})
        r.known(g, f"{path}.ga4", GA4_KEYS)
        mid = r.get(g, "measurement_id", f"{path}.ga4", str, "", required=True)
        if mid and not (mid.startswith("G-") and len(mid) > 2):
            r.err(f"{path}.ga4.measurement_id", f"{mid!r} is not a GA4 measurement id ('G-…')")
        env = r.get(g, "api_secret_env", f"{path}.ga4", str, "", required=True)
        name = r.get(g, "event_name", f"{path}.ga4", str, "phone_call")
        from .ga4 import event_name_problems  # the GA4 rules live in one place

        for problem in event_name_problems(name):
            r.err(f"{path}.ga4.event_name", problem)
        ga4 = Ga4(mid, env, name)
    asterisk_called = r.get(raw, "asterisk_called", path, str, "dst")
    asterisk_tz = None
    if "asterisk_timezone" in raw:
        name = r.get(raw, "asterisk_timezone", path, str, "UTC")
        try:
            asterisk_tz = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            r.err(f"{path}.asterisk_timezone", f"{name!r} is not an IANA timezone")

    regions = []
    region_ids: set[str] = set()
    for j, reg in enumerate(r.get(raw, "region", path, list, [])):
        rpath = f"{path}.region[{j}]"
        if not isinstance(reg, dict):
            r.err(rpath, "must be a table ([[site.region]])")
            continue
        r.known(reg, rpath, REGION_KEYS)
        rid = r.get(reg, "id", rpath, str, "", required=True)
        if rid in region_ids:
            r.err(f"{rpath}.id", f"duplicate region id {rid!r}")
        region_ids.add(rid)
        geo = r.get(reg, "geoip", rpath, dict, {})
        r.known(geo, f"{rpath}.geoip", GEOIP_KEYS)
        regions.append(
            RegionRule(
                rid,
                tuple(c.upper() for c in r.str_list(geo, "countries", f"{rpath}.geoip")),
                tuple(r.str_list(geo, "subdivisions", f"{rpath}.geoip")),
                tuple(r.str_list(geo, "cities", f"{rpath}.geoip")),
            )
        )

    pools = []
    pool_ids: set[str] = set()
    for j, rawp in enumerate(r.get(raw, "pool", path, list, [])):
        ppath = f"{path}.pool[{j}]"
        if not isinstance(rawp, dict):
            r.err(ppath, "must be a table ([[site.pool]])")
            continue
        pool = _pool(r, rawp, ppath, country, own, own_set, region_ids, owners, sid)
        if pool is None:
            continue
        if pool.id in pool_ids:
            r.err(f"{ppath}.id", f"duplicate pool id {pool.id!r} in site {sid!r}")
        pool_ids.add(pool.id)
        pools.append(pool)

    statics = []
    for j, raws in enumerate(r.get(raw, "static", path, list, [])):
        spath = f"{path}.static[{j}]"
        if not isinstance(raws, dict):
            r.err(spath, "must be a table ([[site.static]])")
            continue
        r.known(raws, spath, STATIC_KEYS)
        phone = (
            r.phone(raws.get("number"), country, f"{spath}.number")
            if "number" in raws
            else r.get(raws, "number", spath, str, None, required=True)
        )
        source = r.get(raws, "source", spath, str, "", required=True)
        medium = r.get(raws, "medium", spath, str, "", required=True)
        if phone is None:
            continue
        _claim(r, owners, phone, f"{spath}.number", own_set)
        statics.append(
            Static(
                phone,
                source,
                medium,
                r.get(raws, "campaign", spath, str, ""),
                r.get(raws, "keyword", spath, str, ""),
                r.get(raws, "region", spath, str, ""),
            )
        )
    return Site(
        sid,
        tuple(d.lower() for d in domains),
        country,
        tz,
        tuple(own),
        key_env,
        tuple(pools),
        tuple(regions),
        tuple(statics),
        ga4,
        asterisk_called,
        asterisk_tz,
    )


def _pool(
    r: _Reader,
    raw: Mapping[str, Any],
    path: str,
    country: str,
    own: list[Phone],
    own_set: set[str],
    region_ids: set[str],
    owners: dict[str, str],
    site_id: str,
) -> Pool | None:
    r.known(raw, path, POOL_KEYS)
    pid = r.get(raw, "id", path, str, "", required=True)
    if "id" in raw and not _is_ident(pid):
        r.err(f"{path}.id", f"{pid!r} must be letters, digits, '-' or '_'")
    match = r.get(raw, "match", path, dict, {})
    r.known(match, f"{path}.match", MATCH_KEYS)
    pairs = []
    for key in MATCH_KEYS:
        if key in match:
            value = r.get(match, key, f"{path}.match", str, "")
            if key == "region" and value not in region_ids:
                known = ", ".join(sorted(region_ids)) or "none defined"
                r.err(
                    f"{path}.match.region",
                    f"region {value!r} is not defined by any "
                    f"[[site.region]] of this site (known: {known})",
                )
            pairs.append((key, value))
    rep: Phone | None = own[0] if own else None
    if "replace" in raw:
        rep = r.phone(raw["replace"], country, f"{path}.replace")
        if rep is not None and rep.e164 not in own_set:
            r.err(
                f"{path}.replace",
                f"{raw['replace']!r} is not one of the site's own numbers (site.replace)",
            )
            rep = None
    on_exhausted = r.get(raw, "on_exhausted", path, str, "share-oldest")
    if on_exhausted not in ON_EXHAUSTED:
        r.err(f"{path}.on_exhausted", f"{on_exhausted!r} is not one of {', '.join(ON_EXHAUSTED)}")
    numbers = []
    raw_numbers = r.get(raw, "numbers", path, list, [], required=True)
    if "numbers" in raw and not raw_numbers:
        r.err(f"{path}.numbers", "a pool needs at least one tracking number")
    for k, text in enumerate(raw_numbers):
        npath = f"{path}.numbers[{k}]"
        phone = r.phone(text, country, npath)
        if phone is None:
            continue
        if _claim(r, owners, phone, npath, own_set):
            numbers.append(phone)
    value = r.get(raw, "value", path, (int, float), None)
    currency = r.get(raw, "currency", path, str, None)
    if currency is not None and (len(currency) != 3 or not currency.isalpha()):
        r.err(f"{path}.currency", f"{currency!r} is not an ISO 4217 code such as 'USD'")
    if value is not None and currency is None:
        r.err(f"{path}.currency", "is required when value is set (GA4 needs both)")
    if rep is None:
        return None
    return Pool(
        pid,
        tuple(pairs),
        rep,
        tuple(numbers),
        on_exhausted,
        float(value) if value is not None else None,
        currency.upper() if currency else None,
    )


def _claim(r: _Reader, owners: dict[str, str], phone: Phone, path: str, own: set[str]) -> bool:
    if phone.e164 in own:
        r.err(
            path,
            f"{phone.e164} is the site's own number; a tracking number must differ "
            "from the number it replaces",
        )
        return False
    if phone.e164 in owners:
        r.err(
            path,
            f"{phone.e164} is already used at {owners[phone.e164]}; a call to it "
            "could not be attributed",
        )
        return False
    owners[phone.e164] = path
    return True


def _is_ident(text: str) -> bool:
    return bool(text) and all(c.isalnum() or c in "-_" for c in text) and len(text) <= 64
