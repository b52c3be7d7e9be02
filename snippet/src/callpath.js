/*
 * callpath snippet: dynamic number insertion.
 *
 *   <script src="https://track.example.com/snippet.js" data-site="acme" async></script>
 *
 * Attributes of the script tag:
 *   data-site    the site id from pools.toml (required)
 *   data-region  a region id the page asks for; beats GeoIP and any earlier setRegion()
 *   data-api     API origin; default: the origin of this script's own src
 *   data-ping    ping interval in ms; default: hold_seconds / 3, at least 10 s
 *                (meant for tests and debugging)
 *
 * Global: window.callpath = { ready(cb), numbers(), setRegion(id) }. Nothing else.
 *
 * Swapping: the server answers pairs {replace, number, replace_national, number_national,
 * country_code}. A digit string on the page (formatting ignored) that equals
 * country_code + national, national, or a one-digit trunk prefix (8, 0, 1) + national, with
 * no digit next to it, is a site number. Its national digits are rewritten in place, so
 * the page's own format survives digit for digit; when the tracking number has another
 * length the whole number is written in a plain grouped form instead. A number split
 * across inline elements is matched on the text of its block and each digit goes back
 * into the text node it came from. The original of every changed text node and tel: href
 * is remembered, so a later assignment (setRegion) always starts from the page's own text.
 *
 * Only nodeValue and the href attribute are ever written: no markup is parsed, nothing is
 * evaluated, and form fields, scripts, styles, templates and editable content are left
 * alone. Any failure (API slow or down, storage blocked) leaves the page's own numbers.
 */
(function () {
  'use strict';

  const win = window;
  const doc = document;
  if (win.callpath) return;

  const script = doc.currentScript || {};
  const data = script.dataset || {};
  const root = doc.documentElement;
  const site = data.site;
  if (!site) return;

  const api = (data.api || new URL(script.src, location).origin).replace(/\/+$/, '');
  const KEY = 'callpath:' + site;
  const TIMEOUT_MS = 2500;

  // Elements that flow inside a line: their text joins the text of the enclosing block.
  const INLINE = /^(a|abbr|b|bdi|code|em|font|i|label|mark|nobr|q|s|small|span|strong|su[bp]|time|u|wbr)$/i;
  // Never read or written.
  const SKIP = 'head,script,style,noscript,template,textarea,select,[contenteditable]';
  // Digits and what may stand between the digits of one phone number.
  const RUN = /\d(?:[\s().\/+\u2010-\u2015\u2212-]*\d)*/g;

  const originals = new WeakMap(); // node -> [original value, value written]
  const waiting = [];               // ready() callbacks
  const marks = [];                 // every national number assigned or replaced so far
  let store = {};                   // {s: sid, n: numbers, e: trust memory until (ms), r: region}
  let numbers;                      // the assigned pairs, as the API sent them
  let shown = '';                   // their JSON, to skip re-applying the same assignment
  let table = {};                   // digit string -> [length of old national, new national]
  let hold = 900;
  let every = 0;                    // ping interval (ms) once a session is confirmed
  let lastInput = Date.now();
  let observer;
  let asked = 0;                    // answers to older /v1/sessions requests are dropped

  try {
    store = Object(JSON.parse(localStorage.getItem(KEY)));
  } catch (e) {}
  const save = () => {
    try {
      localStorage.setItem(KEY, JSON.stringify(store));
    } catch (e) {}
  };
  let region = data.region || store.r;

  // ---- finding and rewriting numbers ----------------------------------------------------
  // A site number as written -> the tracking number in the same shape.
  const rewrite = (text) => {
    const digits = text.replace(/\D/g, '');
    const [oldLength, national] = table[digits];
    const prefix = digits.slice(0, digits.length - oldLength);
    let k = 0;
    return national.length == oldLength
      ? text.replace(/\d/g, () => (prefix + national)[k++])
      : (prefix && prefix + ' ') + national.replace(/\B(?=(\d{3})*\d{4}$)/g, ' ');
  };

  // text with its site numbers rewritten, as an array of one entry per UTF-16 unit of text
  // (a replacement of another length sits whole on the entry of its first character);
  // 0 when there is none.
  const edit = (text) => {
    let out = 0;
    text.replace(RUN, (run, at) => {
      // chunk, break, chunk, ...: a number starts and ends only at a break (a separator with
      // a space or a plus in it) or at the ends of the run
      const parts = run.split(/(\D*[\s+]\D*)/);
      const offsets = parts.map((part) => (at += part.length) - part.length);
      for (let i = 0; i < parts.length; i += 2) {
        let digits = '';
        let hit = -1;
        for (let j = i; j < parts.length && digits.length < 16; j += 2)
          if (table[(digits += parts[j].replace(/\D/g, ''))]) hit = j;
        if (hit >= 0) {
          const from = offsets[i];
          const to = offsets[hit] + parts[hit].length;
          const value = rewrite(text.slice(from, to));
          out = out || text.split('');
          for (let p = from; p < to; p++)
            out[p] = value.length == to - from ? value[p - from] : p == from ? value : '';
          i = hit;
        }
      }
    });
    return out;
  };

  // the text of a text node, the href of an element
  const get = (node) => (node.nodeType == 3 ? node.nodeValue : node.getAttribute('href'));

  // Rewrites the site numbers in the joined text of nodes (0 stands for a break), always
  // from the page's own text: a value we wrote stands for the value it replaced.
  const swap = (nodes) => {
    const befores = [];
    let text = '';
    let touched;
    for (const node of nodes) {
      let before = '|';
      if (node) {
        const current = get(node);
        const known = originals.get(node);
        before = known && known[1] === current ? known[0] : current;
        touched = touched || known;
      }
      befores.push(before);
      text += before;
    }
    const out = edit(text);
    if (out || touched) {
      let at = 0;
      nodes.forEach((node, i) => {
        const before = befores[i];
        const value = out ? out.slice(at, at + before.length).join('') : before;
        at += before.length;
        if (node) {
          if (value !== get(node)) {
            if (node.nodeType == 3) node.nodeValue = value;
            else node.setAttribute('href', value);
          }
          if (value !== before) originals.set(node, [before, value]);
          else originals.delete(node);
        }
      });
    }
  };

  // Text nodes of one block go to parts (0 marks a break); nested blocks are scanned alone.
  const collect = (el, parts) => {
    if (/^\s*tel:/i.test(el.getAttribute('href'))) swap([el]);
    for (let node = el.firstChild; node; node = node.nextSibling) {
      if (node.nodeType == 3) parts.push(node);
      else if (node.nodeType == 1) {
        const skip = node.matches(SKIP);
        if (skip || !INLINE.test(node.tagName)) {
          parts.push(0);
          if (!skip) scan(node);
        } else collect(node, parts);
      }
    }
  };
  // Scans el, unless its text holds none of the national numbers in play (ours included,
  // to restore them) and it has no tel: link: most of a page is passed over unread.
  const scan = (el) => {
    const digits = el.textContent.replace(/\D/g, '');
    if (marks.some((mark) => digits.includes(mark)) || el.querySelector('[href^="tel:" i]')) {
      const parts = [];
      collect(el, parts);
      swap(parts);
    }
  };

  const blockOf = (node) => {
    if (node.nodeType != 1) node = node.parentNode;
    while (node && INLINE.test(node.tagName)) node = node.parentNode;
    return node;
  };
  const mutated = (records) => {
    const blocks = new Set();
    for (const record of records) {
      if (record.type == 'childList') record.addedNodes.forEach((node) => blocks.add(blockOf(node)));
      else blocks.add(blockOf(record.target));
    }
    blocks.forEach((el) => el && el.closest && !el.closest(SKIP) && scan(el));
  };

  const assign = (list) => {
    const json = JSON.stringify(list);
    if (!Array.isArray(list) || json == shown) return;
    shown = json;
    numbers = list;
    table = {};
    for (let pair of list) {
      pair = Object(pair);
      const from = pair.replace_national;
      const to = pair.number_national;
      if (/^\d+,\d+$/.test([from, to])) marks.push(from, to);
      if (pair.number != pair.replace && /^\d+,\d+$/.test([from, to]))
        for (const prefix of [pair.country_code, '', 8, 0, 1])
          table[prefix + from] = table[prefix + from] || [from.length, to];
    }
    scan(root);
    if (!observer) {
      observer = new MutationObserver(mutated);
      observer.observe(root, {
        childList: true,
        characterData: true,
        subtree: true,
        attributeFilter: ['href'],
      });
      if (doc.readyState == 'loading') doc.addEventListener('DOMContentLoaded', () => scan(root));
    }
    waiting.splice(0).forEach((cb) => setTimeout(cb, 0, list));
  };

  // ---- talking to the API ------------------------------------------------------------
  // Adds the page URL and the GA4 ids from the gtag cookies, then POSTs the body as
  // text/plain JSON: a CORS "simple" request, so the browser sends no preflight.
  //   _ga=GA1.1.<client id: two numbers>
  //   _ga_<stream>=GS1.1.<session>.<count>.<engaged>.<last activity>...
  //   _ga_<stream>=GS2.1.s<session>$o<count>$g<engaged>$t<last activity>...
  // With several streams the session id comes from the one active last.
  const post = (path, body) => {
    let latest = -1;
    body.url = location.href;
    doc.cookie.replace(/(?:^|;\s*)_ga(_\w+)?=G[AS]\d\.\d+\.([^;]*)/g, (all, stream, value) => {
      if (!stream) {
        if (/^\d+\.\d+$/.test(value)) body.ga_client_id = value;
      } else {
        const id = /^s?(\d+)/.exec(value);
        const seen = /(?:\$t|^(?:\d+\.){3})(\d+)/.exec(value);
        const time = seen ? +seen[1] : 0;
        if (id && time > latest) {
          latest = time;
          body.ga_session_id = id[1];
        }
      }
    });
    const abort = new AbortController();
    setTimeout(() => abort.abort(), TIMEOUT_MS);
    return fetch(api + path, { method: 'POST', body: JSON.stringify(body), signal: abort.signal }).then(
      (response) => (response.ok ? response.json() : Promise.reject(response.status))
    );
  };

  // an answer from /v1/sessions or a ping: keep and show its numbers
  const got = (answer) => {
    hold = +answer.hold_seconds || hold;
    if (answer.numbers) store.n = answer.numbers;
    store.e = Date.now() + hold * 1e3;
    save();
    assign(store.n);
  };

  // Each interval, ping while the page is visible and someone used it within the hold
  // time; coming back to the page pings at once.
  const tick = () =>
    every &&
    store.s &&
    doc.visibilityState != 'hidden' &&
    Date.now() - lastInput < hold * 1e3 &&
    post('/v1/sessions/' + encodeURIComponent(store.s) + '/ping', {})
      .then(got)
      .catch((status) => {
        // the server no longer knows this session: forget it, the next page starts anew
        if (/^4/.test(status)) {
          store = { r: store.r };
          save();
        }
      });
  ['visibilitychange', 'pointerdown', 'keydown', 'scroll', 'mousemove'].forEach((type) =>
    doc.addEventListener(
      type,
      () => {
        lastInput = Date.now();
        if (type[0] == 'v') tick();
      },
      true
    )
  );

  const start = () => {
    const mine = ++asked;
    post('/v1/sessions', { site, referrer: doc.referrer, region, sid: store.s })
      .then((answer) => {
        if (mine == asked) {
          store.s = answer.sid;
          got(answer);
          if (!every) setInterval(tick, (every = +data.ping || Math.max(1e4, (hold * 1e3) / 3)));
        }
      })
      .catch(() => {});
  };

  win.callpath = {
    ready: (cb) => (numbers ? cb(numbers) : waiting.push(cb)),
    numbers: () => (numbers || []).slice(),
    setRegion: (id) => {
      region = store.r = id || undefined;
      save();
      start();
    },
  };

  if (store.e > Date.now()) assign(store.n);
  start();
})();
