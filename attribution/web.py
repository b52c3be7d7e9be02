"""HTTP plumbing shared by the routes: bounded bodies, errors, CORS, keys, logs."""

from __future__ import annotations

import base64
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import Config, Site
from .errors import ApiError, BadRequest, Forbidden, TooLarge, Unauthorized

log = logging.getLogger("callpath.http")


def header(request: Request, name: bytes) -> str | None:
    """The first header called ``name`` (lowercase, as ASGI servers give names), read off
    the scope: Starlette's ``headers.get`` decodes every name it passes, on every call."""
    for key, value in request.scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def first_headers(request: Request) -> dict[bytes, bytes]:
    """Each header's first value by its (lowercase) name, in one pass over the scope: for
    a route that reads several of them (:func:`header` walks the list each time)."""
    return dict(reversed(request.scope["headers"]))


async def read_body(
    request: Request, limit: int, headers: dict[bytes, bytes] | None = None
) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes.

    Read from the ASGI messages themselves: a snippet's body is one message, and
    Starlette's stream costs an async generator per request.  ``headers`` are the
    request's :func:`first_headers`, when the caller has them."""
    if headers is None:
        declared = header(request, b"content-length")
    else:
        length = headers.get(b"content-length")
        declared = length.decode("latin-1") if length is not None else None
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"body is {declared} bytes; the limit is {limit}", field="body")
    chunks, size = [], 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body is over the limit of {limit} bytes", field="body")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# the C scanner, without raw_decode's Python frame
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def parse_json(raw: bytes, what: str = "body") -> Any:
    """``json.loads(raw)``, or a 400 naming ``what``.

    UTF-8 text that is one JSON value with nothing around it (what the snippet sends)
    goes straight to the C scanner, at a third of ``json.loads``' cost; anything else
    (whitespace around, a byte order mark, UTF-16, bad JSON) takes ``json.loads``' own
    way."""
    try:
        text = raw.decode()
        value, end = _scan(text, 0)
        if end == len(text):
            return value
    except (ValueError, StopIteration):  # UnicodeDecodeError is one; no JSON value at 0
        pass
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{what} is not valid JSON: {exc}", field=what) from None


async def json_object(
    request: Request, limit: int, headers: dict[bytes, bytes] | None = None
) -> dict[str, Any]:
    """A JSON object body, whatever the content type (the snippet sends text/plain)."""
    value = parse_json(await read_body(request, limit, headers))
    if not isinstance(value, dict):
        raise BadRequest("body must be a JSON object", field="body")
    return value


def _compact_encoder() -> Callable[[Any], str]:
    """Compact JSON, non-ASCII as is.  ``JSONEncoder.encode`` makes its C encoder anew
    on every call, which on the snippet's path costs a third of the encoding: it is made
    once here (the encoder's own ``encode`` where the C one is missing)."""
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return encoder.encode
    c_encode = make(
        None, encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )

    def encode(value: Any) -> str:
        return "".join(c_encode(value, 0))

    return encode


compact_json = _compact_encoder()


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    text = compact_json(body)
    return Response(text, status, headers=dict(headers or {}), media_type="application/json")


@lru_cache(maxsize=1024)  # a route's headers: CORS for a handful of origins, over and over
def _raw_header(name: str, value: str) -> tuple[bytes, bytes]:
    return name.lower().encode("latin-1"), value.encode("latin-1")


JsonHandler = Callable[[Request], Awaitable[tuple[Any, Mapping[str, str]]]]


class JsonRoute:
    """A route answering JSON, as a bare ASGI app: ``handler(request)`` returns the body
    (a value to encode, or ``bytes``: JSON the handler wrote itself, sent as is) and the
    extra headers of a 200.

    The snippet's routes are the hot path: the app calls these before its middleware
    and router (:class:`attribution.app.App`), so a route answers its own errors, with
    the same handlers as the rest of the app, and makes no Response object per request.
    """

    def __init__(self, handler: JsonHandler) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            body, headers = await self.handler(request)
        except ClientDisconnect:
            return  # nobody to answer
        except ApiError as exc:
            await (await api_error(request, exc))(scope, receive, send)
            return
        except Exception as exc:
            await (await server_error(request, exc))(scope, receive, send)
            return
        payload = body if isinstance(body, bytes) else compact_json(body).encode()
        raw = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
        for k, v in headers.items():
            raw.append(_raw_header(k, v))
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": payload})


# ---------------------------------------------------------------- errors


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    headers = dict(exc.headers)
    origin = header(request, b"origin")
    config = request.app.state.services.config
    if (
        origin
        and request.url.path.startswith("/v1/sessions")
        and any(allowed_host(s, host_of(origin)) for s in config.sites)
    ):
        # the snippet must be able to read a refusal (a 404 ping makes it start over)
        headers.setdefault("Access-Control-Allow-Origin", origin)
        headers.setdefault("Vary", "Origin")
    return json_response(exc.body(), exc.status, headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return json_response({"error": error, "detail": str(exc.detail)}, exc.status_code, exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    log.error(
        "unhandled error on %s %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        exc_info=exc,
    )
    return json_response({"error": "internal", "detail": "internal error; see the server log"}, 500)


EXCEPTION_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    ApiError: api_error,
    HTTPException: http_error,
    Exception: server_error,
}


# ---------------------------------------------------------------- CORS and keys


def host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def allowed_host(site: Site, host: str) -> bool:
    return _host_in(site.domains, host)


def _host_in(domains: tuple[str, ...], host: str) -> bool:
    return bool(host) and any(host == d or host.endswith("." + d) for d in domains)


@lru_cache(maxsize=4096)  # a site's pages send a handful of origins, over and over
def _allowed_origin(domains: tuple[str, ...], origin: str) -> bool:
    return _host_in(domains, host_of(origin))


def cors_headers(site: Site, request: Request) -> dict[str, str]:
    """CORS headers for the site's own pages; 403 for a foreign Origin or Referer."""
    origin = header(request, b"origin")
    return cors_for(site, origin, None if origin else header(request, b"referer"))


def cors_for(site: Site, origin: str | None, referer: str | None) -> dict[str, str]:
    """:func:`cors_headers` from the request's Origin and Referer (read only when there
    is no Origin)."""
    if origin:
        if not _allowed_origin(site.domains, origin):
            raise Forbidden(
                f"origin {origin!r} is not one of site {site.id!r}'s domains", field="origin"
            )
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    if referer and not allowed_host(site, host_of(referer)):
        raise Forbidden("referer is not one of the site's domains", field="referer")
    return {}


def preflight(config: Config, request: Request) -> Response:
    origin = request.headers.get("origin", "")
    host = host_of(origin)
    if not any(allowed_host(s, host) for s in config.sites):
        return Response(status_code=403)
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Vary": "Origin",
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "86400",
        },
    )


_CHALLENGE = 'Bearer realm="callpath", Basic realm="callpath"'
_AUTH_HOW = (
    "send the site's key as 'Authorization: Bearer <key>', or as HTTP Basic with the "
    "site id as user name and the key as password"
)


def _refused(detail: str) -> Unauthorized:
    """A 401 offering both schemes; ``detail`` never holds the key."""
    return Unauthorized(detail, field="authorization", headers={"WWW-Authenticate": _CHALLENGE})


def _credentials(value: str) -> tuple[str, str]:
    """``(user, key)`` from an ``Authorization`` header: ``Bearer <key>`` (no user) or
    ``Basic base64(<site id>:<key>)`` (RFC 7617); 401 for anything else."""
    scheme, _, token = value.strip().partition(" ")
    scheme, token = scheme.lower(), token.strip()
    if scheme == "bearer" and token:
        return "", token
    if scheme != "basic" or not token:
        raise _refused(_AUTH_HOW)
    try:
        # the padding is put back: some clients leave it off
        raw = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
        user, colon, key = raw.decode("utf-8").partition(":")
    except ValueError:  # not base64, non-ASCII in the header, or not UTF-8
        raise _refused("the Basic credentials are not base64 of UTF-8 'site id:key'") from None
    if not colon:
        raise _refused("the Basic credentials have no ':' between the site id and the key")
    if not key:
        raise _refused(_AUTH_HOW)
    return user, key


def site_for_key(config: Config, request: Request) -> Site:
    """The site whose key is in ``Authorization`` (Bearer, or Basic with the site id as
    user name); the key is compared in constant time with every site's."""
    user, key = _credentials(request.headers.get("authorization", ""))
    found = None
    given = key.encode()
    for site in config.sites:
        if site.api_key and hmac.compare_digest(given, site.api_key.encode()):
            found = site
    if found is None or (user and user != found.id):
        # a Basic user name other than the key's site is refused as a wrong key
        raise _refused("the key is not valid for any site")
    return found


# ---------------------------------------------------------------- query values and CSV


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_UNIX = re.compile(r"\d{9,11}(\.\d+)?")
_LOST_PLUS = re.compile(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)$")


def midnight(day: date, tz: tzinfo) -> int:
    return int(datetime.combine(day, datetime.min.time(), tzinfo=tz).timestamp() * 1000)


def parse_moment(text: str, name: str, tz: tzinfo) -> tuple[int, date | None]:
    """A ``from``/``to`` query value as ms, and the date when a bare date was given:
    a date, Unix seconds, or an ISO datetime (no offset: the site's timezone)."""
    text = text.strip()
    try:
        if _DATE.fullmatch(text):
            day = date.fromisoformat(text)
            return midnight(day, tz), day
        if _UNIX.fullmatch(text):
            return int(float(text) * 1000), None
        # an unescaped "+" in a query string arrives as a space: "…T09:00 02:00"
        text = _LOST_PLUS.sub(r"\1+\2", text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        return int(moment.timestamp() * 1000), None
    except (ValueError, OverflowError):
        raise BadRequest(
            f"{name} must be a date (2026-11-24) or a datetime "
            "(2026-11-24T09:00 in the site's timezone, or with an offset)",
            field=name,
        ) from None


def parse_end(text: str, tz: tzinfo) -> tuple[int, date | None]:
    """A ``to`` query value as the ms its range ends at, and its date when a bare date was
    given: a bare date takes in that whole day, up to the next midnight in ``tz``."""
    end, day = parse_moment(text, "to", tz)
    if day is not None:
        try:
            end = midnight(day + timedelta(days=1), tz)
        except OverflowError:
            raise BadRequest("to is out of range", field="to") from None
    return end, day


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


# ---------------------------------------------------------------- access log


class AccessLog:
    """One line per request: method, path (no query: it may hold a caller's number),
    status and milliseconds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await logged(self.app, scope, receive, send)


def logged(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
    """Run ``app`` for one request, with its access-log line when INFO is on.

    A plain function: with INFO off it hands back ``app``'s own call, so a request
    pays for no coroutine in between."""
    if not log.isEnabledFor(logging.INFO):
        return app(scope, receive, send)
    return _logged(app, scope, receive, send)


async def _logged(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    start = time.perf_counter()
    status = 500

    async def wrapped(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    try:
        await app(scope, receive, wrapped)
    finally:
        log.info(
            "%s %s %d %.1fms",
            scope["method"],
            scope["path"],
            status,
            (time.perf_counter() - start) * 1000,
        )
