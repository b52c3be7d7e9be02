"""The generic JSON CDR: field rules, times, numbers, batches and bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution.cdr import Cdr, CdrError, ParseContext, iter_file, parse, parse_generic
from attribution.cdr.generic import EXTRAS, FIELDS

SAMPLES = Path(__file__).parent / "samples" / "cdr"
RU = ParseContext("RU", ZoneInfo("Europe/Moscow"))
UA = ParseContext("UA", ZoneInfo("Europe/Kyiv"))

SPEC = {
    "call_id": "pbx-81723",
    "direction": "inbound",
    "caller": "+79161234567",
    "called": "+74957000001",
    "started_at": "2026-11-24T09:15:02Z",
    "answered_at": "2026-11-24T09:15:09Z",
    "ended_at": "2026-11-24T09:18:40Z",
    "status": "answered",
    "recording_url": "https://pbx.example/rec/81723.mp3",
}
T0 = 1795511702.0  # 2026-11-24T09:15:02Z


def rec(**changes: Any) -> dict[str, Any]:
    out = dict(SPEC)
    for key, value in changes.items():
        if value is ...:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def err(obj: Any, ctx: ParseContext = RU) -> CdrError:
    with pytest.raises(CdrError) as info:
        parse_generic(obj, ctx)
    return info.value


def test_spec_example_reads_exactly() -> None:
    assert parse_generic(SPEC, RU) == Cdr(
        call_id="pbx-81723",
        direction="inbound",
        caller="+79161234567",
        called="+74957000001",
        started_at=T0,
        answered_at=T0 + 7,
        ended_at=T0 + 218,
        status="answered",
        duration=218,
        billsec=211,
        recording_url="https://pbx.example/rec/81723.mp3",
    )


def test_minimal_record_defaults() -> None:
    cdr = parse_generic({"call_id": "x1", "called": "+74957000001", "started_at": T0}, RU)
    assert (cdr.direction, cdr.caller, cdr.status) == ("inbound", "", "missed")
    assert (cdr.answered_at, cdr.ended_at, cdr.duration, cdr.billsec) == (None, None, 0, 0)
    assert cdr.recording_url is None


@pytest.mark.parametrize(
    ("answered", "expected"), [("2026-11-24T09:15:09Z", "answered"), (None, "missed")]
)
def test_status_derived_from_answer_when_absent(answered: str | None, expected: str) -> None:
    assert parse_generic(rec(status=..., answered_at=answered), RU).status == expected


@pytest.mark.parametrize("status", ["answered", "MISSED", " Busy ", "failed"])
def test_status_case_insensitive(status: str) -> None:
    assert parse_generic(rec(status=status), RU).status == status.strip().lower()


@pytest.mark.parametrize("status", ["completed", "no-answer", "", 1, True])
def test_status_outside_the_four_is_refused(status: Any) -> None:
    assert err(rec(status=status)).field == "status"


def test_not_answered_drops_answer_time_and_billsec() -> None:
    cdr = parse_generic(rec(status="missed"), RU)
    assert cdr.answered_at is None and cdr.billsec == 0 and cdr.duration == 218


def test_unknown_field_is_refused_by_name() -> None:
    e = err(rec(answerd_at="2026-11-24T09:15:09Z"))
    assert e.field == "answerd_at" and "unknown field" in e.detail


def test_documented_extras_are_accepted() -> None:
    assert set(EXTRAS) == {"duration", "billsec", "site", "caller_name"}
    cdr = parse_generic(rec(site="acme", caller_name="Ivan Petrov", duration=218, billsec=211), RU)
    assert cdr.duration == 218 and "Ivan" not in repr(cdr)


def test_extras_fill_in_when_times_do_not_tell() -> None:
    cdr = parse_generic(
        rec(ended_at=..., answered_at=..., status="answered", duration="300", billsec=290), RU
    )
    assert (cdr.duration, cdr.billsec, cdr.ended_at) == (300, 290, None)
    # times win over the extras when both are present
    assert parse_generic(rec(duration=5, billsec=1), RU).duration == 218


@pytest.mark.parametrize("value", [-1, 1.5, "ten", True, float("inf"), [3]])
def test_bad_duration_extra(value: Any) -> None:
    assert err(rec(duration=value)).field == "duration"


@pytest.mark.parametrize(("key", "value"), [("site", 5), ("caller_name", ["x"])])
def test_bad_extra_types(key: str, value: Any) -> None:
    assert err(rec(**{key: value})).field == key


@pytest.mark.parametrize("call_id", [None, "", "   ", 81723, "x" * 129, "a\nb", ["x"]])
def test_call_id_rules(call_id: Any) -> None:
    assert err(rec(call_id=call_id)).field == "call_id"


def test_call_id_missing_and_limits() -> None:
    assert err(rec(call_id=...)).field == "call_id"
    assert parse_generic(rec(call_id="x" * 128), RU).call_id == "x" * 128
    assert parse_generic(rec(call_id="  pbx-1 "), RU).call_id == "pbx-1"


def test_direction() -> None:
    assert parse_generic(rec(direction=...), RU).direction == "inbound"
    assert parse_generic(rec(direction=None), RU).direction == "inbound"
    out = parse_generic(rec(direction="Outbound", caller="+74957000001", called="+79161234567"), RU)
    assert (out.direction, out.caller, out.called) == ("outbound", "+74957000001", "+79161234567")
    assert err(rec(direction="incoming")).field == "direction"


@pytest.mark.parametrize(
    ("raw", "ctx", "e164"),
    [
        ("8 495 700-00-01", RU, "+74957000001"),
        ("74957000001", RU, "+74957000001"),
        ("+7 (495) 700-00-01", RU, "+74957000001"),
        ("057 700 00 01", UA, "+380577000001"),
        ("0 800 300 101", UA, "+380800300101"),
        ("tel:+380577000001", UA, "+380577000001"),
        ("sip:+380577000001@trunk.example;user=phone", UA, "+380577000001"),
    ],
)
def test_called_national_and_uri_forms(raw: str, ctx: ParseContext, e164: str) -> None:
    assert parse_generic(rec(called=raw), ctx).called == e164


@pytest.mark.parametrize("called", ["123", "s", "", None, "anonymous", 74957000001, "+1"])
def test_called_that_is_not_a_possible_number(called: Any) -> None:
    assert err(rec(called=called)).field == "called"


def test_called_missing() -> None:
    assert err(rec(called=...)).field == "called"


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        ("anonymous", ""),
        ("Restricted", ""),
        ("", ""),
        ("unknown", ""),
        (None, ""),
        ("0000000000", ""),
        ("101", "101"),
        ("+7 916 123-45-67", "+79161234567"),
        ("89161234567", "+79161234567"),
        ("sip:alice@example.com", ""),
        (["x"], ""),
        ("12-34", "1234"),
    ],
)
def test_caller_is_never_refused(caller: Any, expected: str) -> None:
    assert parse_generic(rec(caller=caller), RU).caller == expected


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-24T09:15:02Z",
        "2026-11-24T12:15:02+03:00",
        "2026-11-24T09:15:02.000+00:00",
        "2026-11-24 09:15:02z",
        T0,
        int(T0),
        str(int(T0)),
        "1795511702.0",
        "20261124T091502Z",
    ],
)
def test_time_forms(value: Any) -> None:
    assert parse_generic(rec(started_at=value), RU).started_at == T0


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("2026-11-24T09:15:02", "no UTC offset"),
        ("2026-11-24", "no UTC offset"),
        ("yesterday", "not an ISO 8601"),
        ("1e9", "not an ISO 8601"),
        (1795511702000, "milliseconds"),
        (12, "before 2000"),
        (True, "boolean"),
        (float("nan"), "finite"),
        ({"t": 1}, "ISO 8601"),
    ],
)
def test_bad_times_name_the_field(value: Any, needle: str) -> None:
    for key in ("started_at", "answered_at", "ended_at"):
        e = err(rec(**{key: value}))
        assert e.field == key and needle in e.detail


def test_started_at_is_required() -> None:
    assert err(rec(started_at=...)).field == "started_at"
    assert err(rec(started_at=None)).field == "started_at"
    assert err(rec(started_at="")).field == "started_at"


def test_empty_answer_and_end_mean_absent() -> None:
    cdr = parse_generic(rec(answered_at="", ended_at="", status=...), RU)
    assert (cdr.answered_at, cdr.ended_at, cdr.status) == (None, None, "missed")


def test_times_out_of_order() -> None:
    assert err(rec(answered_at="2026-11-24T09:15:01Z")).field == "answered_at"
    assert err(rec(ended_at="2026-11-24T09:15:01Z", answered_at=...)).field == "ended_at"
    assert err(rec(ended_at="2026-11-24T09:15:05Z")).field == "ended_at"


def test_null_optional_times() -> None:
    cdr = parse_generic(rec(answered_at=None, ended_at=None, status=None), RU)
    assert (cdr.status, cdr.ended_at, cdr.duration) == ("missed", None, 0)


def test_durations_round_half_up() -> None:
    cdr = parse_generic(rec(started_at=T0, answered_at=T0 + 0.4, ended_at=T0 + 10.5), RU)
    assert (cdr.duration, cdr.billsec) == (11, 10)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://pbx.example/rec.mp3",
        "javascript:alert(1)",
        "https:///x",
        "/rec/1.mp3",
        "https://a b",
        5,
    ],
)
def test_recording_url_must_be_http(url: Any) -> None:
    assert err(rec(recording_url=url)).field == "recording_url"


def test_recording_url_optional() -> None:
    assert parse_generic(rec(recording_url=None), RU).recording_url is None
    assert (
        parse_generic(rec(recording_url="http://pbx/r.wav"), RU).recording_url == "http://pbx/r.wav"
    )


def test_record_must_be_an_object() -> None:
    assert err(["x"]).field == "record"


# ------------------------------------------------------------------ bodies


def test_samples_single_batch_and_lines_agree() -> None:
    single = parse((SAMPLES / "generic-single.json").read_bytes(), "application/json", RU)
    batch = parse((SAMPLES / "generic-batch.json").read_bytes(), "application/json", RU)
    lines = parse((SAMPLES / "generic-calls.jsonl").read_bytes(), "application/x-ndjson", RU)
    assert single == batch[:1] == [parse_generic(SPEC, RU)]
    assert batch == lines and len(batch) == 5
    assert [type(x) for x in batch] == [Cdr, Cdr, Cdr, Cdr, CdrError]
    second, third, fourth, fifth = batch[1:]
    assert isinstance(second, Cdr) and second.called == "+74957000002"
    assert second.caller == "+79167654321" and second.status == "missed"
    assert isinstance(third, Cdr) and third.direction == "outbound"
    assert third.started_at == T0 + 1498  # 12:40:00+03:00
    assert isinstance(fourth, Cdr) and fourth.status == "busy" and fourth.caller == ""
    assert isinstance(fifth, CdrError) and fifth.field == "started_at"


def test_iter_file_numbers_records() -> None:
    got = list(iter_file(SAMPLES / "generic-batch.json", RU))
    assert [n for n, _ in got] == [1, 2, 3, 4, 5]
    lines = list(iter_file(SAMPLES / "generic-calls.jsonl", RU))
    assert [n for n, _ in lines] == [1, 2, 3, 4, 5]
    assert [r for _, r in got] == [r for _, r in lines]


def test_calls_wrapper_and_json_lines_body() -> None:
    body = json.dumps({"calls": [SPEC, rec(call_id="b")]}).encode()
    assert [c.call_id for c in parse(body, "application/json", RU) if isinstance(c, Cdr)] == [
        "pbx-81723",
        "b",
    ]
    lines = b"\n".join(json.dumps(rec(call_id=f"c{i}")).encode() for i in range(3)) + b"\n"
    assert [c.call_id for c in parse(lines, "application/json", RU) if isinstance(c, Cdr)] == [
        "c0",
        "c1",
        "c2",
    ]


def test_bad_line_in_json_lines_is_one_error() -> None:
    body = json.dumps(rec(call_id="a")) + "\n{not json}\n" + json.dumps(rec(call_id="b"))
    out = parse(body.encode(), "application/x-ndjson", RU)
    assert [type(x) for x in out] == [Cdr, CdrError, Cdr]
    assert isinstance(out[1], CdrError) and out[1].field == "body"


def test_array_element_that_is_not_an_object() -> None:
    out = parse(json.dumps([SPEC, 5, "x"]).encode(), "application/json", RU)
    assert [getattr(x, "field", None) for x in out] == [None, "record", "record"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "body"),
        (b"  \n", "body"),
        (b'{"call_id": ', "body"),
        (b"5", "format"),
        (b'"just a string"', "body"),
        (b"\xff\xfe{}", "body"),
        (b"[1, 2", "body"),
    ],
)
def test_unreadable_bodies_raise(body: bytes, field: str) -> None:
    with pytest.raises(CdrError) as info:
        parse(body, "application/json" if field == "body" else "text/plain", RU)
    assert info.value.field == field


def test_bom_is_ignored() -> None:
    assert parse(b"\xef\xbb\xbf" + json.dumps(SPEC).encode(), "application/json", RU) == [
        parse_generic(SPEC, RU)
    ]


# ------------------------------------------------------------------ properties

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS + EXTRAS + ("zzz",)), _json_values, max_size=9))
def test_any_object_gives_a_cdr_or_a_cdr_error(obj: dict[str, Any]) -> None:
    try:
        cdr = parse_generic(obj, RU)
    except CdrError as exc:
        assert exc.field and exc.detail
        return
    assert cdr.direction in ("inbound", "outbound")
    assert cdr.status in ("answered", "missed", "busy", "failed")
    assert cdr.called.startswith("+") and 1 <= len(cdr.call_id) <= 128
    assert cdr.answered_at is None or cdr.status == "answered"
    assert cdr.duration >= 0 and cdr.billsec >= 0


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(946_684_800, 4_102_444_799 - 100_000),
    ring=st.integers(0, 120),
    talk=st.integers(0, 86_400),
    offset=st.integers(-12 * 60, 14 * 60),
)
def test_iso_and_epoch_agree(start: int, ring: int, talk: int, offset: int) -> None:
    from datetime import UTC, datetime, timedelta, timezone

    zone = timezone(timedelta(minutes=offset))

    def iso(t: int) -> str:
        return datetime.fromtimestamp(t, UTC).astimezone(zone).isoformat()

    a = parse_generic(
        rec(
            started_at=iso(start), answered_at=iso(start + ring), ended_at=iso(start + ring + talk)
        ),
        RU,
    )
    b = parse_generic(
        rec(started_at=start, answered_at=str(start + ring), ended_at=float(start + ring + talk)),
        RU,
    )
    assert a == b
    assert (a.duration, a.billsec) == (ring + talk, talk)
