"""The normalised call record every PBX format is read into, and the functions the formats share.

A :class:`Cdr` always satisfies these invariants, whatever format it came from:

* ``called`` is an E.164 string; ``caller`` is E.164, bare digits (an extension or a
  number ``phonenumbers`` does not find possible) or ``""`` (withheld / anonymous);
* ``started_at <= answered_at <= ended_at`` where present, all Unix seconds (UTC);
* ``answered_at`` is set and ``billsec`` is non-zero only when ``status == "answered"``;
* ``direction`` is ``"inbound"`` or ``"outbound"``; ``call_id`` is 1-128 characters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers

from .digits import UNSURE, plain_e164

DIRECTIONS = ("inbound", "outbound")
STATUSES = ("answered", "missed", "busy", "failed")
MAX_CALL_ID = 128

# Unix seconds outside [2000-01-01, 2100-01-01) are refused: a value above the upper
# bound is almost always milliseconds sent where seconds were expected.
MIN_EPOCH = 946_684_800
MAX_EPOCH = 4_102_444_800


@dataclass(frozen=True, slots=True)
class Cdr:
    call_id: str
    direction: str  # "inbound" | "outbound"
    caller: str  # E.164, bare digits, or "" when withheld
    called: str  # E.164
    started_at: float  # Unix seconds (UTC)
    answered_at: float | None
    ended_at: float | None
    status: str  # "answered" | "missed" | "busy" | "failed"
    duration: int  # seconds from start to end (0 if unknown)
    billsec: int  # talk seconds (answered to end), 0 if not answered
    recording_url: str | None


class CdrError(ValueError):
    """A record the server refuses; ``field`` names the offending field."""

    field: str
    detail: str

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(field, detail)
        self.field = field
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.field}: {self.detail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.field!r}, {self.detail!r})"

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, CdrError)
            and (other.field, other.detail) == (self.field, self.detail)
        )

    def __hash__(self) -> int:
        return hash((type(self), self.field, self.detail))


class CdrNotFinal(CdrError):
    """A well-formed record with no finished call to store: acknowledge it, store nothing.

    Raised for interim Twilio statuses (``ringing``, ``in-progress``…); a later
    callback carries the final one.
    """


class CdrIgnored(CdrNotFinal):
    """A finished record that is not a call to track: acknowledge it, store nothing.

    The second (B) leg of a bridged FreeSWITCH call (its A leg carries the call) and
    internal extension-to-extension calls.  A subclass of :class:`CdrNotFinal` so code
    that acknowledges interim records acknowledges these too.
    """


@dataclass(frozen=True, slots=True)
class ParseContext:
    country: str  # ISO region for national numbers, e.g. "UA", "RU", "US"
    timezone: ZoneInfo  # for Asterisk local times
    asterisk_called: str = "dst"  # the cdr_csv column that holds the dialled DID


# ------------------------------------------------------------------ phone numbers

ANONYMOUS = frozenset(
    {
        "",
        "anonymous",
        "restricted",
        "unknown",
        "unavailable",
        "private",
        "withheld",
        "blocked",
        "unknown caller",
        "no caller id",
        "null",
        "none",
        "-",
    }
)

_DIGITS = frozenset("0123456789")


def _strip_uri(raw: str) -> str:
    """``sip:+7495…@host;user=phone`` / ``tel:+7495…;ext=1`` → the user part."""
    text = raw.strip()
    low = text[:5].lower()
    if low.startswith(("sip:", "sips:", "tel:")):
        text = text.split(":", 1)[1]
        text = text.split("@", 1)[0].split(";", 1)[0]
    return text.strip()


@lru_cache(maxsize=1 << 16)
def e164(raw: str, country: str) -> str | None:
    """E.164 when ``phonenumbers`` reads ``raw`` as a possible number, else None.

    National forms are read with ``country``; ``sip:``/``tel:`` URIs give their user part.
    Cached per (raw string, country): PBX exports repeat the same numbers endlessly.
    Plain digits take ``phonenumbers``' own way without its free-text steps (``digits``).
    """
    text = _strip_uri(raw)
    if not text or len(text) > 64:
        return None
    fast = plain_e164(text, country)
    if fast != UNSURE:
        return fast
    try:
        num = phonenumbers.parse(text, country or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def called_number(raw: Any, ctx: ParseContext, field: str) -> str:
    """The dialled number as E.164; a :class:`CdrError` naming ``field`` if it is not one."""
    if not isinstance(raw, str) or not raw.strip():
        raise CdrError(field, "the called number is missing")
    out = e164(raw, ctx.country)
    if out is None:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise CdrError(
            field,
            f"{shown!r} is not a possible phone number"
            f" (national numbers are read as {ctx.country or 'international'})",
        )
    return out


@lru_cache(maxsize=1 << 16)
def _caller(raw: str, country: str) -> str:
    text = raw.strip()
    if text.lower() in ANONYMOUS:
        return ""
    digits = "".join(c for c in text if c in _DIGITS)
    if not digits or not digits.strip("0"):  # "0000000000" is FreeSWITCH's "no caller id"
        return ""
    return e164(text, country) or digits


def caller_number(raw: Any, ctx: ParseContext) -> str:
    """The calling number: E.164 when possible, else its bare digits, ``""`` when withheld.

    Never raises: a call from an odd caller id is still a call.
    """
    if raw is None:
        return ""
    if not isinstance(raw, str):
        if isinstance(raw, bool) or not isinstance(raw, int):
            return ""
        raw = str(raw)
    return _caller(raw, ctx.country)


def clid_number(clid: str) -> str:
    """``"Ivan Petrov" <79161234567>`` → ``79161234567``; a bare number is returned as is."""
    lt = clid.rfind("<")
    if lt >= 0:
        gt = clid.find(">", lt)
        return clid[lt + 1 : gt if gt > lt else len(clid)].strip()
    return clid.strip()


# ------------------------------------------------------------------ times


def epoch_seconds(value: float, field: str) -> float:
    """Checks a Unix time is finite and plausible (years 2000-2099)."""
    if not math.isfinite(value):
        raise CdrError(field, "must be a finite number of Unix seconds")
    if value >= MAX_EPOCH:
        hint = " (it looks like milliseconds; send seconds)" if value >= 1e11 else ""
        raise CdrError(field, f"{value!r} is after 2100{hint}")
    if value < MIN_EPOCH:
        raise CdrError(field, f"{value!r} is before 2000; Unix seconds expected")
    return float(value)


def _is_decimal(text: str) -> bool:
    head, dot, tail = text.partition(".")
    if head.startswith(("-", "+")):
        head = head[1:]
    return ((head.isascii() and head.isdigit()) or (not head and bool(tail))) and (
        not dot or not tail or (tail.isascii() and tail.isdigit())
    )


def instant(value: Any, field: str) -> float:
    """ISO 8601 with an offset (``Z``, ``+03:00``) or Unix seconds → Unix seconds.

    An ISO time without an offset is refused: guessing the zone would silently move
    the call by hours and match it to the wrong visitor.
    """
    if isinstance(value, bool):
        raise CdrError(field, "must be an ISO 8601 time or Unix seconds, not a boolean")
    if isinstance(value, int | float):
        return epoch_seconds(float(value), field)
    if not isinstance(value, str):
        raise CdrError(field, f"must be an ISO 8601 time or Unix seconds, got {value!r}")
    text = value.strip()
    if not text:
        raise CdrError(field, "is empty")
    if _is_decimal(text):
        return epoch_seconds(float(text), field)
    iso = text[:-1] + "+00:00" if text[-1:] in "zZ" else text
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        raise CdrError(field, f"{value!r} is not an ISO 8601 time or Unix seconds") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise CdrError(field, f"{value!r} has no UTC offset; add 'Z' or e.g. '+03:00'")
    return epoch_seconds(when.timestamp(), field)


def whole_seconds(seconds: float) -> int:
    """A non-negative span rounded half up to whole seconds."""
    return int(seconds + 0.5) if seconds > 0 else 0


def check_order(
    started: float, answered: float | None, ended: float | None, names: tuple[str, str]
) -> None:
    """Refuses answer/end times before the start (``names`` = answer and end field names)."""
    if answered is not None and answered < started:
        raise CdrError(names[0], "is before the call started")
    if ended is not None:
        if ended < started:
            raise CdrError(names[1], "is before the call started")
        if answered is not None and ended < answered:
            raise CdrError(names[1], "is before the call was answered")


def check_call_id(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise CdrError(field, "must be a string")
    text = value.strip()
    if not text:
        raise CdrError(field, "is empty")
    if len(text) > MAX_CALL_ID:
        raise CdrError(field, f"is longer than {MAX_CALL_ID} characters")
    if not text.isprintable():
        raise CdrError(field, "contains control characters")
    return text


def http_url(value: Any, field: str) -> str | None:
    """An http(s) URL, or None for null/empty."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise CdrError(field, "must be an http(s) URL string")
    text = value.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or rest[0] in "/?#":
        raise CdrError(field, f"{value!r} is not an http(s) URL")
    if len(text) > 2048 or not text.isprintable() or " " in text:
        raise CdrError(field, "is not a usable URL (too long, spaces or control characters)")
    return text


def make(
    call_id: str,
    direction: str,
    caller: str,
    called: str,
    started: float,
    answered: float | None,
    ended: float | None,
    status: str,
    duration: int,
    billsec: int,
    recording_url: str | None,
) -> Cdr:
    """Builds a :class:`Cdr`, enforcing the answered-only fields invariant."""
    if status != "answered":
        answered, billsec = None, 0
    return Cdr(
        call_id,
        direction,
        caller,
        called,
        started,
        answered,
        ended,
        status,
        max(0, duration),
        max(0, billsec),
        recording_url,
    )
