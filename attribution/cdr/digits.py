"""E.164 of a number written as plain ASCII digits, as ``phonenumbers`` reads it, faster.

PBXs write caller ids as bare digits (``2015550123``, ``79161234567``, ``+442071234567``).
``phonenumbers.parse`` spends most of its time on what such a string cannot contain:
it looks for the number inside free text, an extension, letters of a vanity number and
digits of other scripts, then builds an object that ``format_number`` reads back.  On
this machine that is 23-32 µs a number, the largest single cost of importing a CDR
whose caller has not been seen before.

:func:`plain_e164` takes ``phonenumbers``' own path for such a string and leaves out
only the steps that cannot change its result: the region's metadata, its international
and national prefixes and its possible lengths decide, through the library's own
functions.  Anything that is not ``+?[0-9]{3,17}`` with a known default region, and
the one rare branch (an unknown country code after ``+``), answers :data:`UNSURE` so the
caller asks ``phonenumbers.parse`` itself.  ``tests/test_cdr_digits.py`` checks the two
agree on numbers of every supported region, with their IDD, national prefixes and
country codes in front.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Final

import phonenumbers
from phonenumbers import phonenumberutil as _pnu
from phonenumbers.phonemetadata import PhoneMetadata

UNSURE: Final = "?"  # not decided here: ask phonenumbers.parse

_PLAIN = re.compile(r"\+?[0-9]{3,17}", re.ASCII)
_MIN_NSN = 2  # phonenumbers' _MIN_LENGTH_FOR_NSN
_MAX_NSN = 17  # phonenumbers' _MAX_LENGTH_FOR_NSN
_KEEP = (  # a national prefix is stripped unless what is left is one of these
    phonenumbers.ValidationResult.TOO_SHORT,
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    phonenumbers.ValidationResult.INVALID_LENGTH,
)
_POSSIBLE = (
    phonenumbers.ValidationResult.IS_POSSIBLE,
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
)

# phonenumbers' own steps that carry the per-region rules: private names, so a release
# that renames or changes them turns this shortcut off (see _works) rather than the import
_strip_national_prefix: Any = getattr(_pnu, "_maybe_strip_national_prefix_carrier_code", None)
_test_length: Any = getattr(_pnu, "_test_number_length", None)
_match_national: Any = getattr(_pnu, "_match_national_number", None)
_country_code_of: Any = getattr(_pnu, "_extract_country_code", None)

# (text, region, E.164) as phonenumbers reads them: one for each path of _decide
_SAMPLES = (
    ("2015550123", "US", "+12015550123"),
    ("12015550123", "US", "+12015550123"),
    ("011442071234567", "US", "+442071234567"),
    ("89161234567", "RU", "+79161234567"),
    ("+4407400123456", "GB", "+447400123456"),
    ("0612345678", "IT", "+390612345678"),
    ("123", "US", None),
)


@cache
def _works() -> bool:
    """Whether the installed phonenumbers has the steps this module calls, and they
    still read the samples as they did when it was written."""
    try:
        return all(_decide(text, region) == e164 for text, region, e164 in _SAMPLES)
    except Exception:  # a changed private function: phonenumbers.parse does all the work
        return False


@cache
def _region(region: str) -> tuple[Any, re.Pattern[str]] | None:
    """The default region's metadata and international (IDD) prefix pattern."""
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return None
    meta = PhoneMetadata.metadata_for_region(region.upper(), None)
    if meta is None:
        return None
    return meta, re.compile(meta.international_prefix or "NonMatch")


@cache
def _calling_code(cc: int) -> Any:
    """Metadata of the region a country code's numbers are read and checked by."""
    return PhoneMetadata.metadata_for_region_or_calling_code(
        cc, phonenumbers.region_code_for_country_code(cc)
    )


def plain_e164(text: str, region: str) -> str | None:
    """E.164 as ``phonenumbers`` would give it (parse, is_possible_number, format_number).

    None where ``phonenumbers`` refuses the number or finds it impossible, :data:`UNSURE`
    where this function does not decide.
    """
    if not _PLAIN.fullmatch(text) or not _works():
        return UNSURE
    return _decide(text, region)


def _decide(text: str, region: str) -> str | None:
    known = _region(region) if region else None
    if known is None:
        return UNSURE  # no default region: only "+…" parses, and that is rare enough
    meta, idd = known
    if text[0] == "+":
        digits = text[1:]
    else:
        dialled = idd.match(text)
        if dialled is None or text[dialled.end() : dialled.end() + 1] == "0":
            # no IDD in front (an IDD followed by 0 is not one: a national 0 is)
            return _national(text, region, meta)
        digits = text[dialled.end() :]
    if len(digits) <= _MIN_NSN:
        return None  # too short after the '+' or IDD
    cc, nn = _country_code_of(digits)
    if cc == 0:
        return UNSURE  # phonenumbers retries such a number once: let it
    return _finish(cc, nn, _reading(cc, region, meta))


def _reading(cc: int, region: str, meta: Any) -> Any:
    """The metadata a number with country code ``cc`` is read by: the default region's
    when ``cc`` is that region's main country, else the main country's."""
    return meta if phonenumbers.region_code_for_country_code(cc) == region else _calling_code(cc)


def _national(digits: str, region: str, meta: Any) -> str | None:
    """A number without a '+' or IDD: the default country's, perhaps with its code in front."""
    code = str(meta.country_code)
    if digits.startswith(code):
        # "the default country code, then a national number" only when that reading
        # fits the region's numbers and the whole string does not
        _, after, _ = _strip_national_prefix(digits[len(code) :], meta)
        desc = meta.general_desc
        if (
            not _match_national(digits, desc, False) and _match_national(after, desc, False)
        ) or _test_length(digits, meta) == phonenumbers.ValidationResult.TOO_LONG:
            return _finish(meta.country_code, after, _reading(meta.country_code, region, meta))
    return _finish(meta.country_code, digits, meta)


def _finish(cc: int, nn: str, meta: Any) -> str | None:
    if len(nn) < _MIN_NSN:
        return None
    _, stripped, _ = _strip_national_prefix(nn, meta)
    if _test_length(stripped, meta) not in _KEEP:
        nn = stripped
    if not _MIN_NSN <= len(nn) <= _MAX_NSN:
        return None
    if _test_length(nn, _calling_code(cc)) not in _POSSIBLE:
        return None
    return f"+{cc}{nn}"
