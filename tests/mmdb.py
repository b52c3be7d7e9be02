"""Build small GeoIP2 City databases for tests.

``build_city_mmdb(path, entries)`` writes a ``GeoIP2-City`` ``.mmdb`` that
``geoip2.database.Reader.city`` reads like the real thing. ``entries`` maps a CIDR
(IPv4 or IPv6) to what GeoIP should answer there::

    build_city_mmdb(tmp_path / "ua.mmdb", {
        "203.0.113.0/24": {"country": "UA", "subdivisions": ["63"], "city": "Kharkiv"},
        "198.51.100.0/24": {"country": "UA", "subdivisions": ["30"], "city": "Kyiv"},
    })

``country`` is ISO alpha-2, ``subdivisions`` are ISO 3166-2 codes without the country
prefix (as MaxMind stores them; a ``"UA-63"`` form is accepted and stripped), largest
first, ``city`` is the English name. Any of them may be left out.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping
from typing import Any

from mmdb_writer import MmdbU32, MMDBWriter
from netaddr import IPSet


def _names(name: str) -> dict[str, str]:
    return {"en": name}


def city_record(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The City record MaxMind would store for ``entry`` (see the module docstring)."""
    record: dict[str, Any] = {}
    country = str(entry.get("country") or "").upper()
    if country:
        record["country"] = {"iso_code": country, "names": _names(country)}
        record["registered_country"] = {"iso_code": country, "names": _names(country)}
    subdivisions = []
    for code in entry.get("subdivisions") or ():
        code = str(code).upper()
        if country and code.startswith(country + "-"):
            code = code[len(country) + 1 :]
        subdivisions.append({"iso_code": code, "names": _names(code)})
    if subdivisions:
        record["subdivisions"] = subdivisions
    city = entry.get("city")
    if city:
        record["city"] = {
            "geoname_id": MmdbU32(zlib.crc32(str(city).encode())),
            "names": _names(str(city)),
        }
    return record


def build_city_mmdb(path: str | os.PathLike[str], entries: Mapping[str, Mapping[str, Any]]) -> str:
    """Write a GeoIP2-City database answering ``entries``; returns the path."""
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoIP2-City",
        languages=["en"],
        description="callpath test City database",
    )
    for cidr, entry in entries.items():
        writer.insert_network(IPSet([cidr]), city_record(entry))
    writer.to_db_file(os.fspath(path))
    return os.fspath(path)
