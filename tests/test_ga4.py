"""The Measurement Protocol module: its rules, the events it builds, its HTTP client."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from ga4_standin import Standin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import TEST_ENV, free_port, make_config

from attribution import ga4
from attribution.config import Site
from attribution.errors import PermanentDeliveryError, TransientDeliveryError

SECRET = TEST_ENV["ACME_GA4_SECRET"]
CALLER = "+380671234567"
CALLED = "+380577000011"
NOW = 1_764_000_000.0  # a fixed "now" for the pure functions


def site() -> Site:
    found = make_config().site("acme")
    assert found is not None
    return found


def call(**over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "call_id": "pbx-1",
        "site": "acme",
        "direction": "inbound",
        "caller": CALLER,
        "called": CALLED,
        "started_at": "2025-11-24T15:00:00Z",
        "started_ms": int((NOW - 600) * 1000),
        "answered_at": None,
        "ended_at": None,
        "status": "answered",
        "duration": 95,
        "billsec": 80,
        "recording_url": "https://pbx.example/rec/81723.mp3",
        "match": "exact",
        "candidates": 1,
        "pool": "paid",
        "sid": "sid-7f3a9c-secretish",
        "source": "google",
        "medium": "cpc",
        "campaign": "spring",
        "keyword": "plumber kharkiv",
        "region": "kharkiv",
        "landing_page": "https://acme.example/?email=a@b.example",
        "last_page": "https://acme.example/contact?phone=0671234567",
        "device": "mobile",
        "time_on_site": 42,
        "first_time_caller": True,
        "ga_client_id": "1234567.7654321",
        "ga_session_id": "1763999000",
        "value": 25.0,
        "currency": "UAH",
        "received_ms": int(NOW * 1000),
    }
    rec.update(over)
    return rec


def good_payload(**over: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "client_id": "1.2",
        "timestamp_micros": int((NOW - 60) * 1e6),
        "events": [{"name": "phone_call", "params": {"session_id": 1, "call_status": "x"}}],
    }
    payload.update(over)
    return payload


def codes(payload: Any, now: float = NOW) -> list[str]:
    return [m["validationCode"] for m in ga4.validation_messages(payload, now_s=now)]


# ---------------------------------------------------------------- the rules


def test_a_good_body_has_no_messages() -> None:
    assert ga4.validate(good_payload(), now_s=NOW) == []


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("a" * 41, "VALUE_OUT_OF_BOUNDS"),
        ("1call", "NAME_INVALID"),
        ("phone-call", "NAME_INVALID"),
        ("phone call", "NAME_INVALID"),
        ("session_start", "NAME_RESERVED"),
        ("first_visit", "NAME_RESERVED"),
        ("google_call", "NAME_RESERVED"),
        ("ga_call", "NAME_RESERVED"),
        ("firebase_call", "NAME_RESERVED"),
        ("_call", "NAME_RESERVED"),
        ("", "VALUE_REQUIRED"),
    ],
)
def test_event_names(name: str, code: str) -> None:
    payload = good_payload(events=[{"name": name, "params": {}}])
    assert code in codes(payload)


def test_forty_character_names_pass() -> None:
    payload = good_payload(events=[{"name": "a" * 40, "params": {"b" * 40: "c" * 100}}])
    assert ga4.validate(payload, now_s=NOW) == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"p" * 41: 1}, "VALUE_OUT_OF_BOUNDS"),
        ({"google_x": 1}, "NAME_RESERVED"),
        ({"ga_x": 1}, "NAME_RESERVED"),
        ({"firebase_x": 1}, "NAME_RESERVED"),
        ({"firebase_conversion": 1}, "NAME_RESERVED"),
        ({"9x": 1}, "NAME_INVALID"),
        ({"x": "v" * 101}, "VALUE_OUT_OF_BOUNDS"),
        ({"x": {"nested": 1}}, "VALUE_INVALID"),
        ({"x": None}, "VALUE_INVALID"),
        ({"x": True}, "VALUE_INVALID"),
        ({f"p{i}": i for i in range(26)}, "EXCEEDED_MAX_ENTITIES"),
        ({"value": 3.5}, "VALUE_REQUIRED"),  # value without currency
    ],
)
def test_params(params: dict[str, Any], code: str) -> None:
    assert code in codes(good_payload(events=[{"name": "ok", "params": params}]))


def test_twenty_five_params_and_events_pass_twenty_six_do_not() -> None:
    params = {f"p{i}": i for i in range(25)}
    assert (
        ga4.validate(good_payload(events=[{"name": "ok", "params": params}] * 25), now_s=NOW) == []
    )
    assert "EXCEEDED_MAX_ENTITIES" in codes(good_payload(events=[{"name": "ok"}] * 26))


def test_body_rules() -> None:
    assert "VALUE_REQUIRED" in codes(good_payload(client_id=""))
    no_cid = good_payload()
    del no_cid["client_id"]
    assert "VALUE_REQUIRED" in codes(no_cid)
    assert "VALUE_REQUIRED" in codes(good_payload(events=[]))
    assert "NAME_INVALID" in codes(good_payload(api_secret="leak"))  # not a body field
    assert "VALUE_INVALID" in codes([1, 2])
    assert "VALUE_INVALID" in codes(good_payload(non_personalized_ads="no"))


def test_payload_size() -> None:
    items = [{f"item_p{j}": "x" * 100 for j in range(10)} for _ in range(150)]
    big = good_payload(events=[{"name": "ok", "params": {"items": items}}])
    size = len(json.dumps(big).encode())
    assert size > ga4.LIMITS.payload_bytes
    assert [m for m in ga4.validate(big, now_s=NOW) if "bytes" in m]
    assert ga4.validate(good_payload(), now_s=NOW, size=ga4.LIMITS.payload_bytes) == []
    assert ga4.validate(good_payload(), now_s=NOW, size=ga4.LIMITS.payload_bytes + 1)


def test_timestamp_window() -> None:
    limit = ga4.LIMITS.max_age_s
    assert codes(good_payload(timestamp_micros=int((NOW - limit + 5) * 1e6))) == []
    assert "VALUE_OUT_OF_BOUNDS" in codes(
        good_payload(timestamp_micros=int((NOW - limit - 5) * 1e6))
    )
    assert "VALUE_OUT_OF_BOUNDS" in codes(good_payload(timestamp_micros=int((NOW + 3600) * 1e6)))
    assert "VALUE_INVALID" in codes(good_payload(timestamp_micros="123"))
    event_ts = [{"name": "ok", "timestamp_micros": int((NOW - limit - 5) * 1e6)}]
    assert "VALUE_OUT_OF_BOUNDS" in codes(good_payload(events=event_ts))


def test_user_properties() -> None:
    ok = {"tier": {"value": "gold"}}
    assert codes(good_payload(user_properties=ok)) == []
    assert "VALUE_OUT_OF_BOUNDS" in codes(good_payload(user_properties={"t" * 25: {"value": 1}}))
    assert "VALUE_OUT_OF_BOUNDS" in codes(good_payload(user_properties={"t": {"value": "v" * 37}}))
    assert "NAME_RESERVED" in codes(good_payload(user_properties={"first_open_time": {"value": 1}}))
    assert "NAME_RESERVED" in codes(good_payload(user_properties={"ga_tier": {"value": 1}}))
    assert "VALUE_INVALID" in codes(good_payload(user_properties={"tier": "gold"}))
    many = {f"u{i}": {"value": i} for i in range(26)}
    assert "EXCEEDED_MAX_ENTITIES" in codes(good_payload(user_properties=many))


def test_messages_render_like_the_debug_endpoint() -> None:
    [line] = ga4.validate(good_payload(events=[{"name": "session_start"}]), now_s=NOW)
    assert line.startswith("NAME_RESERVED events[0].name:")


# ---------------------------------------------------------------- the call event


def test_call_event_puts_the_call_in_the_visitors_session() -> None:
    rec = call()
    body = ga4.call_event(rec, site(), NOW)
    assert body["client_id"] == "1234567.7654321"
    assert body["timestamp_micros"] == rec["started_ms"] * 1000
    [event] = body["events"]
    assert event["name"] == "phone_call"
    p = event["params"]
    assert p["session_id"] == 1763999000 and isinstance(p["session_id"], int)
    assert p["engagement_time_msec"] >= 1
    assert p["call_status"] == "answered"
    assert p["call_duration"] == 80  # talk time of an answered call
    assert p["first_time_caller"] == "yes"
    assert p["tracking_pool"] == "paid"
    assert (p["call_source"], p["call_medium"], p["call_campaign"]) == ("google", "cpc", "spring")
    assert (p["value"], p["currency"]) == (25.0, "UAH")
    assert "non_personalized_ads" not in body
    assert ga4.validate(body, now_s=NOW) == []


def test_call_event_optional_parts() -> None:
    body = ga4.call_event(
        call(
            status="missed",
            billsec=0,
            duration=30,
            ga_session_id="",
            source="",
            medium="",
            campaign="",
            value=None,
            currency=None,
            first_time_caller=False,
        ),
        site(),
        NOW,
    )
    p = body["events"][0]["params"]
    assert "session_id" not in p and "value" not in p and "currency" not in p
    assert "call_source" not in p and "call_campaign" not in p
    assert p["call_duration"] == 30 and p["first_time_caller"] == "no"


def test_call_event_carries_no_personal_data() -> None:
    text = json.dumps(ga4.call_event(call(), site(), NOW))
    for secret in (
        "380671234567",
        "0671234567",
        "380577000011",
        "sid-7f3a9c",
        "pbx.example",
        "rec/81723",
        "acme.example",
        "email",
        "phone=",
        "@",
        "plumber",
        "pbx-1",
    ):
        assert secret not in text, secret


@pytest.mark.parametrize(
    "campaign", ["call +380 67 123 45 67", "me@example.com", "vip_0671234567", "x+380671234567"]
)
def test_campaign_values_that_look_personal_are_dropped(campaign: str) -> None:
    p = ga4.call_event(call(campaign=campaign), site(), NOW)["events"][0]["params"]
    assert "call_campaign" not in p
    assert p["call_source"] == "google"


def test_campaign_ids_and_dates_are_kept() -> None:
    p = ga4.call_event(call(campaign="2025-11-24_sale_98765432109"), site(), NOW)["events"][0][
        "params"
    ]
    assert p["call_campaign"] == "2025-11-24_sale_98765432109"


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.text(max_size=300),
    campaign=st.text(max_size=300),
    medium=st.text(max_size=50),
    pool=st.text(max_size=120),
    session=st.text(alphabet="0123456789.", max_size=30),
    caller=st.from_regex(r"\+380[0-9]{9}", fullmatch=True),
)
def test_any_record_builds_a_valid_event_without_the_callers_number(
    source: str, campaign: str, medium: str, pool: str, session: str, caller: str
) -> None:
    rec = call(
        source=source,
        campaign=campaign,
        medium=medium,
        pool=pool,
        ga_session_id=session,
        caller=caller,
    )
    body = ga4.call_event(rec, site(), NOW)
    assert ga4.validate(body, now_s=NOW) == []
    text = json.dumps(body, ensure_ascii=False)
    assert caller[-9:] not in "".join(c for c in text if c.isdigit() or c == "x")
    assert "+380" not in text


def test_outside_window_and_future() -> None:
    old = call(started_ms=int((NOW - 73 * 3600) * 1000))
    with pytest.raises(PermanentDeliveryError) as info:
        ga4.call_event(old, site(), NOW)
    assert getattr(info.value, "reason", "") == "outside_window"
    future = call(started_ms=int((NOW + 3600) * 1000))
    with pytest.raises(PermanentDeliveryError) as info:
        ga4.call_event(future, site(), NOW)
    assert ga4.reason_of(info.value) == "outside_window"
    # a PBX clock a little ahead: clamped to now, never a future timestamp
    body = ga4.call_event(call(started_ms=int((NOW + 30) * 1000)), site(), NOW)
    assert body["timestamp_micros"] == int(NOW * 1e6)
    # just inside the window
    body = ga4.call_event(call(started_ms=int((NOW - 71.9 * 3600) * 1000)), site(), NOW)
    assert ga4.validate(body, now_s=NOW) == []


def test_no_client_id_is_permanent() -> None:
    with pytest.raises(PermanentDeliveryError) as info:
        ga4.call_event(call(ga_client_id=""), site(), NOW)
    assert ga4.reason_of(info.value) == "no_client_id"


def test_conversion_event() -> None:
    body = ga4.conversion_event(call(), site(), 1250.5, "uah", "T-1", NOW)
    [event] = body["events"]
    assert event["name"] == ga4.CONVERSION_EVENT == "purchase"
    p = event["params"]
    assert (p["transaction_id"], p["value"], p["currency"]) == ("T-1", 1250.5, "UAH")
    assert p["session_id"] == 1763999000 and p["conversion_source"] == "phone_call"
    assert body["timestamp_micros"] == int(NOW * 1e6)
    assert ga4.validate(body, now_s=NOW) == []
    later = ga4.conversion_event(call(), site(), 10, "UAH", "T-2", NOW, at_s=NOW - 3600)
    assert later["timestamp_micros"] == int((NOW - 3600) * 1e6)
    with pytest.raises(PermanentDeliveryError):
        ga4.conversion_event(call(), site(), 10, "UAH", "T-3", NOW, at_s=NOW - 80 * 3600)
    with pytest.raises(PermanentDeliveryError):
        ga4.conversion_event(call(), site(), -1, "UAH", "T-4", NOW)


def test_debug_endpoint_derivation() -> None:
    assert (
        ga4.debug_endpoint("https://www.google-analytics.com/mp/collect")
        == "https://www.google-analytics.com/debug/mp/collect"
    )
    assert (
        ga4.debug_endpoint("http://127.0.0.1:9/x/mp/collect/")
        == "http://127.0.0.1:9/x/debug/mp/collect"
    )
    with pytest.raises(ValueError, match="mp/collect"):
        ga4.debug_endpoint("http://127.0.0.1:9/collect")


# ---------------------------------------------------------------- the sender, over HTTP


@pytest.fixture
def standin(live: Callable[..., Any]) -> Iterator[Standin]:
    s = Standin({"G-ACME123": SECRET})
    with live(s.app) as srv:
        s.url = f"{srv.url}/mp/collect"
        yield s
        s.close()


def fresh_body() -> dict[str, Any]:
    return ga4.call_event(call(started_ms=int((time.time() - 60) * 1000)), site(), time.time())


@pytest.mark.anyio
async def test_send_delivers_and_classifies_failures(standin: Standin) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.5)) as http:
        sender = ga4.Sender(http, standin.url)
        assert await sender.send(site(), fresh_body()) == 204
        [rec] = standin.accepted
        assert rec.query == {"measurement_id": "G-ACME123", "api_secret": SECRET}
        assert standin.rejected == []

        standin.fail_next(503, retry_after=7)
        with pytest.raises(TransientDeliveryError) as t:
            await sender.send(site(), fresh_body())
        assert ga4.reason_of(t.value) == "http_503"
        assert getattr(t.value, "retry_after", None) == 7

        standin.fail_next(429)
        with pytest.raises(TransientDeliveryError):
            await sender.send(site(), fresh_body())

        standin.fail_next(400)
        with pytest.raises(PermanentDeliveryError) as p:
            await sender.send(site(), fresh_body())
        assert ga4.reason_of(p.value) == "http_400"

        standin.hang_next(2)
        with pytest.raises(TransientDeliveryError) as t:
            await sender.send(site(), fresh_body())
        assert ga4.reason_of(t.value) == "timeout"
        assert len(standin.accepted) == 1

    async with httpx.AsyncClient(timeout=1) as http:
        gone = ga4.Sender(http, f"http://127.0.0.1:{free_port()}/mp/collect")
        with pytest.raises(TransientDeliveryError) as t:
            await gone.send(site(), fresh_body())
        assert ga4.reason_of(t.value) == "network"
        assert SECRET not in str(t.value) and SECRET not in ga4.detail_of(t.value)


@pytest.mark.anyio
async def test_the_secret_is_never_logged(
    standin: Standin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(timeout=0.5) as http:
        sender = ga4.Sender(http, standin.url)
        await sender.send(site(), fresh_body())
        standin.fail_next(400)
        with pytest.raises(PermanentDeliveryError) as p:
            await sender.send(site(), fresh_body())
        logging.getLogger("callpath.ga4").warning("failed: %s", p.value)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "HTTP Request" in text  # the HTTP client did log the request line…
    assert "api_secret=***" in text
    assert SECRET not in text  # …without the secret
    assert SECRET not in repr(site())


@pytest.mark.anyio
async def test_standin_treats_bad_bodies_like_google(standin: Standin) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        # a body GA would drop still gets a 2xx from /mp/collect, and is recorded rejected
        bad = good_payload(events=[{"name": "session_start"}], timestamp_micros=None)
        del bad["timestamp_micros"]
        resp = await http.post(
            standin.url, json=bad, params={"measurement_id": "G-ACME123", "api_secret": SECRET}
        )
        assert resp.status_code == 204
        [rejected] = standin.rejected
        assert any("NAME_RESERVED" in m for m in rejected.reasons)
        # a wrong secret is also silently dropped
        resp = await http.post(
            standin.url,
            json=fresh_body(),
            params={"measurement_id": "G-ACME123", "api_secret": "nope"},
        )
        assert resp.status_code == 204
        assert any("api_secret" in m for m in standin.rejected[-1].reasons)
        # over 130 kB is refused at the door
        huge = (
            b'{"client_id":"1.2","events":[{"name":"x","params":{"p":"' + b"x" * 140_000 + b'"}}]}'
        )
        resp = await http.post(
            standin.url, content=huge, params={"measurement_id": "G-ACME123", "api_secret": SECRET}
        )
        assert resp.status_code == 413
        assert standin.accepted == []


@pytest.mark.anyio
async def test_validate_with_the_debug_endpoint(standin: Standin) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        sender = ga4.Sender(http, standin.url)
        assert await sender.validate(site(), fresh_body()) == []
        bad = fresh_body()
        bad["events"][0]["params"]["ga_thing"] = "x" * 101
        remote = await sender.validate(site(), bad)
        assert remote == ga4.validate(bad)
        assert any(m.startswith("NAME_RESERVED") for m in remote)
        assert any(m.startswith("VALUE_OUT_OF_BOUNDS") for m in remote)
    assert standin.accepted == [] and standin.rejected == []
