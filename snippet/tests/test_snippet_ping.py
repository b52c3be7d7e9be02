"""Holding the number: pings while the page is visible and in use, and only then."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import PageServer, StandInApi, Tab

pytestmark = pytest.mark.browser

# Headless pages are always visible: let the test say when the page is hidden.
VISIBILITY = """
(() => {
  let state = 'visible';
  Object.defineProperty(Document.prototype, 'visibilityState',
                        { configurable: true, get: () => state });
  Object.defineProperty(Document.prototype, 'hidden',
                        { configurable: true, get: () => state === 'hidden' });
  Object.defineProperty(window, '__setVisibility', { value: (next) => {
    state = next;
    document.dispatchEvent(new Event('visibilitychange'));
  } });
})();
"""


def test_pings_while_visible_pause_when_hidden_and_resume_on_return(
    tab: Tab, api: StandInApi, pages: PageServer
) -> None:
    pages.attrs["data-ping"] = "600"
    tab.context.add_init_script(VISIBILITY)
    tab.context.add_cookies([{"name": "_ga_S", "value": "GS1.1.1700000000.1.1.1700000001.0.0.0",
                              "url": pages.origin}])
    page = tab.open("/plain.html?from=ping")
    tab.wait_text("#msk", "+7 (495) 700-00-11")
    api.wait(lambda: len(api.pings()) >= 2, what="two pings")
    ping = api.pings()[0]
    assert ping.path == "/v1/sessions/sid-1/ping"
    assert ping.body["url"] == page.url
    assert ping.body["ga_session_id"] == "1700000000"
    assert ping.headers["Content-Type"].startswith("text/plain")

    page.evaluate("__setVisibility('hidden')")
    page.wait_for_timeout(100)
    hidden_at = len(api.pings())
    page.wait_for_timeout(1400)
    assert len(api.pings()) == hidden_at  # nothing while hidden

    page.evaluate("__setVisibility('visible')")
    api.wait(lambda: len(api.pings()) > hidden_at, timeout=0.4, what="a ping on return")
    api.wait(lambda: len(api.pings()) > hidden_at + 1, what="pings again")
    assert api.preflights() == []
    tab.assert_clean()


def test_pings_stop_when_the_visit_is_idle_and_resume_on_input(
    tab: Tab, api: StandInApi, pages: PageServer
) -> None:
    api.hold = 1  # hold_seconds: idle after one second without input
    pages.attrs["data-ping"] = "150"
    page = tab.open("/plain.html")
    tab.wait_text("#msk", "+7 (495) 700-00-11")
    api.wait(lambda: api.pings(), what="a ping")
    page.wait_for_timeout(1300)
    idle_at = len(api.pings())
    assert 1 <= idle_at <= 8
    page.wait_for_timeout(700)
    assert len(api.pings()) == idle_at  # idle: no more pings
    page.mouse.move(10, 10)
    page.mouse.move(40, 40)
    api.wait(lambda: len(api.pings()) > idle_at, what="a ping after input")
    tab.assert_clean()


@pytest.mark.parametrize(
    ("hold", "every"),
    [(900, 300), (12, 10)],   # hold/3, but never more often than every 10 s
    ids=["hold-900s", "hold-12s"],
)
def test_the_ping_interval_comes_from_the_hold_time(
    tab: Tab, api: StandInApi, pages: PageServer, hold: int, every: int
) -> None:
    api.hold = hold
    tab.page.clock.install()
    page = tab.open("/plain.html")
    api.wait(lambda: api.answered, what="the session answer")
    page.wait_for_function("() => window.callpath.numbers().length", polling=20)
    page.clock.run_for((every - 1) * 1000)
    page.wait_for_timeout(100)
    assert api.pings() == []
    page.clock.run_for(2000)
    api.wait(lambda: len(api.pings()) == 1, what="the first ping")
    if hold == 12:
        # at 20 s the visit has been idle longer than the hold time: no second ping
        page.clock.run_for(every * 1000)
        page.wait_for_timeout(200)
        assert len(api.pings()) == 1
    tab.assert_clean()
