"""The real snippet on the real app: /demo swaps every format, and the audit agrees."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from support import ROOT, LiveServer, build_app

from attribution import audit
from attribution import config as configmod

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ENV = {
    "DEMO_API_KEY": "demo-key-0123456789",
    "TEKHNOMARKET_API_KEY": "t" * 20,
    "TEKHNOMARKET_GA4_SECRET": "s",
    "KLINIKA_API_KEY": "k" * 20,
    "KLINIKA_GA4_SECRET": "s",
}
US_TRACKING = re.compile(r"^\(415\) 555-010[1-4]$")


@pytest.fixture
def demo(redis_url: str) -> Iterator[LiveServer]:
    redis.Redis.from_url(redis_url).flushall()
    cfg = configmod.load(ROOT / "pools.toml").with_secrets(ENV)
    with LiveServer(build_app(redis_url, cfg)) as srv:
        yield srv


@pytest.fixture
def page(demo: LiveServer) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM if os.path.exists(CHROMIUM) else None,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        pg = browser.new_page(user_agent=audit.VISITOR_UA)
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.errors = errors
        yield pg
        browser.close()
    assert errors == []


def text(page: Any, el_id: str) -> str:
    return str(page.locator(f"#{el_id}").inner_text())


def test_demo_page_swaps_every_format_and_leaves_other_numbers(demo: LiveServer, page: Any) -> None:
    page.goto(f"{demo.url}/demo?utm_source=newsletter&utm_medium=email")
    page.wait_for_function("() => window.callpath && window.callpath.numbers().length > 0")
    page.wait_for_function(
        "() => !document.getElementById('sf-plain').innerText.includes('555-0100')"
    )
    plain = text(page, "sf-plain").removeprefix("Store: ")
    assert US_TRACKING.match(plain), plain
    digits = plain[-4:]
    assert text(page, "sf-dots").endswith(f"415.555.{digits}")
    assert text(page, "sf-split").endswith(f"+1 (415) 555-{digits}")
    assert page.locator("#sf-link a").get_attribute("href") == f"tel:+1-415-555-{digits}"
    msk = text(page, "msk-plain").removeprefix("Office: ")
    assert re.match(r"^\+7 \(495\) 700-00-1[1-3]$", msk), msk
    assert text(page, "msk-trunk") == "Within Russia: 8 (495) " + msk.split(") ")[1]
    assert text(page, "msk-fax") == "Fax: +7 (495) 700-00-01"
    assert text(page, "sf-fax") == "Fax: +1 (415) 555-0199"
    assert "49570000" in text(page, "order")


def test_audit_finds_nothing_on_the_demo_and_everything_on_a_bare_page(demo: LiveServer) -> None:
    cfg = configmod.load(ROOT / "pools.toml")
    assert audit.run(cfg, f"{demo.url}/demo", wait_ms=8000) == []
    # a page without the snippet: every own number is reported
    findings = audit.run(cfg, f"{demo.url}/dashboard", "demo-shop", wait_ms=500)
    assert findings == []  # the dashboard shows no site numbers at all
    bare = audit.inspect([("text", "Call (415) 555-0100")], cfg.sites[0].replace, {})
    assert [f.kind for f in bare] == ["unswapped"]
