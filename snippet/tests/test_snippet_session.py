"""What the snippet sends, what it remembers, and how it survives a slow or broken API."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import PageServer, StandInApi, Tab

pytestmark = pytest.mark.browser

ORIGINAL = "+7 (495) 700-00-00"
# what the browser itself logs when a request fails: expected where a test breaks the API
NETWORK_NOISE = ("Failed to load resource",)
SWAPPED = "+7 (495) 700-00-11"


def test_the_session_request_carries_the_visit(
    tab: Tab, api: StandInApi, pages: PageServer
) -> None:
    pages.attrs["data-region"] = "moscow"
    tab.context.add_cookies(
        [
            {"name": "_ga", "value": "GA1.1.123456789.1700000000", "url": pages.origin},
            {
                "name": "_ga_ABC123",
                "value": "GS1.1.1700000000.3.1.1700000100.0.0.0",
                "url": pages.origin,
            },
        ]
    )
    query = (
        "?utm_source=google&utm_medium=cpc&utm_campaign=spring&utm_term=sofa"
        "&gclid=G1&gbraid=G2&wbraid=G3&yclid=Y1&fbclid=F1&msclkid=M1"
    )
    page = tab.open("/plain.html" + query, referer="https://www.google.com/search?q=sofa")
    tab.wait_text("#msk", SWAPPED)
    [body] = api.sessions()
    assert body == {
        "site": "acme",
        "url": page.url,
        "referrer": page.evaluate("document.referrer"),
        "region": "moscow",
        "ga_client_id": "123456789.1700000000",
        "ga_session_id": "1700000000",
    }
    assert page.url.endswith(query)
    assert body["referrer"].startswith("https://www.google.com/")
    [request] = api.posts()
    assert request.headers["Content-Type"].startswith("text/plain")
    assert request.headers["Origin"] == pages.origin
    assert api.preflights() == []
    tab.assert_clean()


@pytest.mark.parametrize(
    ("cookies", "client_id", "session_id"),
    [
        (
            {
                "_ga": "GA1.1.123456789.1700000000",
                "_ga_X1": "GS2.1.s1700000000$o3$g1$t1700000100$j0$l0$h0",
            },
            "123456789.1700000000",
            "1700000000",
        ),
        (
            {
                "_ga": "GA1.2.987.654",
                "_ga_OLD": "GS1.1.1600000000.9.1.1600000500.0.0.0",
                "_ga_NEW": "GS2.1.s1700000000$o3$g1$t1700000900$j0$l0$h0",
                "_ga_MID": "GS1.1.1650000000.2.0.1650000100.0.0.0",
            },
            "987.654",
            "1700000000",
        ),
        (
            {
                "_ga_B": "GS2.1.s1800000000$o1$g0$t1800000050$j0$l0$h0",
                "_ga_A": "GS1.1.1800000100.1.1.1800000200.0.0.0",
            },
            None,
            "1800000100",
        ),
        ({"_ga": "junk", "_gac_x": "GS1.1.1.1.1.1", "other": "1"}, None, None),
    ],
    ids=["gs2", "latest-of-several", "gs1-newer-than-gs2", "none"],
)
def test_ga4_ids_are_read_from_the_gtag_cookies(
    tab: Tab,
    api: StandInApi,
    pages: PageServer,
    cookies: dict[str, str],
    client_id: str | None,
    session_id: str | None,
) -> None:
    tab.context.add_cookies(
        [{"name": k, "value": v, "url": pages.origin} for k, v in cookies.items()]
    )
    tab.open("/plain.html")
    tab.wait_text("#msk", SWAPPED)
    [body] = api.sessions()
    assert body.get("ga_client_id") == client_id
    assert body.get("ga_session_id") == session_id
    tab.assert_clean()


def test_a_later_page_swaps_from_memory_before_the_api_answers(
    tab: Tab, api: StandInApi, pages: PageServer
) -> None:
    tab.open("/plain.html")
    tab.wait_text("#msk", SWAPPED)
    stored = tab.storage()
    assert stored["s"] == "sid-1"
    assert stored["n"] == [api.MSK, api.SF]

    api.hold_answers()
    api.numbers = [api.pair("+74957000000", "+74957000022", "7"), api.SF]  # the lease moved
    tab.open("/plain.html?page=2", wait_until="domcontentloaded")
    tab.wait_text("#msk", SWAPPED, timeout=2000)
    assert api.answered == 1  # the second answer is held back
    assert tab.text("#split") == SWAPPED
    assert tab.href("#link") == "tel:+74957000011"
    # then the answer comes, with the session id sent back, and its change is applied
    api.release()
    tab.wait_text("#msk", "+7 (495) 700-00-22", timeout=5000)
    assert tab.text("#msk-trunk") == "8 (495) 700-00-22"
    assert tab.text("#split") == "+7 (495) 700-00-22"
    assert api.sessions()[1]["sid"] == "sid-1"
    tab.assert_clean()


@pytest.mark.parametrize(
    "breakage",
    [
        # storage blocked altogether (third-party cookies off, some privacy modes)
        """Object.defineProperty(window, 'localStorage', {
             get() { throw new DOMException('blocked', 'SecurityError'); } });""",
        # storage full
        """Storage.prototype.setItem = function () {
             throw new DOMException('full', 'QuotaExceededError'); };""",
        # storage holding garbage
        """localStorage.setItem('callpath:acme', '{"n": [null, 5, "x"], "e": 9e15}');""",
    ],
    ids=["blocked", "full", "garbage"],
)
def test_storage_failure_is_survived(
    tab: Tab, api: StandInApi, pages: PageServer, breakage: str
) -> None:
    tab.context.add_init_script(breakage)
    tab.open("/plain.html")
    tab.wait_text("#msk", SWAPPED)
    tab.open("/plain.html?again")
    tab.wait_text("#msk", SWAPPED)
    tab.assert_clean()


def test_a_session_the_server_does_not_know_is_forgotten(
    tab: Tab, api: StandInApi, pages: PageServer
) -> None:
    pages.attrs["data-ping"] = "150"
    tab.open("/plain.html")
    tab.wait_text("#msk", SWAPPED)
    api.wait(lambda: api.pings(), what="a ping")
    api.forget("sid-1")  # as for an expired or forged sid: the ping gets a 4xx
    tab.page.wait_for_function(
        "() => !JSON.parse(localStorage.getItem('callpath:acme') || '{}').s", polling=20
    )
    assert "n" not in tab.storage()
    pings = api.settle()
    tab.page.wait_for_timeout(500)
    assert len(api.pings()) == pings  # no more pings for a dead session
    tab.open("/plain.html?next")
    tab.wait_text("#msk", SWAPPED)
    assert "sid" not in api.sessions()[-1]
    tab.assert_clean(allow=("status of 404",))


def test_a_slow_api_is_given_up_and_the_numbers_stay(
    tab: Tab, api: StandInApi, pages: PageServer
) -> None:
    api.delay = 4.0
    tab.open("/plain.html")
    api.wait(lambda: api.sessions(), what="the session request")
    tab.page.wait_for_timeout(3000)  # past the 2.5 s limit
    assert tab.text("#msk") == ORIGINAL
    tab.page.wait_for_timeout(1500)  # the answer arrives, too late to be read
    assert tab.text("#msk") == ORIGINAL
    assert tab.href("#link") == "tel:+74957000000"
    assert tab.page.evaluate("callpath.numbers()") == []
    tab.assert_clean()


@pytest.mark.parametrize("how", ["refused", "error"])
def test_a_down_api_leaves_the_page_as_it_is(
    tab: Tab, api: StandInApi, pages: PageServer, how: str
) -> None:
    if how == "refused":
        pages.src = pages.origin + "/snippet.js"
        pages.attrs["data-api"] = api.dead_origin
    else:
        api.status = 500
    tab.open("/plain.html")
    tab.page.wait_for_function("() => !!window.callpath")
    tab.page.wait_for_timeout(800)
    assert tab.text("#msk") == ORIGINAL
    assert tab.text("#split") == ORIGINAL
    assert tab.page.evaluate("callpath.numbers()") == []
    if how == "error":
        assert len(api.sessions()) == 1
    tab.assert_clean(allow=NETWORK_NOISE)


def test_data_api_points_the_snippet_at_another_origin(
    tab: Tab, api: StandInApi, pages: PageServer
) -> None:
    pages.src = pages.origin + "/snippet.js"  # served by the site itself
    pages.attrs["data-api"] = api.origin + "/"
    tab.open("/plain.html")
    tab.wait_text("#msk", SWAPPED)
    assert len(api.sessions()) == 1
    tab.assert_clean()


def test_each_site_has_its_own_memory(
    new_tab: Callable[..., Tab], api: StandInApi, pages: PageServer
) -> None:
    tab = new_tab()
    tab.open("/plain.html")
    tab.wait_text("#msk", SWAPPED)
    pages.attrs["data-site"] = "other"
    tab.open("/plain.html")
    tab.wait_text("#msk", SWAPPED)
    assert tab.storage("callpath:acme")["s"] == "sid-1"
    assert tab.storage("callpath:other")["s"] == "sid-2"
    assert [b["site"] for b in api.sessions()] == ["acme", "other"]
    assert "sid" not in api.sessions()[1]
    tab.assert_clean()
