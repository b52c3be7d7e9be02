"""The generic JSON CDR (``POST /v1/calls`` with ``application/json``).

::

    {"call_id": "pbx-81723", "direction": "inbound", "caller": "+79161234567",
     "called": "+74957000001", "started_at": "2026-11-24T09:15:02Z",
     "answered_at": "2026-11-24T09:15:09Z", "ended_at": "2026-11-24T09:18:40Z",
     "status": "answered", "recording_url": "https://pbx.example/rec/81723.mp3"}

Required: ``call_id``, ``called``, ``started_at``.  Everything else may be absent or
null.  Unknown keys are refused (a typo such as ``"answerd_at"`` would otherwise lose
data silently), except the harmless extras in :data:`EXTRAS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .record import (
    DIRECTIONS,
    STATUSES,
    Cdr,
    CdrError,
    ParseContext,
    called_number,
    caller_number,
    check_call_id,
    check_order,
    http_url,
    instant,
    make,
    whole_seconds,
)

FIELDS = (
    "call_id",
    "direction",
    "caller",
    "called",
    "started_at",
    "answered_at",
    "ended_at",
    "status",
    "recording_url",
)

#: Accepted and not refused: ``duration``/``billsec`` (whole seconds, used only when the
#: times do not give them), ``site`` (the route may compare it with the key's site) and
#: ``caller_name`` (never stored: it is personal data).
EXTRAS = ("duration", "billsec", "site", "caller_name")

_KNOWN = frozenset(FIELDS + EXTRAS)


def parse_generic(obj: Mapping[str, Any], ctx: ParseContext) -> Cdr:
    """One generic JSON CDR object → :class:`Cdr`; :class:`CdrError` naming the field."""
    if not isinstance(obj, Mapping):
        raise CdrError("record", "each call must be a JSON object")
    for key in obj:
        if key not in _KNOWN:
            raise CdrError(str(key), "unknown field (known: " + ", ".join(FIELDS + EXTRAS) + ")")

    if "call_id" not in obj:
        raise CdrError("call_id", "is required")
    call_id = check_call_id(obj["call_id"], "call_id")

    direction = obj.get("direction")
    if direction is None:
        direction = "inbound"
    elif not isinstance(direction, str) or direction.strip().lower() not in DIRECTIONS:
        raise CdrError("direction", f"{direction!r} is not 'inbound' or 'outbound'")
    else:
        direction = direction.strip().lower()

    called = called_number(obj.get("called"), ctx, "called")
    caller = caller_number(obj.get("caller"), ctx)  # never refused: "" when unusable

    if obj.get("started_at") is None:
        raise CdrError("started_at", "is required")
    started = instant(obj["started_at"], "started_at")
    answered = _opt_time(obj, "answered_at")
    ended = _opt_time(obj, "ended_at")
    check_order(started, answered, ended, ("answered_at", "ended_at"))

    status = obj.get("status")
    if status is None:
        status = "answered" if answered is not None else "missed"
    elif not isinstance(status, str) or status.strip().lower() not in STATUSES:
        raise CdrError("status", f"{status!r} is not one of {', '.join(STATUSES)}")
    else:
        status = status.strip().lower()

    extra_duration = _opt_seconds(obj, "duration")
    extra_billsec = _opt_seconds(obj, "billsec")
    site = obj.get("site")
    if site is not None and not isinstance(site, str):
        raise CdrError("site", "must be a string")
    name = obj.get("caller_name")
    if name is not None and not isinstance(name, str):
        raise CdrError("caller_name", "must be a string")

    if ended is not None:
        duration = whole_seconds(ended - started)
    else:
        duration = extra_duration or 0
    if answered is not None and ended is not None:
        billsec = whole_seconds(ended - answered)
    else:
        billsec = extra_billsec or 0

    recording = http_url(obj.get("recording_url"), "recording_url")
    return make(
        call_id,
        direction,
        caller,
        called,
        started,
        answered,
        ended,
        status,
        duration,
        billsec,
        recording,
    )


def _opt_time(obj: Mapping[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    return instant(value, key)


def _opt_seconds(obj: Mapping[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or int(value) != value
    ):
        raise CdrError(key, "must be a whole, non-negative number of seconds")
    return int(value)
