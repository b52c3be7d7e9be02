"""GA4 Measurement Protocol: the events callpath sends, the rules they obey, the client.

This module is the single place that knows Google's limits.  :func:`validate` checks a
request body against them and answers in the shape of the ``/debug/mp/collect``
endpoint (``validationMessages``); the event builders refuse to produce a body it would
reject, and the test stand-in for Google's endpoint applies the very same function.

Rules encoded here (Measurement Protocol for GA4, web streams):

- ``client_id`` is required (web streams); ``measurement_id`` and ``api_secret`` travel
  as query parameters, never in the body.
- At most 25 events per request; event names at most 40 characters, letters, digits and
  underscores, starting with a letter; reserved event names and the reserved prefixes
  ``_``, ``google_``, ``ga_``, ``firebase_``, ``gtag.`` are refused.
- At most 25 parameters per event; parameter names at most 40 characters, same alphabet,
  not ``firebase_conversion`` and not starting with ``_``, ``google_``, ``ga_``,
  ``firebase_``; string values at most 100 characters; values are strings or numbers
  (``items`` is the one list).
- At most 25 user properties; names at most 24 characters, values at most 36; reserved
  names (``first_open_time`` …) and prefixes (``_``, ``google_``, ``ga_``, ``firebase_``).
- The body is at most 130 kB.
- ``timestamp_micros`` may be backdated at most 72 hours and must not lie in the future.
- ``session_id`` and ``engagement_time_msec`` event parameters put the event into the
  visitor's session (and make it show in Realtime).

Google's real ``/mp/collect`` answers 2xx even to a body it silently drops, which is why
nothing is sent that :func:`validate` does not pass.

The call event never carries the caller's or the called number, the recording URL, the
session id of callpath, the pages (their query strings may hold personal data) or any
free text that looks like an e-mail address or a phone number.

Conversions are sent as GA's recommended ``purchase`` event with ``transaction_id``,
``value`` and ``currency``: revenue reports and key events pick it up without custom
definitions, and GA itself de-duplicates purchases by transaction id, a second guard
behind callpath's own once-per-transaction ledger.  ``conversion_source`` = ``phone_call``
tells these purchases apart from the web shop's.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from .config import Site
from .errors import PermanentDeliveryError, TransientDeliveryError

log = logging.getLogger("callpath.ga4")

DEFAULT_ENDPOINT = "https://www.google-analytics.com/mp/collect"
CONVERSION_EVENT = "purchase"


@dataclass(frozen=True, slots=True)
class Limits:
    """Google's Measurement Protocol limits (and callpath's safety margins)."""

    events_per_request: int = 25
    params_per_event: int = 25
    event_name_len: int = 40
    param_name_len: int = 40
    param_value_len: int = 100
    user_properties: int = 25
    user_property_name_len: int = 24
    user_property_value_len: int = 36
    item_params: int = 25
    items_per_event: int = 200
    payload_bytes: int = 130_000
    max_age_s: int = 72 * 3600
    # how far in the future validate() tolerates a timestamp (clock skew between hosts)
    future_tolerance_s: int = 60
    # callpath's own margins: a PBX clock ahead of ours by up to this is clamped to "now";
    # an event is not built when it would leave the window within send_margin_s
    pbx_skew_s: int = 300
    send_margin_s: int = 60


LIMITS = Limits()

RESERVED_EVENT_NAMES = frozenset(
    {
        "ad_activeview",
        "ad_click",
        "ad_exposure",
        "ad_impression",
        "ad_query",
        "ad_reward",
        "adunit_exposure",
        "app_background",
        "app_clear_data",
        "app_exception",
        "app_install",
        "app_remove",
        "app_store_refund",
        "app_store_subscription_cancel",
        "app_store_subscription_convert",
        "app_store_subscription_renew",
        "app_uninstall",
        "app_update",
        "app_upgrade",
        "dynamic_link_app_open",
        "dynamic_link_app_update",
        "dynamic_link_first_open",
        "error",
        "first_open",
        "first_visit",
        "in_app_purchase",
        "notification_dismiss",
        "notification_foreground",
        "notification_open",
        "notification_receive",
        "os_update",
        "screen_view",
        "session_start",
        "user_engagement",
    }
)
RESERVED_EVENT_PREFIXES = ("_", "google_", "ga_", "firebase_", "gtag.")
RESERVED_PARAM_NAMES = frozenset({"firebase_conversion"})
RESERVED_PARAM_PREFIXES = ("_", "google_", "ga_", "firebase_")
RESERVED_USER_PROPERTIES = frozenset(
    {
        "first_open_time",
        "first_visit_time",
        "last_deep_link_referrer",
        "user_id",
        "first_open_after_install",
    }
)
RESERVED_USER_PROPERTY_PREFIXES = ("_", "google_", "ga_", "firebase_")
BODY_FIELDS = frozenset(
    {
        "client_id",
        "user_id",
        "timestamp_micros",
        "user_properties",
        "consent",
        "non_personalized_ads",
        "events",
        "user_data",
        "user_location",
        "ip_override",
        "device",
        "validation_behavior",
    }
)

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")
_PHONE = re.compile(r"\+\s?\(?\d[\d\s().-]{5,}\d")


# ---------------------------------------------------------------- errors


class Refused(PermanentDeliveryError):
    """GA4 will never take this event; ``reason`` is a short code for counters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


class Unavailable(TransientDeliveryError):
    """GA4 could not be reached or asked us to come back (``retry_after`` seconds)."""

    def __init__(self, reason: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


def reason_of(exc: BaseException) -> str:
    """The short reason code of a delivery error (also for plain DeliveryErrors)."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    first = exc.args[0] if exc.args else ""
    if isinstance(first, str) and re.fullmatch(r"[a-z0-9_]{1,40}", first):
        return first
    return "permanent" if isinstance(exc, PermanentDeliveryError) else "transient"


def detail_of(exc: BaseException) -> str:
    detail = getattr(exc, "detail", None)
    if isinstance(detail, str):
        return detail
    return " ".join(str(a) for a in exc.args[1:]) or str(exc)


# ---------------------------------------------------------------- validation


def _msg(path: str, description: str, code: str) -> dict[str, str]:
    return {"fieldPath": path, "description": description, "validationCode": code}


def render(message: Mapping[str, Any]) -> str:
    """One validation message as a line: ``CODE path: description``."""
    code = message.get("validationCode", "VALUE_INVALID")
    path = message.get("fieldPath", "")
    return f"{code} {path}: {message.get('description', '')}".replace(" :", ":")


def _check_name(
    path: str,
    name: Any,
    kind: str,
    max_len: int,
    reserved: frozenset[str],
    prefixes: tuple[str, ...],
    out: list[dict[str, str]],
) -> None:
    if not isinstance(name, str) or not name:
        out.append(_msg(path, f"{kind} name is required and must be a string", "VALUE_REQUIRED"))
        return
    if len(name) > max_len:
        out.append(
            _msg(
                path,
                f"{kind} name {name[:60]!r} is longer than {max_len} characters",
                "VALUE_OUT_OF_BOUNDS",
            )
        )
    if name in reserved:
        out.append(_msg(path, f"{kind} name {name!r} is reserved", "NAME_RESERVED"))
    elif name.startswith(prefixes):
        out.append(
            _msg(
                path,
                f"{kind} name {name!r} starts with a reserved prefix ({', '.join(prefixes)})",
                "NAME_RESERVED",
            )
        )
    elif not _NAME.match(name):
        out.append(
            _msg(
                path,
                f"{kind} name {name[:60]!r} must start with a letter and use "
                "only letters, digits and underscores",
                "NAME_INVALID",
            )
        )


def _check_value(path: str, value: Any, out: list[dict[str, str]]) -> None:
    if isinstance(value, bool) or value is None:
        out.append(_msg(path, "parameter value must be a string or a number", "VALUE_INVALID"))
    elif isinstance(value, str):
        if len(value) > LIMITS.param_value_len:
            out.append(
                _msg(
                    path,
                    f"parameter value is longer than {LIMITS.param_value_len} characters",
                    "VALUE_OUT_OF_BOUNDS",
                )
            )
    elif isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            out.append(_msg(path, "parameter value must be a finite number", "VALUE_INVALID"))
    else:
        out.append(_msg(path, "parameter value must be a string or a number", "VALUE_INVALID"))


def _check_timestamp(path: str, value: Any, now_s: float, out: list[dict[str, str]]) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        out.append(
            _msg(path, "timestamp_micros must be an integer (Unix microseconds)", "VALUE_INVALID")
        )
        return
    age_s = now_s - value / 1e6
    if age_s > LIMITS.max_age_s:
        out.append(
            _msg(
                path,
                f"timestamp_micros is {age_s / 3600:.1f} hours in the past; "
                f"at most {LIMITS.max_age_s // 3600} hours are accepted",
                "VALUE_OUT_OF_BOUNDS",
            )
        )
    elif age_s < -LIMITS.future_tolerance_s:
        out.append(_msg(path, "timestamp_micros is in the future", "VALUE_OUT_OF_BOUNDS"))


def validation_messages(
    payload: Any, now_s: float | None = None, size: int | None = None
) -> list[dict[str, str]]:
    """Every rule ``payload`` breaks, as GA's debug endpoint words them.

    ``size`` is the encoded body's length in bytes when known (else it is computed).
    """
    now = time.time() if now_s is None else now_s
    out: list[dict[str, str]] = []
    if not isinstance(payload, dict):
        return [_msg("", "the body must be a JSON object", "VALUE_INVALID")]
    if size is None:
        size = len(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
    if size > LIMITS.payload_bytes:
        out.append(
            _msg(
                "",
                f"the body is {size} bytes; at most {LIMITS.payload_bytes} are accepted",
                "VALUE_OUT_OF_BOUNDS",
            )
        )
    for key in payload:
        if key not in BODY_FIELDS:
            out.append(_msg(str(key), f"unknown field {str(key)[:60]!r}", "NAME_INVALID"))
    cid = payload.get("client_id")
    if not isinstance(cid, str) or not cid.strip():
        out.append(_msg("client_id", "client_id is required for a web stream", "VALUE_REQUIRED"))
    if "user_id" in payload and (
        not isinstance(payload["user_id"], str) or len(payload["user_id"]) > 256
    ):
        out.append(
            _msg("user_id", "user_id must be a string of at most 256 characters", "VALUE_INVALID")
        )
    if "non_personalized_ads" in payload and not isinstance(payload["non_personalized_ads"], bool):
        out.append(_msg("non_personalized_ads", "must be true or false", "VALUE_INVALID"))
    if "timestamp_micros" in payload:
        _check_timestamp("timestamp_micros", payload["timestamp_micros"], now, out)
    _check_user_properties(payload.get("user_properties"), now, out)
    events = payload.get("events")
    if not isinstance(events, list) or not events:
        out.append(_msg("events", "at least one event is required", "VALUE_REQUIRED"))
        return out
    if len(events) > LIMITS.events_per_request:
        out.append(
            _msg(
                "events",
                f"{len(events)} events; at most {LIMITS.events_per_request} per request",
                "EXCEEDED_MAX_ENTITIES",
            )
        )
    for i, event in enumerate(events):
        _check_event(f"events[{i}]", event, now, out)
    return out


def _check_user_properties(props: Any, now_s: float, out: list[dict[str, str]]) -> None:
    if props is None:
        return
    if not isinstance(props, dict):
        out.append(_msg("user_properties", "must be an object", "VALUE_INVALID"))
        return
    if len(props) > LIMITS.user_properties:
        out.append(
            _msg(
                "user_properties",
                f"{len(props)} user properties; at most {LIMITS.user_properties}",
                "EXCEEDED_MAX_ENTITIES",
            )
        )
    for name, prop in props.items():
        path = f"user_properties.{name}"
        _check_name(
            path,
            name,
            "user property",
            LIMITS.user_property_name_len,
            RESERVED_USER_PROPERTIES,
            RESERVED_USER_PROPERTY_PREFIXES,
            out,
        )
        if not isinstance(prop, dict) or "value" not in prop:
            out.append(_msg(path, "a user property is an object with a value", "VALUE_INVALID"))
            continue
        value = prop["value"]
        if isinstance(value, str) and len(value) > LIMITS.user_property_value_len:
            out.append(
                _msg(
                    f"{path}.value",
                    "user property value is longer than "
                    f"{LIMITS.user_property_value_len} characters",
                    "VALUE_OUT_OF_BOUNDS",
                )
            )
        elif not isinstance(value, str | int | float) or isinstance(value, bool):
            out.append(
                _msg(
                    f"{path}.value",
                    "user property value must be a string or a number",
                    "VALUE_INVALID",
                )
            )
        if "timestamp_micros" in prop:
            _check_timestamp(f"{path}.timestamp_micros", prop["timestamp_micros"], now_s, out)


def event_name_problems(name: str) -> list[str]:
    """Why GA4 would refuse this event name (empty when it is fine); used by the config."""
    out: list[dict[str, str]] = []
    _check_name(
        "event_name",
        name,
        "event",
        LIMITS.event_name_len,
        RESERVED_EVENT_NAMES,
        RESERVED_EVENT_PREFIXES,
        out,
    )
    return [m["description"] for m in out]


def _check_event(path: str, event: Any, now_s: float, out: list[dict[str, str]]) -> None:
    if not isinstance(event, dict):
        out.append(_msg(path, "an event must be an object", "VALUE_INVALID"))
        return
    _check_name(
        f"{path}.name",
        event.get("name"),
        "event",
        LIMITS.event_name_len,
        RESERVED_EVENT_NAMES,
        RESERVED_EVENT_PREFIXES,
        out,
    )
    if "timestamp_micros" in event:
        _check_timestamp(f"{path}.timestamp_micros", event["timestamp_micros"], now_s, out)
    params = event.get("params", {})
    if not isinstance(params, dict):
        out.append(_msg(f"{path}.params", "params must be an object", "VALUE_INVALID"))
        return
    if len(params) > LIMITS.params_per_event:
        out.append(
            _msg(
                f"{path}.params",
                f"{len(params)} parameters; at most {LIMITS.params_per_event} per event",
                "EXCEEDED_MAX_ENTITIES",
            )
        )
    for name, value in params.items():
        ppath = f"{path}.params.{name}"
        _check_name(
            ppath,
            name,
            "parameter",
            LIMITS.param_name_len,
            RESERVED_PARAM_NAMES,
            RESERVED_PARAM_PREFIXES,
            out,
        )
        if name == "items":
            _check_items(ppath, value, out)
        else:
            _check_value(ppath, value, out)
    if "value" in params and "currency" not in params:
        out.append(
            _msg(
                f"{path}.params.currency",
                "currency is required when value is set",
                "VALUE_REQUIRED",
            )
        )


def _check_items(path: str, items: Any, out: list[dict[str, str]]) -> None:
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        out.append(_msg(path, "items must be a list of objects", "VALUE_INVALID"))
        return
    if len(items) > LIMITS.items_per_event:
        out.append(
            _msg(
                path,
                f"{len(items)} items; at most {LIMITS.items_per_event}",
                "EXCEEDED_MAX_ENTITIES",
            )
        )
    for i, item in enumerate(items):
        if len(item) > LIMITS.item_params:
            out.append(
                _msg(
                    f"{path}[{i}]",
                    f"{len(item)} item parameters; at most {LIMITS.item_params}",
                    "EXCEEDED_MAX_ENTITIES",
                )
            )
        for name, value in item.items():
            _check_name(
                f"{path}[{i}].{name}",
                name,
                "item parameter",
                LIMITS.param_name_len,
                RESERVED_PARAM_NAMES,
                RESERVED_PARAM_PREFIXES,
                out,
            )
            _check_value(f"{path}[{i}].{name}", value, out)


def validate(payload: Any, now_s: float | None = None, size: int | None = None) -> list[str]:
    """GA-style validation messages for a request body; empty when GA4 would take it."""
    return [render(m) for m in validation_messages(payload, now_s, size)]


# ---------------------------------------------------------------- events


def _clean_text(value: Any, call: Mapping[str, Any]) -> str | None:
    """A free-text value fit to leave callpath, or None.

    Campaign tags are typed by people: a value that holds an e-mail address, an
    international phone number (``+`` and digits) or the digits of this call's parties is
    dropped whole.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()[: LIMITS.param_value_len]
    if not text or _EMAIL.search(text) or _PHONE.search(text):
        return None
    digits = "".join(c for c in text if c.isdigit())
    for party in (call.get("caller"), call.get("called")):
        tail = "".join(c for c in str(party or "") if c.isdigit())[-7:]
        if len(tail) >= 5 and tail in digits:
            return None
    return text


def _session_id(call: Mapping[str, Any]) -> int | None:
    raw = str(call.get("ga_session_id") or "").strip()
    if not raw:
        return None
    head = raw.split(".")[0]
    return int(head) if head.isdigit() and 0 < len(head) <= 19 else None


def _client_id(call: Mapping[str, Any]) -> str:
    cid = call.get("ga_client_id")
    if not isinstance(cid, str) or not cid.strip():
        raise Refused("no_client_id", "the call's web session has no GA client id")
    return cid.strip()


def _checked(payload: dict[str, Any], now_s: float) -> dict[str, Any]:
    problems = validate(payload, now_s)
    if problems:
        raise Refused("invalid_event", "; ".join(problems)[:500])
    return payload


def _event_time_us(at_ms: int, now_s: float, what: str) -> int:
    """``at_ms`` as ``timestamp_micros`` if GA4 still takes it, else ``outside_window``."""
    at_s = at_ms / 1000
    age = now_s - at_s
    if age > LIMITS.max_age_s - LIMITS.send_margin_s:
        raise Refused(
            "outside_window",
            f"{what} was {age / 3600:.1f} h ago; GA4 takes events "
            f"at most {LIMITS.max_age_s // 3600} h old",
        )
    if age < -LIMITS.pbx_skew_s:
        raise Refused("outside_window", f"{what} is {-age:.0f} s in the future")
    return int(min(at_s, now_s) * 1_000_000)


def _ga4_of(site: Site) -> Any:
    if site.ga4 is None:
        raise Refused("no_ga4", f"site {site.id!r} has no ga4 settings")
    return site.ga4


def _channel_params(call: Mapping[str, Any], params: dict[str, Any]) -> None:
    for field, name in (
        ("source", "call_source"),
        ("medium", "call_medium"),
        ("campaign", "call_campaign"),
    ):
        text = _clean_text(call.get(field), call)
        if text:
            params[name] = text
    pool = _clean_text(call.get("pool"), call)
    if pool:
        params["tracking_pool"] = pool


def call_event(call: Mapping[str, Any], site: Site, now_s: float) -> dict[str, Any]:
    """The Measurement Protocol body for one stored call record.

    ``timestamp_micros`` is the call's start and ``session_id`` the visitor's GA session,
    so GA counts the call inside the session that showed the number.  ``call_duration``
    is the talk time (billsec) of an answered call and the ring time of any other.
    """
    ga4 = _ga4_of(site)
    cid = _client_id(call)
    started_ms = call.get("started_ms")
    if isinstance(started_ms, bool) or not isinstance(started_ms, int | float):
        raise Refused("bad_record", "the call record has no started_ms")
    ts = _event_time_us(int(started_ms), now_s, "the call")
    status = str(call.get("status") or "")
    answered = status == "answered"
    duration = call.get("billsec") if answered else call.get("duration")
    params: dict[str, Any] = {}
    sid = _session_id(call)
    if sid is not None:
        params["session_id"] = sid
    params["engagement_time_msec"] = 1
    params["call_status"] = status[: LIMITS.param_value_len] or "unknown"
    params["call_duration"] = (
        int(duration) if isinstance(duration, int | float) and not isinstance(duration, bool) else 0
    )
    params["first_time_caller"] = "yes" if call.get("first_time_caller") is True else "no"
    match = call.get("match")
    if match in ("exact", "ambiguous", "static"):
        params["call_match"] = match
    _channel_params(call, params)
    value, currency = call.get("value"), call.get("currency")
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and isinstance(currency, str)
        and len(currency) == 3
        and currency.isalpha()
    ):
        params["value"] = float(value)
        params["currency"] = currency.upper()
    payload = {
        "client_id": cid,
        "timestamp_micros": ts,
        "events": [{"name": ga4.event_name, "params": params}],
    }
    return _checked(payload, now_s)


def conversion_event(
    call: Mapping[str, Any],
    site: Site,
    value: float,
    currency: str,
    transaction_id: str,
    now_s: float,
    at_s: float | None = None,
) -> dict[str, Any]:
    """A ``purchase`` for the money a call brought (see the module notes).

    Its time is when the conversion was reported (``at_s``, default ``now_s``), and it
    carries the call's GA session so the revenue lands on the channel that made the call.
    """
    _ga4_of(site)
    cid = _client_id(call)
    ts = _event_time_us(int((now_s if at_s is None else at_s) * 1000), now_s, "the conversion")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise Refused("invalid_event", "value must be a finite number ≥ 0")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
        raise Refused("invalid_event", "currency must be an ISO 4217 code")
    tx = str(transaction_id)
    if not tx or len(tx) > LIMITS.param_value_len:
        raise Refused("invalid_event", "transaction_id must be 1 to 100 characters")
    params: dict[str, Any] = {}
    sid = _session_id(call)
    if sid is not None:
        params["session_id"] = sid
    params["engagement_time_msec"] = 1
    params["transaction_id"] = tx
    params["value"] = float(value)
    params["currency"] = currency.upper()
    params["conversion_source"] = "phone_call"
    _channel_params(call, params)
    payload = {
        "client_id": cid,
        "timestamp_micros": ts,
        "events": [{"name": CONVERSION_EVENT, "params": params}],
    }
    return _checked(payload, now_s)


# ---------------------------------------------------------------- transport


class _RedactSecret(logging.Filter):
    """Hides ``api_secret=…`` in log lines of the HTTP client (it logs request URLs)."""

    _pattern = re.compile(r"(api_secret=)[^&\s\"']*")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                self._pattern.sub(r"\1***", a) if isinstance(a, str) else self._scrub(a)
                for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = self._pattern.sub(r"\1***", record.msg)
        return True

    def _scrub(self, value: Any) -> Any:
        text = str(value)
        return self._pattern.sub(r"\1***", text) if "api_secret=" in text else value


_REDACT = _RedactSecret()
for _name in ("httpx", "httpcore"):
    if _REDACT not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_REDACT)


def debug_endpoint(endpoint: str) -> str:
    """``…/mp/collect`` → ``…/debug/mp/collect`` (Google's validation server)."""
    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/")
    if not path.endswith("/mp/collect"):
        raise ValueError(f"{endpoint!r} does not end with /mp/collect")
    return urlunsplit(parts._replace(path=path[: -len("/mp/collect")] + "/debug/mp/collect"))


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(raw)) if raw else None
    except ValueError:
        return None


class Sender:
    """Posts bodies to the Measurement Protocol with a shared keep-alive client."""

    def __init__(self, http: httpx.AsyncClient, endpoint: str = DEFAULT_ENDPOINT) -> None:
        self.http = http
        self.endpoint = endpoint
        self.debug_url = debug_endpoint(endpoint)

    @staticmethod
    def _params(site: Site) -> dict[str, str]:
        ga4 = _ga4_of(site)
        if not ga4.api_secret:
            raise Unavailable(
                "no_secret",
                f"the GA4 api secret of site {site.id!r} is not loaded ({ga4.api_secret_env})",
            )
        return {"measurement_id": ga4.measurement_id, "api_secret": str(ga4.api_secret)}

    def safe_url(self, site: Site, url: str | None = None) -> str:
        """The request URL as it may appear in a log line (no secret)."""
        mid = site.ga4.measurement_id if site.ga4 else ""
        return f"{url or self.endpoint}?measurement_id={mid}&api_secret=***"

    async def _post(self, url: str, site: Site, payload: Mapping[str, Any]) -> httpx.Response:
        params = self._params(site)
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        try:
            return await self.http.post(
                url, params=params, content=body, headers={"content-type": "application/json"}
            )
        except httpx.TimeoutException as exc:
            raise Unavailable(
                "timeout", f"{type(exc).__name__} posting to {self.safe_url(site, url)}"
            ) from None
        except httpx.HTTPError as exc:
            raise Unavailable(
                "network", f"{type(exc).__name__} posting to {self.safe_url(site, url)}"
            ) from None

    async def send(self, site: Site, payload: Mapping[str, Any]) -> int:
        """Deliver one body; returns the 2xx status or raises a DeliveryError."""
        response = await self._post(self.endpoint, site, payload)
        status = response.status_code
        if 200 <= status < 300:
            return status
        text = response.text[:200].replace("\n", " ")
        detail = f"HTTP {status} from {self.safe_url(site)}" + (f": {text}" if text else "")
        if status in (408, 429) or status >= 500:
            raise Unavailable(f"http_{status}", detail, _retry_after(response))
        raise Refused(f"http_{status}", detail)

    async def validate(self, site: Site, payload: Mapping[str, Any]) -> list[str]:
        """The validation messages of Google's debug endpoint for ``payload``."""
        response = await self._post(self.debug_url, site, payload)
        if response.status_code >= 500 or response.status_code == 429:
            where = self.safe_url(site, self.debug_url)
            raise Unavailable(
                f"http_{response.status_code}", f"HTTP {response.status_code} from {where}"
            )
        try:
            answer = response.json()
        except ValueError:
            raise Refused(
                f"http_{response.status_code}", "the debug endpoint did not answer JSON"
            ) from None
        messages = answer.get("validationMessages", []) if isinstance(answer, dict) else []
        return [render(m) if isinstance(m, dict) else str(m) for m in messages]
