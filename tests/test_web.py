"""HTTP plumbing: the JSON every answer is written in, and headers read off the scope."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.requests import Request

from attribution.errors import BadRequest
from attribution.web import compact_json, header, parse_json

VALUES: list[Any] = [
    {"sid": None, "numbers": [], "hold_seconds": 900, "visit": {}},
    {"text": 'Харків "центр" \\ / \n\t\u2028 😀', "n": [1, -2.5, 1e21, 0.1, True, False]},
    [{"a": {"b": [None, "", 0]}}, "x", 3],
    "just a string",
    12,
]


@pytest.mark.parametrize("value", VALUES)
def test_answers_are_the_standard_compact_json(value: Any) -> None:
    text = compact_json(value)
    assert text == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert json.loads(text) == value


def test_a_header_is_the_first_of_its_name_and_missing_is_none() -> None:
    scope = {
        "type": "http",
        "headers": [
            (b"origin", b"https://acme.example"),
            (b"user-agent", "Mozilla/5.0 (café)".encode("latin-1")),
            (b"origin", b"https://other.example"),
        ],
    }
    request = Request(scope)
    assert header(request, b"origin") == "https://acme.example"
    assert header(request, b"user-agent") == "Mozilla/5.0 (café)"
    assert header(request, b"referer") is None


BODIES = [
    b'{"site":"acme","url":"https://acme.example/"}',
    b'  {"site": "acme"}\r\n',  # whitespace around
    b'\xef\xbb\xbf{"site": "acme"}',  # a UTF-8 byte order mark
    '{"site": "acme"}'.encode("utf-16"),
    b'{"text": "\\u0425\\ud800"}',  # a lone surrogate, as JSON may carry one
    b"[1, 2]",
]


@pytest.mark.parametrize("raw", BODIES)
def test_a_body_reads_as_json_loads_reads_it(raw: bytes) -> None:
    assert parse_json(raw) == json.loads(raw)


NOT_JSON = [b"", b"{", b'{"a": 1} x', b'{"a": 1}{}', b"\xff{}", b'{"a":1}\x0b']


@pytest.mark.parametrize("raw", NOT_JSON)
def test_a_body_that_is_not_json_is_a_400_naming_it(raw: bytes) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_json(raw, "body")
    assert refused.value.status == 400 and refused.value.field == "body"
    assert "body is not valid JSON" in refused.value.detail
