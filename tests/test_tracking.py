"""POST /v1/sessions and pings over real HTTP, on a real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from support import BASE_TOML, CHROME_UA, GOOGLEBOT_UA, LiveServer, build_app, make_config

from attribution.keys import Keys

KEYS = Keys("cptest")
PAID_URL = "https://acme.example/?utm_source=google&utm_medium=cpc&utm_campaign=spring"


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    c.flushall()
    yield c
    c.flushall()
    c.close()


@pytest.fixture
def server(redis_url: str, sync_redis: redis.Redis) -> Iterator[LiveServer]:
    with LiveServer(build_app(redis_url)) as srv:
        yield srv


def start(srv: LiveServer, ua: str = CHROME_UA, **body: Any) -> httpx.Response:
    payload = {"site": "acme", "url": PAID_URL, "referrer": ""} | body
    return httpx.post(
        f"{srv.url}/v1/sessions",
        json=payload,
        headers={"User-Agent": ua, "Origin": "https://acme.example"},
    )


def free_count(r: redis.Redis, pool: str) -> int:
    return int(r.zcount(KEYS.pool_leases("acme", pool), "-inf", int(time.time() * 1000)))


def test_paid_visitor_gets_a_tracking_number_and_keeps_it(server: LiveServer) -> None:
    first = start(server)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["visit"] | {"device": ""} == {
        "source": "google",
        "medium": "cpc",
        "campaign": "spring",
        "keyword": "",
        "region": "",
        "device": "",
    }
    numbers = {n["replace"]: n for n in body["numbers"]}
    assert numbers["+380577000000"]["number"] in ("+380577000011", "+380577000012", "+380577000013")
    assert numbers["+380577000000"]["number_national"].startswith("57700001")
    assert numbers["+380800300100"]["number"].startswith("+38080030010")
    assert body["hold_seconds"] == 900
    assert first.headers["access-control-allow-origin"] == "https://acme.example"
    again = start(server, sid=body["sid"], url="https://acme.example/catalog")
    assert again.json()["sid"] == body["sid"]
    assert again.json()["numbers"] == body["numbers"]
    assert again.json()["visit"]["medium"] == "cpc"  # a direct return keeps the source


def test_servers_taking_turns_with_a_visitor_answer_from_the_record_as_it_is(
    server: LiveServer, redis_url: str, sync_redis: redis.Redis
) -> None:
    """Two workers or instances on one Redis: each remembers the page views it served,
    and a page view another one served since, or a ping, is never answered past."""
    with LiveServer(build_app(redis_url)) as other:
        sid = start(server).json()["sid"]  # from a Google ad
        ad = "https://acme.example/?utm_source=facebook&utm_medium=paid_social&utm_campaign=x"
        assert start(other, url=ad, sid=sid).json()["visit"]["source"] == "facebook"
        link = {"url": "https://acme.example/contacts", "referrer": "https://acme.example/"}
        third = start(server, sid=sid, **link).json()
        assert third["sid"] == sid
        assert third["visit"]["source"] == "facebook"  # the session's latest ad, kept
        ping = httpx.post(
            f"{other.url}/v1/sessions/{sid}/ping",
            json={"url": "https://acme.example/cart"},
            headers={"Origin": "https://acme.example"},
        )
        assert ping.status_code == 200, ping.text
        fourth = start(server, sid=sid, url="https://acme.example/pay", referrer=link["url"])
        assert fourth.json()["numbers"] == third["numbers"]
    record = sync_redis.hgetall(KEYS.session(sid))
    assert record[b"pages"] == b"5" and record[b"source"] == b"facebook"
    assert record[b"last_page"] == b"https://acme.example/pay"


def test_the_record_follows_the_visits_latest_source_field_by_field(
    server: LiveServer, sync_redis: redis.Redis
) -> None:
    """A new ad rewrites the record's visit, emptying what it does not set (the same ad
    without its keyword); a link on the site then leaves the visit as it is."""
    sid = start(server, url=PAID_URL + "&utm_term=plumber").json()["sid"]
    assert start(server, sid=sid).json()["visit"]["keyword"] == ""
    assert sync_redis.hget(KEYS.session(sid), "keyword") == b""
    ad = "https://acme.example/?utm_source=facebook&utm_medium=paid_social&utm_campaign=x"
    start(server, url=ad, sid=sid)
    link = start(server, url="https://acme.example/contacts", referrer=ad, sid=sid).json()
    assert link["visit"]["source"] == "facebook"
    record = sync_redis.hgetall(KEYS.session(sid))
    assert record[b"source"] == b"facebook" and record[b"medium"] == b"paid_social"
    assert record[b"campaign"] == b"x" and record[b"keyword"] == b""
    assert record[b"pages"] == b"4" and record[b"last_page"] == b"https://acme.example/contacts"


def test_ping_keeps_the_lease_and_records_the_page(
    server: LiveServer, sync_redis: redis.Redis
) -> None:
    body = start(server).json()
    sid = body["sid"]
    ping = httpx.post(
        f"{server.url}/v1/sessions/{sid}/ping",
        content=b'{"url": "https://acme.example/cart", "ga_session_id": "1700000000"}',
        headers={"Content-Type": "text/plain", "Origin": "https://acme.example"},
    )
    assert ping.status_code == 200, ping.text
    assert ping.json()["numbers"] == body["numbers"]
    record = sync_redis.hgetall(KEYS.session(sid))
    assert record[b"last_page"] == b"https://acme.example/cart"
    assert record[b"ga_session_id"] == b"1700000000"
    assert record[b"landing_page"] == PAID_URL.encode()


def test_bots_see_own_numbers_and_hold_nothing(server: LiveServer, sync_redis: redis.Redis) -> None:
    before = free_count(sync_redis, "paid")
    body = start(server, ua=GOOGLEBOT_UA).json()
    assert body["sid"] is None
    assert all(n["number"] == n["replace"] for n in body["numbers"])
    assert free_count(sync_redis, "paid") == before


def test_forged_or_foreign_sid_is_never_honoured(server: LiveServer) -> None:
    real = start(server).json()["sid"]
    forged = real[:-2] + ("AA" if not real.endswith("AA") else "BB")
    fresh = start(server, sid=forged).json()
    assert fresh["sid"] not in (forged, real)
    ping = httpx.post(f"{server.url}/v1/sessions/{forged}/ping", json={"url": "x"})
    assert ping.status_code == 404
    assert ping.json()["error"] == "not_found" and ping.json()["field"] == "sid"


def test_unknown_site_allocates_nothing(server: LiveServer, sync_redis: redis.Redis) -> None:
    before = free_count(sync_redis, "paid")
    resp = start(server, site="nope")
    assert resp.status_code == 404
    assert resp.json() == {
        "error": "not_found",
        "detail": "no site 'nope' is configured",
        "field": "site",
    }
    assert free_count(sync_redis, "paid") == before


def test_foreign_origin_is_refused(server: LiveServer) -> None:
    resp = httpx.post(
        f"{server.url}/v1/sessions",
        json={"site": "acme", "url": PAID_URL},
        headers={"Origin": "https://evil.example", "User-Agent": CHROME_UA},
    )
    assert resp.status_code == 403 and resp.json()["field"] == "origin"
    assert "access-control-allow-origin" not in resp.headers
    ok = httpx.post(
        f"{server.url}/v1/sessions",
        json={"site": "acme", "url": PAID_URL},
        headers={"Origin": "http://shop.acme.example:8080", "User-Agent": CHROME_UA},
    )
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        (b"{not json", "body", 400),
        (b"[1, 2]", "body", 400),
        (b'{"site": "acme", "url": 5}', "url", 400),
        (b'{"site": "acme", "ga_client_id": "<script>"}', "ga_client_id", 400),
        (b'{"url": "https://acme.example/"}', "site", 400),
        (b'{"site": "acme", "url": "https://acme.example/\\ud800"}', "url", 400),
        (b'{"site": "acme", "referrer": "https://x.example/\\udfff"}', "referrer", 400),
        (b'{"site": "acme", "url": "' + b"x" * 70_000 + b'"}', "body", 413),
    ],
)
def test_bad_bodies_get_a_clear_error(
    server: LiveServer, body: bytes, field: str, status: int
) -> None:
    resp = httpx.post(f"{server.url}/v1/sessions", content=body, headers={"User-Agent": CHROME_UA})
    assert resp.status_code == status
    assert resp.json()["field"] == field
    assert set(resp.json()) >= {"error", "detail"}
    assert "Traceback" not in resp.text


def test_new_sessions_are_rate_limited_per_address(redis_url: str, sync_redis: redis.Redis) -> None:
    cfg = make_config(BASE_TOML + "\n[server]\nsessions_per_minute = 3\n")
    with LiveServer(build_app(redis_url, cfg)) as srv:
        codes = [start(srv).status_code for _ in range(3)]
        limited = start(srv)
    assert codes == [200, 200, 200]
    assert limited.status_code == 429
    assert 0 < int(limited.headers["retry-after"]) <= 60


def test_a_page_of_another_site_gets_no_numbers(server: LiveServer) -> None:
    """The Origin decides; with none (an old browser, a same-origin page), the Referer."""

    def post(headers: dict[str, str]) -> httpx.Response:
        payload = {"site": "acme", "url": PAID_URL}
        headers = {"User-Agent": CHROME_UA, **headers}
        return httpx.post(f"{server.url}/v1/sessions", json=payload, headers=headers)

    foreign = post({"Origin": "https://evil.example", "Referer": "https://acme.example/"})
    assert foreign.status_code == 403 and foreign.json()["field"] == "origin"
    by_referer = post({"Referer": "https://evil.example/page"})
    assert by_referer.status_code == 403 and by_referer.json()["field"] == "referer"
    own = post({"Referer": "https://shop.acme.example/cart"})
    assert own.status_code == 200 and own.json()["sid"]
    assert "access-control-allow-origin" not in own.headers
    allowed = post({"Origin": "https://acme.example:8443"})
    assert allowed.headers["access-control-allow-origin"] == "https://acme.example:8443"


def test_health_metrics_and_unknown_routes(server: LiveServer) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}

    def leases(outcome: str) -> float:
        text = httpx.get(f"{server.url}/metrics").text
        lines = [x for x in text.splitlines() if x.startswith("callpath_leases_total{")]
        return sum(float(x.rsplit(" ", 1)[1]) for x in lines if f'outcome="{outcome}"' in x)

    before = leases("new")
    numbers = start(server).json()["numbers"]
    held = [n for n in numbers if n["number"] != n["replace"]]
    assert held and leases("new") == before + len(held)  # each new lease counted once
    missing = httpx.get(f"{server.url}/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_region_from_geoip_via_a_trusted_proxy_and_the_site_choice_beats_it(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Any
) -> None:
    from mmdb import build_city_mmdb

    from attribution.geo import GeoIP

    db = build_city_mmdb(
        tmp_path / "city.mmdb",
        {
            "46.211.0.0/16": {"country": "UA", "subdivisions": ["63"], "city": "Kharkiv"},
            "93.72.0.0/16": {"country": "UA", "subdivisions": ["30"], "city": "Kyiv"},
        },
    )
    cfg = make_config(BASE_TOML + '\n[server]\ntrusted_proxies = ["127.0.0.0/8"]\n')
    with LiveServer(build_app(redis_url, cfg, geoip=GeoIP(db))) as srv:

        def region_of(xff: str, at: LiveServer = srv, **body: Any) -> dict[str, Any]:
            resp = httpx.post(
                f"{at.url}/v1/sessions",
                headers={"User-Agent": CHROME_UA, "X-Forwarded-For": xff},
                json={"site": "acme", "url": PAID_URL} | body,
            )
            assert resp.status_code == 200, resp.text
            out: dict[str, Any] = resp.json()
            return out

        kharkiv = region_of("46.211.10.7")
        assert kharkiv["visit"]["region"] == "kharkiv"
        assert kharkiv["numbers"][0]["number"] in ("+380577000001", "+380577000002")
        assert region_of("93.72.5.9")["visit"]["region"] == ""  # Kyiv: no such region
        assert region_of("10.0.0.1")["visit"]["region"] == ""  # private: no region
        # the site's own picker beats GeoIP
        chosen = region_of("93.72.5.9", region="kharkiv")
        assert chosen["visit"]["region"] == "kharkiv"
        # and stays the visitor's on their next pages, wherever GeoIP places them, on
        # this server (which remembers the session) and on another one (which reads it)
        later = {"sid": chosen["sid"], "url": "https://acme.example/next"}
        assert region_of("93.72.5.9", **later)["visit"]["region"] == "kharkiv"
        with LiveServer(build_app(redis_url, cfg, geoip=GeoIP(db))) as other:
            assert region_of("10.0.0.1", other, **later)["visit"]["region"] == "kharkiv"
    # an untrusted peer's X-Forwarded-For is ignored
    with LiveServer(build_app(redis_url, make_config(), geoip=GeoIP(db))) as srv:
        resp = httpx.post(
            f"{srv.url}/v1/sessions",
            headers={"User-Agent": CHROME_UA, "X-Forwarded-For": "46.211.10.7"},
            json={"site": "acme", "url": PAID_URL},
        )
        assert resp.json()["visit"]["region"] == ""


def test_ping_fills_a_late_ga_client_id_and_errors_carry_cors(
    server: LiveServer, sync_redis: redis.Redis
) -> None:
    sid = start(server).json()["sid"]
    origin = {"Origin": "https://acme.example"}
    ok = httpx.post(
        f"{server.url}/v1/sessions/{sid}/ping",
        headers=origin,
        json={
            "url": "https://acme.example/x",
            "ga_client_id": "42.1700000000",
            "ga_session_id": "not digits",
        },
    )
    assert ok.status_code == 200
    assert sync_redis.hget(KEYS.session(sid), "ga_client_id") == b"42.1700000000"
    gone = httpx.post(f"{server.url}/v1/sessions/nope.nope/ping", headers=origin, json={})
    assert gone.status_code == 404
    assert gone.headers["access-control-allow-origin"] == "https://acme.example"


def test_sessions_survive_redis_forgetting_its_scripts(
    server: LiveServer, sync_redis: redis.Redis
) -> None:
    assert start(server).status_code == 200
    sync_redis.script_flush()  # as after a Redis restart without persistence of scripts
    again = start(server)
    assert again.status_code == 200, again.text
    assert again.json()["numbers"][0]["number"] != again.json()["numbers"][0]["replace"]
