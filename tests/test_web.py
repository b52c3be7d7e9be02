"""HTTP plumbing: the JSON every answer is written in, and headers read off the scope."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.requests import Request

from attribution.web import compact_json, header

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
