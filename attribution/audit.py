"""``callpath audit URL``: open a page in headless Chromium and find numbers left unswapped.

A site number still on the page after the snippet ran means a visitor is not tracked;
a number swapped only in part means they dial a number that does not exist.  Both are
reported with where they were seen; exit 1 if any.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from .config import Config, Phone, Site

PHONE_LIKE = re.compile(r"\+?\d[\d\s().\u00a0\u2010-\u2015-]{5,}\d")
CHROMIUM = "/usr/bin/chromium"
# Headless Chromium names itself "HeadlessChrome", which the server treats as a bot (bots
# see the site's own numbers); the audit looks at the page as a desktop visitor does.
VISITOR_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# Collects what a visitor sees: visible text per block, and tel: targets.
COLLECT_JS = """() => {
  const out = [];
  const skip = new Set(["SCRIPT", "STYLE", "NOSCRIPT", "TEMPLATE", "TEXTAREA"]);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_ELEMENT);
  for (let el = walker.currentNode; el; el = walker.nextNode()) {
    if (skip.has(el.tagName)) continue;
    const own = Array.from(el.childNodes).filter(n => n.nodeType === 3)
      .map(n => n.nodeValue).join("");
    if (own.trim() && getComputedStyle(el).display !== "inline") out.push(["text", el.innerText]);
    if (el.tagName === "A" && (el.getAttribute("href") || "").startsWith("tel:"))
      out.push(["tel", el.getAttribute("href")]);
  }
  return out;
}"""


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # "unswapped" | "partial"
    number: str  # the site number concerned (E.164)
    seen: str  # the text as the page shows it
    where: str  # "text" | "tel"


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def national_of(digits: str, phone: Phone) -> str | None:
    """The national part of a digit run if it is written as ``phone``'s number could be."""
    n = len(phone.national)
    for prefix in ("", phone.country_code, "0", "1", "8"):
        if len(digits) == len(prefix) + n and digits.startswith(prefix):
            return digits[len(prefix) :]
    return None


def inspect(
    texts: Iterable[tuple[str, str]], own: Sequence[Phone], tracking: Mapping[str, set[str]]
) -> list[Finding]:
    """Findings for the (where, text) pairs a page shows; ``tracking`` maps each own
    number (E.164) to the national numbers of the pools that stand in for it."""
    findings = []
    for where, text in texts:
        runs = [text[4:]] if where == "tel" else PHONE_LIKE.findall(text)
        for run in runs:
            digits = _digits(run)
            for phone in own:
                nat = national_of(digits, phone)
                if nat is None:
                    continue
                if nat == phone.national:
                    findings.append(Finding("unswapped", phone.e164, run.strip(), where))
                elif _mixed(nat, phone.national, tracking.get(phone.e164, set())):
                    findings.append(Finding("partial", phone.e164, run.strip(), where))
    return findings


def _mixed(seen: str, original: str, tracking: set[str]) -> bool:
    """Digits taken partly from the original and partly from one tracking number: a
    half-done swap.  At least two digits must come from each side, so a neighbouring
    number that differs from the original in one digit (a fax) is not mistaken for one."""
    if seen in tracking:
        return False
    for t in tracking:
        if len(t) != len(seen):
            continue
        if not all(c in (o, x) for c, o, x in zip(seen, original, t, strict=True)):
            continue
        from_tracking = sum(1 for c, o, x in zip(seen, original, t, strict=True) if c == x != o)
        from_original = sum(1 for c, o, x in zip(seen, original, t, strict=True) if c == o != x)
        if from_tracking >= 2 and from_original >= 2:
            return True
    return False


def site_for(config: Config, url: str, site_id: str | None) -> Site:
    if site_id:
        site = config.site(site_id)
        if site is None:
            raise SystemExit(f"callpath audit: no site {site_id!r} in {config.path}")
        return site
    host = (urlsplit(url).hostname or "").lower()
    for site in config.sites:
        if any(host == d or host.endswith("." + d) for d in site.domains):
            return site
    raise SystemExit(f"callpath audit: no site lists {host!r} in its domains; use --site")


def collect(url: str, wait_ms: int) -> list[tuple[str, str]]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise SystemExit("callpath audit needs Playwright: pip install 'callpath[audit]'") from None
    exe = os.environ.get("CALLPATH_CHROMIUM") or (
        CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(user_agent=VISITOR_UA)
            page.goto(url, wait_until="load")
            with contextlib.suppress(Exception):  # no snippet, or no numbers: audit as is
                page.wait_for_function(
                    "() => new Promise(r => window.callpath ? window.callpath.ready(() => r(1))"
                    " : r(0))",
                    timeout=wait_ms,
                )
            page.wait_for_timeout(200)
            texts = [tuple(x) for x in page.evaluate(COLLECT_JS)]
        finally:
            browser.close()
    return texts


def run(config: Config, url: str, site_id: str | None = None, wait_ms: int = 5000) -> list[Finding]:
    site = site_for(config, url, site_id)
    tracking: dict[str, set[str]] = {}
    for pool in site.pools:
        tracking.setdefault(pool.replace.e164, set()).update(n.national for n in pool.numbers)
    return inspect(collect(url, wait_ms), site.replace, tracking)


def cmd_audit(args: argparse.Namespace) -> int:
    from . import config as configmod

    cfg = configmod.load(args.config or os.environ.get("CALLPATH_CONFIG") or "pools.toml")
    findings = run(cfg, args.url, args.site, args.wait)
    if not findings:
        print(f"{args.url}: every configured number was swapped")
        return 0
    for f in findings:
        what = "not swapped" if f.kind == "unswapped" else "SWAPPED ONLY IN PART"
        print(f"{args.url}: {f.number} {what} in {f.where}: {f.seen!r}", file=sys.stderr)
    print(f"{len(findings)} problem(s)", file=sys.stderr)
    return 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="open a page in headless Chromium and report every "
        "configured number that was not fully swapped",
    )
    p.add_argument("url")
    p.add_argument("--config")
    p.add_argument("--site", help="site id (default: the site whose domains list the host)")
    p.add_argument("--wait", type=int, default=5000, help="ms to wait for the snippet")
    p.set_defaults(func=cmd_audit)
