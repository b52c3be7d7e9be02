"""How a visitor arrived: source, medium, campaign and keyword, the way GA4 reads them.

``classify(url, referrer, own_domains)`` applies these rules, first match wins:

1. UTM tags in the page URL: ``utm_source``, ``utm_medium``, ``utm_campaign``, and
   ``utm_term`` as the keyword (``utm_content`` is ignored). Present when ``utm_source``
   or ``utm_medium`` is non-empty; the missing one of the two reads ``(not set)``, as in
   GA4. Source and medium are lowercased (``Google``/``CPC`` and ``google``/``cpc`` are
   one channel for pool matching); campaign and keyword keep their spelling.
2. Ad click ids, only when there are no UTM tags: ``gclid``/``gbraid``/``wbraid`` ->
   ``google/cpc``, ``yclid`` -> ``yandex/cpc``, ``msclkid`` -> ``bing/cpc``, ``ttclid``
   -> ``tiktok/paid_social``, ``twclid`` -> ``twitter/paid_social``, ``fbclid`` ->
   ``facebook/paid_social``. ``utm_campaign``/``utm_term`` still fill campaign/keyword.
3. The referrer, matched against ``data/referrers.json`` (built from Matomo's lists by
   ``scripts/build_referrers.py``):

   * a search engine -> ``<engine>/organic``, the keyword from the engine's query
     parameter when the referrer carries it (browsers usually send only the origin, so
     it is mostly empty). Hosts match exactly or by Matomo's patterns (``google.{}`` is
     any country domain, ``{}.bing.com`` any country label; a leading ``www.``, ``m.``
     or ``search.`` is ignored), never as a parent domain (``mail.google.com`` is a
     referral). The engine's own hosts count with or without a keyword; other sites
     that offer its results (``www.cnn.com`` for Google) only when they show a search;
   * a social network -> ``<network>/social``;
   * an AI assistant (ChatGPT, Perplexity, Claude, Gemini, Copilot, ...) ->
     ``<assistant>/referral``: GA4 counts these as referrals too, and the assistant's own
     source name lets a pool single them out;
   * the site's own domains (each listed domain, its ``www.``-less form and any
     subdomain, any port) and the page's own host -> internal, which classifies as
     direct, so that ``keep_last_non_direct`` keeps the earlier source;
   * anything else -> ``<host without www.>/referral``.
4. Nothing -> ``(direct)/(none)``.

Malformed URLs never raise; they classify as well as what can be read from them allows.
Every field is trimmed, capped at ``MAX_FIELD`` characters and valid UTF-8.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from importlib import resources
from typing import Any, NamedTuple
from urllib.parse import unquote, unquote_to_bytes, urlsplit

__all__ = [
    "DIRECT",
    "MAX_FIELD",
    "Visit",
    "classify",
    "keep_last_non_direct",
    "lookup_referrer",
]

MAX_FIELD = 255

log = logging.getLogger(__name__)


class Visit(NamedTuple):
    """A visit's channel, as the server stores it and answers it as ``visit``.

    ``campaign`` and ``keyword`` are ``""`` when absent.  (A named tuple: one is made
    per page view, and a frozen dataclass takes twice as long to make.)
    """

    source: str
    medium: str
    campaign: str = ""
    keyword: str = ""

    @property
    def is_direct(self) -> bool:
        return self.source == "(direct)" and self.medium == "(none)"


# a Visit made straight from a tuple, without the Python frame of its generated __new__
# (on the hot path: every page view with tags)
_visit = partial(tuple.__new__, Visit)
DIRECT = Visit("(direct)", "(none)", "", "")
NOT_SET = "(not set)"

# Click ids in priority order: (parameter, source, medium).
CLICK_IDS: tuple[tuple[str, str, str], ...] = (
    ("gclid", "google", "cpc"),
    ("gbraid", "google", "cpc"),
    ("wbraid", "google", "cpc"),
    ("yclid", "yandex", "cpc"),
    ("msclkid", "bing", "cpc"),
    ("ttclid", "tiktok", "paid_social"),
    ("twclid", "twitter", "paid_social"),
    ("fbclid", "facebook", "paid_social"),
)
_CLICK_ID_NAMES = frozenset(name for name, _, _ in CLICK_IDS)
_UTM_NAMES = frozenset(("utm_source", "utm_medium", "utm_campaign", "utm_term"))
_WANTED = _UTM_NAMES | _CLICK_ID_NAMES


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str  # "search" | "social" | "ai"
    source: str
    path: str  # "" or a path prefix such as "/images/search"
    params: tuple[str, ...] = ()
    param_patterns: tuple[re.Pattern[str], ...] = ()
    hidden_paths: frozenset[str] = frozenset()
    hidden_patterns: tuple[re.Pattern[str], ...] = ()
    charsets: tuple[str, ...] = ()
    primary: bool = False

    @property
    def medium(self) -> str:
        return _MEDIUM[self.kind]


_MEDIUM = {"search": "organic", "social": "social", "ai": "referral"}


class _Table:
    """Search rules keyed by host pattern (``{}`` wildcards); social and AI rules keyed
    by domain and matched on the host or any parent domain."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.search: dict[str, list[_Rule]] = {}
        self.named: dict[str, list[_Rule]] = {}
        for raw in data.get("search", ()):
            patterns = tuple(re.compile(p) for p in raw.get("param_patterns", ()))
            hidden = tuple(re.compile(p) for p in raw.get("hidden_patterns", ()))
            for host, path in _split_hosts(raw["hosts"]):
                rule = _Rule(
                    "search",
                    raw["source"],
                    path,
                    params=tuple(raw.get("params", ())),
                    param_patterns=patterns,
                    hidden_paths=frozenset(raw.get("hidden_paths", ())),
                    hidden_patterns=hidden,
                    charsets=tuple(raw.get("charsets", ())),
                    primary=bool(raw.get("primary", False)),
                )
                self.search.setdefault(host, []).append(rule)
        for kind in ("ai", "social"):
            for raw in data.get(kind, ()):
                for host, path in _split_hosts(raw["hosts"]):
                    self.named.setdefault(host, []).append(_Rule(kind, raw["source"], path))
        for table in (self.search, self.named):
            for rules in table.values():
                rules.sort(key=lambda r: -len(r.path))  # stable: data order within a length


def _split_hosts(hosts: Iterable[str]) -> Iterable[tuple[str, str]]:
    for entry in hosts:
        host, _, path = entry.partition("/")
        yield host, ("/" + path.rstrip("/")) if path else ""


def _load_table() -> _Table:
    text = resources.files("attribution").joinpath("data/referrers.json").read_text("utf-8")
    return _Table(json.loads(text))


_TABLE = _load_table()

# Matomo's "lossy" host: drop www./search./m., turn a country ending into {}.
_LEADING = re.compile(r"^(?:w+\d*|search)\.")
_MOBILE = re.compile(r"(^|\.)m\.")
_COUNTRY_END = re.compile(r"(?:\.(?:com|org|net|co|it|edu|ac|gov|ne|or|go|gob))?\.[a-z]{2}$")
_COUNTRY_LABEL = re.compile(r"(?<![^.])[a-z]{2}\.")


def _search_keys(host: str) -> list[str]:
    stripped = _MOBILE.sub(r"\1", _LEADING.sub("", host, count=1), count=1)
    country = _COUNTRY_END.sub(".{}", stripped)
    keys = [host]
    for key in (stripped, country, _COUNTRY_LABEL.sub("{}.", country)):
        if key and key not in keys:
            keys.append(key)
    return keys


@lru_cache(maxsize=8192)
def lookup_referrer(host: str) -> tuple[_Rule, ...]:
    """Every rule a referrer host may match, most specific first (cached).

    The host itself (search and named rules), then its lossy forms (search rules) and
    its parent domains (named rules). Within a host, rules with a longer path first.
    """
    table = _TABLE
    exact: list[_Rule] = []
    loose: list[_Rule] = []
    keys = _search_keys(host)
    exact += table.search.get(host, ())
    exact += table.named.get(host, ())
    for key in keys[1:]:
        loose += table.search.get(key, ())
    labels = host.split(".")
    for i in range(1, len(labels) - 1):
        loose += table.named.get(".".join(labels[i:]), ())
    return tuple(exact + loose)


# --------------------------------------------------------------------------- parsing


def _cap(text: str) -> str:
    """Trimmed, at most ``MAX_FIELD`` characters, and encodable (no lone surrogates)."""
    text = text.strip()
    if len(text) > MAX_FIELD:
        text = text[:MAX_FIELD].rstrip()
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _query_pairs(query: str, wanted: frozenset[str] | None = None) -> dict[str, str]:
    """First raw (still encoded) value of each parameter; names compared as written,
    or lowercased when ``wanted`` filters them."""
    out: dict[str, str] = {}
    if not query:
        return out
    if ";" in query:
        query = query.replace(";", "&")
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if wanted is not None:
            if name not in wanted:  # most names are written in lowercase
                name = name.lower()
                if name not in wanted:
                    continue
        elif not part:
            continue
        if name not in out or (not out[name] and value):
            out[name] = value
    return out


def _decode(raw: str, charsets: Sequence[str] = ()) -> str:
    raw = raw.replace("+", " ")
    if "%" not in raw:
        return raw
    data = unquote_to_bytes(raw)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for charset in charsets:
        try:
            return data.decode(charset)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("utf-8", "replace")


def _page_query(url: str) -> str:
    _, sep, rest = url.partition("?")
    return rest.partition("#")[0] if sep else ""


# an http(s) URL whose authority is a plain host and port, as nearly every page and
# referrer is: split here, at a fraction of urlsplit's cost (its cache misses on URLs
# that differ per visitor); what could make urlsplit read it otherwise — userinfo,
# brackets, a zone, a tab or newline it would drop, non-ASCII it would normalise — is
# left to urlsplit
_PLAIN_AUTHORITY = re.compile(r"https?://([^/?#@\[%\t\r\n]*)(?:[/?#]|\Z)")


def _plain_parts(text: str) -> tuple[str, str, str, str] | None:
    """Host (as :func:`_host_of` gives it), path, query and fragment of a URL with a
    plain authority, as urlsplit reads them; None for any other text."""
    m = _PLAIN_AUTHORITY.match(text)
    if m is None or not (authority := m.group(1)).isascii():
        return None
    if "\t" in text or "\n" in text or "\r" in text:
        return None
    rest, _, fragment = text[m.end(1) :].partition("#")
    path, _, query = rest.partition("?")
    return authority.partition(":")[0].lower().rstrip("."), path, query, fragment


def _host_of(text: str) -> str:
    """Lowercase host of a URL, without port, brackets or trailing dot; "" if none."""
    parts = _plain_parts(text)
    if parts is not None:
        return parts[0]
    try:
        host = urlsplit(text).hostname or ""
    except ValueError:
        host = ""
    return host.rstrip(".")


@lru_cache(maxsize=1024)
def _own_domains(domains: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for raw in domains:
        d = raw.strip().lower()
        if "://" in d:
            d = d.split("://", 1)[1]
        d = d.split("/", 1)[0]
        if d.startswith("["):
            d = d[1:].split("]", 1)[0]
        elif d.count(":") == 1:
            d = d.split(":", 1)[0]
        d = d.strip(".")
        for prefix in ("*.", "www."):
            if d.startswith(prefix):
                d = d[len(prefix) :]
        if d and d not in out:
            out.append(d)
    return tuple(out)


def _is_own(host: str, own: Iterable[str]) -> bool:
    return any(host == d or host.endswith("." + d) for d in own)


# --------------------------------------------------------------------------- rules


def _search_keyword(rule: _Rule, referrer: str, path: str, query: str, fragment: str) -> str | None:
    """The keyword ("" when hidden) if the referrer is a search on ``rule``'s engine,
    ``None`` if it is just a page on that host."""
    pairs = _query_pairs(query + "&" + fragment if fragment else query)
    empty_param = False
    for name in rule.params:
        raw = pairs.get(name)
        if raw is None:
            continue
        keyword = _cap(_decode(raw, rule.charsets))
        if keyword:
            return keyword
        empty_param = True
    for rx in rule.param_patterns:
        m = rx.search(referrer)
        if m and m.groups():
            keyword = _cap(_decode(m.group(1) or "", rule.charsets))
            if keyword:
                return keyword
    if empty_param:
        return ""
    if rule.hidden_paths or rule.hidden_patterns:
        full = path + ("?" + query if query else "") + ("#" + fragment if fragment else "")
        if full in rule.hidden_paths or any(rx.search(full) for rx in rule.hidden_patterns):
            return ""
    if rule.primary and path in ("", "/") and not query:
        return ""
    return None


def _from_referrer(referrer: str, page_host: str, own_domains: Sequence[str]) -> Visit:
    referrer = referrer.strip()
    if not referrer:
        return DIRECT
    plain = _plain_parts(referrer)
    if plain is not None:
        host, path, query, fragment = plain
    else:
        try:
            parts = urlsplit(referrer)
            if not parts.netloc and not parts.scheme and "." in referrer.split("/", 1)[0]:
                parts = urlsplit("//" + referrer)  # "www.google.com/search?q=x", no scheme
            host = (parts.hostname or "").rstrip(".")
            path, query, fragment = parts.path, parts.query, parts.fragment
        except ValueError:
            host, path, query, fragment = "", "", "", ""
    if not host:
        return DIRECT
    if host == page_host or _is_own(host, _own_domains(tuple(own_domains))):
        return DIRECT  # internal
    for rule in lookup_referrer(host):
        if rule.path and not (path == rule.path or path.startswith(rule.path + "/")):
            continue
        if rule.kind != "search":
            return Visit(rule.source, rule.medium)
        keyword = _search_keyword(rule, referrer, path, query, fragment)
        if keyword is not None:
            return Visit(rule.source, "organic", "", keyword)
    return Visit(_cap(host[4:] if host.startswith("www.") else host), "referral")


def _text(value: object) -> str:
    if not isinstance(value, str):
        return ""
    if not value.isascii():  # lone surrogates (from JSON escapes) cannot be encoded
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value.strip()


def classify(url: str, referrer: str, own_domains: Sequence[str]) -> Visit:
    """The channel of a visit to ``url`` that came from ``referrer`` (module docstring)."""
    url, referrer = _text(url), _text(referrer)
    try:
        return _classify(url, referrer, own_domains)
    except Exception:  # the hot path answers a best guess, never a 500
        log.debug("cannot classify url=%r referrer=%r", url, referrer, exc_info=True)
        return DIRECT


def _classify(url: str, referrer: str, own_domains: Sequence[str]) -> Visit:
    params = _query_pairs(_page_query(url), _WANTED)
    if params:
        tags = {}
        for name, raw in params.items():  # most values need no decoding
            if "%" in raw or "+" in raw:
                raw = unquote(raw.replace("+", " "), errors="replace")
            tags[name] = _cap(raw)
        source = tags.get("utm_source", "").lower()
        medium = tags.get("utm_medium", "").lower()
        campaign = tags.get("utm_campaign", "")
        keyword = tags.get("utm_term", "")
        if source or medium:
            return _visit((source or NOT_SET, medium or NOT_SET, campaign, keyword))
        for name, click_source, click_medium in CLICK_IDS:
            if tags.get(name):
                return _visit((click_source, click_medium, campaign, keyword))
    return _from_referrer(referrer, _host_of(url), own_domains)


def keep_last_non_direct(previous: Visit | None, current: Visit) -> Visit:
    """GA's rule: a direct (or internal) return keeps the previous non-direct channel."""
    if current.is_direct and previous is not None and not previous.is_direct:
        return previous
    return current
