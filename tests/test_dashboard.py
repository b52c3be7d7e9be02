"""The dashboard in a real Chromium: key once, then every report drawn from live data."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import LiveServer, flush_redis
from test_reports import KEY, report_app, seed

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
SHOT = "/tmp/callpath-dashboard.png"


@pytest.fixture
def server(redis_url: str) -> Iterator[LiveServer]:
    asyncio.run(seed(redis_url, int(time.time() * 1000)))
    with LiveServer(report_app(redis_url)) as srv:
        yield srv
    flush_redis(redis_url)


@pytest.fixture
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM if os.path.exists(CHROMIUM) else None,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


def test_dashboard_draws_every_report(server: LiveServer, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    # a CSP violation or a failed request shows up as a console error
    page.on(
        "console",
        lambda msg: (
            errors.append(f"console: {msg.text}")
            if msg.type == "error" and "401" not in msg.text
            else None
        ),
    )

    page.goto(f"{server.url}/dashboard")
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#key", "not-the-key")
    page.click("#key-form button")
    page.wait_for_selector("#login-error:has-text('not accepted')")
    errors.clear()  # the 401 above is logged by the browser on purpose

    page.fill("#key", KEY)
    page.click("#key-form button")
    page.wait_for_selector("#channels-table tbody tr")
    page.wait_for_selector("#heatmap .cell")

    # the channel table, with its totals
    channels = page.locator("#channels-table tbody tr td:first-child").all_inner_texts()
    assert channels == [
        "(unattributed)",
        "google / cpc",
        "(direct) / (none)",
        "billboard / offline",
    ]
    assert "6" in page.locator("#channels-table tfoot").inner_text()
    # the heatmap: 7 weekdays x 24 hours, six calls coloured in, a legend
    cells = page.locator("#heatmap .cell")
    assert cells.count() == 7 * 24
    filled = [
        int(v)
        for v in cells.evaluate_all(
            "cs => cs.filter(c => c.style.backgroundColor).map(c => c.dataset.value)"
        )
    ]
    assert sum(filled) == 6
    assert page.locator("#legend .swatch").count() >= 2
    assert page.locator("#legend").inner_text().startswith("calls:")
    # the callers waiting for a call back, with their numbers
    waiting = page.locator("#unanswered-table tbody tr td:first-child").all_inner_texts()
    assert waiting == ["+380671110003", "+380671110005"]
    # pools with advice, delivery per day
    page.wait_for_selector("#pool-list .pool")
    assert "site's own number" in page.locator("[data-pool=tollfree] .advice").inner_text()
    assert page.locator("#delivery-table tbody tr").count() >= 3
    # the key is kept for the tab only
    assert page.evaluate("sessionStorage.getItem('callpath.key')") == KEY
    assert page.evaluate("localStorage.length") == 0

    page.select_option("#heat-mode", "missed")
    assert (
        sum(
            int(v)
            for v in cells.evaluate_all(
                "cs => cs.filter(c => c.style.backgroundColor).map(c => c.dataset.value)"
            )
        )
        == 4
    )
    page.select_option("#heat-mode", "calls")
    page.select_option("#by", "pool")
    page.wait_for_selector("#channels-table td:has-text('tollfree')")

    page.screenshot(path=SHOT, full_page=True)
    assert errors == []

    page.click("#forget")
    page.wait_for_selector("#login:not([hidden])")
    assert page.evaluate("sessionStorage.getItem('callpath.key')") is None
    page.close()
