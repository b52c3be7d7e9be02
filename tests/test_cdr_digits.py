"""Plain-digit caller ids get exactly the E.164 that ``phonenumbers`` gives them."""

from __future__ import annotations

import random
from zoneinfo import ZoneInfo

import phonenumbers
import pytest

from attribution.cdr.digits import UNSURE, plain_e164
from attribution.cdr.record import ParseContext, caller_number, e164


def reference(text: str, region: str) -> str | None:
    """What phonenumbers itself answers: parse, possible, E.164."""
    try:
        num = phonenumbers.parse(text, region or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def _written_forms(region: str, rng: random.Random) -> list[str]:
    """Ways a PBX writes numbers of (or dialled from) a region: bare national numbers,
    with the national prefix, the country code, '+', an IDD, another country's code."""
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    assert meta is not None
    cc = str(meta.country_code)
    idds = [meta.preferred_international_prefix or "", "00", "011", "810", "8"]
    prefixes = [meta.national_prefix or "", "0", "1", "8"]
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    examples = [
        phonenumbers.national_significant_number(ex)
        for kind in (
            phonenumbers.PhoneNumberType.FIXED_LINE,
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.TOLL_FREE,
        )
        if (ex := phonenumbers.example_number_for_type(region, kind))
    ]
    out = []
    for _ in range(60):
        if examples and rng.random() < 0.6:
            body = rng.choice(examples)
            if rng.random() < 0.5:  # a shorter or longer number of the same shape
                body = body[: rng.randrange(1, len(body) + 1)]
                body += "".join(rng.choice("0123456789") for _ in range(rng.randrange(4)))
        else:
            body = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 16)))
        code = str(rng.choice(codes)) if rng.random() < 0.3 else cc
        prefix = rng.choice(
            [
                "",
                rng.choice(prefixes),
                code,
                "+" + code,
                rng.choice(idds) + code,
                rng.choice(idds),
                code + rng.choice(prefixes),
                "+" + code + rng.choice(prefixes),
            ]
        )
        out.append(prefix + body)
    return out


def test_every_region_reads_plain_digits_as_phonenumbers_does() -> None:
    rng = random.Random(2026)
    decided = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for text in _written_forms(region, rng):
            got = plain_e164(text, region)
            if got == UNSURE:
                continue
            decided += 1
            assert got == reference(text, region), (region, text)
    assert decided > 10_000  # the sweep really compared (most forms are decided here)


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("2015550123", "US", "+12015550123"),  # a US trunk's bare national number
        ("12015550123", "US", "+12015550123"),  # with the country code, no '+'
        ("01144 2071234567".replace(" ", ""), "US", "+442071234567"),  # dialled via IDD
        ("89161234567", "RU", "+79161234567"),  # Russian trunk prefix 8
        ("79161234567", "RU", "+79161234567"),
        ("07400123456", "GB", "+447400123456"),  # national prefix 0
        ("+4407400123456", "GB", "+447400123456"),  # '+', code, and the 0 anyway
        ("+390612345678", "IT", "+390612345678"),  # Italy keeps its leading 0
        ("0612345678", "IT", "+390612345678"),
        ("5550123", "US", "+15550123"),  # 7 digits: possible only locally, still read
        ("12", "US", UNSURE),  # too short to be plain here: phonenumbers decides
        ("201-555-0123", "US", UNSURE),  # punctuation: phonenumbers decides
        ("2015550123", "", UNSURE),  # no default region
        ("+9991234567", "US", UNSURE),  # unknown country code: phonenumbers retries
    ],
)
def test_common_shapes(text: str, region: str, expected: str | None) -> None:
    assert plain_e164(text, region) == expected
    if expected != UNSURE:
        assert expected == reference(text, region)


def test_impossible_numbers_are_refused_like_phonenumbers_refuses_them() -> None:
    for text in ("123", "+100", "99999999999999999", "0000"):
        assert plain_e164(text, "US") == reference(text, "US")


def test_callers_read_through_the_fast_way_match_phonenumbers() -> None:
    ctx = ParseContext(country="US", timezone=ZoneInfo("America/New_York"))
    rng = random.Random(7)
    for _ in range(2000):
        raw = f"{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        assert caller_number(raw, ctx) == reference(raw, "US")
    # the slow way still serves whatever is not plain digits
    assert e164("tel:+1-201-555-0123", "US") == "+12015550123"
    assert caller_number("(201) 555-0123", ctx) == "+12015550123"


def test_a_phonenumbers_without_the_private_steps_leaves_it_all_to_phonenumbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from attribution.cdr import digits

    monkeypatch.setattr(digits, "_test_length", None)
    digits._works.cache_clear()
    try:
        assert not digits._works()
        assert plain_e164("2015550123", "US") == UNSURE
        assert e164.__wrapped__("2015550123", "US") == "+12015550123"  # the slow way
    finally:
        monkeypatch.undo()
        digits._works.cache_clear()
    assert plain_e164("2015550123", "US") == "+12015550123"
