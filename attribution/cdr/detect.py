"""Which CDR format a body (or a file's first bytes) is in.

The content type decides when it is specific: ``text/csv`` (and its aliases) is
Asterisk ``cdr_csv``; a JSON type is JSON, generic or ``mod_json_cdr`` by shape.  A form
type, ``text/plain``, ``application/octet-stream`` or none at all is only a hint, since
``curl -d`` labels everything as a form: the body's shape decides
(``{``/``[`` JSON, ``cdr=`` FreeSWITCH, ``CallSid=`` Twilio, a quoted or 16-column comma
line Asterisk).
"""

from __future__ import annotations

from .record import CdrError

FORMATS = ("json", "asterisk-csv", "freeswitch-json", "twilio")

CSV_TYPES = frozenset(
    {
        "text/csv",
        "application/csv",
        "text/comma-separated-values",
        "text/x-csv",
        "application/x-csv",
    }
)
JSON_TYPES = frozenset(
    {
        "application/json",
        "text/json",
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/json-seq",
    }
)
FS_BASE64_TYPE = "application/x-www-form-base64-encoded"

_BOM = b"\xef\xbb\xbf"
_FS_MARKERS = (b'"callflow"', b'"channel_data"', b'"core-uuid"', b'"app_log"')


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _json_kind(body: bytes) -> str:
    if b'"variables"' in body and any(m in body for m in _FS_MARKERS):
        return "freeswitch-json"
    return "json"


def _sniff(body: bytes) -> str | None:
    head = body[:65536].lstrip(_BOM + b" \t\r\n")
    first = head[:1]
    if first in (b"{", b"["):
        return _json_kind(body)
    if head.startswith(b"cdr=") or b"&cdr=" in head:
        return "freeswitch-json"
    if head.startswith(b"CallSid=") or b"&CallSid=" in head:
        return "twilio"
    line = head.split(b"\n", 1)[0]
    if first == b'"' or line.count(b",") >= 15:
        return "asterisk-csv"
    return None


def detect_format(content_type: str, body: bytes) -> str:
    """One of :data:`FORMATS`, from the content type and the body's shape.

    Raises ``CdrError("format", …)`` when neither tells.
    """
    kind = media_type(content_type)
    if kind in CSV_TYPES:
        return "asterisk-csv"
    if kind in JSON_TYPES or kind.endswith("+json"):
        return _json_kind(body)
    if kind == FS_BASE64_TYPE:
        return "freeswitch-json"
    found = _sniff(body)
    if found is None:
        shown = f"content type {kind!r}" if kind else "no content type"
        raise CdrError(
            "format",
            f"cannot tell the CDR format ({shown}); send JSON, text/csv "
            "(Asterisk cdr_csv), a mod_json_cdr post or a Twilio status "
            "callback, or name it with ?format=" + "|".join(FORMATS),
        )
    return found


def file_format(suffix: str, head: bytes) -> str:
    """The format of a file from its suffix (``.csv``, ``.json``, ``.jsonl``…) and first bytes."""
    suffix = suffix.lower()
    if suffix in (".csv", ".txt") and _sniff(head) in (None, "asterisk-csv"):
        return "asterisk-csv"
    found = _sniff(head)
    if found is None:
        if suffix in (".json", ".jsonl", ".ndjson"):
            return "json"
        raise CdrError(
            "format",
            "cannot tell the CDR format of this file; name it with --format " + "|".join(FORMATS),
        )
    return found
