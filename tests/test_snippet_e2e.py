"""The real snippet on the real app: /demo swaps every format, and the audit agrees."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import HTMLResponse
from starlette.routing import Route
from support import ROOT, LiveServer, build_app, flush_redis

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
    flush_redis(redis_url)
    cfg = configmod.load(ROOT / "pools.toml").with_secrets(ENV)
    with LiveServer(build_app(redis_url, cfg, extra_routes=[Route("/bare", bare)])) as srv:
        yield srv


async def bare(request: Any) -> HTMLResponse:
    """A page of the shop that forgot the snippet."""
    return HTMLResponse(
        "<p>Call (415) 555-0100 or the office <a href='tel:84957000000'>in Moscow</a></p>"
    )


@pytest.fixture
def page(demo: LiveServer) -> Iterator[Any]:
    """A page in a browser of its own (the snippet suite keeps one for its session)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM if os.path.exists(CHROMIUM) else None,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        pg = browser.new_page(user_agent=audit.VISITOR_UA)
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
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


def test_audit_finds_nothing_on_the_demo_and_every_number_on_a_bare_page(
    demo: LiveServer, tmp_path: Path
) -> None:
    """`callpath audit URL`, run as a user runs it."""

    def run_audit(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "attribution",
                "audit",
                url,
                "--config",
                str(ROOT / "pools.toml"),
                "--site",
                "demo-shop",
                "--wait",
                "8000",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=os.environ | ENV,
        )

    good = run_audit(f"{demo.url}/demo")
    assert good.returncode == 0, good.stderr
    assert "every configured number was swapped" in good.stdout
    bare = run_audit(f"{demo.url}/bare")
    assert bare.returncode == 1
    assert "+14155550100 not swapped in text" in bare.stderr
    assert "+74957000000 not swapped in tel" in bare.stderr
