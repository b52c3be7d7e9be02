"""Traffic source classification: UTM tags, click ids, referrers, GA's last non-direct rule."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution.sources import (
    DIRECT,
    Visit,
    classify,
    keep_last_non_direct,
    lookup_referrer,
)

OWN = ["acme.example", "www.acme.example"]
PAGE = "https://www.acme.example/prices"


def visit(source: str, medium: str, campaign: str = "", keyword: str = "") -> Visit:
    return Visit(source, medium, campaign, keyword)


# --------------------------------------------------------------------------- search engines

SEARCH = [
    # Google, its country domains and its apps
    ("https://www.google.com/", visit("google", "organic")),
    ("https://google.com/", visit("google", "organic")),
    ("https://www.google.com.ua/", visit("google", "organic")),
    ("https://www.google.co.uk/", visit("google", "organic")),
    ("https://www.google.de/", visit("google", "organic")),
    (
        "https://www.google.com.br/search?q=rastreamento",
        visit("google", "organic", "", "rastreamento"),
    ),
    (
        "https://www.google.co.uk/search?q=call+tracking&hl=en",
        visit("google", "organic", "", "call tracking"),
    ),
    (
        "https://www.google.com/url?sa=t&q=&url=https%3A%2F%2Facme.example",
        visit("google", "organic"),
    ),
    ("https://images.google.de/", visit("google", "organic")),
    (
        "android-app://com.google.android.googlequicksearchbox/https/www.google.com",
        visit("google", "organic"),
    ),
    # Yandex
    ("https://yandex.ru/", visit("yandex", "organic")),
    ("https://ya.ru/", visit("yandex", "organic")),
    ("https://yandex.ua/", visit("yandex", "organic")),
    ("https://yandex.com.tr/", visit("yandex", "organic")),
    ("https://www.yandex.kz/", visit("yandex", "organic")),
    (
        "https://yandex.ru/search/?text=%D0%BA%D0%BE%D0%BB%D0%BB-%D1%82%D1%80%D0%B5%D0%BA%D0%B8%D0%BD%D0%B3&lr=147",
        visit("yandex", "organic", "", "колл-трекинг"),
    ),
    ("https://yandex.ru/images/search?text=cat", visit("yandex", "organic", "", "cat")),
    # Bing
    ("https://www.bing.com/", visit("bing", "organic")),
    ("https://www.bing.com/search?q=pbx+cdr&form=QBLH", visit("bing", "organic", "", "pbx cdr")),
    ("https://cn.bing.com/", visit("bing", "organic")),
    # DuckDuckGo
    ("https://duckduckgo.com/", visit("duckduckgo", "organic")),
    ("https://html.duckduckgo.com/", visit("duckduckgo", "organic")),
    # Baidu
    ("https://www.baidu.com/s?wd=%E7%94%B5%E8%AF%9D", visit("baidu", "organic", "", "电话")),
    ("https://www.baidu.com/", visit("baidu", "organic")),
    # Yahoo, Yahoo Japan
    ("https://search.yahoo.com/search?p=acme", visit("yahoo", "organic", "", "acme")),
    ("https://uk.search.yahoo.com/", visit("yahoo", "organic")),
    (
        "https://r.search.yahoo.com/_ylt=AwrE/RV=2/RE=1/RO=10/RU=https%3a%2f%2facme.example%2f/RK=2/",
        visit("yahoo", "organic"),
    ),
    (
        "https://search.yahoo.co.jp/search?p=%E9%9B%BB%E8%A9%B1",
        visit("yahoo", "organic", "", "電話"),
    ),
    # Ecosia, Naver, Seznam, Mail.ru
    ("https://www.ecosia.org/", visit("ecosia", "organic")),
    ("https://www.ecosia.org/search?q=acme", visit("ecosia", "organic", "", "acme")),
    ("https://search.naver.com/search.naver?query=acme", visit("naver", "organic", "", "acme")),
    ("https://m.search.naver.com/search.naver?query=acme", visit("naver", "organic", "", "acme")),
    ("https://search.naver.com/", visit("naver", "organic")),
    ("https://search.seznam.cz/?q=acme", visit("seznam", "organic", "", "acme")),
    ("https://search.seznam.cz/", visit("seznam", "organic")),
    ("https://go.mail.ru/search?q=acme", visit("mail.ru", "organic", "", "acme")),
    ("https://go.mail.ru/", visit("mail.ru", "organic")),
    # keyword spelling: charset fallback for a legacy windows-1251 query
    ("https://go.mail.ru/search?q=%EF%F0%E8%E2%E5%F2", visit("mail.ru", "organic", "", "привет")),
    # keyword in the fragment (Google sometimes writes it there)
    ("https://www.google.com/#q=acme", visit("google", "organic", "", "acme")),
]


@pytest.mark.parametrize(("referrer", "expected"), SEARCH)
def test_search_engines(referrer: str, expected: Visit) -> None:
    assert classify(PAGE, referrer, OWN) == expected


def test_search_engine_hosts_need_a_search_unless_the_host_is_the_engine() -> None:
    # www.cnn.com offers Google results: a search there is Google, an article is not.
    assert classify(PAGE, "https://www.cnn.com/search?query=acme", OWN) == visit(
        "google", "organic", "", "acme"
    )
    assert classify(PAGE, "https://www.cnn.com/2026/11/24/tech/", OWN) == visit(
        "cnn.com", "referral"
    )
    # Other services on an engine's domain are not search.
    assert classify(PAGE, "https://mail.google.com/", OWN) == visit("mail.google.com", "referral")
    assert classify(PAGE, "https://mail.yandex.ru/", OWN) == visit("mail.yandex.ru", "referral")


# --------------------------------------------------------------------------- social, AI

SOCIAL = [
    ("https://www.facebook.com/", "facebook"),
    ("https://l.facebook.com/l.php?u=https%3A%2F%2Facme.example", "facebook"),
    ("https://lm.facebook.com/", "facebook"),
    ("https://m.facebook.com/", "facebook"),
    ("https://www.instagram.com/", "instagram"),
    ("https://l.instagram.com/", "instagram"),
    ("https://vk.com/away.php?to=x", "vk"),
    ("https://m.vk.com/", "vk"),
    ("https://www.linkedin.com/", "linkedin"),
    ("https://lnkd.in/abc", "linkedin"),
    ("https://t.co/AbCdEf", "twitter"),
    ("https://x.com/someone/status/1", "twitter"),
    ("https://www.youtube.com/", "youtube"),
    ("https://youtu.be/xyz", "youtube"),
    ("https://www.tiktok.com/", "tiktok"),
    ("https://web.telegram.org/", "telegram"),
    ("https://t.me/acme", "telegram"),
    ("https://ok.ru/", "ok.ru"),
    ("https://www.reddit.com/r/voip/", "reddit"),
    ("https://www.pinterest.co.uk/", "pinterest"),
    ("android-app://org.telegram.messenger/", "telegram"),
]


@pytest.mark.parametrize(("referrer", "network"), SOCIAL)
def test_social_networks(referrer: str, network: str) -> None:
    assert classify(PAGE, referrer, OWN) == visit(network, "social")


def test_facebook_search_is_search_but_facebook_itself_is_social() -> None:
    assert classify(PAGE, "https://www.facebook.com/search/?q=acme", OWN) == visit(
        "facebook", "organic", "", "acme"
    )
    assert classify(PAGE, "https://www.facebook.com/groups/1/", OWN) == visit("facebook", "social")


AI = [
    ("https://chatgpt.com/", "chatgpt"),
    ("https://chat.openai.com/c/123", "chatgpt"),
    ("https://www.perplexity.ai/search?q=best+call+tracking", "perplexity"),
    ("https://claude.ai/", "claude"),
    ("https://gemini.google.com/app", "gemini"),
    ("https://copilot.microsoft.com/", "copilot"),
    ("https://chat.deepseek.com/", "deepseek"),
    ("https://x.com/i/grok?conversation=1", "grok"),
]


@pytest.mark.parametrize(("referrer", "assistant"), AI)
def test_ai_assistants_are_referrals_named_by_assistant(referrer: str, assistant: str) -> None:
    assert classify(PAGE, referrer, OWN) == visit(assistant, "referral")


# --------------------------------------------------------------------------- own, other, none


@pytest.mark.parametrize(
    "referrer",
    [
        "https://acme.example/",
        "https://www.acme.example/catalog?page=2",
        "https://shop.acme.example/cart",
        "https://www.acme.example:8443/x",
        "http://ACME.EXAMPLE./",
    ],
)
def test_own_domains_are_internal_so_direct(referrer: str) -> None:
    assert classify(PAGE, referrer, OWN) == DIRECT


def test_own_domains_may_be_written_as_urls_with_ports_or_wildcards() -> None:
    own = ["https://Acme.Example:443/", "*.acme-cdn.example"]
    assert classify(PAGE, "https://blog.acme.example/", own) == DIRECT
    assert classify(PAGE, "https://img.acme-cdn.example/", own) == DIRECT
    assert classify(PAGE, "https://notacme.example/", own) == visit("notacme.example", "referral")


def test_the_page_host_is_internal_even_when_not_listed() -> None:
    assert classify("https://landing.example/offer", "https://landing.example/", []) == DIRECT


@pytest.mark.parametrize(
    ("referrer", "expected"),
    [
        ("https://www.example.org/blog/post", visit("example.org", "referral")),
        ("https://news.example.org/", visit("news.example.org", "referral")),
        ("http://203.0.113.9:8080/x", visit("203.0.113.9", "referral")),
        ("android-app://com.google.android.gm/", visit("com.google.android.gm", "referral")),
        ("www.example.org/page", visit("example.org", "referral")),  # no scheme
    ],
)
def test_other_sites_are_referrals_by_host(referrer: str, expected: Visit) -> None:
    assert classify(PAGE, referrer, OWN) == expected


@pytest.mark.parametrize("referrer", ["", "   ", "about:blank", "http://", "not a url"])
def test_no_referrer_is_direct(referrer: str) -> None:
    assert classify(PAGE, referrer, OWN) == DIRECT


# --------------------------------------------------------------------------- UTM, click ids


@pytest.mark.parametrize(
    ("url", "referrer", "expected"),
    [
        (
            "https://acme.example/?utm_source=newsletter&utm_medium=email&utm_campaign=Nov%20Sale"
            "&utm_term=pbx&utm_content=banner-2",
            "",
            visit("newsletter", "email", "Nov Sale", "pbx"),
        ),
        (
            "https://acme.example/?utm_source=Google&utm_medium=CPC&utm_campaign=Brand",
            "",
            visit("google", "cpc", "Brand"),
        ),
        (
            "https://acme.example/?utm_source=chatgpt.com",
            "https://chatgpt.com/",
            visit("chatgpt.com", "(not set)"),
        ),
        ("https://acme.example/?utm_medium=sms", "", visit("(not set)", "sms")),
        ("https://acme.example/?UTM_SOURCE=fb&UTM_MEDIUM=paid", "", visit("fb", "paid")),
        (
            "https://acme.example/?utm_source=flyer+A&utm_medium=offline",
            "",
            visit("flyer a", "offline"),
        ),
        # UTM tags beat the referrer
        (
            "https://acme.example/?utm_source=partner&utm_medium=referral",
            "https://www.google.com/",
            visit("partner", "referral"),
        ),
        # empty tags are no tags
        (
            "https://acme.example/?utm_source=&utm_medium=",
            "https://www.bing.com/",
            visit("bing", "organic"),
        ),
        # UTM in the fragment is not read (as in GA)
        ("https://acme.example/#utm_source=x&utm_medium=y", "", DIRECT),
    ],
)
def test_utm_tags(url: str, referrer: str, expected: Visit) -> None:
    assert classify(url, referrer, OWN) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("gclid=Cj0KCQ", visit("google", "cpc")),
        ("gbraid=0AAAA", visit("google", "cpc")),
        ("wbraid=CkQK", visit("google", "cpc")),
        ("yclid=123456", visit("yandex", "cpc")),
        ("msclkid=abc", visit("bing", "cpc")),
        ("fbclid=IwAR0", visit("facebook", "paid_social")),
        ("ttclid=E.C.P", visit("tiktok", "paid_social")),
        ("twclid=2-abc", visit("twitter", "paid_social")),
        ("fbclid=IwAR0&gclid=Cj0", visit("google", "cpc")),  # Google's id ranks first
        ("gclid=Cj0&utm_campaign=brand&utm_term=pbx", visit("google", "cpc", "brand", "pbx")),
        ("gclid=", DIRECT),  # an empty id is no id
    ],
)
def test_click_ids(query: str, expected: Visit) -> None:
    assert classify(f"https://acme.example/?{query}", "", OWN) == expected


def test_click_ids_beat_the_referrer() -> None:
    assert classify("https://acme.example/?fbclid=IwAR0", "https://l.facebook.com/", OWN) == visit(
        "facebook", "paid_social"
    )
    assert classify("https://acme.example/?gclid=x", "https://www.google.com/", OWN) == visit(
        "google", "cpc"
    )


def test_utm_tags_beat_click_ids() -> None:
    url = "https://acme.example/?utm_source=newsletter&utm_medium=email&gclid=x&fbclid=y"
    assert classify(url, "", OWN) == visit("newsletter", "email")


def test_fbclid_only_without_utm() -> None:
    url = (
        "https://acme.example/?fbclid=IwAR0&utm_source=facebook&utm_medium=social&utm_campaign=post"
    )
    assert classify(url, "https://l.facebook.com/", OWN) == visit("facebook", "social", "post")


# --------------------------------------------------------------------------- robustness


@pytest.mark.parametrize(
    ("url", "referrer"),
    [
        ("http://[::1", "http://[::1"),
        ("https://acme.example/?%%%=%%%", "https://www.google.com/search?q=%E2%28%A1"),
        ("", ""),
        ("?utm_source=x", "https://exa mple.com/"),
        ("https://acme.example/?utm_source=%FF%FE&utm_medium=%C3", "https://:80/"),
        ("https://acme.example:99999/", "https://www.google.com:99999/"),
        ("\x00\n", "\x00://\x00"),
    ],
)
def test_malformed_input_never_raises(url: str, referrer: str) -> None:
    got = classify(url, referrer, OWN)
    assert isinstance(got, Visit)


@pytest.mark.parametrize(
    ("url", "referrer"),
    [
        ("https://acme.example/?utm_source=\ud800x", ""),
        (PAGE, "https://www.google.com/search?q=\udcff%41"),
        (PAGE, "https://\ud800.example/"),
    ],
)
def test_lone_surrogates_from_json_escapes_come_out_encodable(url: str, referrer: str) -> None:
    got = classify(url, referrer, OWN)
    for text in (got.source, got.medium, got.campaign, got.keyword):
        text.encode("utf-8")


def test_non_strings_classify_as_direct() -> None:
    assert classify(None, 5, OWN) == DIRECT  # type: ignore[arg-type]


def test_malformed_values_classify_as_well_as_possible() -> None:
    assert classify("https://acme.example/?utm_source=%FF&utm_medium=cpc", "", OWN).medium == "cpc"
    assert classify(PAGE, "https://www.google.com:99999/", OWN) == visit("google", "organic")
    assert classify(PAGE, "http://[::1", OWN) == DIRECT


def test_fields_are_capped() -> None:
    got = classify(
        "https://acme.example/?utm_source=" + "s" * 5000 + "&utm_campaign=" + "c" * 5000, "", OWN
    )
    assert len(got.source) == 255 and len(got.campaign) == 255


@settings(max_examples=300, database=None, deadline=None)
@given(
    url=st.text(max_size=200) | st.builds(lambda s: PAGE + "?" + s, st.text(max_size=80)),
    referrer=st.text(max_size=200)
    | st.builds(lambda s: "https://www.google.com/search?q=" + s, st.text(max_size=80)),
    own=st.lists(st.text(max_size=30), max_size=3),
)
def test_classify_never_raises(url: str, referrer: str, own: list[str]) -> None:
    got = classify(url, referrer, own)
    assert got.source and got.medium


@settings(max_examples=200, database=None, deadline=None)
@given(
    host=st.from_regex(r"[a-z0-9-]{1,12}(\.[a-z0-9-]{1,12}){0,3}", fullmatch=True),
    path=st.from_regex(r"(/[a-z0-9?=&%+.]{0,15}){0,3}", fullmatch=True),
)
def test_any_http_referrer_gets_a_channel(host: str, path: str) -> None:
    got = classify(PAGE, f"https://{host}{path}", OWN)
    assert got.medium in {"organic", "social", "referral", "(none)"}


def _is_acme(referrer: str) -> bool:
    """Whether urlsplit reads ``referrer``'s host as acme.example's own (or none)."""
    try:
        host = (urlsplit(referrer).hostname or "").rstrip(".")
    except ValueError:
        return True  # no host: direct
    return host in ("", "acme.example") or host.endswith(".acme.example")


@settings(max_examples=300, database=None, deadline=None)
@given(
    scheme=st.sampled_from(["https://", "http://", "HTTPS://", "ftp://", "//"]),
    userinfo=st.sampled_from(["", "acme.example@", "acme.example:pw@", "u:p@", "@"]),
    host=st.sampled_from(
        [
            "acme.example",
            "ACME.Example.",
            "www.acme.example",
            "evil.com",
            "acme.example.evil.com",
            "ac\tme.example",
            "acmé.example",
            "[::1]",
            "[acme.example",
            "acme.example%25x",
            "",
        ]
    ),
    port=st.sampled_from(["", ":443", ":x", ":"]),
    rest=st.sampled_from(["", "/", "/p?q=1#f", "?x", "#y", "/a\nb", "@evil.com/"]),
)
def test_a_referrer_is_internal_exactly_when_its_host_is_the_sites(
    scheme: str, userinfo: str, host: str, port: str, rest: str
) -> None:
    referrer = scheme + userinfo + host + port + rest
    assert (classify(PAGE, referrer, OWN) == DIRECT) == _is_acme(referrer), referrer


@settings(max_examples=300, database=None, deadline=None)
@given(
    host=st.sampled_from(
        ["www.google.com", "google.de:443", "yandex.ru", "m.facebook.com", "t.co", "a.b.example."]
    ),
    path=st.sampled_from(["", "/", "/search", "/url", "/s", "/a/b", "/search\t"]),
    query=st.sampled_from(
        ["", "?q=plumber+near+me", "?q=", "?text=%D0%B0", "?wd=x&q=y", "?q=a\nb"]
    ),
    fragment=st.sampled_from(["", "#q=leak", "#", "#x?q=z"]),
)
def test_a_referrer_reads_the_same_however_its_scheme_is_written(
    host: str, path: str, query: str, fragment: str
) -> None:
    """Browsers send a lowercase scheme, read the quick way; any other case is read by
    urlsplit: both give one channel."""
    lower = f"https://{host}{path}{query}{fragment}"
    assert classify(PAGE, lower, OWN) == classify(PAGE, "HTTPS" + lower[5:], OWN), lower


# --------------------------------------------------------------------------- GA's rule


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        (None, DIRECT, DIRECT),
        (visit("google", "cpc", "brand"), DIRECT, visit("google", "cpc", "brand")),
        (visit("google", "cpc"), visit("bing", "organic"), visit("bing", "organic")),
        (DIRECT, visit("facebook", "social"), visit("facebook", "social")),
        (DIRECT, DIRECT, DIRECT),
        (None, visit("example.org", "referral"), visit("example.org", "referral")),
    ],
)
def test_keep_last_non_direct(previous: Visit | None, current: Visit, expected: Visit) -> None:
    assert keep_last_non_direct(previous, current) == expected


def test_an_internal_return_keeps_the_earlier_source() -> None:
    first = classify("https://acme.example/?gclid=x", "", OWN)
    back = classify(PAGE, "https://www.acme.example/contacts", OWN)
    assert keep_last_non_direct(first, back) == visit("google", "cpc")


# --------------------------------------------------------------------------- the table


def test_referrer_table_is_shipped_json_with_lowercase_sources() -> None:
    text = resources.files("attribution").joinpath("data/referrers.json").read_text("utf-8")
    data = json.loads(text)
    assert len(data["search"]) > 250 and len(data["social"]) > 80 and data["ai"]
    for kind in ("search", "social", "ai"):
        for rule in data[kind]:
            assert rule["source"] == rule["source"].lower().strip()
            assert rule["hosts"]
    licence = resources.files("attribution").joinpath("data/LICENSE-referrers").read_text("utf-8")
    assert "CC0" in licence


def test_the_package_reads_the_table_without_yaml() -> None:
    code = (
        "import sys; import attribution.sources as s; "
        "assert s.classify('https://a.example/', 'https://www.google.de/', []).source == 'google'; "
        "assert 'yaml' not in sys.modules, 'yaml imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_referrer_host_lookup_is_cached() -> None:
    lookup_referrer.cache_clear()
    classify(PAGE, "https://www.google.com.ua/", OWN)
    classify(PAGE, "https://www.google.com.ua/search?q=x", OWN)
    info = lookup_referrer.cache_info()
    assert info.misses == 1 and info.hits == 1
