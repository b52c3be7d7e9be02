"""Device class, OS, browser and bot detection from a User-Agent string.

``parse_user_agent(ua)`` uses ua-parser with uap-core's bundled rules (the Rust matcher
when it is installed) and adds what those rules do not call a bot:

* uap-core's ``Spider`` device family (crawlers, most link previewers);
* an empty User-Agent;
* headless and automated browsers (HeadlessChrome, PhantomJS, Lighthouse, Puppeteer,
  Playwright, Selenium);
* link previewers (facebookexternalhit, Twitterbot, Slackbot, TelegramBot, WhatsApp,
  Discordbot, LinkedInBot, SkypeUriPreview, vkShare, Applebot, ...);
* HTTP libraries and native HTTP stacks (curl, Wget, python-requests, Go-http-client,
  okhttp, Dalvik, CFNetwork, ...). okhttp is what Android apps talk HTTP with, but an
  app's WebView identifies itself as Chrome, so okhttp never runs the page snippet: a
  session asked for with okhttp's User-Agent is a script, not a visitor.

Kind, for a visitor that is not a bot: ``tablet`` for an iPad, a Kindle, a User-Agent
that says ``Tablet``, or Android without ``Mobile``; ``mobile`` for ``Mobi`` in the
User-Agent, an iPhone/iPod or a phone OS; otherwise ``desktop``. Since iPadOS 13 Safari
presents itself as a Mac by default; such an iPad reads as desktop.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["MAX_UA_LENGTH", "Device", "cache_clear", "parse_user_agent", "resolver_name"]

# Longer User-Agents are cut before parsing (real ones stay well below this).
MAX_UA_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class Device:
    kind: str  # "desktop" | "mobile" | "tablet" | "bot"
    os: str  # uap-core OS family: "Windows", "Mac OS X", "iOS", "Android", "Other", ...
    browser: str  # uap-core browser family: "Chrome", "Mobile Safari", "Googlebot", ...
    is_bot: bool


# Lowercase markers, found anywhere in the User-Agent: automated browsers, link
# previewers and HTTP stacks that uap-core does not file under its Spider device.
_BOT_MARKERS = (
    "headless",
    "phantomjs",
    "lighthouse",
    "puppeteer",
    "playwright",
    "selenium",
    "webdriver",
    "slimerjs",
    "facebookexternalhit",
    "facebookcatalog",
    "meta-external",
    "twitterbot",
    "slackbot",
    "slack-imgproxy",
    "telegrambot",
    "whatsapp",
    "discordbot",
    "linkedinbot",
    "skypeuripreview",
    "vkshare",
    "applebot",
    "pinterestbot",
    "redditbot",
    "embedly",
    "iframely",
    "quora link preview",
    "bitlybot",
    "google-inspectiontool",
    "googleother",
    "google-read-aloud",
    "mediapartners-google",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp/",
    "go-http-client",
    "okhttp",
    "dalvik/",
    "cfnetwork/",
    "apache-httpclient",
    "java/",
    "libwww-perl",
    "guzzlehttp",
    "node-fetch",
    "postmanruntime",
    "insomnia/",
)
# Lowercase markers a User-Agent starts with: command-line tools and HTTP libraries.
_BOT_PREFIXES = (
    "curl",
    "wget",
    "httpie",
    "python",
    "php",
    "ruby",
    "perl",
    "lwp::",
    "java",
    "jakarta",
    "go ",
    "go-",
    "node",
    "undici",
    "axios",
    "got ",
    "deno/",
    "bun/",
    "faraday",
    "restsharp",
    "powershell",
    "winhttp",
    "scrapy",
    "http_request",
    "okhttp",
    "dalvik",
)


def _looks_automated(ua: str) -> bool:
    low = ua.lower()
    return low.startswith(_BOT_PREFIXES) or any(m in low for m in _BOT_MARKERS)


_MOBILE_OS = frozenset(
    (
        "iOS",
        "Android",
        "Windows Phone",
        "Windows Mobile",
        "BlackBerry OS",
        "BlackBerry Tablet OS",
        "KaiOS",
        "Symbian OS",
        "Symbian^3",
        "Firefox OS",
        "Tizen",
        "Sailfish",
        "HarmonyOS",
        "webOS",
        "Bada",
        "MeeGo",
        "Maemo",
    )
)
_TABLET_FAMILIES = re.compile(r"^(?:iPad|Kindle|Generic Tablet)|Tablet", re.IGNORECASE)
_TABLET_WORD = re.compile(r"\b[Tt]ablet\b")
_PHONE_FAMILIES = re.compile(r"^(?:iPhone|iPod|Generic Smartphone|Generic Feature Phone)")

_parser: Any = None
_parser_lock = threading.Lock()


def _get_parser() -> Any:
    """ua-parser's parser over the bundled rules, built once (the Rust matcher when the
    ``ua-parser-rs`` wheel is there, else re2, else pure Python). No internal cache:
    ``parse_user_agent`` has its own."""
    global _parser
    if _parser is None:
        with _parser_lock:
            if _parser is None:
                import ua_parser

                matchers = (
                    ua_parser.load_lazy_builtins()
                    if ua_parser.RegexResolver or ua_parser.Re2Resolver
                    else ua_parser.load_builtins()
                )
                _parser = ua_parser.Parser(ua_parser.BestAvailableResolver(matchers))
    return _parser


def resolver_name() -> str:
    """Which ua-parser matcher is in use (``ua_parser.regex`` is the Rust one)."""
    return type(_get_parser().resolver).__module__


def _kind(ua: str, os_family: str, device_family: str, device_brand: str) -> str:
    if (
        _TABLET_FAMILIES.search(device_family)
        or "Tablet" in device_brand
        or _TABLET_WORD.search(ua)
    ):
        return "tablet"
    if os_family == "Android" and "Mobi" not in ua:
        return "tablet"
    if "Mobi" in ua or _PHONE_FAMILIES.search(device_family) or os_family in _MOBILE_OS:
        return "mobile"
    return "desktop"


@lru_cache(maxsize=10_000)
def _parse(ua: str) -> Device:
    if not ua:
        return Device("bot", "Other", "Other", True)
    result = _get_parser().parse(ua).with_defaults()
    browser = result.user_agent.family or "Other"
    os_family = result.os.family or "Other"
    device = result.device
    if device.family == "Spider" or _looks_automated(ua):
        return Device("bot", os_family, browser, True)
    return Device(
        _kind(ua, os_family, device.family or "Other", device.brand or ""),
        os_family,
        browser,
        False,
    )


def parse_user_agent(ua: str) -> Device:
    """Kind (desktop, mobile, tablet or bot), OS family and browser family of ``ua``.

    Cached (the last 10,000 distinct strings, cut to ``MAX_UA_LENGTH``); never raises.
    """
    if not isinstance(ua, str):
        ua = ""
    ua = ua.strip()[:MAX_UA_LENGTH]
    try:
        return _parse(ua)
    except Exception:  # a parser failure must not take a session request down
        return Device("desktop", "Other", "Other", False)


def cache_clear() -> None:
    """Forget every cached parse (benchmarks, tests)."""
    _parse.cache_clear()
