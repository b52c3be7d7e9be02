"""The private routes (the site key as ``Authorization: Bearer <key>``, or HTTP Basic with
the site id as user name and the key as password): calls, lookup, conversions."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable
from typing import Any

import phonenumbers
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from . import outbox
from .calls import SESSION_FIELDS, Prepared, parse_context
from .cdr import CdrError, CdrNotFinal, parse
from .config import Site
from .errors import ApiError, BadRequest, NotFound
from .services import Services, services
from .tracking import decode_hash, encodable
from .web import (
    csv_cell,
    json_object,
    json_response,
    parse_end,
    parse_moment,
    read_body,
    site_for_key,
)

BATCH_LIMIT = 1024 * 1024
_CURRENCY = re.compile(r"[A-Za-z]{3}")  # ISO 4217, in either case
STATUSES = ("answered", "missed", "busy", "failed")
CSV_COLUMNS = (
    "call_id",
    "started_at",
    "direction",
    "status",
    "caller",
    "called",
    "duration",
    "billsec",
    "match",
    "candidates",
    "pool",
    "source",
    "medium",
    "campaign",
    "keyword",
    "region",
    "landing_page",
    "device",
    "time_on_site",
    "first_time_caller",
    "recording_url",
)


# ---------------------------------------------------------------- POST /v1/calls


async def post_calls(request: Request) -> Response:
    svc = services(request)
    site = site_for_key(svc.config, request)
    body = await read_body(request, max(BATCH_LIMIT, svc.config.server.max_body_bytes))
    ctype = request.headers.get("content-type", "")
    fmt = request.query_params.get("format") or None
    ctx = parse_context(site)
    try:
        results = parse(body, ctype, ctx, fmt)
    except CdrError as exc:
        raise BadRequest(exc.detail, field=exc.field) from None
    batch = _is_batch(body, ctype, fmt)
    if not batch:
        if not results:
            raise BadRequest("no call record in the body", field="body")
        only = results[0]
        if isinstance(only, CdrNotFinal):
            return json_response({"ignored": True, "detail": only.detail}, 202)
        if isinstance(only, CdrError):
            raise BadRequest(only.detail, field=only.field)
        prepared = svc.calls.prepare(site, only)
        (result,) = await svc.calls.ingest(site, [prepared])
        return json_response(result)

    out: list[dict[str, Any] | None] = [None] * len(results)
    ready: list[tuple[int, Prepared]] = []
    for i, item in enumerate(results):
        if isinstance(item, CdrNotFinal):
            out[i] = {"index": i, "ignored": True, "detail": item.detail}
        elif isinstance(item, CdrError):
            out[i] = {"index": i, "error": "bad_record", "field": item.field, "detail": item.detail}
        else:
            try:
                ready.append((i, svc.calls.prepare(site, item)))
            except ApiError as exc:
                out[i] = {"index": i, **exc.body()}
    answers = await svc.calls.ingest(site, [p for _, p in ready])
    for (i, _), ans in zip(ready, answers, strict=True):
        out[i] = ans
    failures = [o for o in out if o and "error" in o]
    answer: dict[str, Any] = {"calls": out, "stored": len(ready), "failed": len(failures)}
    if failures and not ready:  # nothing stored: refused as a whole, naming the first
        first = failures[0]
        answer = {
            "error": "bad_record",
            "detail": f"record {first['index']}: {first['detail']}",
            "field": first.get("field"),
            **answer,
        }
        return json_response(answer, 400)
    return json_response(answer)


def _is_batch(body: bytes, ctype: str, fmt: str | None) -> bool:
    if fmt == "asterisk-csv" or "csv" in ctype:
        return True
    return body.lstrip()[:1] == b"[" or b"\n{" in body.strip()


# ---------------------------------------------------------------- GET /v1/calls


def _time_param(request: Request, name: str, site: Site) -> int | None:
    """``from``/``to`` as ms; a bare-date ``to`` takes in that whole day in the site's
    timezone, as the reports read it (the log's range is inclusive at both ends)."""
    text = request.query_params.get(name)
    if not text:
        return None
    if name != "to":
        return parse_moment(text, name, site.timezone)[0]
    end, day = parse_end(text, site.timezone)
    return end - 1 if day is not None else end  # the day's last ms


def parse_number(text: str, site: Site, field: str) -> str:
    try:
        num = phonenumbers.parse(text, site.country)
    except phonenumbers.NumberParseException:
        raise BadRequest(f"{text!r} is not a phone number", field=field) from None
    if not phonenumbers.is_possible_number(num):
        raise BadRequest(f"{text!r} is not a possible phone number", field=field)
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def call_filter(request: Request, site: Site) -> Callable[[dict[str, Any]], bool]:
    q = request.query_params
    wanted: dict[str, str] = {}
    for name in ("status", "source", "medium", "campaign", "pool", "match", "direction"):
        if q.get(name):
            wanted[name] = q[name]
    if "status" in wanted and wanted["status"] not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}", field="status")
    caller = parse_number(q["caller"], site, "caller") if q.get("caller") else None

    def keep(rec: dict[str, Any]) -> bool:
        if caller and rec.get("caller") != caller:
            return False
        return all(str(rec.get(k, "")).lower() == v.lower() for k, v in wanted.items())

    return keep


async def list_calls(request: Request) -> Response:
    svc = services(request)
    site = site_for_key(svc.config, request)
    start = _time_param(request, "from", site) or 0
    end = _time_param(request, "to", site) or int(time.time() * 1000) + 86_400_000
    try:
        limit = min(1000, max(1, int(request.query_params.get("limit", "100"))))
    except ValueError:
        raise BadRequest("limit must be a whole number", field="limit") from None
    keep = call_filter(request, site)
    cursor = request.query_params.get("cursor")
    after: tuple[int, str] | None = None
    if cursor:
        ms, _, cid = cursor.partition(":")
        if not ms.isdigit() or not cid:
            raise BadRequest("cursor is not one this server gave", field="cursor")
        after, end = (int(ms), cid), min(end, int(ms))
    if "text/csv" in request.headers.get("accept", ""):
        return StreamingResponse(
            _csv_rows(svc, site, start, end, keep),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="calls-{site.id}.csv"'},
        )
    rows: list[dict[str, Any]] = []
    more = False
    async for rec in _scan(svc, site, start, end, after):
        if not keep(rec):
            continue
        if len(rows) == limit:
            more = True
            break
        rows.append(rec)
    next_cursor = f"{rows[-1]['started_ms']}:{rows[-1]['call_id']}" if more and rows else None
    return json_response({"calls": rows, "next_cursor": next_cursor})


async def _scan(
    svc: Services, site: Site, start: int, end: int, after: tuple[int, str] | None = None
) -> Any:
    """Records newest first; ``after`` skips up to and including a cursor's call."""
    offset = 0
    while True:
        chunk = await svc.calls.between(site, start, end, offset=offset, count=500)
        if not chunk:
            return
        offset += len(chunk)
        for rec in chunk:
            if after and rec["started_ms"] == after[0] and rec["call_id"] >= after[1]:
                continue
            yield rec


async def _csv_rows(
    svc: Services, site: Site, start: int, end: int, keep: Callable[[dict[str, Any]], bool]
) -> Any:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    async for rec in _scan(svc, site, start, end):
        if keep(rec):
            writer.writerow([csv_cell(rec.get(c)) for c in CSV_COLUMNS])
        if buf.tell() > 32_768:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


# ---------------------------------------------------------------- lookup


async def lookup(request: Request) -> Response:
    """The session behind a ringing tracking number, for live routing in the PBX."""
    svc = services(request)
    site = site_for_key(svc.config, request)
    called_text = request.query_params.get("called")
    if not called_text:
        raise BadRequest("called is required (the dialled tracking number)", field="called")
    called = parse_number(called_text, site, "called")
    caller = (
        parse_number(request.query_params["caller"], site, "caller")
        if request.query_params.get("caller")
        else ""
    )
    route = svc.matcher.route(called)
    if route.site is not None and route.site.id != site.id:
        raise NotFound("that number is not one of this site's", field="called")
    now_ms = int(time.time() * 1000)
    match = await svc.matcher.match(site, called, caller, now_ms)
    out: dict[str, Any] = {
        "called": called,
        "match": match.kind,
        "pool": match.pool.id if match.pool else None,
        "candidates": match.candidates,
        "sid": match.sid or None,
    }
    visit = {
        k: "" for k in SESSION_FIELDS if k not in ("first_seen", "ga_client_id", "ga_session_id")
    }
    if match.static:
        visit.update(
            source=match.static.source,
            medium=match.static.medium,
            campaign=match.static.campaign,
            keyword=match.static.keyword,
            region=match.static.region,
        )
    elif match.sid:
        rec = decode_hash(await svc.redis.hgetall(svc.keys.session(match.sid)))
        visit.update({k: rec.get(k, "") for k in visit})
        visit["last_page"] = visit["last_page"] or visit["landing_page"]
    out.update(visit)
    if caller:
        out["first_time_caller"] = not await svc.redis.hexists(svc.keys.lastsid(site.id), caller)
    return json_response(out)


# ---------------------------------------------------------------- conversions


async def conversion(request: Request) -> Response:
    svc = services(request)
    site = site_for_key(svc.config, request)
    call_id = request.path_params["call_id"]
    body = await json_object(request, svc.config.server.max_body_bytes)
    value = body.get("value")
    # NaN and Infinity parse as JSON here, but GA4 takes neither
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value < float("inf")
    ):
        raise BadRequest("value must be a finite number ≥ 0", field="value")
    currency = body.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise BadRequest("currency must be an ISO 4217 code such as 'USD'", field="currency")
    tx = body.get("transaction_id", call_id)
    if not isinstance(tx, str) or not tx or len(tx) > 100 or not encodable(tx):
        raise BadRequest(
            "transaction_id must be a string of 1-100 characters", field="transaction_id"
        )
    new = await outbox.enqueue_conversion(
        svc.redis, svc.keys, site, call_id, float(value), currency.upper(), tx
    )
    return json_response(
        {"call_id": call_id, "transaction_id": tx, "queued": new, "duplicate": not new},
        202 if new else 200,
    )
