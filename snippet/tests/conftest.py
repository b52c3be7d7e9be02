"""Browser tests for the snippet.

Two real HTTP servers on loopback, so CORS is real:

* ``api``: a stand-in for the callpath API on one origin. It serves ``/snippet.js`` (the
  built file) and ``/demo``, answers ``POST /v1/sessions`` and ``/v1/sessions/{sid}/ping``
  as the contract says, records every request, and can be made slow (``api.delay``, or
  ``api.hold_answers()`` until ``api.release()``) or failing (``api.status = 500``);
  ``api.dead_origin`` is an origin nobody listens on (connection refused).
* ``pages``: the site's pages on a second origin: ``fixtures/*.html`` (``{{SNIPPET}}`` in a
  fixture becomes the script tag, ``{{API}}`` the API origin), pages added by a test, and
  ``/big.html`` from :func:`big_page_html`.

``tab`` opens a fresh browser context and collects page errors and console errors; every
test ends with ``tab.assert_clean()``.

The first-scan time on a 5,000-text-node page: :func:`measure_first_scan` (used by
``test_snippet_build.py::test_first_scan_time_on_a_big_page`` through the ``measure_scan``
fixture; run it with ``-s`` to see the figure).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
BUILT = ROOT / "attribution" / "static" / "snippet.js"
DEMO = ROOT / "attribution" / "static" / "demo.html"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def pair(replace: str, number: str, country_code: str) -> dict[str, str]:
    """One entry of the API's ``numbers``: a site number and the number shown instead."""
    cut = 1 + len(country_code)
    return {
        "replace": replace,
        "number": number,
        "replace_national": replace[cut:],
        "number_national": number[cut:],
        "country_code": country_code,
    }


MSK = pair("+74957000000", "+74957000011", "7")
SF = pair("+14155550100", "+14155550123", "1")


def wait_until(check: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that gave up on a slow answer is expected; stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    server_version = "standin"
    owner: Any = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send(
        self,
        status: int,
        body: bytes | str,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass

    def do_GET(self) -> None:
        self.owner.get(self)

    def do_POST(self) -> None:
        self.owner.post(self)

    def do_OPTIONS(self) -> None:
        self.owner.options(self)


def _serve(owner: Any) -> tuple[ThreadingHTTPServer, threading.Thread]:
    handler = type("Handler", (_Handler,), {"owner": owner})
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return server, thread


class Request:
    """One request the stand-in received."""

    def __init__(self, method: str, path: str, headers: dict[str, str], body: Any) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.at = time.monotonic()


class StandInApi:
    """The part of the callpath API the snippet uses, recording what it is sent."""

    # helpers for the tests, which reach them through the fixture
    pair = staticmethod(pair)
    wait = staticmethod(wait_until)
    MSK = MSK
    SF = SF

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()
        self.server, self.thread = _serve(self)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        with socket.socket() as probe:  # a port that refuses connections
            probe.bind(("127.0.0.1", 0))
            self.dead_origin = f"http://127.0.0.1:{probe.getsockname()[1]}"

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.numbers: list[dict[str, str]] = [MSK, SF]
            self.by_region: dict[str, list[dict[str, str]]] = {}
            self.hold = 900
            self.delay = 0.0  # seconds before any POST is answered
            self.gate = getattr(self, "gate", threading.Event())
            self.gate.set()  # cleared: POSTs wait for release()
            self.status = 200  # anything else: every POST fails with it
            self.bot = False  # answer as for a bot: own numbers, no sid
            self.requests: list[Request] = []
            self.answered = 0
            self.sids: dict[str, str] = {}  # sid -> region
            self.demo_csp = (
                "default-src 'none'; script-src 'self'; connect-src 'self'; "
                "require-trusted-types-for 'script'"
            )

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()

    # -- what was sent --------------------------------------------------------------
    def sessions(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r.body for r in self.requests if r.path == "/v1/sessions"]

    def pings(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path.endswith("/ping")]

    def posts(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.method == "POST"]

    def preflights(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.method == "OPTIONS"]

    def settle(self, quiet: float = 0.5, timeout: float = 10.0) -> int:
        """Waits until no request has come for ``quiet`` seconds; the number of pings."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                last = self.requests[-1].at if self.requests else 0.0
            if time.monotonic() - last >= quiet:
                break
            time.sleep(0.05)
        return len(self.pings())

    def hold_answers(self) -> None:
        """POSTs are received and recorded, but answered only after :meth:`release`."""
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def forget(self, sid: str) -> None:
        with self.lock:
            self.sids.pop(sid, None)

    def numbers_for(self, region: str) -> list[dict[str, str]]:
        return self.by_region.get(region, self.numbers)

    # -- HTTP -------------------------------------------------------------------------
    def _record(self, h: _Handler, body: Any) -> None:
        with self.lock:
            self.requests.append(Request(h.command, h.path, dict(h.headers.items()), body))

    def _cors(self, h: _Handler) -> dict[str, str]:
        return {"Access-Control-Allow-Origin": h.headers.get("Origin") or "*", "Vary": "Origin"}

    def get(self, h: _Handler) -> None:
        path = urlsplit(h.path).path
        if path == "/snippet.js":
            h.send(
                200,
                BUILT.read_bytes(),
                "text/javascript; charset=utf-8",
                {"Access-Control-Allow-Origin": "*"},
            )
        elif path == "/favicon.ico":
            h.send(204, b"", "image/x-icon")
        elif path == "/demo":
            h.send(
                200,
                DEMO.read_bytes(),
                "text/html; charset=utf-8",
                {"Content-Security-Policy": self.demo_csp},
            )
        else:
            h.send(404, '{"error": "not_found"}')

    def options(self, h: _Handler) -> None:
        self._record(h, None)
        h.send(204, b"")  # no CORS allowance: a preflight would fail the request

    def post(self, h: _Handler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"unparsed": raw.decode("utf-8", "replace")}
        self._record(h, body)
        self.gate.wait(10)
        if self.delay:
            time.sleep(self.delay)
        cors = self._cors(h)
        if self.status != 200:
            h.send(self.status, '{"error": "broken", "detail": "made to fail"}', headers=cors)
            return
        path = urlsplit(h.path).path
        if path == "/v1/sessions":
            answer = self._session(body)
        elif path.startswith("/v1/sessions/") and path.endswith("/ping"):
            sid = path[len("/v1/sessions/") : -len("/ping")]
            with self.lock:
                region = self.sids.get(sid)
            if region is None:
                h.send(404, '{"error": "not_found", "detail": "unknown session"}', headers=cors)
                return
            answer = {"hold_seconds": self.hold, "numbers": self.numbers_for(region)}
        else:
            h.send(404, '{"error": "not_found"}', headers=cors)
            return
        h.send(200, json.dumps(answer), headers=cors)
        with self.lock:
            self.answered += 1

    def _session(self, body: dict[str, Any]) -> dict[str, Any]:
        region = body.get("region") or ""
        visit = {
            "source": "(direct)",
            "medium": "(none)",
            "campaign": "",
            "keyword": "",
            "region": region,
            "device": "desktop",
        }
        if self.bot:
            own = [pair(p["replace"], p["replace"], p["country_code"]) for p in self.numbers]
            return {"sid": None, "numbers": own, "hold_seconds": self.hold, "visit": visit}
        with self.lock:
            sid = body.get("sid")
            if sid not in self.sids:
                sid = f"sid-{len(self.sids) + 1}"
            self.sids[sid] = region
        return {
            "sid": sid,
            "numbers": self.numbers_for(region),
            "hold_seconds": self.hold,
            "visit": visit,
        }


class PageServer:
    """The site: fixtures and test-made pages on an origin of their own."""

    def __init__(self, api: StandInApi) -> None:
        self.api = api
        self.reset()
        self.server, self.thread = _serve(self)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"

    def reset(self) -> None:
        self.attrs: dict[str, str] = {"data-site": "acme"}
        self.src: str | None = None  # default: the API origin's /snippet.js
        self.extra: dict[str, str] = {}  # path -> html
        self.headers: dict[str, dict[str, str]] = {}
        self.streams: dict[str, tuple[list[str], float]] = {}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return self.origin + path

    def script_tag(self, asynchronous: bool = True) -> str:
        src = self.src or self.api.origin + "/snippet.js"
        attrs = "".join(f' {name}="{value}"' for name, value in self.attrs.items())
        return f'<script src="{src}"{attrs}{" async" if asynchronous else ""}></script>'

    def render(self, html: str) -> str:
        return html.replace("{{SNIPPET}}", self.script_tag()).replace("{{API}}", self.api.origin)

    def add(self, path: str, body: str, title: str = "test") -> None:
        """A page made by a test: ``body`` goes in <body>, the snippet in <head>."""
        self.extra[path] = (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"{{{{SNIPPET}}}}</head><body>{body}</body></html>"
        )

    def get(self, h: _Handler) -> None:
        path = urlsplit(h.path).path
        headers = self.headers.get(path, {})
        if path == "/snippet.js":
            h.send(200, BUILT.read_bytes(), "text/javascript; charset=utf-8")
            return
        if path == "/favicon.ico":  # asked for by the browser itself
            h.send(204, b"", "image/x-icon")
            return
        if path in self.streams:
            self._stream(h, *self.streams[path])
            return
        if path in self.extra:
            html = self.extra[path]
        elif path == "/big.html":
            html = big_page_html(script_tag=self.script_tag(asynchronous=False))
        else:
            file = FIXTURES / path.lstrip("/")
            if not (file.suffix == ".html" and file.parent == FIXTURES and file.is_file()):
                h.send(404, "not found", "text/plain")
                return
            html = file.read_text(encoding="utf-8")
        h.send(200, self.render(html), "text/html; charset=utf-8", headers)

    def _stream(self, h: _Handler, chunks: list[str], pause: float) -> None:
        try:
            h.send_response(200)
            h.send_header("Content-Type", "text/html; charset=utf-8")
            h.send_header("Cache-Control", "no-store")
            h.end_headers()
            for i, chunk in enumerate(chunks):
                if i:
                    time.sleep(pause)
                h.wfile.write(self.render(chunk).encode("utf-8"))
                h.wfile.flush()
        except OSError:
            pass

    def post(self, h: _Handler) -> None:
        h.send(405, "no", "text/plain")

    def options(self, h: _Handler) -> None:
        h.send(405, "no", "text/plain")


def big_page_html(text_nodes: int = 5000, script_tag: str = "") -> str:
    """A page with ``text_nodes`` text nodes in paragraphs of five (text, <b>, text, <i>,
    text), with dates, prices, order numbers and, in every 50th paragraph, the site
    number +7 (495) 700-00-00 in one of several shapes. ``script_tag`` ends the body."""
    shapes = ["+7 (495) 700-00-00", "8 495 700 00 00", "84957000000", "+7-495-700-00-00"]
    paragraphs = []
    for i in range(-(-text_nodes // 5)):
        phone = shapes[(i // 50) % len(shapes)] if i % 50 == 0 else f"ref {100000 + i}"
        paragraphs.append(
            f'<p id="p{i}">Item {i} costs {i % 97},99 USD <b>order {40000000 + i}</b>'
            f" shipped 2024-05-{i % 28 + 1:02d} <i>call</i> {phone}</p>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>big</title></head>'
        f"<body><main>{''.join(paragraphs)}</main>{script_tag}</body></html>"
    )


# Installed before the page's scripts (the page itself runs none): the snippet's first read
# of document.currentScript marks its start, its first Element.matches() call the start of
# its first scan, and its first MutationObserver.observe(), made right after that scan, the
# end. Each hook puts the original back once it has fired, so the scan runs at full speed.
_SCAN_CLOCK = """
(() => {
  const marks = {};
  const once = (proto, name, mark) => {
    const own = Object.getOwnPropertyDescriptor(proto, name);
    const hook = own.get
      ? { configurable: true, get() { restore(); return own.get.call(this); } }
      : { configurable: true, writable: true,
          value(...args) { restore(); return own.value.apply(this, args); } };
    const restore = () => {
      marks[mark] = performance.now();
      Object.defineProperty(proto, name, own);
    };
    Object.defineProperty(proto, name, hook);
  };
  once(Document.prototype, 'currentScript', 'start');
  once(Element.prototype, 'matches', 'scan');
  once(MutationObserver.prototype, 'observe', 'scanned');
  Object.defineProperty(window, '__scanMarks', { value: marks });
})();
"""


def measure_first_scan(browser: Browser, pages: PageServer, runs: int = 5) -> dict[str, Any]:
    """The snippet's first full scan of ``/big.html`` (5,000 text nodes) with the numbers
    already in memory, as on a second page of a visit: ``median_ms`` (and ``runs_ms``) from
    the scan's first DOM read to its end; ``start_median_ms`` from the snippet starting to
    the end of the scan (adds reading localStorage and setting up); the text node count and
    the numbers swapped."""
    times = []
    totals = []
    nodes = swapped = 0
    memory = json.dumps({"s": "sid-perf", "n": [MSK, SF], "e": 4102444800000})
    for _ in range(runs):
        context = browser.new_context()
        try:
            context.add_init_script(
                f"localStorage.setItem('callpath:acme', {json.dumps(memory)});" + _SCAN_CLOCK
            )
            page = context.new_page()
            page.goto(pages.url("/big.html"))
            marks = page.wait_for_function(
                "() => window.__scanMarks.scanned !== undefined && window.__scanMarks"
            ).json_value()
            times.append(marks["scanned"] - marks["scan"])
            totals.append(marks["scanned"] - marks["start"])
            nodes, swapped = page.evaluate(
                """() => {
                  const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
                  let n = 0; while (w.nextNode()) n++;
                  return [n, (document.body.textContent.match(/700-00-11|700 00 11|84957000011/g)
                              || []).length];
                }"""
            )
        finally:
            context.close()
    times.sort()
    totals.sort()
    return {
        "median_ms": times[len(times) // 2],
        "runs_ms": times,
        "start_median_ms": totals[len(totals) // 2],
        "text_nodes": nodes,
        "swapped": swapped,
    }


class Tab:
    """One browser context and page, with every page error and console error collected."""

    def __init__(self, context: BrowserContext, pages: PageServer) -> None:
        self.context = context
        self.pages = pages
        self.errors: list[str] = []
        self.failed: list[str] = []  # requests that failed: to explain a console error
        self.page: Page = context.new_page()
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.on(
            "console",
            lambda msg: (
                self.errors.append(f"console {msg.type}: {msg.text}")
                if msg.type in ("error", "assert")
                else None
            ),
        )
        self.page.on("requestfailed", lambda req: self.failed.append(f"{req.url} {req.failure}"))
        self.page.on(
            "response",
            lambda res: (
                self.failed.append(f"{res.url} {res.status}") if res.status >= 400 else None
            ),
        )

    def open(self, path: str, wait_until: str = "load", **kwargs: Any) -> Page:
        self.page.goto(self.pages.url(path), wait_until=wait_until, **kwargs)  # type: ignore[arg-type]
        return self.page

    def text(self, selector: str) -> str:
        return self.page.eval_on_selector(selector, "el => el.textContent")

    def href(self, selector: str) -> str:
        return self.page.eval_on_selector(selector, "el => el.getAttribute('href')")

    def wait_text(self, selector: str, expected: str, timeout: float = 5000) -> None:
        self.page.wait_for_function(
            "([sel, want]) => { const el = document.querySelector(sel);"
            " return !!el && el.textContent === want; }",
            arg=[selector, expected],
            timeout=timeout,
            polling=20,
        )

    def wait_contains(self, selector: str, expected: str, timeout: float = 5000) -> None:
        self.page.wait_for_function(
            "([sel, want]) => { const el = document.querySelector(sel);"
            " return !!el && el.textContent.includes(want); }",
            arg=[selector, expected],
            timeout=timeout,
            polling=20,
        )

    def storage(self, key: str = "callpath:acme") -> Any:
        raw = self.page.evaluate("k => localStorage.getItem(k)", key)
        return json.loads(raw) if raw else None

    def assert_clean(self, allow: tuple[str, ...] = ()) -> None:
        errors = [e for e in self.errors if not any(a in e for a in allow)]
        assert errors == [], (errors, self.failed)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM) if CHROMIUM.exists() else None, args=LAUNCH_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def _api_server() -> Iterator[StandInApi]:
    server = StandInApi()
    yield server
    server.close()


@pytest.fixture(scope="session")
def _page_server(_api_server: StandInApi) -> Iterator[PageServer]:
    server = PageServer(_api_server)
    yield server
    server.close()


@pytest.fixture
def api(_api_server: StandInApi) -> StandInApi:
    _api_server.reset()
    return _api_server


@pytest.fixture
def pages(_page_server: PageServer, api: StandInApi) -> PageServer:
    _page_server.reset()
    return _page_server


@pytest.fixture
def new_tab(browser: Browser, pages: PageServer) -> Iterator[Callable[..., Tab]]:
    """Opens tabs, each in a browser context of its own, closed after the test."""
    contexts: list[BrowserContext] = []

    def open_tab(**context_options: Any) -> Tab:
        context = browser.new_context(**context_options)
        contexts.append(context)
        return Tab(context, pages)

    yield open_tab
    for context in contexts:
        context.close()


@pytest.fixture
def tab(new_tab: Callable[..., Tab]) -> Tab:
    return new_tab()


@pytest.fixture
def measure_scan(browser: Browser, pages: PageServer) -> Callable[..., dict[str, Any]]:
    """``measure_scan(runs=5)``: see :func:`measure_first_scan`."""
    return lambda runs=5: measure_first_scan(browser, pages, runs)
