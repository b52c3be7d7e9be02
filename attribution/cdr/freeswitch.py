"""FreeSWITCH ``mod_json_cdr`` records.

The module posts one JSON object per call leg: ``variables`` (channel variables, all
strings, URL-encoded unless ``encode-values`` is false), ``callflow`` (one caller
profile per dialplan pass, newest first, the original one with ``profile_index`` 1;
older FreeSWITCH wrote a single object, or repeated the ``callflow`` key),
``channel_data``, ``app_log`` and ``core-uuid`` (the switch's id, not the call's).
With ``encode`` set the body is ``cdr=<url-encoded JSON>`` (or base64 with
``encode=base64``); :func:`decode_body` undoes that.

Field by field:

* ``call_id``: ``variables.uuid``, else the top-level ``uuid``, else the caller
  profile's ``uuid``; failing all three, ``fs-`` and a hash of ``core-uuid``, start
  time and numbers (``core-uuid`` alone names the switch and would merge every call).
* ``called``: the *original* caller profile's ``destination_number`` (the DID the
  carrier delivered, before any transfer), else ``variables.destination_number``,
  ``sip_req_user``, ``sip_to_user``.
* ``caller``: ``variables.caller_id_number``, else the original profile's
  ``caller_id_number`` / ``ani``, ``sip_from_user``, the number in ``caller_id``.
* ``direction``: ``call_direction`` (set by FusionPBX and others: the call's logical
  direction) before ``direction`` (the leg's direction seen from the switch);
  ``local`` calls (extension to extension) are :class:`CdrIgnored`.
* times: ``start_epoch`` / ``answer_epoch`` (``0`` when unanswered) / ``end_epoch``,
  falling back to the ``*_uepoch`` microsecond forms and the callflow ``times``.
* ``status``: answered when ``answer_epoch`` > 0 or ``billsec`` > 0; otherwise by
  ``hangup_cause``: ``USER_BUSY`` busy; ``NO_ANSWER``, ``ORIGINATOR_CANCEL``,
  ``NO_USER_RESPONSE``, ``ALLOTTED_TIMEOUT`` missed; anything else failed.
* ``recording_url``: a ``recording_url`` channel variable, when it is http(s).

A B leg (a caller profile with an ``originator``: the switch dialled it for another
leg, whose own record carries the call) is :class:`CdrIgnored`; ``mod_json_cdr`` logs
B legs unless ``log-b-leg`` is false.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote

from .record import (
    Cdr,
    CdrError,
    CdrIgnored,
    ParseContext,
    called_number,
    caller_number,
    check_call_id,
    check_order,
    clid_number,
    e164,
    epoch_seconds,
    http_url,
    make,
    whole_seconds,
)

MISSED_CAUSES = frozenset(
    {"NO_ANSWER", "ORIGINATOR_CANCEL", "NO_USER_RESPONSE", "ALLOTTED_TIMEOUT"}
)
BUSY_CAUSES = frozenset({"USER_BUSY"})


class _Vars:
    """``variables`` with values URL-decoded on read (plain values pass unchanged)."""

    __slots__ = ("raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def get(self, name: str) -> str:
        value = self.raw.get(name)
        if value is None or isinstance(value, dict | list | bool):
            return ""
        text = value if isinstance(value, str) else str(value)
        return unquote(text).strip() if "%" in text else text.strip()


def _profiles(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Caller profiles from ``callflow``, oldest (the original leg) first.

    ``profile_index`` orders them when present; without it, the switch's own order
    (newest first) is reversed.
    """
    flow = obj.get("callflow")
    items = flow if isinstance(flow, list) else [flow]
    flows: list[Mapping[str, Any]] = [f for f in items if isinstance(f, dict)]
    if not any("profile_index" in f for f in flows):
        return flows[::-1]

    def index(f: Mapping[str, Any]) -> int:
        try:
            return int(str(f.get("profile_index", "")))
        except ValueError:
            return 1 << 30

    return sorted(flows, key=index)


def object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json`` hook that keeps every value of a repeated ``callflow`` key, in order
    (older FreeSWITCH wrote one ``callflow`` key per caller profile)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key == "callflow" and key in out:
            prev = out[key]
            out[key] = [*(prev if isinstance(prev, list) else [prev]), value]
        else:
            out[key] = value
    return out


def _profile_field(profile: Mapping[str, Any], name: str) -> str:
    cp = profile.get("caller_profile")
    if not isinstance(cp, dict):
        return ""
    value = cp.get(name)
    if not isinstance(value, str | int) or isinstance(value, bool):
        return ""
    text = str(value)
    return unquote(text).strip() if "%" in text else text.strip()


def _epoch(
    v: _Vars, name: str, profile_time: str | None, flows: list[Mapping[str, Any]]
) -> float | None:
    """``<name>_epoch`` → seconds; 0/absent → ``<name>_uepoch`` → callflow time → None."""
    text = v.get(f"{name}_epoch")
    if text:
        try:
            value = int(text)
        except ValueError:
            raise CdrError(f"{name}_epoch", f"{text!r} is not Unix seconds") from None
        if value > 0:
            return epoch_seconds(value, f"{name}_epoch")
        if text.strip("0") == "" and name != "start":
            return None  # "0": it did not happen (no answer)
    micro = v.get(f"{name}_uepoch")
    if micro and micro.isdigit() and int(micro) > 0:
        return epoch_seconds(int(micro) / 1e6, f"{name}_uepoch")
    if profile_time:
        for f in flows:
            times = f.get("times")
            if isinstance(times, dict):
                raw = str(times.get(profile_time, "") or "")
                if raw.isdigit() and int(raw) > 0:
                    return epoch_seconds(int(raw) / 1e6, f"{name}_epoch")
    return None


def _int(v: _Vars, name: str) -> int | None:
    text = v.get(name)
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise CdrError(name, f"{text!r} is not a whole number of seconds") from None
    if value < 0:
        raise CdrError(name, f"{text!r} is negative")
    return value


def parse_freeswitch(obj: Mapping[str, Any], ctx: ParseContext) -> Cdr:
    """One ``mod_json_cdr`` object → :class:`Cdr`; errors name the variable."""
    if not isinstance(obj, Mapping):
        raise CdrError("record", "a mod_json_cdr record must be a JSON object")
    raw_vars = obj.get("variables")
    if not isinstance(raw_vars, dict):
        raise CdrError("variables", "missing: not a mod_json_cdr record")
    v = _Vars(raw_vars)
    flows = _profiles(obj)  # oldest first
    original = flows[0] if flows else {}

    for f in flows:
        cp = f.get("caller_profile")
        if isinstance(cp, dict) and "originator" in cp:
            raise CdrIgnored("leg", "B leg of a bridged call; its A leg's record carries the call")

    direction = (v.get("call_direction") or v.get("direction")).lower()
    if not direction:
        channel = obj.get("channel_data")
        if isinstance(channel, dict) and isinstance(channel.get("direction"), str):
            direction = channel["direction"].strip().lower()
    if direction == "local":
        raise CdrIgnored("call_direction", "internal call between extensions")
    direction = "outbound" if direction == "outbound" else "inbound"

    dest_field, dest = "destination_number", _profile_field(original, "destination_number")
    if not dest:
        for name in ("destination_number", "sip_req_user", "sip_to_user"):
            dest = v.get(name)
            if dest:
                dest_field = name
                break
    called = called_number(dest, ctx, dest_field)

    candidates = [
        v.get("caller_id_number"),
        _profile_field(original, "caller_id_number"),
        _profile_field(original, "ani"),
        v.get("sip_from_user"),
        clid_number(v.get("caller_id")),
    ]
    if direction == "outbound":  # the number the far end saw, not the extension's
        candidates[:0] = [v.get("outbound_caller_id_number"), v.get("effective_caller_id_number")]
    present = [c for c in candidates if c]
    raw_caller = next((c for c in present if e164(c, ctx.country)), present[0] if present else "")
    caller = caller_number(raw_caller, ctx)

    started = _epoch(v, "start", "created_time", flows)
    if started is None:
        raise CdrError("start_epoch", "is missing")
    answered = _epoch(v, "answer", "answered_time", flows)
    ended = _epoch(v, "end", "hangup_time", flows[::-1])
    check_order(started, answered, ended, ("answer_epoch", "end_epoch"))
    billsec = _int(v, "billsec")
    duration = _int(v, "duration")

    if answered is not None or (billsec or 0) > 0:
        status = "answered"
        if answered is None and ended is not None and billsec:
            answered = max(started, ended - billsec)
    else:
        cause = v.get("hangup_cause").upper()
        status = (
            "busy" if cause in BUSY_CAUSES else "missed" if cause in MISSED_CAUSES else "failed"
        )
    if duration is None:
        duration = whole_seconds(ended - started) if ended is not None else 0
    if billsec is None:
        billsec = whole_seconds(ended - answered) if ended is not None and answered else 0

    uuid = v.get("uuid")
    if not uuid and isinstance(obj.get("uuid"), str):
        uuid = obj["uuid"].strip()
    if not uuid:
        uuid = _profile_field(flows[-1], "uuid") if flows else ""
    if uuid:
        call_id = check_call_id(uuid, "uuid")
    else:
        key = "\x1f".join((str(obj.get("core-uuid", "")), repr(started), caller, called))
        call_id = "fs-" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()

    recording = v.get("recording_url")
    rec_url = (
        http_url(recording, "recording_url")
        if recording.lower().startswith(("http://", "https://"))
        else None
    )
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
        rec_url,
    )


def decode_body(body: bytes, content_type: str = "") -> bytes:
    """The JSON text of a ``mod_json_cdr`` POST body, whatever its ``encode`` setting.

    ``encode=false``: the body is the JSON; ``encode=true``: ``cdr=<url-encoded JSON>``
    (``application/x-www-form-urlencoded``); ``encode=base64``: ``cdr=<base64>``
    (``application/x-www-form-base64-encoded``).
    """
    text = body.lstrip()
    if not text.startswith(b"cdr=") and b"&cdr=" not in text:
        return body
    if "base64" in content_type.lower() or _is_base64(text[4:].strip()):
        try:
            return base64.b64decode(text[4:].strip(), validate=True)
        except (binascii.Error, ValueError):
            raise CdrError("cdr", "not valid base64") from None
    for key, value in parse_qsl(text.decode("utf-8", "replace"), keep_blank_values=True):
        if key == "cdr":
            return value.encode("utf-8")
    raise CdrError("cdr", "missing")


def _is_base64(data: bytes) -> bool:
    return (
        bool(data)
        and data[:1] not in (b"{", b"%", b"[")
        and all(
            c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n"
            for c in data[:256]
        )
    )
