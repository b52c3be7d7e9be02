"""Finding site numbers in any format and writing tracking numbers in the same shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import PageServer, StandInApi, Tab

pytestmark = pytest.mark.browser

NB = "\u00a0"

# id -> text after the swap (+7 495 700-00-00 -> ...-11, +1 415 555-0100 -> ...-0123)
SWAPPED = {
    "m-plus": "+7 (495) 700-00-11",
    "m-trunk": "8 (495) 700-00-11",
    "m-dashes": "+7-495-700-00-11",
    "m-digits": "84957000011",
    "m-e164": "+74957000011",
    "m-national": "495 700 00 11",
    "m-nbsp": f"+7{NB}(495){NB}700\u201100\u201111",
    "m-hyphen": "8\u2010495\u2010700\u201000\u201011",
    "m-ndash": "+7 495 700\u201300\u201311",
    "m-sentence": "Call +7 (495) 700-00-11 today!",
    "m-hours": "Mon\u2013Fri 9\u201318 +7 495 700 00 11",
    "m-twice": "84957000011 84957000011",
    "m-with-fax": "+7 (495) 700-00-11 / 700-00-01",
    "s-paren": "(415) 555-0123",
    "s-dots": "415.555.0123",
    "s-trunk": "1 (415) 555-0123",
    "s-intl": "+1 415 555 0123",
    "s-dashes": "1-415-555-0123",
    "both": "Moscow: +7 495 700-00-11, San Francisco: (415) 555-0123.",
}
KEPT = [
    "k-fax",
    "k-other",
    "k-sf-fax",
    "k-order",
    "k-order2",
    "k-digit-before",
    "k-digit-after",
    "k-longer",
    "k-joined",
    "k-date",
]
HREFS = {
    "t-e164": "tel:+74957000011",
    "t-trunk": "tel:84957000011",
    "t-dashes": "tel:+1-415-555-0123",
    "t-national": "tel:4155550123",
    "t-upper": "TEL:+7 495 700 00 11",
    "t-fax": "tel:+74957000001",
    "t-web": "https://example.com/?n=84957000000",
}


def originals(new_tab: Callable[..., Tab], path: str, ids: list[str]) -> dict[str, str]:
    """The page as written, read with JavaScript off."""
    plain = new_tab(java_script_enabled=False)
    plain.open(path)
    return {i: plain.text(f"#{i}") for i in ids}


def test_every_format_is_swapped_digit_for_digit(
    tab: Tab, new_tab: Callable[..., Tab], api: StandInApi
) -> None:
    before = originals(new_tab, "/formats.html", [*SWAPPED, *KEPT])
    tab.open("/formats.html")
    tab.wait_text("#s-dashes", SWAPPED["s-dashes"])
    for key, want in SWAPPED.items():
        assert tab.text(f"#{key}") == want, key
        assert before[key] != want, key
    for key in KEPT:
        assert tab.text(f"#{key}") == before[key], key
    tab.assert_clean()


def test_tel_links_are_swapped_and_their_text_left_alone(tab: Tab, api: StandInApi) -> None:
    tab.open("/formats.html")
    tab.wait_text("#m-plus", SWAPPED["m-plus"])
    for key, want in HREFS.items():
        assert tab.href(f"#{key}") == want, key
    assert tab.text("#t-e164") == "Call us"
    assert tab.text("#t-dashes") == "(415) 555-0123"
    tab.assert_clean()


def test_a_number_split_across_inline_elements_is_swapped_whole(tab: Tab, api: StandInApi) -> None:
    tab.open("/split.html")
    tab.wait_text("#sp-msk", "+7 (495) 700-00-11")
    page = tab.page
    # every digit went back into the text node it came from
    assert page.eval_on_selector_all("#sp-msk > *", "els => els.map(e => e.textContent)") == [
        "+7 (495)",
        "700",
        "00",
        "11",
    ]
    assert tab.text("#sp-sf") == "Call (415) 555-0123 now"
    assert page.eval_on_selector_all("#sp-sf span", "els => els.map(e => e.textContent)") == [
        "(415)",
        "555",
        "01",
        "23",
    ]
    assert tab.href("#sp-sf a") == "tel:+14155550123"
    assert tab.text("#sp-nested") == "84957000011"
    assert page.eval_on_selector_all("#sp-nested em", "els => els.map(e => e.textContent)") == [
        "8",
        "495",
        "7000011",
    ]
    # a neighbouring number, and numbers broken by a block or a line break, are not a number
    assert tab.text("#sp-fax") == "Fax +7 (495) 700-00-01"
    assert tab.text("#sp-blocks") == "+7 (495)700-00-00"
    assert tab.text("#sp-break") == "+7 (495)700-00-00"
    tab.assert_clean()


def test_another_length_is_written_whole_in_a_grouped_form(
    tab: Tab, api: StandInApi, pages: PageServer
) -> None:
    api.numbers = [api.pair("+74957000000", "+7812345678", "7")]  # national: 10 -> 9 digits
    pages.add(
        "/length.html",
        (
            '<p id="a">Call +7 (495) 700-00-00 now</p>'
            '<p id="b">8 (495) 700-00-00</p>'
            '<p id="c"><span>+7 (495)</span> <b>700</b>-<b>00</b>-<b>00</b></p>'
            '<a id="d" href="tel:84957000000">call</a>'
        ),
    )
    tab.open("/length.html")
    tab.wait_text("#a", "Call +7 81 234 5678 now")
    assert tab.text("#b") == "8 81 234 5678"
    assert tab.text("#c") == "+7 81 234 5678"
    assert tab.href("#d") == "tel:8 81 234 5678"
    tab.assert_clean()


def test_several_numbers_and_many_occurrences(tab: Tab, api: StandInApi, pages: PageServer) -> None:
    kyiv = api.pair("+380577000000", "+380577000042", "380")
    api.numbers = [api.MSK, api.SF, kyiv]
    rows = "".join(
        f"<li>+7 (495) 700-00-00 · (415) 555-0100 · 057 700 00 00 · "
        f'<a href="tel:+380577000000">#{i}</a></li>'
        for i in range(300)
    )
    pages.add("/many.html", f'<ul id="list">{rows}</ul>')
    tab.open("/many.html")
    tab.wait_contains("#list li:last-child", "057 700 00 42")
    items = tab.page.eval_on_selector_all("#list li", "els => els.map(e => e.textContent)")
    assert len(items) == 300
    assert all(t.startswith("+7 (495) 700-00-11 · (415) 555-0123 · 057 700 00 42") for t in items)
    hrefs = tab.page.eval_on_selector_all("#list a", "els => els.map(e => e.getAttribute('href'))")
    assert set(hrefs) == {"tel:+380577000042"}
    tab.assert_clean()


def test_form_fields_scripts_styles_templates_and_editable_content_are_left_alone(
    tab: Tab, new_tab: Callable[..., Tab], api: StandInApi
) -> None:
    read = """() => ({
      in: document.getElementById('in').value,
      inAttr: document.getElementById('in').getAttribute('value'),
      in2: document.getElementById('in2').value,
      lab: document.getElementById('lab').textContent,
      ta: document.getElementById('ta').value,
      taText: document.getElementById('ta').textContent,
      sel: document.getElementById('sel').value,
      options: [...document.querySelectorAll('#sel option')].map(o => o.textContent),
      ld: document.getElementById('ld').textContent,
      ld2: document.getElementById('ld2').textContent,
      js: document.getElementById('js').textContent,
      css: document.getElementById('css').textContent,
      ns: document.getElementById('ns').textContent,
      tpl: document.getElementById('tpl').content.textContent,
      ce: document.getElementById('ce').textContent,
      ce2: document.getElementById('ce2').textContent,
    })"""
    plain = new_tab(java_script_enabled=False)
    plain.open("/untouched.html")
    tab.open("/untouched.html")
    tab.wait_text("#control", "+7 (495) 700-00-11")
    after = tab.page.evaluate(read)
    # noscript is parsed as text when scripts run, as markup when they don't: compare its text
    before = plain.page.evaluate(
        read.replace("document.getElementById('ns').textContent", "'<p>+7 (495) 700-00-00</p>'")
    )
    assert after == before
    assert "700-00-11" not in str(after)
    tab.assert_clean()


def test_nothing_changes_when_the_numbers_are_the_sites_own(
    tab: Tab, api: StandInApi, pages: PageServer
) -> None:
    api.bot = True
    pages.attrs["data-ping"] = "100"
    tab.open("/plain.html")
    api.wait(lambda: api.answered, what="the session answer")
    tab.page.wait_for_timeout(600)
    assert tab.text("#msk") == "+7 (495) 700-00-00"
    assert tab.href("#link") == "tel:+74957000000"
    assert api.pings() == []  # no session id: nothing to hold
    tab.assert_clean()
