"""GeoIP lookups, region rules and the client address behind proxies.

Uses MaxMind's own City test databases (``tests/data/geoip``, Apache-2.0 or MIT, see the
licence files there) and small databases built by ``mmdb.build_city_mmdb``.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mmdb import build_city_mmdb

from attribution.geo import GeoIP, GeoIPError, Location, RegionRule, client_ip, pick_region

DATA = Path(__file__).parent / "data" / "geoip"
CITY_TEST = DATA / "GeoIP2-City-Test.mmdb"
LITE_TEST = DATA / "GeoLite2-City-Test.mmdb"
BROKEN = DATA / "GeoIP2-City-Test-Broken-Double-Format.mmdb"

# Networks invented for these tests (the assignment is fictional).
KHARKIV_NET, KHARKIV_IP = "93.183.192.0/18", "93.183.200.17"
KYIV_NET, KYIV_IP = "77.47.128.0/17", "77.47.130.9"
LVIV_NET, LVIV_IP = "2a02:2378::/32", "2a02:2378::1"
KHARKIV_OBLAST_NET, KHARKIV_OBLAST_IP = "46.219.0.0/17", "46.219.5.5"  # no city known


@pytest.fixture(scope="module")
def maxmind() -> Iterator[GeoIP]:
    geo = GeoIP(str(CITY_TEST))
    yield geo
    geo.close()


@pytest.fixture(scope="module")
def ukraine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GeoIP]:
    path = build_city_mmdb(
        tmp_path_factory.mktemp("geo") / "ua.mmdb",
        {
            KHARKIV_NET: {"country": "UA", "subdivisions": ["63"], "city": "Kharkiv"},
            KYIV_NET: {"country": "UA", "subdivisions": ["UA-30"], "city": "Kyiv"},
            LVIV_NET: {"country": "UA", "subdivisions": ["46"], "city": "Lviv"},
            KHARKIV_OBLAST_NET: {"country": "UA", "subdivisions": ["63"]},
            "8.8.8.0/24": {"country": "US"},
        },
    )
    geo = GeoIP(path)
    yield geo
    geo.close()


# --------------------------------------------------------------------------- MaxMind's database


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("81.2.69.142", Location("GB", ("GB-ENG",), "London")),
        ("89.160.20.112", Location("SE", ("SE-E",), "Linköping")),
        ("216.160.83.56", Location("US", ("US-WA",), "Milton")),
        ("2.125.160.216", Location("GB", ("GB-ENG", "GB-WBK"), "Boxford")),
        ("2001:218::1", Location("JP", (), "")),  # country only
        ("::ffff:81.2.69.142", Location("GB", ("GB-ENG",), "London")),  # IPv4-mapped
        (" 81.2.69.142 ", Location("GB", ("GB-ENG",), "London")),
    ],
)
def test_maxmind_city_test_database(maxmind: GeoIP, ip: str, expected: Location) -> None:
    assert maxmind.locate(ip) == expected


@pytest.mark.parametrize(
    "ip",
    [
        "1.1.1.1",  # not in the test database
        "8.8.8.8",
        "214.1.1.1",  # a record with no country, subdivision or city
        "10.0.0.1",
        "192.168.1.10",
        "127.0.0.1",
        "::1",
        "fe80::1%eth0",
        "100.64.0.1",  # private
        "203.0.113.7",  # documentation range
        "",
        "garbage",
        "999.1.1.1",
        "1.2.3",
        "::ffff:zz",
    ],
)
def test_not_found_private_and_malformed_are_none(maxmind: GeoIP, ip: str) -> None:
    assert maxmind.locate(ip) is None


def test_locate_agrees_with_the_source_json(maxmind: GeoIP) -> None:
    """Every network MaxMind's JSON lists with a country answers that country."""
    records = json.loads((DATA / "GeoIP2-City-Test.json").read_text("utf-8"))
    checked = 0
    for item in records:
        for cidr, record in item.items():
            country = (record.get("country") or {}).get("iso_code")
            net = ipaddress.ip_network(cidr, strict=False)
            addr = net.network_address
            if (
                isinstance(addr, ipaddress.IPv6Address)
                and cidr.startswith("::")
                and net.prefixlen >= 96
            ):
                addr = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
            if not country or not addr.is_global:
                continue
            loc = maxmind.locate(str(addr))
            assert loc is not None and loc.country == country, cidr
            city = (record.get("city") or {}).get("names", {}).get("en", "")
            assert loc.city == city, cidr
            checked += 1
    assert checked > 50


def test_geolite2_test_database_opens(tmp_path: Path) -> None:
    with GeoIP(str(LITE_TEST)) as geo:
        loc = geo.locate("81.2.69.142")
        assert loc is not None and loc.country == "GB"


def test_lookups_are_cached(maxmind: GeoIP) -> None:
    maxmind.cache_clear()
    for _ in range(3):
        maxmind.locate("81.2.69.142")
    info = maxmind._cached.cache_info()
    assert info.hits == 2 and info.misses == 1


def test_no_database_answers_none() -> None:
    geo = GeoIP(None)
    assert geo.locate("81.2.69.142") is None
    geo.close()


def test_close_then_locate_is_none() -> None:
    geo = GeoIP(str(CITY_TEST))
    assert geo.locate("81.2.69.142") is not None
    geo.close()
    assert geo.locate("81.2.69.142") is None
    geo.close()  # twice is fine


# --------------------------------------------------------------------------- broken databases


def test_broken_database_fails_at_start_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "GeoIP2-City-Test-Broken-Double-Format.mmdb"
    shutil.copy(BROKEN, path)
    with pytest.raises(GeoIPError) as err:
        GeoIP(str(path))
    assert str(path) in str(err.value)
    assert err.value.path == str(path)
    assert "damaged" in str(err.value)


def test_missing_database_fails_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.mmdb"
    with pytest.raises(GeoIPError, match=r"nope\.mmdb.*cannot be read"):
        GeoIP(str(path))


def test_not_a_maxmind_file_fails_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "city.mmdb"
    path.write_bytes(b"definitely not a MaxMind DB" * 100)
    with pytest.raises(GeoIPError, match=r"city\.mmdb.*not a MaxMind DB"):
        GeoIP(str(path))


def test_a_database_that_is_not_city_fails(tmp_path: Path) -> None:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    writer.insert_network(IPSet(["1.0.0.0/24"]), {"autonomous_system_number": 13335})
    path = tmp_path / "asn.mmdb"
    writer.to_db_file(str(path))
    with pytest.raises(GeoIPError, match=r"asn\.mmdb.*City database is needed"):
        GeoIP(str(path))


def test_geoip_error_is_documented() -> None:
    assert GeoIPError.__doc__ and "start-up" in GeoIPError.__doc__


# --------------------------------------------------------------------------- a built database


def test_built_database_locates(ukraine: GeoIP) -> None:
    assert ukraine.locate(KHARKIV_IP) == Location("UA", ("UA-63",), "Kharkiv")
    assert ukraine.locate(KYIV_IP) == Location("UA", ("UA-30",), "Kyiv")
    assert ukraine.locate(LVIV_IP) == Location("UA", ("UA-46",), "Lviv")
    assert ukraine.locate(KHARKIV_OBLAST_IP) == Location("UA", ("UA-63",), "")
    assert ukraine.locate("9.9.9.9") is None


RULES = [
    RegionRule("picker-only"),  # no GeoIP criterion: only the site's own picker chooses it
    RegionRule("kharkiv", ("UA",), ("63",), ("Kharkiv",)),
    RegionRule("kharkiv-oblast", ("UA",), ("UA-63",), ()),
    RegionRule("kyiv", (), (), ("kyiv",)),
    RegionRule("ukraine", ("UA",), (), ()),
    RegionRule("usa", ("US",), (), ()),
]


@pytest.mark.parametrize(
    ("ip", "region"),
    [
        (KHARKIV_IP, "kharkiv"),
        (KHARKIV_OBLAST_IP, "kharkiv-oblast"),  # no city: the city rule does not match
        (KYIV_IP, "kyiv"),
        (LVIV_IP, "ukraine"),
        ("8.8.8.8", "usa"),
        ("9.9.9.9", None),  # not in the database
        ("10.0.0.1", None),
    ],
)
def test_pick_region_from_built_database(ukraine: GeoIP, ip: str, region: str | None) -> None:
    assert pick_region(RULES, ukraine.locate(ip)) == region


def test_pick_region_first_matching_rule_wins() -> None:
    loc = Location("UA", ("UA-63",), "Kharkiv")
    assert (
        pick_region([RegionRule("ua", ("UA",)), RegionRule("kharkiv", ("UA",), ("63",))], loc)
        == "ua"
    )


@pytest.mark.parametrize(
    ("rule", "matches"),
    [
        (RegionRule("r", subdivisions=("63",)), True),
        (RegionRule("r", subdivisions=("UA-63",)), True),
        (RegionRule("r", subdivisions=("ua-63",)), True),
        (RegionRule("r", subdivisions=("UA-30", "63")), True),
        (RegionRule("r", subdivisions=("PL-63",)), False),
        (RegionRule("r", subdivisions=("30",)), False),
        (RegionRule("r", countries=("ua",)), True),
        (RegionRule("r", countries=("PL", "UA")), True),
        (RegionRule("r", countries=("PL",)), False),
        (RegionRule("r", cities=("KHARKIV",)), True),
        (RegionRule("r", cities=(" kharkiv ",)), True),
        (RegionRule("r", cities=("Kharkov",)), False),
        (RegionRule("r", ("UA",), ("63",), ("Kyiv",)), False),  # every criterion must match
        (RegionRule("r"), False),
    ],
)
def test_region_criteria(rule: RegionRule, matches: bool) -> None:
    loc = Location("UA", ("UA-63",), "Kharkiv")
    assert (pick_region([rule], loc) == "r") is matches


def test_pick_region_on_maxmind_locations(maxmind: GeoIP) -> None:
    rules = [
        RegionRule("washington", ("US",), ("WA",), ()),
        RegionRule("ostergotland", ("SE",), ("SE-E",), ("linkoping",)),  # accents ignored
        RegionRule("berkshire", ("GB",), ("WBK",), ()),  # any of the subdivisions
        RegionRule("london", ("GB",), (), ("London",)),
    ]
    assert pick_region(rules, maxmind.locate("216.160.83.56")) == "washington"
    assert pick_region(rules, maxmind.locate("89.160.20.112")) == "ostergotland"
    assert pick_region(rules, maxmind.locate("2.125.160.216")) == "berkshire"
    assert pick_region(rules, maxmind.locate("81.2.69.142")) == "london"
    assert pick_region(rules, maxmind.locate("2001:218::1")) is None
    assert pick_region(rules, None) is None
    assert pick_region([], Location("GB", (), "London")) is None


def test_region_rule_is_built_positionally_by_the_config() -> None:
    rule = RegionRule("kharkiv", ("UA",), ("63",), ("Kharkiv",))
    assert (rule.id, rule.countries, rule.subdivisions, rule.cities) == (
        "kharkiv",
        ("UA",),
        ("63",),
        ("Kharkiv",),
    )


# --------------------------------------------------------------------------- client address

PROXIES = [
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("2001:db8::/32"),
    ipaddress.ip_network("192.0.2.1/32"),
]


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        # an untrusted peer: the header is ignored, whatever it says
        ("198.51.100.7", "1.2.3.4", "198.51.100.7"),
        ("198.51.100.7", None, "198.51.100.7"),
        # one trusted proxy
        ("10.0.0.5", "203.0.113.9", "203.0.113.9"),
        # a chain: skip trusted hops from the right, stop at the first untrusted one
        ("10.0.0.5", "203.0.113.9, 10.1.1.1, 10.2.2.2", "203.0.113.9"),
        # a forged left part is not believed
        ("10.0.0.5", "6.6.6.6, 203.0.113.9, 10.1.1.1", "203.0.113.9"),
        # every hop trusted: the leftmost
        ("10.0.0.5", "10.9.9.9, 10.1.1.1", "10.9.9.9"),
        # trusted peer with no header: the peer
        ("10.0.0.5", None, "10.0.0.5"),
        ("10.0.0.5", "", "10.0.0.5"),
        # ports, brackets, IPv6, IPv4-mapped
        ("10.0.0.5", "203.0.113.9:51234", "203.0.113.9"),
        ("10.0.0.5", "[2001:470::1]:443", "2001:470::1"),
        ("2001:db8::10", "2001:470::1, 2001:db8::1", "2001:470::1"),
        ("::ffff:10.0.0.5", "203.0.113.9", "203.0.113.9"),
        ("192.0.2.1", "203.0.113.9", "203.0.113.9"),
        # garbage where the client should be
        ("10.0.0.5", "unknown", None),
        ("10.0.0.5", "6.6.6.6, not-an-ip, 10.1.1.1", None),
        # no usable peer
        (None, "203.0.113.9", None),
        ("", "203.0.113.9", None),
        ("nonsense", "203.0.113.9", None),
    ],
)
def test_client_ip(peer: str | None, xff: str | None, expected: str | None) -> None:
    headers = {"X-Forwarded-For": xff} if xff is not None else {}
    assert client_ip(peer, headers, PROXIES) == expected


def test_client_ip_without_trusted_proxies_is_the_peer() -> None:
    assert client_ip("10.0.0.5", {"x-forwarded-for": "203.0.113.9"}, []) == "10.0.0.5"


def test_client_ip_reads_repeated_headers_in_order() -> None:
    from starlette.datastructures import Headers

    headers = Headers(
        raw=[(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"203.0.113.9, 10.1.1.1")]
    )
    assert client_ip("10.0.0.5", headers, PROXIES) == "203.0.113.9"
    one = Headers(headers={"X-Forwarded-For": "203.0.113.9"})
    assert client_ip("10.0.0.5", one, PROXIES) == "203.0.113.9"


def test_client_ip_header_name_any_case() -> None:
    assert client_ip("10.0.0.5", {"x-FORWARDED-for": "203.0.113.9"}, PROXIES) == "203.0.113.9"


@settings(max_examples=200, database=None, deadline=None)
@given(
    peer=st.none() | st.text(max_size=40) | st.ip_addresses().map(str),
    xff=st.lists(st.text(max_size=20) | st.ip_addresses().map(str), max_size=5),
)
def test_client_ip_never_raises(peer: str | None, xff: list[str]) -> None:
    got = client_ip(peer, {"X-Forwarded-For": ", ".join(xff)}, PROXIES)
    assert got is None or ipaddress.ip_address(got)


@settings(max_examples=200, database=None, deadline=None)
@given(ip=st.text(max_size=45) | st.ip_addresses().map(str))
def test_locate_never_raises(maxmind: GeoIP, ip: str) -> None:
    got = maxmind.locate(ip)
    assert got is None or isinstance(got, Location)
