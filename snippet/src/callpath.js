/*
 * callpath snippet: dynamic number insertion. Build: python snippet/build.py
 *
 *   <script src="https://track.example.com/snippet.js" data-site="acme" async></script>
 *
 * Attributes of the script tag:
 *   data-site    the site id from pools.toml (required)
 *   data-region  a region id this page asks for; beats GeoIP and a remembered setRegion()
 *   data-api     the API (a URL: only its origin counts); default: the origin of this
 *                script's own src
 *   data-ping    ping interval in ms; default: hold_seconds / 3, never under 10 s
 *                (for tests and debugging)
 *
 * Global: window.callpath = { ready(cb), numbers(), setRegion(id) }, and nothing else.
 *   ready(cb)      cb(numbers) once numbers are assigned (at once if they already are)
 *   numbers()      a copy of the assigned pairs, [] before
 *   setRegion(id)  asks for numbers of that region, swaps again, remembers the choice
 *
 * The API: POST /v1/sessions {site, url, referrer, region?, sid?, ga_client_id?,
 * ga_session_id?} -> {sid, numbers: [{replace, number, replace_national, number_national,
 * country_code}], hold_seconds}; POST /v1/sessions/<sid>/ping {url, ga_client_id?,
 * ga_session_id?} -> {hold_seconds, numbers?}, a 4xx when the session is unknown. Bodies
 * are JSON sent as text/plain, so the browser sends no CORS preflight.
 *
 * Swapping: a digit string on the page (formatting ignored) that equals country_code +
 * national, national, or a one-digit trunk prefix (8, 0, 1) + national is a site number
 * when it is made of whole chunks of a run of digits and separators; chunks are split at
 * spaces and pluses, so no digit stands right next to a number, and a hyphen, dot, slash
 * or bracket binds digits into one token (an order number, a fax extension). Its national
 * digits are rewritten in place, keeping the page's format digit for digit; a tracking
 * number of another length is written whole in a plain grouped form. A number split
 * across inline elements is matched on the text of its block and each digit goes back
 * into the text node it came from. The original of every changed text node and tel: href
 * is remembered, so a later assignment (setRegion) always starts from the page's own text.
 * Numbers the page adds later are swapped as they appear (MutationObserver, reading only
 * the blocks around what changed). Blocks whose text holds no number in play are skipped
 * unread, which keeps the first scan of a large page short.
 *
 * Only text node values and href attributes are ever written: no markup is parsed, nothing
 * is evaluated (a strict CSP and Trusted Types are fine), and form fields, scripts, styles,
 * noscript, templates and editable content are left alone. Any failure (API slow or down,
 * storage blocked) leaves the page's own numbers.
 *
 * Memory (localStorage "callpath:<site>"): sid, numbers and until when to trust them (the
 * hold time after the last answer), so a later page swaps at once, before the API confirms.
 * Pings keep the number while the page is visible and used: they pause while it is hidden,
 * come at once on its return, and stop after the hold time with no input; a 4xx forgets
 * the session.
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

  const api = new URL(data.api || script.src, location).origin;
  const KEY = 'callpath:' + site;
  const TIMEOUT_MS = 2500;

  // Elements that flow inside a line: their text joins the text of the enclosing block.
  const INLINE = 'a,b,i,u,s,em,strong,span,small,font,mark,nobr';
  const TEL = '[href^="tel:" i]';
  // Never read or written (a <template>'s content is not in the document tree at all).
  const SKIP = 'script,style,noscript,textarea,select,[contenteditable]';
  // Digits and what may stand between the digits of one phone number.
  const RUN = /\d(?:[\s().\/+\u2010-\u2015\u2212-]*\d)*/g;

  const originals = new WeakMap(); // node -> [original value, value written]
  let assigned;                     // resolves first, for ready()
  const first = new Promise((resolve) => (assigned = resolve));
  const marks = [];                 // every national number assigned or replaced so far
  let marked = /$^/;                // matches text whose digits hold one of the marks
  let store = {};                   // {s: sid, n: numbers, e: trust memory until (ms), r: region}
  let numbers;                      // the assigned pairs, as the API sent them
  let table = {};                   // digit string -> [its prefix, new national]
  let hold = 9e5;                   // ms
  let every = 0;                    // ping interval (ms) once a session is confirmed
  let lastInput = Date.now();
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
  // A site number as written, and its digits -> the tracking number in the same shape.
  const rewrite = (text, digits) => {
    const [prefix, national] = table[digits];
    let k = 0;
    return (prefix + national).length == digits.length
      ? text.replace(/\d/g, () => (prefix + national)[k++])
      : (prefix && prefix + ' ') + national.replace(/\B(?=(\d{3})*\d{4}$)/g, ' ');
  };

  // text with its site numbers rewritten, as an array of one entry per UTF-16 unit of text
  // (a replacement of another length sits whole on the entry of its first character);
  // 0 when there is none.
  const edit = (text) => {
    let out = 0;
    text.replace(RUN, (run, at) => {
      // chunks, [start, end, digits]: what lies between spaces and pluses; a number is made
      // of whole chunks, so it never starts or ends next to a digit or inside a token
      const chunks = [];
      run.replace(/[^\s+]+/g, (chunk, start) =>
        chunks.push([(start += at), start + chunk.length, chunk.replace(/\D/g, '')])
      );
      for (let i = 0; i < chunks.length; i++) {
        let digits = '';
        let hit;
        for (let j = i; j < chunks.length && digits.length < 16; j++)
          if (table[(digits += chunks[j][2])]) hit = [j, digits];
        if (hit) {
          const from = chunks[i][0];
          const to = chunks[hit[0]][1];
          const value = rewrite(text.slice(from, to), hit[1]);
          out = out || text.split('');
          for (let p = from; p < to; p++)
            out[p] = value.length == to - from ? value[p - from] : p == from ? value : '';
          i = hit[0];
        }
      }
    });
    return out;
  };

  // Rewrites the site numbers in the joined text of nodes (text nodes, or the href
  // attribute node of a link; 0 stands for a break), always from the page's own text: a
  // value we wrote stands for the value it replaced.
  const swap = (nodes) => {
    const befores = nodes.map((node) => {
      const current = node ? node.nodeValue : '|';
      const known = originals.get(node);
      return known && known[1] === current ? known[0] : current;
    });
    const out = edit(befores.join(''));
    let at = 0;
    nodes.forEach((node, i) => {
      const before = befores[i];
      const value = out ? out.slice(at, at + before.length).join('') : before;
      at += before.length;
      if (node) {
        if (value !== node.nodeValue) node.nodeValue = value;
        originals.set(node, [before, value]);
      }
    });
  };

  // Text nodes of one block go to parts (0 marks a break); nested blocks are scanned alone.
  const collect = (el, parts = []) => {
    if (el.matches(TEL)) swap([el.getAttributeNode('href')]);
    for (let node = el.firstChild; node; node = node.nextSibling) {
      if (node.nodeType == 3) parts.push(node);
      else if (node.nodeType == 1) {
        if (node.matches(INLINE) && !node.matches(SKIP)) collect(node, parts);
        else {
          parts.push(0);
          scan(node);
        }
      }
    }
    return parts;
  };
  // Scans el, unless it is to be left alone, or its text holds none of the national numbers
  // in play (ours included, to restore them) and it has no tel: link: most of a page is
  // passed over unread.
  const scan = (el) => {
    if ((marked.test(el.textContent) || el.querySelector(TEL)) && !el.matches(SKIP))
      swap(collect(el));
  };

  // Scans the nearest block around each node added or changed.
  const mutated = (records) => {
    const blocks = new Set();
    for (const record of records)
      for (const node of record.type == 'childList' ? record.addedNodes : [record.target]) {
        const el = node.nodeType == 1 ? node : node.parentElement;
        blocks.add(el && el.closest(':not(' + INLINE + ')'));
      }
    blocks.forEach((el) => el && !el.closest(SKIP) && scan(el));
  };
  const observer = new MutationObserver(mutated);

  const assign = (list) => {
    if (!Array.isArray(list) || JSON.stringify(list) == JSON.stringify(numbers)) return;
    numbers = list;
    table = {};
    for (const pair of list) {
      const { replace_national: from, number_national: to } = Object(pair);
      if (/^\d+,\d+$/.test([from, to])) {
        marks.push(from, to);
        if (from != to)
          for (const prefix of [pair.country_code, '', '8', '0', '1'])
            table[prefix + from] = table[prefix + from] || [prefix, to];
      }
    }
    // each mark's digits with anything but digits between them: no copy of the text
    marked = RegExp(marks.map((mark) => mark.split('').join('\\D*')).join('|'));
    scan(doc.body || root);
    // (observing again with the same options changes nothing)
    observer.observe(root, {
      childList: true,
      characterData: true,
      subtree: true,
      attributeFilter: ['href'],
    });
    assigned(list);
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
    doc.cookie.replace(
      /(?:^|;\s*)_ga(?:=GA\d\.\d+\.(\d+\.\d+)(?=;|$)|_\w+=GS\d\.\d+\.s?(\d+)(?:\.\d+\.\d+\.|[^;]*?\$t)(\d+))/g,
      (all, client, session, seen) => {
        if (client) body.ga_client_id = client;
        else if (+seen > latest) {
          latest = +seen;
          body.ga_session_id = session;
        }
      }
    );
    const abort = new AbortController();
    setTimeout(() => abort.abort(), TIMEOUT_MS);
    return fetch(api + path, { method: 'POST', body: JSON.stringify(body), signal: abort.signal }).then(
      (response) => (response.ok ? response.json() : Promise.reject(response.status))
    );
  };

  // an answer from /v1/sessions or a ping: keep and show its numbers
  const got = (answer) => {
    hold = answer.hold_seconds * 1e3 || hold;
    store.n = answer.numbers || store.n;
    store.e = Date.now() + hold;
    save();
    assign(store.n);
  };

  // Each interval, ping while the page is visible and someone used it within the hold
  // time; coming back to the page pings at once.
  const tick = () =>
    store.s &&
    !doc.hidden &&
    Date.now() - lastInput < hold &&
    post('/v1/sessions/' + store.s + '/ping', {})
      .then(got)
      .catch((status) => {
        // the server no longer knows this session: forget it, the next page starts anew
        if (/^4/.test(status)) {
          store = { r: store.r };
          save();
        }
      });
  ['visibilitychange', 'pointerdown', 'keydown', 'scroll'].forEach((type) =>
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
          if (!every) setInterval(tick, (every = +data.ping || Math.max(1e4, hold / 3)));
        }
      })
      .catch(Object); // a failure leaves the page as it is
  };

  win.callpath = {
    ready: (cb) => {
      if (numbers) cb(numbers);
      else first.then(cb);
    },
    numbers: () => (numbers || []).slice(),
    setRegion: (id) => {
      region = store.r = id;
      save();
      start();
    },
  };

  if (store.e > Date.now()) assign(store.n);
  start();
})();
