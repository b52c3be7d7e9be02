"""Format detection, the public surface of attribution.cdr, and the JSON stream reader."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import io
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import attribution.cdr as cdr_pkg
from attribution.cdr import (
    FORMATS,
    Cdr,
    CdrError,
    CdrIgnored,
    CdrNotFinal,
    ParseContext,
    detect_format,
    iter_file,
    parse,
)
from attribution.cdr import _iter_json as iter_json
from attribution.cdr.detect import file_format

SAMPLES = Path(__file__).parent / "samples" / "cdr"
RU = ParseContext("RU", ZoneInfo("Europe/Moscow"))
UA = ParseContext("UA", ZoneInfo("Europe/Kyiv"))


def body(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


# ------------------------------------------------------------------ detection


@pytest.mark.parametrize(
    ("ctype", "name", "expected"),
    [
        ("text/csv", "asterisk-master-16.csv", "asterisk-csv"),
        ("text/csv; charset=utf-8", "generic-single.json", "asterisk-csv"),  # the type decides
        ("application/csv", "asterisk-master-18.csv", "asterisk-csv"),
        ("text/plain", "asterisk-master-16.csv", "asterisk-csv"),
        ("", "asterisk-header.csv", "asterisk-csv"),
        ("application/json", "generic-single.json", "json"),
        ("application/json; charset=UTF-8", "generic-batch.json", "json"),
        ("application/x-ndjson", "generic-calls.jsonl", "json"),
        ("application/vnd.pbx+json", "generic-single.json", "json"),
        ("application/json", "freeswitch-answered.cdr.json", "freeswitch-json"),
        ("", "freeswitch-missed-plain.cdr.json", "freeswitch-json"),
        ("application/x-www-form-urlencoded", "twilio-completed.form", "twilio"),
        ("", "twilio-ringing.form", "twilio"),
        ("application/x-www-form-urlencoded", "generic-single.json", "json"),  # curl -d
        ("application/octet-stream", "asterisk-master-21.csv", "asterisk-csv"),
    ],
)
def test_detect(ctype: str, name: str, expected: str) -> None:
    assert detect_format(ctype, body(name)) == expected


def test_detect_freeswitch_forms() -> None:
    assert detect_format("application/x-www-form-urlencoded", b"cdr=%7B%7D") == "freeswitch-json"
    assert detect_format("application/x-www-form-base64-encoded", b"cdr=e30=") == "freeswitch-json"


@pytest.mark.parametrize(
    ("ctype", "data"),
    [
        ("application/octet-stream", b"hello"),
        ("", b"a=b&c=d"),
        ("application/x-www-form-urlencoded", b"From=%2B1&To=%2B2"),
        ("text/plain", b"1,2,3"),
    ],
)
def test_undetectable(ctype: str, data: bytes) -> None:
    with pytest.raises(CdrError) as info:
        detect_format(ctype, data)
    assert info.value.field == "format" and "format=" in info.value.detail


def test_forced_format_must_be_known() -> None:
    with pytest.raises(CdrError) as info:
        parse(body("generic-single.json"), "application/json", RU, "xml")
    assert info.value.field == "format"
    with pytest.raises(CdrError):
        list(iter_file(SAMPLES / "generic-single.json", RU, "xml"))


def test_mixed_json_batch_is_read_record_by_record() -> None:
    mixed = json.dumps(
        [json.loads(body("generic-single.json")), json.loads(body("freeswitch-answered.cdr.json"))]
    ).encode()
    out = parse(mixed, "application/json", UA)
    assert [type(x) for x in out] == [Cdr, Cdr]
    assert [x.call_id for x in out if isinstance(x, Cdr)] == [
        "pbx-81723",
        "4f3b2a1c-5d6e-4f70-8a9b-0c1d2e3f4a5b",
    ]


@pytest.mark.parametrize(
    ("suffix", "head", "expected"),
    [
        (".csv", b'"","1","2"', "asterisk-csv"),
        (".CSV", b"", "asterisk-csv"),
        (".json", b"", "json"),
        (".jsonl", b'{"call_id": 1}', "json"),
        ("", b"[{}]", "json"),
        (".txt", b"CallSid=CA1&CallStatus=busy", "twilio"),
        (".csv", b"[{}]", "json"),
    ],
)
def test_file_format(suffix: str, head: bytes, expected: str) -> None:
    assert file_format(suffix, head) == expected


def test_iter_file_unknown_format_raises_before_yielding() -> None:
    with pytest.raises(CdrError) as info:
        list(iter_file(io.BytesIO(b"just some words\n"), RU))
    assert info.value.field == "format"


def test_iter_file_needs_binary() -> None:
    with pytest.raises(TypeError):
        list(iter_file(io.StringIO("x"), RU))  # type: ignore[arg-type]


def test_iter_file_accepts_paths_strings_and_handles(tmp_path: Path) -> None:
    target = tmp_path / "calls"  # no suffix: sniffed
    target.write_bytes(body("asterisk-master-16.csv"))
    a = list(iter_file(target, RU))
    b = list(iter_file(str(target), RU))
    with target.open("rb") as fh:
        c = list(iter_file(fh, RU))
        assert not fh.closed
    assert a == b == c and len(a) == 8


def test_twilio_lines_file(tmp_path: Path) -> None:
    target = tmp_path / "callbacks.txt"
    target.write_bytes(body("twilio-completed.form") + b"\n" + body("twilio-ringing.form"))
    got = list(iter_file(target, ParseContext("US", ZoneInfo("UTC"))))
    assert [n for n, _ in got] == [1, 3]
    assert isinstance(got[0][1], Cdr) and isinstance(got[1][1], CdrNotFinal)


# ------------------------------------------------------------------ public surface


def test_formats_and_exports() -> None:
    assert FORMATS == ("json", "asterisk-csv", "freeswitch-json", "twilio")
    for name in cdr_pkg.__all__:
        assert hasattr(cdr_pkg, name)


def test_signatures() -> None:
    def params(fn: Any) -> list[str]:
        return list(inspect.signature(fn).parameters)

    assert params(cdr_pkg.detect_format) == ["content_type", "body"]
    assert params(cdr_pkg.parse) == ["body", "content_type", "ctx", "fmt"]
    assert params(cdr_pkg.iter_file) == ["source", "ctx", "fmt"]
    assert params(cdr_pkg.parse_generic) == ["obj", "ctx"]
    assert params(cdr_pkg.parse_asterisk_row)[:2] == ["row", "ctx"]
    assert params(cdr_pkg.parse_freeswitch) == ["obj", "ctx"]
    assert params(cdr_pkg.parse_twilio) == ["form", "ctx"]
    assert [f.name for f in dataclasses.fields(Cdr)] == [
        "call_id",
        "direction",
        "caller",
        "called",
        "started_at",
        "answered_at",
        "ended_at",
        "status",
        "duration",
        "billsec",
        "recording_url",
    ]
    assert [f.name for f in dataclasses.fields(ParseContext)] == [
        "country",
        "timezone",
        "asterisk_called",
    ]
    assert ParseContext("UA", ZoneInfo("UTC")).asterisk_called == "dst"


def test_records_are_frozen_and_slotted() -> None:
    (cdr,) = parse(body("generic-single.json"), "application/json", RU)
    assert isinstance(cdr, Cdr)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cdr.status = "missed"  # type: ignore[misc]
    assert not hasattr(cdr, "__dict__")
    assert dataclasses.replace(cdr, status="busy").status == "busy"


def test_error_classes() -> None:
    e = CdrError("called", "'123' is not a possible phone number")
    assert isinstance(e, ValueError)
    assert (e.field, e.detail, str(e)) == ("called", e.detail, f"called: {e.detail}")
    assert copy.deepcopy(e) == e
    assert e != CdrNotFinal("called", e.detail)
    assert issubclass(CdrNotFinal, CdrError) and issubclass(CdrIgnored, CdrNotFinal)
    n = copy.deepcopy(CdrNotFinal("CallStatus", "ringing"))
    assert type(n) is CdrNotFinal and n.field == "CallStatus"
    assert "CdrIgnored('leg'" in repr(CdrIgnored("leg", "b leg"))


# ------------------------------------------------------------------ the JSON stream reader


def chunked(text: str, size: int) -> Any:
    parts = iter([text[i : i + size] for i in range(0, len(text), size)])
    return lambda: next(parts, "")


def values(text: str, size: int = 7) -> list[tuple[int, Any]]:
    return [
        (n, v if not isinstance(v, CdrError) else ("error", v.field))
        for n, v in iter_json(chunked(text, size), None)
    ]


def test_stream_array_and_lines() -> None:
    assert values('  [ {"a": 1} ,{"b": [2, 3]}, 45, "x" ]  ') == [
        (1, {"a": 1}),
        (2, {"b": [2, 3]}),
        (3, 45),
        (4, "x"),
    ]
    assert values('{"a": 1}\n\n{"b":\n 2}\n{"c": 3}') == [
        (1, {"a": 1}),
        (3, {"b": 2}),
        (5, {"c": 3}),
    ]
    assert values("[]") == [] and values("") == [] and values("  \n ") == []
    assert values('{"calls": [{"a": 1}, {"a": 2}]}') == [(1, {"a": 1}), (2, {"a": 2})]
    assert values("12345678901234", 3) == [(1, 12345678901234)]


def test_stream_errors() -> None:
    assert values('[{"a": 1}, {"b": }, {"c": 3}]') == [(1, {"a": 1}), (2, ("error", "body"))]
    assert values('[{"a": 1}') == [(1, {"a": 1}), (2, ("error", "body"))]
    assert values('[{"a": 1} {"b": 2}]') == [(1, {"a": 1}), (2, ("error", "body"))]
    assert values('[{"a": 1}] x') == [(1, {"a": 1}), (2, ("error", "body"))]
    assert values('{"a": 1}\n{"b": oops}\n  "stray"\n{"c": 3}\n') == [
        (1, {"a": 1}),
        (2, ("error", "body")),
        (4, {"c": 3}),
    ]
    assert values('{"a": 1}\n{"b": ') == [(1, {"a": 1}), (2, ("error", "body"))]


@settings(max_examples=150, deadline=None)
@given(
    records=st.lists(
        st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=6), max_size=3),
        max_size=6,
    ),
    size=st.integers(1, 40),
    as_array=st.booleans(),
)
def test_stream_matches_whole_parse(
    records: list[dict[str, Any]], size: int, as_array: bool
) -> None:
    if as_array:
        text = json.dumps(records, indent=1)
    else:
        text = "\n".join(json.dumps(r) for r in records)
    got = [v for _, v in iter_json(chunked(text, size), None)]
    assert got == [
        r for r in records if not (not as_array and "calls" in r and isinstance(r["calls"], list))
    ]


def test_iter_file_streams_a_large_json_array() -> None:
    one = json.loads(body("generic-single.json"))
    data = (
        "[" + ",\n".join(json.dumps(dict(one, call_id=f"c{i}")) for i in range(30_000)) + "]"
    ).encode()

    class Counting(io.BytesIO):
        taken = 0

        def read(self, n: int | None = -1) -> bytes:
            out = super().read(n)
            Counting.taken += len(out)
            return out

    src = Counting(data)
    it = iter_file(src, RU)
    n, first = next(it)
    assert n == 1 and isinstance(first, Cdr) and first.call_id == "c0"
    assert Counting.taken < 3_000_000 < len(data)
    assert sum(1 for _ in it) == 29_999
