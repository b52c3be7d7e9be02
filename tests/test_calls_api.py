"""POST /v1/calls (Bearer and Basic auth), GET /v1/calls and /v1/lookup over real HTTP."""

from __future__ import annotations

import base64
import csv
import io
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import httpx
import pytest
import redis
from support import BASE_TOML, CHROME_UA, LiveServer, build_app, flush_redis, make_config

from attribution.keys import Keys

KEYS = Keys("cptest")
AUTH = {"Authorization": "Bearer acme-key-0123456789"}
OTHER_SITE = (
    BASE_TOML
    + """
[[site]]
id = "beta"
domains = ["beta.example"]
country = "UA"
replace = ["+380 44 500 00 00"]
api_key_env = "BETA_API_KEY"

  [[site.pool]]
  id = "all"
  numbers = ["+380 44 500 00 01"]
"""
)


@pytest.fixture
def server(redis_url: str) -> Iterator[LiveServer]:
    flush_redis(redis_url)
    cfg = make_config(
        OTHER_SITE,
        env={
            "ACME_API_KEY": "acme-key-0123456789",
            "ACME_GA4_SECRET": "x",
            "BETA_API_KEY": "beta-key-987",
        },
    )
    with LiveServer(build_app(redis_url, cfg)) as srv:
        yield srv
    flush_redis(redis_url)


def visit(
    srv: LiveServer, url: str = "https://acme.example/?utm_source=google&utm_medium=cpc"
) -> dict[str, Any]:
    body: dict[str, Any] = httpx.post(
        f"{srv.url}/v1/sessions",
        headers={"User-Agent": CHROME_UA},
        json={"site": "acme", "url": url, "ga_client_id": "555.666", "ga_session_id": "1700000000"},
    ).json()
    return body


def tracking(body: dict[str, Any]) -> str:
    return str(body["numbers"][0]["number"])


def post(
    srv: LiveServer, payload: Any = None, headers: dict[str, str] | None = None, **kw: Any
) -> httpx.Response:
    if payload is not None:
        kw["json"] = payload
    return httpx.post(f"{srv.url}/v1/calls", headers=AUTH | (headers or {}), **kw)


def test_a_generic_cdr_is_attributed_to_the_session(server: LiveServer) -> None:
    v = visit(server)
    now = int(time.time())
    resp = post(
        server,
        {
            "call_id": "pbx-1",
            "caller": "+380671112233",
            "called": tracking(v),
            "started_at": now,
            "answered_at": now + 5,
            "ended_at": now + 60,
            "status": "answered",
            "recording_url": "https://pbx.example/r/1.mp3",
        },
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "call_id": "pbx-1",
        "match": "exact",
        "candidates": 1,
        "source": "google",
        "medium": "cpc",
        "campaign": "",
        "keyword": "",
        "region": "",
        "sid": v["sid"],
        "first_time_caller": True,
    }
    log = httpx.get(f"{server.url}/v1/calls", headers=AUTH).json()["calls"]
    assert log[0]["landing_page"].startswith("https://acme.example/")
    assert log[0]["last_page"] == log[0]["landing_page"]  # the visit saw one page
    assert log[0]["billsec"] == 55 and log[0]["ga_client_id"] == "555.666"


def test_asterisk_rows_use_the_site_timezone(server: LiveServer) -> None:
    v = visit(server)
    from datetime import datetime
    from zoneinfo import ZoneInfo

    local = datetime.now(ZoneInfo("Europe/Kyiv")).strftime("%Y-%m-%d %H:%M:%S")
    number = tracking(v).replace("+380", "0")
    row = (
        f'"","0671112233","{number}","from-pstn","""Ivan"" <0671112233>",'
        f'"SIP/trunk-0001","SIP/101-0002","Dial","SIP/101",'
        f'"{local}","{local}","{local}",30,25,"ANSWERED","DOCUMENTATION","1700.1",""\n'
    )
    resp = post(server, content=row.encode(), headers={"Content-Type": "text/csv"})
    assert resp.status_code == 200, resp.text
    (call,) = resp.json()["calls"]
    assert call["match"] == "exact" and call["sid"] == v["sid"]


def test_a_batch_with_nothing_to_store_is_refused_naming_its_first_bad_record(
    server: LiveServer,
) -> None:
    row = (
        '"","0671112233","0577000000","from-pstn","","SIP/trunk-0001","SIP/101-0002","Dial",'
        '"SIP/101","31/12/2026 25:61","","31/12/2026 25:61",30,25,"ANSWERED",'
        '"DOCUMENTATION","bad-row-1",""\n'
    )
    before = httpx.get(f"{server.url}/v1/calls", headers=AUTH).json()["calls"]
    resp = post(server, content=row.encode(), headers={"Content-Type": "text/csv"})
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"] == "bad_record" and body["field"] == "start"
    assert body["detail"].startswith("record 0: ") and "31/12/2026 25:61" in body["detail"]
    assert body["stored"] == 0 and body["failed"] == 1
    assert httpx.get(f"{server.url}/v1/calls", headers=AUTH).json()["calls"] == before


def test_batch_answers_per_record_and_stores_the_good_ones(server: LiveServer) -> None:
    now = int(time.time())
    good = {
        "call_id": "b-1",
        "caller": "+380671112233",
        "called": "+380577000000",
        "started_at": now,
        "status": "missed",
    }
    bad = {
        "call_id": "b-2",
        "caller": "+380671112233",
        "called": "+380577000000",
        "started_at": "yesterday",
        "status": "missed",
    }
    resp = post(server, [good, bad])
    assert resp.status_code == 200
    first, second = resp.json()["calls"]
    assert first["call_id"] == "b-1" and first["match"] == "unattributed"
    assert second["index"] == 1 and second["field"] == "started_at"
    assert resp.json()["stored"] == 1 and resp.json()["failed"] == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (
            {
                "call_id": "x",
                "called": "+380577000000",
                "started_at": 1764000000,
                "status": "ringing",
            },
            "status",
        ),
        ({"call_id": "x", "called": "not a number", "started_at": 1764000000}, "called"),
        ({"call_id": "x\ud800", "called": "+380577000000", "started_at": 1764000000}, "call_id"),
        (
            {
                "call_id": "x",
                "called": "+380577000000",
                "started_at": 1764000000,
                "recording_url": "https://pbx.example/\ud800.mp3",
            },
            "recording_url",
        ),
        (
            {"call_id": "x", "called": "+380577000000", "started_at": "2026-11-24T09:15:02"},
            "started_at",
        ),
    ],
)
def test_a_bad_single_record_is_a_400_naming_the_field_and_stores_nothing(
    server: LiveServer, payload: dict[str, Any], field: str
) -> None:
    raw = json.dumps(payload).encode()  # escaped, as a PBX would send a lone surrogate
    resp = post(server, content=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["field"] == field and resp.json()["error"] == "bad_request"
    assert httpx.get(f"{server.url}/v1/calls", headers=AUTH).json()["calls"] == []


def test_keys_and_sites(server: LiveServer) -> None:
    payload = {"call_id": "k-1", "called": "+380445000001", "started_at": int(time.time())}
    assert post(server, payload, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.post(f"{server.url}/v1/calls", json=payload).status_code == 401
    wrong = post(server, payload)  # beta's number with acme's key
    assert wrong.status_code == 403 and wrong.json()["field"] == "called"
    beta = post(server, payload, headers={"Authorization": "Bearer beta-key-987"})
    assert beta.status_code == 200
    assert httpx.get(f"{server.url}/v1/calls", headers=AUTH).json()["calls"] == []


def test_call_log_filters_cursor_and_csv(server: LiveServer) -> None:
    now = int(time.time()) - 100
    calls = [
        {
            "call_id": f"log-{i}",
            "caller": f"+38067111220{i}",
            "called": "+380577000000",
            "started_at": now + i,
            "status": "answered" if i % 2 else "missed",
        }
        for i in range(5)
    ]
    calls.append(
        {
            "call_id": "evil",
            "caller": "+380671112299",
            "called": "+380577000000",
            "started_at": now + 10,
            "status": "missed",
        }
    )
    assert post(server, calls).status_code == 200
    page1 = httpx.get(f"{server.url}/v1/calls", params={"limit": 2}, headers=AUTH).json()
    assert [c["call_id"] for c in page1["calls"]] == ["evil", "log-4"]
    page2 = httpx.get(
        f"{server.url}/v1/calls", params={"limit": 2, "cursor": page1["next_cursor"]}, headers=AUTH
    ).json()
    assert [c["call_id"] for c in page2["calls"]] == ["log-3", "log-2"]
    missed = httpx.get(f"{server.url}/v1/calls", params={"status": "missed"}, headers=AUTH).json()
    assert {c["call_id"] for c in missed["calls"]} == {"evil", "log-4", "log-2", "log-0"}
    by_caller = httpx.get(
        f"{server.url}/v1/calls", params={"caller": "067 111 22 03"}, headers=AUTH
    ).json()
    assert [c["call_id"] for c in by_caller["calls"]] == ["log-3"]
    bad = httpx.get(f"{server.url}/v1/calls", params={"from": "last tuesday"}, headers=AUTH)
    assert bad.status_code == 400 and bad.json()["field"] == "from"
    text = httpx.get(f"{server.url}/v1/calls", headers=AUTH | {"Accept": "text/csv"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 6
    assert rows[0]["caller"] == "'+380671112299"  # a leading + is a formula
    assert rows[0]["call_id"] == "evil"


def test_lookup_tells_the_pbx_who_is_calling(server: LiveServer) -> None:
    v = visit(server, "https://acme.example/?utm_source=yandex&utm_medium=cpc&utm_campaign=z")
    resp = httpx.get(
        f"{server.url}/v1/lookup",
        headers=AUTH,
        params={"called": tracking(v), "caller": "+380671112233"},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert (body["match"], body["source"], body["campaign"]) == ("exact", "yandex", "z")
    assert body["first_time_caller"] is True and body["pool"] == "paid"
    assert httpx.get(f"{server.url}/v1/lookup", headers=AUTH).json()["field"] == "called"


def test_a_conversion_is_taken_once_per_transaction(server: LiveServer, redis_url: str) -> None:
    v = visit(server)
    post(
        server,
        {
            "call_id": "sale-1",
            "caller": "+380671112233",
            "called": tracking(v),
            "started_at": int(time.time()),
            "status": "answered",
        },
    )
    url = f"{server.url}/v1/calls/sale-1/conversion"
    first = httpx.post(
        url, headers=AUTH, json={"value": 1250.5, "currency": "uah", "transaction_id": "crm-77"}
    )
    assert first.status_code == 202 and first.json()["queued"] is True
    again = httpx.post(
        url, headers=AUTH, json={"value": 1250.5, "currency": "UAH", "transaction_id": "crm-77"}
    )
    assert again.status_code == 200 and again.json()["duplicate"] is True
    with redis.Redis.from_url(redis_url) as r:
        assert float(r.hget(KEYS.revenue("acme"), "sale-1") or 0) == 1250.5
    bad = httpx.post(url, headers=AUTH, json={"value": -1, "currency": "UAH"})
    assert bad.status_code == 400 and bad.json()["field"] == "value"
    for raw, field in (
        (b'{"value": NaN, "currency": "UAH"}', "value"),
        (b'{"value": Infinity, "currency": "UAH"}', "value"),
        ('{"value": 1, "currency": "ГРН"}'.encode(), "currency"),
        (b'{"value": 1, "currency": "UAH", "transaction_id": "t\\ud800"}', "transaction_id"),
    ):
        refused = httpx.post(url, headers=AUTH, content=raw)
        assert refused.status_code == 400 and refused.json()["field"] == field, raw
    with redis.Redis.from_url(redis_url) as r:
        assert float(r.hget(KEYS.revenue("acme"), "sale-1") or 0) == 1250.5
    missing = httpx.post(
        f"{server.url}/v1/calls/nope/conversion", headers=AUTH, json={"value": 1, "currency": "UAH"}
    )
    assert missing.status_code == 404


# ---------------------------------------------------------------- HTTP Basic and the log's `to`

SAMPLES = Path(__file__).parent / "samples" / "cdr"


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def stored(srv: LiveServer, call_id: str) -> bool:
    log = httpx.get(f"{srv.url}/v1/calls", headers=AUTH).json()["calls"]
    return call_id in {c["call_id"] for c in log}


def test_a_twilio_callback_with_credentials_in_its_url_is_stored(server: LiveServer) -> None:
    # Twilio can only authenticate a status callback as https://user:pass@host/v1/calls
    form = dict(parse_qsl((SAMPLES / "twilio-completed.form").read_text().strip()))
    form |= {"Called": "+380577000000", "To": "+380577000000"}
    host = server.url.removeprefix("http://")
    resp = httpx.post(f"http://acme:acme-key-0123456789@{host}/v1/calls", data=form)
    assert resp.status_code == 200, resp.text
    assert resp.json()["call_id"] == form["CallSid"]
    assert resp.request.headers["authorization"].startswith("Basic ")
    assert stored(server, form["CallSid"])


def test_a_freeswitch_cdr_with_basic_auth_is_stored(server: LiveServer) -> None:
    # mod_json_cdr with cred = acme:<key>, auth-scheme = basic, encode-values = true
    cdr = (SAMPLES / "freeswitch-answered.cdr.json").read_text()
    resp = httpx.post(
        f"{server.url}/v1/calls",
        content=urlencode({"cdr": cdr}).encode(),
        headers=basic("acme", "acme-key-0123456789")
        | {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 200, resp.text
    assert stored(server, resp.json()["call_id"])


def test_basic_auth_without_a_user_name_and_bearer_both_work(server: LiveServer) -> None:
    now = int(time.time())
    payload = {"call_id": "anon-1", "called": "+380577000000", "started_at": now}
    assert post(server, payload, headers=basic("", "acme-key-0123456789")).status_code == 200
    payload = {"call_id": "bearer-1", "called": "+380577000000", "started_at": now}
    assert post(server, payload).status_code == 200  # AUTH is a Bearer header
    assert stored(server, "anon-1") and stored(server, "bearer-1")


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (basic("acme", "wrong-key"), "not valid"),
        (basic("beta", "acme-key-0123456789"), "not valid"),  # acme's key, beta's id
        (basic("acme", "beta-key-987"), "not valid"),  # beta's key, acme's id
        (basic("nobody", "acme-key-0123456789"), "not valid"),
        (basic("acme", ""), "Bearer"),
        ({"Authorization": "Basic not*base64!"}, "base64"),
        ({"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xfa").decode()}, "base64"),
        ({"Authorization": "Basic " + base64.b64encode(b"acme-key-0123456789").decode()}, "':'"),
        ({"Authorization": "Basic"}, "Basic"),
        ({"Authorization": "Digest username=acme"}, "Basic"),
        ({"Authorization": "Bearer"}, "Bearer"),
    ],
)
def test_bad_credentials_are_a_401_naming_the_header(
    server: LiveServer, authorization: dict[str, str], detail: str
) -> None:
    payload = {"call_id": "no-1", "called": "+380577000000", "started_at": int(time.time())}
    resp = post(server, payload, headers=authorization)
    assert resp.status_code == 401, resp.text
    body = resp.json()
    assert body["error"] == "unauthorized" and body["field"] == "authorization"
    assert detail in body["detail"] and "acme-key" not in body["detail"]
    challenge = resp.headers["www-authenticate"]
    assert challenge.startswith("Bearer") and 'Basic realm="callpath"' in challenge
    assert not stored(server, "no-1")


def test_a_bare_date_to_takes_in_that_whole_day(server: LiveServer) -> None:
    tz = ZoneInfo("Europe/Kyiv")  # acme's timezone
    now = int(time.time())
    today = datetime.fromtimestamp(now, tz).date()
    midnight = int(datetime.combine(today, datetime.min.time(), tzinfo=tz).timestamp())
    calls = [
        {"call_id": "today", "called": "+380577000000", "started_at": now},
        {"call_id": "yesterday", "called": "+380577000000", "started_at": midnight - 1},
    ]
    assert post(server, calls).status_code == 200
    day = today.isoformat()
    params = {"from": day, "to": day}
    log = httpx.get(f"{server.url}/v1/calls", params=params, headers=AUTH).json()["calls"]
    assert [c["call_id"] for c in log] == ["today"]
    text = httpx.get(
        f"{server.url}/v1/calls", params=params, headers=AUTH | {"Accept": "text/csv"}
    ).text
    assert [r["call_id"] for r in csv.DictReader(io.StringIO(text))] == ["today"]
    before = {"to": (today - timedelta(days=1)).isoformat()}
    log = httpx.get(f"{server.url}/v1/calls", params=before, headers=AUTH).json()["calls"]
    assert [c["call_id"] for c in log] == ["yesterday"]
    # a datetime `to` is still that moment
    at = {"from": day, "to": datetime.fromtimestamp(now - 1, tz).isoformat()}
    assert httpx.get(f"{server.url}/v1/calls", params=at, headers=AUTH).json()["calls"] == []
