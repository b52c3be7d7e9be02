"""window.callpath, the only global, and the snippet under a strict CSP and on /demo."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import PageServer, StandInApi, Tab

pytestmark = pytest.mark.browser

GLOBALS = "() => Object.getOwnPropertyNames(window)"


def test_only_window_callpath_is_added(
    new_tab: Callable[..., Tab], api: StandInApi, pages: PageServer
) -> None:
    pages.add("/bare.html", '<p id="msk">+7 (495) 700-00-00</p>')
    without = new_tab()
    pages.attrs = {}  # no data-site: the script tag stays, the snippet does nothing
    without.open("/bare.html")
    without.page.wait_for_load_state("networkidle")
    before = set(without.page.evaluate(GLOBALS))
    assert "callpath" not in before

    pages.attrs = {"data-site": "acme"}
    tab = new_tab()
    tab.open("/bare.html")
    tab.wait_text("#msk", "+7 (495) 700-00-11")
    after = set(tab.page.evaluate(GLOBALS))
    assert after - before == {"callpath"}
    assert tab.page.evaluate("Object.keys(window.callpath).sort()") == [
        "numbers",
        "ready",
        "setRegion",
    ]
    without.assert_clean()
    tab.assert_clean()


def test_ready_and_numbers(tab: Tab, api: StandInApi, pages: PageServer) -> None:
    api.hold_answers()
    page = tab.open("/plain.html")
    page.wait_for_function("() => !!window.callpath")
    assert page.evaluate("callpath.numbers()") == []
    page.evaluate("callpath.ready((numbers) => { window.__got = numbers; })")
    assert page.evaluate("window.__got") is None
    api.release()
    page.wait_for_function("() => !!window.__got", timeout=5000)
    assert page.evaluate("window.__got") == [api.MSK, api.SF]
    assert page.evaluate("callpath.numbers()") == [api.MSK, api.SF]
    # once the numbers are in, ready() calls back at once
    assert page.evaluate(
        "(() => { let got; callpath.ready((n) => { got = n; }); return got; })()"
    ) == [api.MSK, api.SF]
    # what numbers() returns is a copy
    page.evaluate("callpath.numbers().pop()")
    assert len(page.evaluate("callpath.numbers()")) == 2
    tab.assert_clean()


def test_a_failing_ready_callback_does_not_stop_the_snippet(
    tab: Tab, api: StandInApi, pages: PageServer
) -> None:
    api.hold_answers()
    page = tab.open("/plain.html")
    page.wait_for_function("() => !!window.callpath")
    page.evaluate("""() => {
      callpath.ready(() => { throw new Error('site bug'); });
      callpath.ready((n) => { window.__second = n.length; });
    }""")
    api.release()
    page.wait_for_function("() => window.__second === 2")
    assert tab.text("#msk") == "+7 (495) 700-00-11"
    assert [e for e in tab.errors if "site bug" not in e] == []


def test_set_region_reswaps_from_the_original_numbers(
    tab: Tab, api: StandInApi, pages: PageServer
) -> None:
    api.by_region = {
        "kharkiv": [
            api.pair("+74957000000", "+74957000022", "7"),
            api.pair("+14155550100", "+14155550199", "1"),
        ],
        "none": [
            api.pair("+74957000000", "+74957000000", "7"),
            api.pair("+14155550100", "+14155550100", "1"),
        ],
    }
    page = tab.open("/plain.html")
    tab.wait_text("#msk", "+7 (495) 700-00-11")
    page.evaluate("callpath.setRegion('kharkiv')")
    tab.wait_text("#msk", "+7 (495) 700-00-22")
    assert tab.text("#msk-trunk") == "8 (495) 700-00-22"
    assert tab.text("#sf") == "(415) 555-0199"
    assert tab.text("#split") == "+7 (495) 700-00-22"
    assert tab.href("#link") == "tel:+74957000022"
    assert api.sessions()[-1]["region"] == "kharkiv"
    assert api.sessions()[-1]["sid"] == "sid-1"
    assert page.evaluate("callpath.numbers()")[0]["number"] == "+74957000022"
    # back to the site's own numbers: the page is as it was written
    page.evaluate("callpath.setRegion('none')")
    tab.wait_text("#msk", "+7 (495) 700-00-00")
    assert tab.text("#sf") == "(415) 555-0100"
    assert tab.text("#split") == "+7 (495) 700-00-00"
    assert tab.href("#link") == "tel:+74957000000"
    # and forth again
    page.evaluate("callpath.setRegion('kharkiv')")
    tab.wait_text("#split", "+7 (495) 700-00-22")
    # the choice is remembered for the next page
    tab.open("/plain.html?next")
    tab.wait_text("#msk", "+7 (495) 700-00-22")
    assert api.sessions()[-1]["region"] == "kharkiv"
    tab.assert_clean()


def test_data_region_beats_a_remembered_choice(
    tab: Tab, api: StandInApi, pages: PageServer
) -> None:
    page = tab.open("/plain.html")
    tab.wait_text("#msk", "+7 (495) 700-00-11")
    page.evaluate("callpath.setRegion('kharkiv')")
    api.wait(lambda: len(api.sessions()) == 2, what="the second request")
    pages.attrs["data-region"] = "moscow"
    tab.open("/plain.html?city")
    api.wait(lambda: len(api.sessions()) == 3, what="the third request")
    assert api.sessions()[-1]["region"] == "moscow"
    tab.assert_clean()


def test_works_under_a_strict_content_security_policy(
    tab: Tab, api: StandInApi, pages: PageServer
) -> None:
    pages.headers["/csp.html"] = {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src {api.origin}; connect-src {api.origin}; "
            "require-trusted-types-for 'script'"
        )
    }
    tab.context.add_init_script("""
      window.addEventListener('securitypolicyviolation', (e) => {
        console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI);
      });
    """)
    page = tab.open("/csp.html")
    tab.wait_text("#number", "Call +7 (495) 700-00-11")
    assert tab.text("#split") == "(415) 555-0123"
    assert tab.href("#link") == "tel:84957000011"
    page.evaluate("""() => {
      const p = document.createElement('p'); p.id = 'added'; p.textContent = '415.555.0100';
      document.body.append(p);
    }""")
    tab.wait_text("#added", "415.555.0123")
    tab.assert_clean()


def test_the_demo_page(tab: Tab, api: StandInApi) -> None:
    api.numbers = [api.SF, api.MSK]
    tab.page.goto(api.origin + "/demo")
    tab.wait_text("#msk-split", "Service: +7 (495) 700-00-11")
    expected = {
        "#header-number": "+1 (415) 555-0123",
        "#sf-plain": "Store: (415) 555-0123",
        "#sf-dots": "Text or call: 415.555.0123",
        "#sf-trunk": "Toll: 1 (415) 555-0123",
        "#sf-intl": "From abroad: +1 415 555 0123",
        "#sf-split": "Hotline: +1 (415) 555-0123",
        "#sf-fax": "Fax: +1 (415) 555-0199",
        "#msk-plain": "Office: +7 (495) 700-00-11",
        "#msk-trunk": "Within Russia: 8 (495) 700-00-11",
        "#msk-nbsp": "Sales: +7\u00a0495\u00a0700\u201100\u201111",
        "#msk-digits": "Short form: 84957000011",
        "#msk-fax": "Fax: +7 (495) 700-00-01",
        "#order": "Order #49570000 is packed and ships today.",
        "#footer-number": "415-555-0123",
    }
    for selector, text in expected.items():
        assert tab.text(selector) == text, selector
    assert tab.href("#header-call") == "tel:+14155550123"
    assert tab.href("#sf-link a") == "tel:+1-415-555-0123"
    assert tab.href("#msk-link a") == "tel:84957000011"
    assert api.sessions()[0]["site"] == "demo-shop"
    tab.assert_clean()
