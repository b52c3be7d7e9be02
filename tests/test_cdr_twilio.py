"""Twilio voice status callbacks: final and interim statuses, times, numbers, direction."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import pytest

from attribution.cdr import Cdr, CdrError, CdrIgnored, CdrNotFinal, ParseContext, parse
from attribution.cdr import parse_twilio as tw

SAMPLES = Path(__file__).parent / "samples" / "cdr"
US = ParseContext("US", ZoneInfo("America/Los_Angeles"))
END = 1795511920.0  # Tue, 24 Nov 2026 09:18:40 +0000


def form(name: str) -> dict[str, str]:
    return dict(parse_qsl((SAMPLES / name).read_text().strip(), keep_blank_values=True))


COMPLETED = form("twilio-completed.form")


def with_(**fields: str | None) -> dict[str, str]:
    out = dict(COMPLETED)
    for key, value in fields.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def err(fields: dict[str, str]) -> CdrError:
    with pytest.raises(CdrError) as info:
        tw(fields, US)
    return info.value


def test_completed_call() -> None:
    assert tw(COMPLETED, US) == Cdr(
        call_id="CA9a8b7c6d5e4f30211a2b3c4d5e6f7a8b",
        direction="inbound",
        caller="+12125550123",
        called="+14155550100",
        started_at=END - 211,
        answered_at=END - 211,
        ended_at=END,
        status="answered",
        duration=211,
        billsec=211,
        recording_url="https://api.twilio.com/2010-04-01/Accounts/"
        "AC3f1e2d3c4b5a69788796a5b4c3d2e1f0/Recordings/"
        "RE1a2b3c4d5e6f708192a3b4c5d6e7f809",
    )


def test_no_answer_from_a_withheld_number() -> None:
    cdr = tw(form("twilio-no-answer.form"), US)
    assert (cdr.status, cdr.caller, cdr.answered_at, cdr.duration) == ("missed", "", None, 0)
    assert cdr.started_at == cdr.ended_at


def test_outbound_api_busy() -> None:
    cdr = tw(form("twilio-outbound-api.form"), US)
    assert (cdr.direction, cdr.status) == ("outbound", "busy")
    assert (cdr.caller, cdr.called) == ("+14155550100", "+12125550123")


@pytest.mark.parametrize("status", ["ringing", "in-progress", "queued", "initiated", "Ringing"])
def test_interim_statuses_are_not_final(status: str) -> None:
    e = err(with_(CallStatus=status))
    assert isinstance(e, CdrNotFinal) and not isinstance(e, CdrIgnored)
    assert e.field == "CallStatus"


def test_ringing_sample() -> None:
    (res,) = parse(
        (SAMPLES / "twilio-ringing.form").read_bytes(), "application/x-www-form-urlencoded", US
    )
    assert isinstance(res, CdrNotFinal)


@pytest.mark.parametrize(
    ("status", "duration", "expected"),
    [
        ("completed", "0", "missed"),
        ("completed", None, "missed"),
        ("no-answer", "0", "missed"),
        ("canceled", None, "missed"),
        ("busy", None, "busy"),
        ("failed", None, "failed"),
        ("completed", "1", "answered"),
    ],
)
def test_final_statuses(status: str, duration: str | None, expected: str) -> None:
    cdr = tw(with_(CallStatus=status, CallDuration=duration), US)
    assert cdr.status == expected
    assert (cdr.billsec > 0) is (expected == "answered")


@pytest.mark.parametrize("status", ["", "done", "answered-machine"])
def test_unknown_status_is_a_plain_error(status: str) -> None:
    e = err(with_(CallStatus=status))
    assert type(e) is CdrError and e.field == "CallStatus"


@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        ("inbound", "inbound"),
        ("outbound-api", "outbound"),
        ("outbound-dial", "outbound"),
        ("trunking-originating", "inbound"),
        ("trunking-terminating", "outbound"),
        (None, "inbound"),
    ],
)
def test_direction(direction: str | None, expected: str) -> None:
    assert tw(with_(Direction=direction), US).direction == expected


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (None, "Timestamp"),
        ("", "Timestamp"),
        ("yesterday", "Timestamp"),
        ("Tue, 24 Nov 1970 09:18:40 +0000", "Timestamp"),
    ],
)
def test_timestamp_required_and_checked(value: str | None, field: str) -> None:
    assert err(with_(Timestamp=value)).field == field


def test_timestamp_zones() -> None:
    assert tw(with_(Timestamp="Tue, 24 Nov 2026 01:18:40 -0800"), US).ended_at == END
    assert tw(with_(Timestamp="Tue, 24 Nov 2026 09:18:40 -0000"), US).ended_at == END
    assert tw(with_(Timestamp="24 Nov 2026 09:18:40 GMT"), US).ended_at == END


def test_bad_duration() -> None:
    assert err(with_(CallDuration="2.5")).field == "CallDuration"


def test_numbers() -> None:
    assert err(with_(CallSid=None)).field == "CallSid"
    assert err(with_(To=None, Called=None)).field == "To"
    assert err(with_(To="+1")).field == "To"
    assert tw(with_(To=None), US).called == "+14155550100"  # Called
    sip = with_(To="sip:+14155550100@acme.sip.twilio.com", From="client:alice")
    cdr = tw(sip, US)
    assert (cdr.called, cdr.caller) == ("+14155550100", "")
    assert tw(with_(From=None, Caller="+12125550123"), US).caller == "+12125550123"
    assert tw(with_(From="(212) 555-0123"), US).caller == "+12125550123"


@pytest.mark.parametrize(
    "sentinel",
    ["+266696687", "+7378742833", "+86282452253", "+2562533", "+8656696", "Anonymous", ""],
)
def test_withheld_caller_ids(sentinel: str) -> None:
    assert tw(with_(From=sentinel, Caller=sentinel), US).caller == ""


def test_recording_url_must_be_http() -> None:
    assert err(with_(RecordingUrl="ftp://x/y")).field == "RecordingUrl"
    assert tw(with_(RecordingUrl=""), US).recording_url is None


def test_body_forms() -> None:
    body = (SAMPLES / "twilio-completed.form").read_bytes()
    expected = [tw(COMPLETED, US)]
    assert parse(body, "application/x-www-form-urlencoded; charset=utf-8", US) == expected
    assert parse(body, "", US) == expected
    assert parse(body, "text/plain", US, "twilio") == expected
    dup = urlencode(COMPLETED).encode() + b"&CallStatus=ringing"
    assert parse(dup, "application/x-www-form-urlencoded", US) == expected  # first wins
    import json

    assert parse(json.dumps(COMPLETED).encode(), "application/json", US, "twilio") == expected
