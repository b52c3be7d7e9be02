"""Numbers the page adds or changes after load: swapped as they appear, without loops."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import PageServer, StandInApi, Tab

pytestmark = pytest.mark.browser


def test_spa_route_change_modal_and_edits_are_swapped(tab: Tab, api: StandInApi) -> None:
    tab.open("/spa.html")
    tab.page.wait_for_function("() => window.callpath && window.callpath.numbers().length")
    page = tab.page
    # a route change replaces the view
    page.evaluate("""() => {
      const main = document.getElementById('app');
      const h1 = document.createElement('h1'); h1.textContent = 'Contacts';
      const p = document.createElement('p'); p.id = 'route';
      p.append('Office: ', Object.assign(document.createElement('b'), {textContent: '8 (495)'}),
               ' 700-00-00');
      main.replaceChildren(h1, p);
      history.pushState({}, '', '#contacts');
    }""")
    tab.wait_text("#route", "Office: 8 (495) 700-00-11")
    # a modal: markup inserted at once, number split over elements, a tel link
    page.evaluate("""() => {
      const box = document.createElement('div');
      box.innerHTML = '<div role="dialog"><p id="modal">Call <span>(415)</span> '
        + '<span>555</span>-<span>0100</span></p>'
        + '<a id="modal-link" href="tel:+14155550100">Call now</a></div>';
      document.getElementById('modals').append(box);
    }""")
    tab.wait_text("#modal", "Call (415) 555-0123")
    assert tab.href("#modal-link") == "tel:+14155550123"
    # text changed in place, an href set later
    page.evaluate("""() => {
      document.getElementById('slot').firstChild.nodeValue = 'Call +7 495 700 00 00';
      document.getElementById('later-link').setAttribute('href', 'tel:84957000000');
    }""")
    tab.wait_text("#slot", "Call +7 495 700 00 11")
    tab.page.wait_for_function(
        "() => document.getElementById('later-link').getAttribute('href') === 'tel:84957000011'"
    )
    # a number typed into the page bit by bit, as a framework may render it
    page.evaluate("""() => {
      const p = document.createElement('p'); p.id = 'typed';
      document.getElementById('app').append(p);
      const t = document.createTextNode('+7 (495) 700-');
      p.append(t);
      setTimeout(() => { t.appendData('00-00'); }, 50);
    }""")
    tab.wait_text("#typed", "+7 (495) 700-00-11")
    tab.assert_clean()


def test_own_writes_do_not_loop(tab: Tab, api: StandInApi) -> None:
    tab.open("/plain.html")
    tab.wait_text("#split", "+7 (495) 700-00-11")
    tab.page.evaluate("""() => {
      const p = document.createElement('p'); p.id = 'late'; p.textContent = '8 495 700 00 00';
      document.body.append(p);
    }""")
    tab.wait_text("#late", "8 495 700 00 11")
    counted = tab.page.evaluate("""() => new Promise((done) => {
      let records = 0;
      new MutationObserver((list) => { records += list.length; })
        .observe(document, {subtree: true, childList: true, characterData: true,
                            attributes: true});
      setTimeout(() => done(records), 700);
    })""")
    assert counted == 0
    tab.assert_clean()


# counts reads of node text: what a scan costs
COUNT_READS = """
(() => {
  let reads = 0;
  for (const name of ['nodeValue', 'textContent']) {
    const own = Object.getOwnPropertyDescriptor(Node.prototype, name);
    Object.defineProperty(Node.prototype, name, {
      configurable: true,
      get() { reads++; return own.get.call(this); },
      set(value) { own.set.call(this, value); },
    });
  }
  Object.defineProperty(window, '__reads', { get: () => reads });
})();
"""


def test_a_mutation_reads_only_the_changed_nodes(
    tab: Tab, api: StandInApi, pages: PageServer
) -> None:
    tab.context.add_init_script(COUNT_READS)
    tab.open("/big.html")
    tab.wait_text(
        "#p0", "Item 0 costs 0,99 USD order 40000000 shipped 2024-05-01 call +7 (495) 700-00-11"
    )
    tab.page.wait_for_timeout(200)
    first = tab.page.evaluate("window.__reads")
    assert first >= 1000  # the first scan looked at every paragraph
    tab.page.evaluate("""() => {
      const p = document.createElement('p'); p.id = 'added';
      p.append('Call ', Object.assign(document.createElement('b'), {textContent: '84957000000'}));
      document.querySelector('main').append(p);
      document.querySelector('#p7 i').textContent = 'phone 8 495 700 00 00';
    }""")
    tab.wait_text("#added", "Call 84957000011")
    tab.wait_contains("#p7", "phone 8 495 700 00 11")
    tab.page.wait_for_timeout(200)
    assert tab.page.evaluate("window.__reads") - first < 50
    tab.assert_clean()


def test_numbers_are_swapped_while_the_page_is_still_loading(
    tab: Tab, api: StandInApi, pages: PageServer
) -> None:
    # a second page of a visit: the numbers are in memory, so they swap as the parser goes
    memory = json.dumps({"s": "sid-1", "n": [api.MSK, api.SF]})
    tab.context.add_init_script(
        f"localStorage.setItem('callpath:acme', JSON.stringify("
        f"Object.assign({memory}, {{e: Date.now() + 60000}})));"
    )
    pages.streams["/slow.html"] = (
        [
            '<!doctype html><html><head><meta charset="utf-8"><title>slow</title>{{SNIPPET}}'
            '</head><body><p id="first">+7 (495) 700-00-00</p><p id="cut">Call +7 (495) 700-',
            '00-00 now</p><p id="split"><b>8 (495)</b> 700-00-00</p><p id="sf">(415) 555-0100',
            "</p></body></html>",
        ],
        0.6,
    )
    tab.open("/slow.html", wait_until="commit")
    page = tab.page
    page.wait_for_function(
        "() => document.getElementById('split')"
        " && document.getElementById('split').textContent === '8 (495) 700-00-11'",
        polling=20,
        timeout=5000,
    )
    assert page.evaluate("document.readyState") == "loading"
    assert tab.text("#first") == "+7 (495) 700-00-11"
    assert tab.text("#cut") == "Call +7 (495) 700-00-11 now"
    tab.wait_text("#sf", "(415) 555-0123")
    tab.assert_clean()
