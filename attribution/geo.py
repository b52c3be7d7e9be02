"""Where a visitor is: client address, GeoIP City lookup, and the site's region rules.

``GeoIP(path)`` opens a GeoLite2/GeoIP2 City ``.mmdb`` (``CALLPATH_GEOIP_DB``) and checks it
at start-up; ``locate(ip)`` answers a ``Location`` or ``None`` ("no region"), never
raises. ``pick_region`` applies a site's ``[[site.region]]`` rules to a location, and
``client_ip`` finds the visitor's address behind trusted proxies.
"""

from __future__ import annotations

import ipaddress
import logging
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import geoip2.database
import geoip2.errors
import maxminddb

__all__ = [
    "GeoIP",
    "GeoIPError",
    "Location",
    "RegionRule",
    "client_ip",
    "pick_region",
]

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# How many records the start-up check decodes (the first ones in the search tree).
_CHECK_RECORDS = 64


class GeoIPError(Exception):
    """The GeoIP database named by ``CALLPATH_GEOIP_DB`` cannot be used.

    Raised at start-up when the file is missing or unreadable, is not a MaxMind DB, is
    not a City database, or its data section does not decode. The message names the
    path and what is wrong with it, so the server refuses to start instead of silently
    serving every visitor with no region.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"GeoIP database {path}: {reason}")


@dataclass(frozen=True, slots=True)
class Location:
    """What GeoIP knows about an address.

    ``country`` is ISO 3166-1 alpha-2 (``"GB"``), ``subdivisions`` are full ISO 3166-2
    codes, largest first (``("GB-ENG", "GB-WBK")``), ``city`` is the English name.
    Unknown parts are ``""`` or ``()``.
    """

    country: str
    subdivisions: tuple[str, ...]
    city: str


@dataclass(frozen=True, slots=True)
class RegionRule:
    """One ``[[site.region]]``: ``geoip = {countries, subdivisions, cities}``.

    A location matches when every non-empty criterion matches; a rule with no
    criterion at all is a region the site picks itself (``data-region``,
    ``setRegion``) and GeoIP never picks it.
    """

    id: str
    countries: tuple[str, ...] = ()
    subdivisions: tuple[str, ...] = ()
    cities: tuple[str, ...] = ()


# --------------------------------------------------------------------------- addresses


def _parse_ip(text: str | None) -> IPAddress | None:
    """An address from a header or peer field: brackets, an IPv4 port, an IPv6 zone and
    the IPv4-mapped IPv6 form are undone; anything else unreadable is ``None``."""
    if not text:
        return None
    return _parse_ip_text(text)


@lru_cache(maxsize=4096)  # a visitor's address comes back with every page
def _parse_ip_text(text: str) -> IPAddress | None:
    text = text.strip().strip('"')
    if text.startswith("["):  # "[2001:db8::1]:443"
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # "203.0.113.7:51234"
        text = text.split(":", 1)[0]
    text = text.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@lru_cache(maxsize=4096)
def _text(ip: IPAddress) -> str:
    return str(ip)


@lru_cache(maxsize=4096)
def _address_text(text: str) -> str | None:
    """A peer's address, written as :func:`client_ip` answers it (``None`` if none)."""
    ip = _parse_ip_text(text)
    return None if ip is None else str(ip)


def _forwarded_for(headers: Mapping[str, str]) -> list[str]:
    """Every ``X-Forwarded-For`` hop, in order, over repeated headers too."""
    values: list[str] = []
    getlist = getattr(headers, "getlist", None)
    if callable(getlist):  # starlette Headers: case-insensitive, repeated headers kept
        values = [str(v) for v in getlist("x-forwarded-for")]
    else:
        values = [str(v) for k, v in headers.items() if k.lower() == "x-forwarded-for"]
    hops: list[str] = []
    for value in values:
        hops += [h.strip() for h in value.split(",")]
    return [h for h in hops if h]


def client_ip(
    peer: str | None, headers: Mapping[str, str], trusted_proxies: Sequence[IPNetwork]
) -> str | None:
    """The visitor's address.

    ``X-Forwarded-For`` is believed only when the peer is in a trusted proxy network.
    Then its hops are walked right to left, skipping trusted proxies, and the first
    untrusted address is the client (whatever lies left of it may be forged). When every
    hop is trusted, the leftmost is the client. A hop that is not an address where the
    client should be gives ``None``, as does a missing or unreadable peer.
    """
    if not trusted_proxies:
        return _address_text(peer) if peer else None
    peer_ip = _parse_ip(peer)
    if peer_ip is None:
        return None

    def trusted(ip: IPAddress) -> bool:
        return any(ip in net for net in trusted_proxies)

    if not trusted_proxies or not trusted(peer_ip):
        return _text(peer_ip)
    hops = _forwarded_for(headers)
    if not hops:
        return _text(peer_ip)
    last: IPAddress = peer_ip
    for hop in reversed(hops):
        ip = _parse_ip(hop)
        if ip is None:
            return None
        if not trusted(ip):
            return _text(ip)
        last = ip
    return _text(last)


# --------------------------------------------------------------------------- lookups


class GeoIP:
    """A GeoLite2/GeoIP2 City database, or none (``path=None``: every lookup is ``None``).

    The file is memory-mapped (through MaxMind's C extension when it is installed) and
    checked when opened; a database that cannot be used raises ``GeoIPError`` naming
    the path. Lookups are cached and thread-safe.
    """

    def __init__(self, path: str | None, cache_size: int = 65536) -> None:
        self.path = path
        self._reader: Any = None
        self._warned = False
        if path is not None:
            self._reader = _open(path)
        self._cached = lru_cache(maxsize=cache_size)(self._lookup)

    def __enter__(self) -> GeoIP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def locate(self, ip: str) -> Location | None:
        """The location of ``ip``; ``None`` when there is no database, the address is
        malformed, private or reserved, not in the database, or the record names no
        country, subdivision or city. Never raises."""
        if self._reader is None or not isinstance(ip, str):
            return None
        return self._cached(ip.strip())

    def cache_clear(self) -> None:
        self._cached.cache_clear()

    def close(self) -> None:
        reader, self._reader = self._reader, None
        self._cached.cache_clear()
        if reader is not None:
            reader.close()

    def _lookup(self, text: str) -> Location | None:
        addr = _parse_ip(text)
        reader = self._reader
        if addr is None or not addr.is_global or reader is None:
            return None
        try:
            rec = reader.city(addr)
        except geoip2.errors.AddressNotFoundError:
            return None
        except Exception as exc:  # a corrupt record must not take a request down
            if not self._warned:
                self._warned = True
                log.warning("GeoIP lookup failed in %s (%s); answering no region", self.path, exc)
            return None
        return _location(rec)


def _location(rec: Any) -> Location | None:
    country = (rec.country.iso_code or "").upper()
    subs = []
    for sub in rec.subdivisions:
        code = (sub.iso_code or "").upper()
        if code:
            subs.append(f"{country}-{code}" if country else code)
    city = rec.city.names.get("en") or rec.city.name or ""
    if not (country or subs or city):
        return None
    return Location(country, tuple(subs), city)


def _open(path: str) -> Any:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise GeoIPError(path, f"cannot be read ({exc.strerror or exc})") from exc
    reader = None
    last: Exception | None = None
    for mode in (maxminddb.MODE_MMAP_EXT, maxminddb.MODE_MMAP):
        try:
            reader = geoip2.database.Reader(path, mode=mode)
            break
        except (ValueError, ImportError) as exc:  # no C extension: pure-Python mmap
            last = exc
        except Exception as exc:
            raise GeoIPError(path, f"is not a MaxMind DB file ({exc})") from exc
    if reader is None:
        raise GeoIPError(path, f"cannot be opened ({last})")
    try:
        _check(path, reader, mode)
    except BaseException:
        reader.close()
        raise
    return reader


def _check(path: str, reader: Any, mode: int) -> None:
    """Refuse a database that is not City data or whose records do not decode."""
    db_type = str(reader.metadata().database_type)
    if "City" not in db_type:
        raise GeoIPError(
            path,
            f"is a {db_type!r} database, a City database is needed (GeoLite2-City or GeoIP2-City)",
        )
    try:
        raw = maxminddb.open_database(path, mode)
        try:
            first = None
            for i, (network, _record) in enumerate(raw):
                first = first or network
                if i + 1 >= _CHECK_RECORDS:
                    break
        finally:
            raw.close()
        if first is None:
            raise GeoIPError(path, "holds no networks")
        try:
            reader.city(first.network_address)
        except geoip2.errors.AddressNotFoundError:
            pass
    except GeoIPError:
        raise
    except Exception as exc:
        raise GeoIPError(path, f"is damaged, its records do not decode ({exc})") from exc


# --------------------------------------------------------------------------- regions


def _fold(text: str) -> str:
    """Case- and accent-insensitive form of a name ("Linköping" == "linkoping")."""
    decomposed = unicodedata.normalize("NFKD", text.strip())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@lru_cache(maxsize=1024)
def _criteria(rule: RegionRule) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    countries = frozenset(c.strip().upper() for c in rule.countries if c.strip())
    subs = frozenset(s.strip().upper() for s in rule.subdivisions if s.strip())
    cities = frozenset(_fold(c) for c in rule.cities if c.strip())
    return countries, subs, cities


def _matches(rule: RegionRule, loc: Location) -> bool:
    countries, subs, cities = _criteria(rule)
    if not (countries or subs or cities):
        return False
    if countries and loc.country not in countries:
        return False
    if subs:
        # "UA-63" matches the full code, "63" the part after the country.
        codes = set(loc.subdivisions)
        codes.update(code.split("-", 1)[1] for code in loc.subdivisions if "-" in code)
        if not subs & codes:
            return False
    return not cities or _fold(loc.city) in cities


def pick_region(rules: Sequence[RegionRule], loc: Location | None) -> str | None:
    """The id of the first rule whose every non-empty criterion matches ``loc``.

    Countries are ISO alpha-2; subdivisions ISO 3166-2 codes in either form (``"63"``
    or ``"UA-63"``), any of the location's subdivisions matching; cities the English
    name, compared without regard to case or accents. ``None`` when no rule matches or
    there is no location.
    """
    if loc is None:
        return None
    for rule in rules:
        if _matches(rule, loc):
            return rule.id
    return None
