"""The snippet's size as served and its first scan of a 5,000-text-node page.

Size: gzipped bytes against the 2 KiB budget (and Plausible's 805 B tracker, which swaps
nothing).  Scan: the snippet's first full scan with the numbers already in memory (a
repeat page), against a bare TreeWalker pass over the same page in the same browser —
the least any scan could cost.  Target: first scan under 10 ms.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 2048
PLAUSIBLE = 805
CHROMIUM = "/usr/bin/chromium"
WALK_JS = """() => { const t0 = performance.now();
  const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let n = 0, d = 0; while (w.nextNode()) { n++; d += w.currentNode.nodeValue.length; }
  return performance.now() - t0; }"""


def _browser_helpers() -> Any:
    """The snippet tests' stand-in API and page server (they serve /big.html)."""
    path = ROOT / "snippet" / "tests" / "conftest.py"
    spec = importlib.util.spec_from_file_location("snippet_browser_support", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run(quick: bool = False) -> dict[str, Any]:
    raw = (ROOT / "attribution" / "static" / "snippet.js").read_bytes()
    size = len(gzip.compress(raw, compresslevel=9))
    print(
        f"snippet: {len(raw):,} B, {size:,} B gzipped = {size / BUDGET:.2f}x the 2 KiB "
        f"budget ({size / PLAUSIBLE:.2f}x Plausible's 805 B tracker)"
    )
    from playwright.sync_api import sync_playwright

    helpers = _browser_helpers()
    api = helpers.StandInApi()
    pages = helpers.PageServer(api)
    runs = 5 if quick else 15
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM if os.path.exists(CHROMIUM) else None,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            scan = helpers.measure_first_scan(browser, pages, runs)
            page = browser.new_page()
            page.goto(pages.url("/big.html"))
            walks = sorted(page.evaluate(WALK_JS) for _ in range(runs))
            browser.close()
    finally:
        pages.close()
        api.close()
    walk = max(walks[len(walks) // 2], 0.01)
    print(
        f"snippet: first scan of {scan['text_nodes']:,} text nodes: median "
        f"{scan['median_ms']:.1f} ms (target < 10 ms), {scan['swapped']} numbers swapped; "
        f"a bare TreeWalker pass {walk:.1f} ms → {scan['median_ms'] / walk:.1f}x"
    )
    return {
        "gzip_bytes": size,
        "budget_ratio": size / BUDGET,
        "scan_median_ms": scan["median_ms"],
        "walk_ms": walk,
    }


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
