"""The audit's judgement of what a page shows (the browser run is in test_snippet_e2e)."""

from __future__ import annotations

from attribution.audit import inspect
from attribution.config import parse_phone

OWN = [
    p
    for p in (parse_phone("+7 (495) 700-00-00", "RU"), parse_phone("+1 (415) 555-0100", "US"))
    if p
]
TRACKING = {"+74957000000": {"4951234567"}, "+14155550100": {"4155550101"}}


def test_an_original_number_in_any_format_is_unswapped() -> None:
    found = inspect(
        [("text", "Call 8 (495) 700-00-00 now"), ("tel", "tel:+14155550100")], OWN, TRACKING
    )
    assert [(f.kind, f.number, f.where) for f in found] == [
        ("unswapped", "+74957000000", "text"),
        ("unswapped", "+14155550100", "tel"),
    ]


def test_a_half_swapped_number_is_reported() -> None:
    found = inspect([("text", "+7 (495) 123-45-67 or +7 (495) 123-00-00")], OWN, TRACKING)
    assert [(f.kind, f.seen) for f in found] == [("partial", "+7 (495) 123-00-00")]


def test_tracking_and_unrelated_numbers_are_fine() -> None:
    texts = [
        ("text", "+7 (495) 700-00-11, fax +7 (495) 700-00-99, order 84957000000123"),
        ("tel", "tel:+14155550101"),
    ]
    assert inspect(texts, OWN, TRACKING) == []
