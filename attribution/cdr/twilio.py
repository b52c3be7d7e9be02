"""Twilio voice status callbacks (``application/x-www-form-urlencoded``).

Twilio posts ``CallSid``, ``From``, ``To``, ``CallStatus``, ``Direction`` and, once the
call is over, ``CallDuration``; with status callback events it adds ``Timestamp``
(RFC 2822, the moment of the event), ``CallbackSource`` and ``SequenceNumber``;
``RecordingUrl`` when the call was recorded.

Only a final status makes a call: ``completed`` (answered when ``CallDuration`` > 0,
else missed), ``no-answer`` and ``canceled`` (missed), ``busy``, ``failed``.
``queued``, ``initiated``, ``ringing`` and ``in-progress`` are :class:`CdrNotFinal`.

A status callback has no start time, only the event's ``Timestamp``: the call ended
then, was answered ``CallDuration`` seconds before (Twilio counts duration from the
answer), and is taken to have started at the answer; an unanswered call is taken to
have started and ended at ``Timestamp``.  ``Timestamp`` is required.

``Direction``: ``inbound`` and ``trunking-originating`` are inbound; ``outbound-api``,
``outbound-dial`` and ``trunking-terminating`` are outbound.  A withheld caller id
(Twilio's ``Anonymous``, or the keypad spellings ``+266696687`` ANONYMOUS,
``+7378742833`` RESTRICTED, ``+86282452253`` UNAVAILABLE, ``+2562533`` BLOCKED,
``+8656696`` UNKNOWN) becomes an empty caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime

from .record import (
    Cdr,
    CdrError,
    CdrNotFinal,
    ParseContext,
    called_number,
    caller_number,
    check_call_id,
    epoch_seconds,
    http_url,
    make,
)

FINAL = {
    "completed": "answered",
    "no-answer": "missed",
    "canceled": "missed",
    "busy": "busy",
    "failed": "failed",
}
INTERIM = frozenset({"queued", "initiated", "ringing", "in-progress", "answered"})
WITHHELD = frozenset(
    {
        "+266696687",
        "+7378742833",
        "+86282452253",
        "+2562533",
        "+8656696",
        "266696687",
        "7378742833",
        "86282452253",
        "2562533",
        "8656696",
    }
)


def parse_twilio(form: Mapping[str, str], ctx: ParseContext) -> Cdr:
    """One status callback's form fields → :class:`Cdr`; errors name the parameter."""
    call_id = check_call_id(form.get("CallSid", ""), "CallSid")

    raw_status = (form.get("CallStatus") or "").strip().lower()
    if raw_status in INTERIM:
        raise CdrNotFinal(
            "CallStatus", f"{raw_status!r} is not a final status; the call is still going"
        )
    status = FINAL.get(raw_status)
    if status is None:
        raise CdrError("CallStatus", f"{raw_status or '(empty)'!r} is not a Twilio call status")

    direction_text = (form.get("Direction") or "inbound").strip().lower()
    outbound = direction_text.startswith("outbound") or direction_text == "trunking-terminating"

    to_field = "To" if form.get("To") else "Called"
    called = called_number(form.get(to_field, ""), ctx, "To")
    raw_from = (form.get("From") or form.get("Caller") or "").strip()
    caller = "" if raw_from in WITHHELD else caller_number(raw_from, ctx)

    stamp = (form.get("Timestamp") or "").strip()
    if not stamp:
        raise CdrError(
            "Timestamp",
            "missing; subscribe the status callback to its events "
            "(statusCallbackEvent) so Twilio sends it",
        )
    try:
        when = parsedate_to_datetime(stamp)
    except (TypeError, ValueError, IndexError):
        raise CdrError("Timestamp", f"{stamp!r} is not an RFC 2822 date") from None
    if when.tzinfo is None:  # RFC 2822 "-0000": UTC, local offset unknown
        ended = epoch_seconds(when.replace(tzinfo=UTC).timestamp(), "Timestamp")
    else:
        ended = epoch_seconds(when.timestamp(), "Timestamp")

    raw_duration = (form.get("CallDuration") or "").strip()
    if raw_duration:
        if not (raw_duration.isascii() and raw_duration.isdigit()):
            raise CdrError("CallDuration", f"{raw_duration!r} is not a whole number of seconds")
        duration = int(raw_duration)
    else:
        duration = 0
    if status == "answered" and duration == 0:
        status = "missed"

    answered: float | None = None
    if status == "answered":
        started = answered = ended - duration
    else:
        started, duration = ended, 0

    recording = http_url(form.get("RecordingUrl") or None, "RecordingUrl")
    return make(
        call_id,
        "outbound" if outbound else "inbound",
        caller,
        called,
        started,
        answered,
        ended,
        status,
        duration,
        duration,
        recording,
    )
