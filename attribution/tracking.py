"""Visitor sessions: classify the visit, pick pools, lease numbers, keep the record.

The session record is a Redis hash under its own hash tag; it lives ``history_days``
so a call imported weeks later still finds the landing page and the GA ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from . import metrics
from .allocator import Allocator, shown_number, utc_day
from .batching import Batcher, Op
from .config import Config, Phone, Pool, Site
from .devices import parse_user_agent
from .errors import BadRequest, NotFound, RateLimited
from .geo import GeoIP, pick_region
from .keys import Keys
from .lua import lua_list, lua_values
from .redis_store import AnyRedis
from .sessions import Signer
from .sources import Visit, classify, keep_last_non_direct
from .web import compact_json

V = TypeVar("V")

MAX_URL = 2048
RATE_WINDOW_MS = 61_000  # a minute's counter outlives its minute by a second
CHOICES_KEPT = 4096  # remembered choices of pools, and lists of numbers shown
SESSIONS_KEPT = 16_384  # sessions whose last page view this process remembers
GA_ID_MAX = 64
# what a page view of a known session reads of its record (the site, its visit and
# what decides it, and its pages, which start.lua checks are still so when it writes),
# and what a ping reads (pools, pages and GA ids too)
VISIT_FIELDS = (
    "site",
    "source",
    "medium",
    "campaign",
    "keyword",
    "region",
    "device",
    "region_chosen",
    "pages",
)
PING_FIELDS = (*VISIT_FIELDS, "last_page", "landing_page", "ga_client_id")
_GA_CHARS = "0123456789."


class _Entry(dict[str, str]):
    """One entry of an answer's numbers (:func:`pair`), with its JSON: made once per
    own number and number shown, and shared (read only)."""

    json = ""


class _Numbers(list[_Entry]):
    """An answer's list of numbers, with its JSON, joined from its entries' (lists are
    shared: read only)."""

    json = ""


class _Visit(dict[str, str]):
    """An answer's visit on one site, with what follows from it, made once (visits are
    shared, read only): its JSON, its fields that are set (as HSET takes them), the
    pools it takes numbers from, and start.lua's settings for those."""

    json = ""
    given: tuple[str, ...] = ()
    pools: Sequence[Pool] = ()
    settings = ""


def _str_field(body: Mapping[str, Any], name: str, limit: int, required: bool = False) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise BadRequest(f"{name} is required", field=name)
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string", field=name)
    if len(value) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters", field=name)
    if not value.isascii() and not encodable(value):
        raise BadRequest(f"{name} is not valid Unicode text (a lone surrogate)", field=name)
    return value


def encodable(text: str) -> bool:
    """Whether ``text`` is valid Unicode (JSON may carry lone surrogates, Redis not)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _ga_id(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None or value == "":
        return ""
    if type(value) is not str and isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    # digits and dots: nothing is left once they are stripped (cheaper than a pattern)
    if not isinstance(value, str) or len(value) > GA_ID_MAX or value.strip(_GA_CHARS):
        raise BadRequest(f"{name} must be digits and dots, as GA writes it", field=name)
    return value


def pair(own: Phone, shown: Phone | str) -> dict[str, str]:
    shown_phone = shown if isinstance(shown, Phone) else None
    number = shown_phone.e164 if shown_phone else str(shown)
    national = shown_phone.national if shown_phone else ""
    return {
        "replace": own.e164,
        "number": number,
        "replace_national": own.national,
        "number_national": national,
        "country_code": own.country_code,
    }


class Tracker:
    def __init__(
        self,
        config: Config,
        redis: AnyRedis,
        allocator: Allocator,
        keys: Keys,
        signer: Signer,
        geoip: GeoIP,
    ) -> None:
        self.config = config
        self.redis = redis
        self.allocator = allocator
        self.keys = keys
        self.signer = signer
        self.geoip = geoip
        self.ttl_ms = config.history_days * 86_400_000
        self.batch = Batcher(redis, allocator.scripts)
        self.one_script = not self.batch.cluster  # start.lua needs every key in one place
        self.hold_s = round(config.hold_minutes * 60)
        self._phones = {n.e164: n for s in config.sites for p in s.pools for n in p.numbers}
        # each site's pools for the values its pools match on (bounded)
        self._match_keys = {
            s.id: sorted({k for p in s.pools for k, _ in p.match}) for s in config.sites
        }
        self._choices: dict[tuple[str, ...], list[Pool]] = {}
        # the answer's entries are the same few dicts over and over: made once each
        self._pairs: dict[tuple[str, str], _Entry] = {}
        self._lists: dict[tuple[Any, ...], _Numbers] = {}
        self._visits: dict[tuple[str, Visit, str, str], _Visit] = {}
        # sid → site, visit, region chosen ("1" or ""), pages: see _remember
        self._sessions: dict[str, tuple[str, _Visit, str, str]] = {}

    def site(self, body: Mapping[str, Any]) -> Site:
        site_id = _str_field(body, "site", 64, required=True)
        site = self.config.site(site_id)
        if site is None:
            raise NotFound(f"no site {site_id!r} is configured", field="site")
        return site

    def _pools(self, site: Site, visit: Mapping[str, str]) -> list[Pool]:
        """The pools a visit takes numbers from (:meth:`Site.choose_pools`), remembered
        for the values the site's pools match on (read only: lists are shared)."""
        key = (site.id, *[visit.get(k, "") for k in self._match_keys[site.id]])
        chosen = self._choices.get(key)
        if chosen is None:
            if len(self._choices) >= CHOICES_KEPT:
                self._choices.clear()
            chosen = [p for p in site.choose_pools(visit).values() if p is not None]
            self._choices[key] = chosen
        return chosen

    def _numbers(self, site: Site, chosen: Sequence[Pool], raw: Sequence[Any]) -> _Numbers:
        """An entry per own number of the site, from the chosen pools' replies (a pool
        with no reply, or none to give, shows the own number); each reply is counted.
        The lists and their entries are made once per combination of numbers shown, and
        shared: read only."""
        add = metrics.LEASES.add
        key: list[Any] = [site.id]
        for pool, (number, outcome) in zip(chosen, raw, strict=False):
            add(site.id, pool.id, outcome)
            key += (pool.id, number)
        replies = tuple(key)  # the replies as they came: nothing decoded
        out = self._lists.get(replies)
        if out is None:
            if len(self._lists) >= CHOICES_KEPT:
                self._lists.clear()
            by_own = {
                pool.replace.e164: shown_number(pool, number)
                for pool, (number, _) in zip(chosen, raw, strict=False)
            }
            out = _Numbers()
            for own in site.replace:
                number = by_own.get(own.e164, own.e164)
                entry = self._pairs.get((own.e164, number))
                if entry is None:
                    seen = own if number == own.e164 else self._phones.get(number, number)
                    entry = self._pairs[(own.e164, number)] = _Entry(pair(own, seen))
                    entry.json = compact_json(entry)
                out.append(entry)
            out.json = "[" + ",".join([entry.json for entry in out]) + "]"
            self._lists[replies] = out
        return out

    def _visit(self, site: Site, visit: Visit, region: str, device: str) -> _Visit:
        """The answer's ``visit`` (SPEC) and what follows from it (:class:`_Visit`)."""
        key = (site.id, visit, region, device)
        out = self._visits.get(key)
        if out is None:
            if len(self._visits) >= CHOICES_KEPT:
                self._visits.clear()
            out = self._visits[key] = _Visit(
                source=visit.source,
                medium=visit.medium,
                campaign=visit.campaign,
                keyword=visit.keyword,
                region=region,
                device=device,
            )
            out.json = compact_json(out)
            out.given = tuple(x for kv in out.items() if kv[1] for x in kv)
            out.pools = self._pools(site, out)
            out.settings = self._script_settings(site, out.pools)
        return out

    def encoded(self, answer: Mapping[str, Any]) -> bytes:
        """An answer of :meth:`start` as JSON, its numbers and visit encoded once each."""
        numbers, visit, sid = answer["numbers"], answer["visit"], answer["sid"]
        # a sid is the server's own (base64url and a dot): nothing in it needs escaping
        sid_text = "null" if sid is None else '"' + sid + '"'
        numbers_text = numbers.json if isinstance(numbers, _Numbers) else compact_json(numbers)
        visit_text = visit.json if isinstance(visit, _Visit) else compact_json(visit)
        return (
            f'{{"sid":{sid_text},"numbers":{numbers_text},'
            f'"hold_seconds":{answer["hold_seconds"]},"visit":{visit_text}}}'
        ).encode()

    def _answer(self, sid: str | None, numbers: _Numbers, visit: dict[str, str]) -> dict[str, Any]:
        """``POST /v1/sessions``'s answer (SPEC: sid, numbers, hold_seconds, visit)."""
        return {"sid": sid, "numbers": numbers, "hold_seconds": self.hold_s, "visit": visit}

    async def start(
        self, site: Site, body: Mapping[str, Any], user_agent: str, client_ip: str | None
    ) -> dict[str, Any]:
        """Numbers for a page view, in one round trip on a single Redis
        (``scripts/start.lua``); a returning visitor's record is read first (a second)
        unless this process served its last page view (:meth:`_recall`)."""
        url = _str_field(body, "url", MAX_URL)
        referrer = _str_field(body, "referrer", MAX_URL)
        region_asked = _str_field(body, "region", 64)
        ga_client = _ga_id(body, "ga_client_id")
        ga_session = _ga_id(body, "ga_session_id")
        device = parse_user_agent(user_agent)
        current = classify(url, referrer, site.domains)
        sid = body.get("sid")
        known = isinstance(sid, str) and self.signer.verify(site.id, sid)
        limited_ip = None if known else client_ip  # a verified sid is not a new visitor

        if device.is_bot:
            if limited_ip:
                await self._limit(limited_ip)
            return self._answer(
                None, self._numbers(site, (), ()), self._visit(site, current, "", device.kind)
            )
        record: Mapping[str, str] = {}
        seen = ""  # the record's pages, which start.lua checks are still so
        if known:
            assert isinstance(sid, str)
            record, seen = await self._record(site, sid)
        if not record:
            sid = self.signer.issue(site.id)
        assert isinstance(sid, str)

        visit = keep_last_non_direct(_previous_visit(record), current) if record else current
        region = ""
        if region_asked and any(r.id == region_asked for r in site.regions):
            region = region_asked
        elif record.get("region_chosen") == "1":
            region = record.get("region", "")
        elif client_ip and site.regions:
            region = pick_region(site.regions, self.geoip.locate(client_ip)) or ""
        vd = self._visit(site, visit, region, device.kind)

        # the record's fields, as HSET takes them, but for its times and pages
        fields: list[str]
        if record:  # the visit where it changed ("" overwrites what an earlier page set)
            fields = ["last_page", url] if _holds(record, vd) else [*_flat(vd), "last_page", url]
        else:  # a first page: no empty field (a missing one reads as ""), no last_page
            fields = ["site", site.id, *vd.given]
            if url:
                fields += ("landing_page", url)
            if referrer:
                fields += ("referrer", referrer)
        chose_region = bool(region_asked) and region == region_asked
        if chose_region:
            fields += ("region_chosen", "1")
        if ga_client:
            fields += ("ga_client_id", ga_client)
        if ga_session:
            fields += ("ga_session_id", ga_session)
        now_ms = int(time.time() * 1000)
        if not self.one_script:
            raw = await self._start_in_steps(site, vd, sid, now_ms, fields, not record, limited_ip)
            return self._answer(sid, self._numbers(site, vd.pools, raw), vd)
        got = await self._start_script(site, vd, sid, now_ms, fields, not record, limited_ip, seen)
        if got is None:  # the record changed since it was read or remembered: again
            self._sessions.pop(sid, None)
            return await self.start(site, body, user_agent, client_ip)
        pages, raw = got
        chosen = "1" if chose_region or record.get("region_chosen") == "1" else ""
        self._remember(sid, site, vd, chosen, pages)
        return self._answer(sid, self._numbers(site, vd.pools, raw), vd)

    async def _record(self, site: Site, sid: str) -> tuple[Mapping[str, str], str]:
        """What a page view needs of a known session's record (``VISIT_FIELDS``) and its
        pages: as this process remembers them (:meth:`_recall`), else read."""
        record, seen = self._recall(sid)
        if not record:
            record = await self._read(sid, VISIT_FIELDS)
            seen = record.get("pages", "")
        return (record, seen) if record.get("site") == site.id else ({}, "")

    def _remember(self, sid: str, site: Site, visit: _Visit, chosen: str, pages: Any) -> None:
        """What a session's record holds of its visit after a page view, and its pages:
        its next page view, if this process serves it, need not read the record."""
        if len(self._sessions) >= SESSIONS_KEPT:
            self._sessions.clear()
        self._sessions[sid] = (site.id, visit, chosen, str(pages))

    def _recall(self, sid: str) -> tuple[Mapping[str, str], str]:
        """The record's visit fields and pages as :meth:`_remember` left them, else
        ``({}, "")``; start.lua checks the pages before it writes anything."""
        got = self._sessions.get(sid)
        if got is None:
            return {}, ""
        site_id, visit, chosen, pages = got
        return {**visit, "site": site_id, "region_chosen": chosen}, pages

    def _script_settings(self, site: Site, chosen: Sequence[Pool]) -> str:
        """start.lua's settings (ARGV[1]) for a choice of pools."""
        config = self.config
        limits = [config.server.sessions_per_minute, RATE_WINDOW_MS, config.hold_ms]
        limits += [self.allocator.history_ms, self.ttl_ms]
        pools = [x for p in chosen for x in (self.keys.pool(site.id, p.id), p.on_exhausted)]
        return lua_list([*map(str, limits), *pools])

    async def _start_script(
        self,
        site: Site,
        visit: _Visit,
        sid: str,
        now_ms: int,
        fields: list[str],
        fresh: bool,
        limited_ip: str | None,
        seen: str = "",
    ) -> tuple[Any, list[tuple[Any, Any]]] | None:
        """The record's pages after this page view and (number, outcome) per pool; None
        when the record's pages are not ``seen`` (as read or remembered; "" for none).

        ``fields`` are the record's, as HSET takes them, but for ``first_seen``,
        ``last_seen`` and ``pages``, which the script sets; ``fresh`` for a sid issued
        for this page view (its record is new, and it holds no lease yet)."""
        rate = self._rate_key(limited_ip, now_ms) if limited_ip else ""
        view = [rate, sid, str(now_ms), utc_day(now_ms), "0" if fresh else "1", seen, *fields]
        (raw,) = await self.batch(
            (
                "script",
                "start",
                self.keys.session(sid),
                visit.settings,
                lua_list(view),
            )
        )
        if raw[0] == -1:
            return None
        if rate:
            self._check_rate(raw[0])
        return raw[1], list(zip(raw[2::2], raw[3::2], strict=True))

    async def _start_in_steps(
        self,
        site: Site,
        visit: _Visit,
        sid: str,
        now_ms: int,
        fields: list[str],
        fresh: bool,
        limited_ip: str | None,
    ) -> list[Any]:
        """The same as ``start.lua``, for a Cluster: the session, the rate counter and
        each pool live in different slots there."""
        if limited_ip:
            await self._limit(limited_ip)
        key = self.keys.session(sid)
        chosen = visit.pools
        ops: list[Op] = [self.allocator.op(site, pool, sid, now_ms) for pool in chosen]
        fields = lua_values(fields)  # stored as start.lua stores them
        if fresh:
            ops.append(
                ("HSET", key, "first_seen", now_ms, "last_seen", now_ms, "pages", 1, *fields)
            )
        else:  # one more page of a known session
            ops.append(("HSET", key, "last_seen", now_ms, *fields))
            ops.append(("HINCRBY", key, "pages", 1))
        ops.append(("PEXPIRE", key, self.ttl_ms))
        raw = await self.batch(*ops)
        return raw[: len(chosen)]

    async def session(self, sid: str) -> tuple[Site, dict[str, str]]:
        """The site of a live session whose sid verifies, and what a ping needs of its
        record (``PING_FIELDS``); 404 otherwise."""
        record = await self._read(sid, PING_FIELDS) if len(sid) <= 64 else {}
        site = self.config.site(record.get("site", ""))
        if site is None or not self.signer.verify(site.id, sid):
            raise NotFound("unknown or expired session; start a new one", field="sid")
        return site, record

    async def _read(self, sid: str, names: tuple[str, ...]) -> dict[str, str]:
        """The fields ``names`` of a session's record that are set (all of a record
        would cost a page view more to read and decode than its Redis work)."""
        (values,) = await self.batch(("HMGET", self.keys.session(sid), *names))
        pairs = zip(names, values, strict=True)
        return {name: value.decode() for name, value in pairs if value is not None}

    async def ping(
        self, site: Site, sid: str, record: Mapping[str, str], body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Keep the session's leases and record the page (``record`` from :meth:`session`)."""
        # a 4xx makes the snippet drop its session, so malformed optional fields are
        # ignored here rather than refused
        url = _lenient(lambda: _str_field(body, "url", MAX_URL))
        ga_session = _lenient(lambda: _ga_id(body, "ga_session_id"))
        ga_client = _lenient(lambda: _ga_id(body, "ga_client_id"))
        key = self.keys.session(sid)
        now_ms = int(time.time() * 1000)
        chosen = self._pools(site, record)
        fields: dict[str, str | int] = {"last_seen": now_ms}
        if url:
            fields["last_page"] = url
        if ga_session:
            fields["ga_session_id"] = ga_session
        if ga_client and not record.get("ga_client_id"):
            fields["ga_client_id"] = ga_client  # _ga is often set after the first request
        ops: list[Op] = [self.allocator.op(site, pool, sid, now_ms) for pool in chosen]
        ops += [("HSET", key, *_flat(fields)), ("PEXPIRE", key, self.ttl_ms)]
        if url and url != (record.get("last_page") or record.get("landing_page")):
            ops.append(("HINCRBY", key, "pages", 1))
            self._sessions.pop(sid, None)  # what this process remembers is out of date
        raw = await self.batch(*ops)
        return {"hold_seconds": self.hold_s, "numbers": self._numbers(site, chosen, raw)}

    def _rate_key(self, ip: str, now_ms: int) -> str:
        return self.keys.ratelimit(ip, now_ms // 60_000)  # one counter per minute

    async def _limit(self, ip: str) -> None:
        """Count a new session from ``ip`` with ``ratelimit.lua``; 429 over the limit."""
        (count,) = await self.batch(
            ("script", "ratelimit", self._rate_key(ip, int(time.time() * 1000)), RATE_WINDOW_MS)
        )
        self._check_rate(count)

    def _check_rate(self, count: Any) -> None:
        """At most ``sessions_per_minute`` new sessions per client address (429 beyond)."""
        limit = self.config.server.sessions_per_minute
        if int(count) > limit:
            retry = 60 - int(time.time() % 60)
            metrics.RATE_LIMITED.inc()
            raise RateLimited(
                f"more than {limit} new sessions a minute from this address",
                field="client",
                headers={"Retry-After": str(retry)},
            )


def _holds(record: Mapping[str, str], fields: Mapping[str, str]) -> bool:
    """Whether a record already holds ``fields`` (a field it lacks reads as "")."""
    return all(record.get(name, "") == value for name, value in fields.items())


def _flat(fields: Mapping[str, V]) -> list[str | V]:
    return [x for kv in fields.items() for x in kv]


def _lenient(read: Callable[[], str]) -> str:
    try:
        return read()
    except BadRequest:
        return ""


def decode_hash(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }


def _previous_visit(record: Mapping[str, str]) -> Visit | None:
    if not record.get("source"):
        return None
    return Visit(
        record["source"],
        record.get("medium", ""),
        record.get("campaign", ""),
        record.get("keyword", ""),
    )
