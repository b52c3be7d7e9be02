"""Device kind, OS, browser and bot detection from real User-Agent strings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution import devices
from attribution.devices import MAX_UA_LENGTH, Device, parse_user_agent

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
EDGE_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51"
)
YABROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 YaBrowser/24.4.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
SAFARI_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)
CHROME_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.82 Mobile Safari/537.36"
)
SAMSUNG_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36"
)
ANDROID_WEBVIEW = (
    "Mozilla/5.0 (Linux; Android 12; SM-G991B Build/SP1A.210812.016; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.82 Mobile Safari/537.36"
)
FACEBOOK_IN_APP = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/460.0.0.38.108;FBDV/iPhone15,2;"
    "FBMD/iPhone;FBSN/iOS;FBSV/17.4]"
)
CUBOT_PHONE = (
    "Mozilla/5.0 (Linux; Android 10; Cubot X19) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.82 Safari/537.36"
)
FIREFOX_ANDROID_TABLET = "Mozilla/5.0 (Android 14; Tablet; rv:125.0) Gecko/125.0 Firefox/125.0"
KINDLE_FIRE = (
    "Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Silk/124.3.1 like Chrome/124.0.6367.219 Safari/537.36"
)

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GOOGLEBOT_SMARTPHONE = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36 "
    "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)
YANDEXBOT = "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)"
BINGBOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
HEADLESS_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/124.0.6367.60 Safari/537.36"
)
PHANTOMJS = (
    "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 "
    "Safari/538.1"
)
LIGHTHOUSE = (
    "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse"
)
FACEBOOKEXTERNALHIT = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"
TELEGRAMBOT = "TelegramBot (like TwitterBot)"
TWITTERBOT = "Twitterbot/1.0"
SLACKBOT = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
WHATSAPP = "WhatsApp/2.23.20.0 A"
DISCORDBOT = "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)"
LINKEDINBOT = (
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)"
)
SKYPE = "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5"
VKSHARE = "Mozilla/5.0 (compatible; vkShare; +http://vk.com/dev/Share)"
APPLEBOT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)"
)
GPTBOT = (
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
    "+https://openai.com/gptbot)"
)
CURL = "curl/8.5.0"
WGET = "Wget/1.21.4"
PYTHON_REQUESTS = "python-requests/2.31.0"
AIOHTTP = "Python/3.11 aiohttp/3.9.1"
GO_HTTP = "Go-http-client/1.1"
OKHTTP = "okhttp/4.12.0"
DALVIK = "Dalvik/2.1.0 (Linux; U; Android 13; Pixel 7 Build/TQ3A.230901.001)"
JAVA = "Java/17.0.2"
NODE_FETCH = "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)"
POSTMAN = "PostmanRuntime/7.36.0"


@pytest.mark.parametrize(
    ("ua", "kind", "os", "browser"),
    [
        (CHROME_WINDOWS, "desktop", "Windows", "Chrome"),
        (SAFARI_MAC, "desktop", "Mac OS X", "Safari"),  # also what iPadOS 13+ sends by default
        (FIREFOX_LINUX, "desktop", "Ubuntu", "Firefox"),
        (EDGE_WINDOWS, "desktop", "Windows", "Edge"),
        (YABROWSER, "desktop", "Windows", "Yandex Browser"),
        (SAFARI_IPHONE, "mobile", "iOS", "Mobile Safari"),
        (ANDROID_PHONE, "mobile", "Android", "Chrome Mobile"),
        (SAMSUNG_PHONE, "mobile", "Android", "Samsung Internet"),
        (ANDROID_WEBVIEW, "mobile", "Android", "Chrome Mobile WebView"),
        (FACEBOOK_IN_APP, "mobile", "iOS", "Facebook"),
        (CUBOT_PHONE, "mobile", "Android", "Chrome Mobile"),  # "bot" inside a brand name
        (SAFARI_IPAD, "tablet", "iOS", "Mobile Safari"),
        (CHROME_IPAD, "tablet", "iOS", "Chrome Mobile iOS"),
        (ANDROID_TABLET, "tablet", "Android", "Chrome"),
        (FIREFOX_ANDROID_TABLET, "tablet", "Android", "Firefox Mobile"),
        (KINDLE_FIRE, "tablet", "Android", "Amazon Silk"),
    ],
)
def test_visitors(ua: str, kind: str, os: str, browser: str) -> None:
    assert parse_user_agent(ua) == Device(kind, os, browser, False)


@pytest.mark.parametrize(
    "ua",
    [
        # crawlers (uap-core's Spider device)
        GOOGLEBOT,
        GOOGLEBOT_SMARTPHONE,
        YANDEXBOT,
        BINGBOT,
        APPLEBOT,
        GPTBOT,
        # headless and audit browsers
        HEADLESS_CHROME,
        PHANTOMJS,
        LIGHTHOUSE,
        # link previewers
        FACEBOOKEXTERNALHIT,
        TELEGRAMBOT,
        TWITTERBOT,
        SLACKBOT,
        WHATSAPP,
        DISCORDBOT,
        LINKEDINBOT,
        SKYPE,
        VKSHARE,
        # HTTP libraries and native HTTP stacks
        CURL,
        WGET,
        PYTHON_REQUESTS,
        AIOHTTP,
        GO_HTTP,
        OKHTTP,
        DALVIK,
        JAVA,
        NODE_FETCH,
        POSTMAN,
        # nothing at all
        "",
        "   ",
    ],
)
def test_bots(ua: str) -> None:
    device = parse_user_agent(ua)
    assert device.is_bot and device.kind == "bot"


def test_bots_keep_their_names() -> None:
    assert parse_user_agent(GOOGLEBOT).browser == "Googlebot"
    assert parse_user_agent(YANDEXBOT).browser == "YandexBot"
    assert parse_user_agent(HEADLESS_CHROME) == Device("bot", "Linux", "HeadlessChrome", True)
    assert parse_user_agent(CURL).browser == "curl"
    assert parse_user_agent("") == Device("bot", "Other", "Other", True)


def test_parses_are_cached() -> None:
    devices.cache_clear()
    parse_user_agent(CHROME_WINDOWS)
    parse_user_agent(CHROME_WINDOWS)
    parse_user_agent("  " + CHROME_WINDOWS + " ")  # trimmed before the cache
    info = devices._parse.cache_info()
    assert info.misses == 1 and info.hits == 2
    assert info.maxsize == 10_000


def test_the_rust_matcher_is_used_when_installed() -> None:
    pytest.importorskip("ua_parser_rs")
    assert devices.resolver_name() == "ua_parser.regex"


def test_huge_user_agents_are_cut() -> None:
    ua = ANDROID_PHONE + " X" * 50_000
    device = parse_user_agent(ua)
    assert device.kind == "mobile"
    assert len(ua) > MAX_UA_LENGTH


def test_non_strings_never_raise() -> None:
    assert parse_user_agent(None).is_bot  # type: ignore[arg-type]


@settings(max_examples=300, database=None, deadline=None)
@given(ua=st.text(max_size=300))
def test_parse_never_raises(ua: str) -> None:
    device = parse_user_agent(ua)
    assert device.kind in {"desktop", "mobile", "tablet", "bot"}
    assert device.is_bot == (device.kind == "bot")
