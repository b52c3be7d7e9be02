"""Holding the number: pings while the page is visible and in use, and only then."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import PageServer, StandInApi, Tab
    from playwright.sync_api import Page

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


def freeze(page: Page) -> None:
    """The page's clock stands still: timers fire only as the test moves time on."""
    page.clock.install(time=1_700_000_000)
    page.clock.pause_at(1_700_000_001)


def test_pings_while_visible_pause_when_hidden_and_resume_on_return(
    tab: Tab, api: StandInApi, pages: PageServer
) -> None:
    pages.attrs["data-ping"] = "1000"
    tab.context.add_init_script(VISIBILITY)
    tab.context.add_cookies(
        [{"name": "_ga_S", "value": "GS1.1.1700000000.1.1.1700000001.0.0.0", "url": pages.origin}]
    )
    page = tab.page
    freeze(page)
    tab.open("/plain.html?from=ping")
    tab.wait_text("#msk", "+7 (495) 700-00-11")
    page.clock.run_for(1000)
    api.wait(lambda: len(api.pings()) == 1, what="the first ping")
    page.clock.run_for(1000)
    api.wait(lambda: len(api.pings()) == 2, what="the second ping")
    ping = api.pings()[0]
    assert ping.path == "/v1/sessions/sid-1/ping"
    assert ping.body["url"] == page.url
    assert ping.body["ga_session_id"] == "1700000000"
    assert ping.headers["Content-Type"].startswith("text/plain")

    page.evaluate("__setVisibility('hidden')")
    page.clock.run_for(5000)
    assert api.settle() == 2  # nothing while hidden

    # no time passes: only the return itself can ping
    page.evaluate("__setVisibility('visible')")
    api.wait(lambda: len(api.pings()) == 3, what="a ping on return")
    page.clock.run_for(1000)
    api.wait(lambda: len(api.pings()) == 4, what="pings again")
    assert api.preflights() == []
    tab.assert_clean()


def test_pings_stop_when_the_visit_is_idle_and_resume_on_input(
    tab: Tab, api: StandInApi, pages: PageServer
) -> None:
    api.hold = 12  # hold_seconds: idle after 12 s without input
    pages.attrs["data-ping"] = "1000"
    page = tab.page
    freeze(page)
    tab.open("/plain.html")
    tab.wait_text("#msk", "+7 (495) 700-00-11")
    for second in range(1, 5):  # a second of use at a time, its ping answered first
        page.clock.run_for(1000)
        api.wait(lambda n=second: len(api.pings()) >= n, what="pings while in use")
    page.clock.run_for(9000)  # past 12 s without input
    idle_at = api.settle()
    # at most one ping a second over the 12 s of use; fewer when a loaded machine lets a
    # ping overlap the previous one (the snippet never stacks them)
    assert 4 <= idle_at <= 12
    page.clock.run_for(10_000)
    assert api.settle() == idle_at  # idle: no more pings
    page.keyboard.press("Shift")
    page.clock.run_for(1000)
    api.wait(lambda: len(api.pings()) == idle_at + 1, what="a ping after input")
    tab.assert_clean()


@pytest.mark.parametrize(
    ("hold", "every"),
    [(900, 300), (12, 10)],  # hold/3, but never more often than every 10 s
    ids=["hold-900s", "hold-12s"],
)
def test_the_ping_interval_comes_from_the_hold_time(
    tab: Tab, api: StandInApi, pages: PageServer, hold: int, every: int
) -> None:
    api.hold = hold
    freeze(tab.page)
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
