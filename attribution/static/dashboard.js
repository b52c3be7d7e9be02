/* callpath dashboard: reads /v1/reports/* with the site key and draws them.
 * No framework, no inline script, no innerHTML: every text goes in through textContent
 * (or a text node), so a strict Content-Security-Policy holds and no value can inject markup.
 */
"use strict";

(() => {
  const STORE = "callpath.key";
  const REPORTS = ["sources", "unanswered", "heatmap", "pools", "delivery"];
  const state = {heatmap: null};

  const $ = (id) => document.getElementById(id);
  const ints = new Intl.NumberFormat();
  const pct = new Intl.NumberFormat(undefined, {style: "percent", maximumFractionDigits: 1});
  const plain = new Intl.NumberFormat(undefined, {maximumFractionDigits: 2});

  class AuthError extends Error {}

  // ------------------------------------------------------------ small helpers

  /** An element with text and children; attributes are set one by one, never parsed. */
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const num = (n) => (n === null || n === undefined ? "–" : ints.format(n));
  const share = (x) => (x === null || x === undefined ? "–" : pct.format(x));

  function money(value, currency) {
    if (!value) return "–";
    if (currency) {
      try {
        return new Intl.NumberFormat(undefined, {style: "currency", currency}).format(value);
      } catch (e) {
        return `${plain.format(value)} ${currency}`;
      }
    }
    return plain.format(value);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min`;
    const hrs = Math.floor(m / 60);
    if (hrs < 48) return m % 60 ? `${hrs} h ${m % 60} min` : `${hrs} h`;
    const d = Math.floor(hrs / 24);
    return hrs % 24 ? `${d} d ${hrs % 24} h` : `${d} d`;
  }

  /** "2026-11-24T11:15:02+02:00" (site time) → "2026-11-24 11:15". */
  const when = (iso) => (iso ? `${iso.slice(0, 10)} ${iso.slice(11, 16)}` : "–");

  function addDays(day, n) {
    const [y, m, d] = day.split("-").map(Number);
    return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
  }

  function section(id) {
    return $(id);
  }

  function showError(id, message) {
    const box = section(id).querySelector("[data-error]");
    if (box) box.textContent = message || "";
  }

  // ------------------------------------------------------------ key and requests

  const key = () => sessionStorage.getItem(STORE) || "";

  function reportUrl(name, params) {
    const url = new URL(`v1/reports/${name}`, document.baseURI);
    for (const [k, v] of Object.entries(params || {})) if (v) url.searchParams.set(k, v);
    return url;
  }

  async function fetchReport(name, params, accept = "application/json") {
    const res = await fetch(reportUrl(name, params), {
      headers: {Authorization: `Bearer ${key()}`, Accept: accept},
      cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer",
    });
    if (res.status === 401) throw new AuthError("That key was not accepted.");
    if (!res.ok) {
      let detail = `${res.status} ${res.statusText}`;
      try {
        const body = await res.json();
        if (body && body.detail) detail = body.detail;
      } catch (e) { /* not JSON: keep the status line */ }
      throw new Error(detail);
    }
    return accept === "text/csv" ? res.blob() : res.json();
  }

  function rangeParams() {
    return {from: $("from").value, to: $("to").value};
  }

  function showLogin(message) {
    $("reports").hidden = true;
    $("range").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("key").value = "";
    $("key").focus();
  }

  function signOut(message) {
    sessionStorage.removeItem(STORE);
    $("site-name").textContent = "";
    showLogin(message);
  }

  // ------------------------------------------------------------ loading

  async function load() {
    $("login").hidden = true;
    $("reports").hidden = false;
    $("range").hidden = false;
    $("status").textContent = "Loading…";
    const params = rangeParams();
    const settled = await Promise.allSettled(REPORTS.map((name) =>
      fetchReport(name, name === "sources" ? {...params, by: $("by").value} : params)));
    if (settled.some((r) => r.status === "rejected" && r.reason instanceof AuthError)) {
      signOut("That key was not accepted. Check it and try again.");
      return;
    }
    const got = {};
    REPORTS.forEach((name, i) => {
      const r = settled[i];
      if (r.status === "fulfilled") got[name] = r.value;
      else showError(sectionOf(name), r.reason.message || String(r.reason));
    });
    const any = Object.values(got)[0];
    if (any) {
      $("site-name").textContent = any.site;
      $("from").value = any.from.slice(0, 10);
      $("to").value = lastDay(any.to);
      $("status").textContent =
        `Site ${any.site} · ${$("from").value} to ${$("to").value} · times in ${any.timezone}`;
    } else {
      $("status").textContent = "No report could be loaded.";
    }
    if (got.sources) renderSources(got.sources);
    if (got.sources || got.unanswered) renderSummary(got.sources, got.unanswered);
    if (got.unanswered) renderUnanswered(got.unanswered);
    if (got.heatmap) { state.heatmap = got.heatmap; renderHeatmap(); }
    if (got.pools) renderPools(got.pools);
    if (got.delivery) renderDelivery(got.delivery);
  }

  /** The inclusive last day of a range whose end is exclusive. */
  function lastDay(iso) {
    const day = iso.slice(0, 10);
    return iso.slice(11, 19) === "00:00:00" ? addDays(day, -1) : day;
  }

  function sectionOf(name) {
    return {sources: "channels", unanswered: "unanswered", heatmap: "heat", pools: "pools",
      delivery: "delivery", missed: "unanswered"}[name];
  }

  async function reloadSources() {
    try {
      const body = await fetchReport("sources", {...rangeParams(), by: $("by").value});
      renderSources(body);
    } catch (e) {
      if (e instanceof AuthError) signOut(e.message);
      else showError("channels", e.message);
    }
  }

  async function downloadCsv(name) {
    const params = name === "sources" ? {...rangeParams(), by: $("by").value} : rangeParams();
    try {
      const blob = await fetchReport(name, params, "text/csv");
      const url = URL.createObjectURL(blob);
      const link = h("a", {href: url, download: `${name}-${params.from}-${params.to}.csv`});
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      if (e instanceof AuthError) signOut(e.message);
      else showError(sectionOf(name), e.message);
    }
  }

  // ------------------------------------------------------------ summary

  function renderSummary(sources, unanswered) {
    const t = sources ? sources.totals : null;
    const cards = [];
    const card = (label, value, note, cls) =>
      h("div", {class: `stat ${cls || ""}`}, h("span", {class: "label", text: label}),
        h("span", {class: "value", text: value}), note ? h("span", {class: "note", text: note}) : null);
    if (t) {
      cards.push(card("Calls", num(t.calls), `${num(t.unique_callers)} callers`));
      cards.push(card("Answered", num(t.answered), share(t.answer_rate)));
      cards.push(card("Missed", num(t.missed), t.calls ? share(t.missed / t.calls) : null,
        t.missed ? "warn" : ""));
    }
    if (unanswered) {
      cards.push(card("Waiting for a call back", num(unanswered.total), "callers",
        unanswered.total ? "alert" : "good"));
    }
    if (t) {
      cards.push(card("First-time callers", num(t.first_time_callers)));
      cards.push(card("Value", money(t.value, t.currency), t.currencies && t.currencies.length > 1
        ? `mixed: ${t.currencies.join(", ")}` : null));
      cards.push(card("Attributed", share(t.attributed_share), "of calls matched to a visit"));
    }
    $("summary").replaceChildren(...cards);
  }

  // ------------------------------------------------------------ channels

  function table(target, columns, rows, foot) {
    const head = h("thead", null, h("tr", null, ...columns.map((c) =>
      h("th", {class: c.num ? "num" : null, scope: "col", text: c.label}))));
    const line = (row, tag) => h("tr", {class: row._class || null}, ...columns.map((c) => {
      const value = c.render ? c.render(row) : row[c.key];
      return h(tag, {class: c.num ? "num" : null}, value instanceof Node ? value : String(value));
    }));
    const body = h("tbody", null, ...rows.map((r) => line(r, "td")));
    const parts = [head, body];
    if (foot) parts.push(h("tfoot", null, line(foot, "td")));
    $(target).replaceChildren(...parts);
  }

  function shareBar(value) {
    const bar = h("span", {class: "bar"});
    bar.style.width = `${Math.round((value || 0) * 100)}%`;
    return h("span", {class: "share"}, h("span", {class: "track"}, bar),
      h("span", {text: share(value)}));
  }

  function renderSources(body) {
    showError("channels", "");
    const columns = [
      {label: "Channel", render: (r) => r.label},
      {label: "Calls", num: true, render: (r) => num(r.calls)},
      {label: "Share", render: (r) => shareBar(r.share)},
      {label: "Answered", num: true, render: (r) => num(r.answered)},
      {label: "Missed", num: true, render: (r) => num(r.missed)},
      {label: "First-time", num: true, render: (r) => num(r.first_time_callers)},
      {label: "Callers", num: true, render: (r) => num(r.unique_callers)},
      {label: "Attributed", num: true, render: (r) => share(r.attributed_share)},
      {label: "Value", num: true, render: (r) => money(r.value, r.currency)},
    ];
    const rows = body.rows.map((r) => ({...r, _class: r.source === "(unattributed)" ? "muted" : null}));
    if (!rows.length) {
      $("channels-table").replaceChildren(h("tbody", null, h("tr", null,
        h("td", {class: "empty", text: "No inbound call in this range."}))));
      return;
    }
    table("channels-table", columns, rows, {...body.totals, label: "All channels", _class: "total"});
  }

  // ------------------------------------------------------------ unanswered callers

  function renderUnanswered(body) {
    showError("unanswered", "");
    if (!body.callers.length) {
      $("unanswered-table").replaceChildren(h("tbody", null, h("tr", null, h("td", {
        class: "empty good", text: "Nobody is waiting: every missed caller in this range has been reached.",
      }))));
      return;
    }
    const channel = (r) => (r.source || r.medium ? `${r.source || "(not set)"} / ${r.medium || "(not set)"}`
      : "(unattributed)");
    table("unanswered-table", [
      {label: "Caller", render: (r) => h("a", {href: `tel:${r.caller}`, class: "phone", text: r.caller})},
      {label: "Missed calls", num: true, render: (r) => num(r.missed_calls)},
      {label: "Waiting since", render: (r) => when(r.since)},
      {label: "Waiting", num: true, render: (r) => duration(r.waiting_seconds)},
      {label: "Channel", render: channel},
      {label: "Campaign", render: (r) => r.campaign || "–"},
      {label: "Number called", render: (r) => r.called || "–"},
    ], body.callers);
    if (body.truncated) showError("unanswered", `Showing ${body.callers.length} of ${body.total}; the CSV has them all.`);
  }

  // ------------------------------------------------------------ heatmap

  const MODES = {
    calls: {label: "calls", hue: 211, max: (d) => d.max_calls, value: (d, w, hr) => d.calls[w][hr]},
    missed: {label: "missed calls", hue: 20, max: (d) => d.max_missed, value: (d, w, hr) => d.missed[w][hr]},
    missed_share: {label: "missed share", hue: 0, max: () => 1, value: (d, w, hr) => d.missed_share[w][hr]},
  };

  function shade(t, hue) {
    const light = 96 - Math.round(t * 58);
    return {bg: `hsl(${hue}, ${hue === 211 ? 70 : 75}%, ${light}%)`, dark: light < 60};
  }

  function renderHeatmap() {
    const data = state.heatmap;
    if (!data) return;
    showError("heat", "");
    const mode = MODES[$("heat-mode").value] || MODES.calls;
    const max = mode.max(data) || 0;
    const cells = [h("div", {class: "corner"})];
    for (const hour of data.hours) {
      cells.push(h("div", {class: "hour", text: hour % 3 === 0 ? String(hour).padStart(2, "0") : ""}));
    }
    data.weekdays.forEach((day, w) => {
      cells.push(h("div", {class: "day", text: day}));
      for (const hour of data.hours) {
        const value = mode.value(data, w, hour);
        const calls = data.calls[w][hour];
        const missed = data.missed[w][hour];
        const cell = h("div", {
          class: "cell", "data-day": day, "data-hour": hour,
          "data-value": value === null ? "" : value,
          title: `${day} ${String(hour).padStart(2, "0")}:00–${String(hour + 1).padStart(2, "0")}:00 · `
            + `${calls} call${calls === 1 ? "" : "s"}, ${missed} missed`
            + (calls ? ` (${share(missed / calls)})` : ""),
        });
        if (value === null || value === 0 || !max) {
          cell.classList.add(value === null ? "none" : "zero");
        } else {
          const {bg, dark} = shade(value / max, mode.hue);
          cell.style.backgroundColor = bg;
          if (dark) cell.classList.add("dark");
          cell.textContent = $("heat-mode").value === "missed_share" ? String(Math.round(value * 100)) : String(value);
        }
        cells.push(cell);
      }
    });
    $("heatmap").replaceChildren(...cells);
    $("heat-hint").textContent = `${num(data.total_calls)} inbound calls, ${num(data.total_missed)} missed; `
      + `weekday and hour in ${data.timezone}. Hover a cell for its numbers.`;
    renderLegend(mode, max);
  }

  function renderLegend(mode, max) {
    const isShare = mode === MODES.missed_share;
    const items = [h("span", {class: "legend-label", text: `${mode.label}:`})];
    items.push(h("span", {class: "legend-item"}, h("span", {class: "swatch zero"}),
      h("span", {text: isShare ? pct.format(0) : "0"})));
    // up to five steps, each a value a cell can hold (1, 2, 3 … for small counts)
    const steps = [];
    const top = isShare ? 1 : max;
    const count = isShare ? 5 : Math.min(5, top);
    for (let i = 1; i <= count; i++) {
      const v = isShare ? i / count : Math.max(1, Math.round((i / count) * top));
      if (!steps.includes(v)) steps.push(v);
    }
    for (const v of steps) {
      const sw = h("span", {class: "swatch"});
      sw.style.backgroundColor = shade(v / top, mode.hue).bg;
      items.push(h("span", {class: "legend-item"}, sw,
        h("span", {text: isShare ? pct.format(v) : ints.format(v)})));
    }
    if (isShare) {
      items.push(h("span", {class: "legend-item"}, h("span", {class: "swatch none"}),
        h("span", {text: "no calls"})));
    }
    $("legend").replaceChildren(...items);
  }

  // ------------------------------------------------------------ pools

  function renderPools(body) {
    showError("pools", "");
    $("pools-rule").textContent = `Sizing rule: ${body.rule}. ${body.simulate.replace(/`/g, "")}.`;
    if (!body.pools.length) {
      $("pool-list").replaceChildren(h("p", {class: "empty", text: "This site has no number pool."}));
      return;
    }
    $("pool-list").replaceChildren(...body.pools.map((p) => {
      const meter = h("div", {class: "meter", title: `peak ${p.peak} of ${p.size}`});
      const fill = h("div", {class: `fill ${p.advice.status}`});
      fill.style.width = `${Math.min(100, Math.round((p.peak / Math.max(1, p.size)) * 100))}%`;
      const live = h("div", {class: "live"});
      live.style.width = `${Math.min(100, Math.round((p.live / Math.max(1, p.size)) * 100))}%`;
      meter.append(fill, live);
      const stat = (label, value) => h("div", null, h("dt", {text: label}), h("dd", {text: value}));
      return h("article", {class: `pool ${p.advice.status}`, "data-pool": p.pool},
        h("header", null, h("h3", {text: p.pool}),
          h("span", {class: `badge ${p.advice.status}`, text: {
            grow: "add numbers", shrink: "could shrink", ok: "size is right", idle: "no traffic",
          }[p.advice.status] || p.advice.status})),
        meter,
        h("dl", null,
          stat("Numbers", num(p.size)),
          stat("Held now", num(p.live)),
          stat("Free now", num(p.free)),
          stat("Peak held", p.peak_day ? `${num(p.peak)} (${p.peak_day})` : num(p.peak)),
          stat("Visitors given a number", num(p.offered)),
          stat("Overflow", p.offered ? `${share(p.overflow_rate)} (${num(p.overflow)})` : "–"),
          stat("When exhausted", p.on_exhausted === "fallback" ? "site's own number" : "share oldest"),
          p.advice.recommended_size ? stat("Recommended size", num(p.advice.recommended_size)) : null),
        h("p", {class: "advice", text: p.advice.text.replace(/`/g, "")}));
    }));
  }

  // ------------------------------------------------------------ GA4 delivery

  const reasons = (obj) => Object.entries(obj || {}).map(([k, v]) => `${k.replace(/_/g, " ")} ${v}`).join(", ");

  function renderDelivery(body) {
    showError("delivery", "");
    const days = (Array.isArray(body.days) ? body.days : []).filter((d) => d && typeof d === "object");
    const active = days.filter((d) => d.calls || d.owed || (d.conversions && d.conversions.owed));
    if (!active.length) {
      $("delivery-table").replaceChildren(h("tbody", null, h("tr", null,
        h("td", {class: "empty", text: "No call and nothing owed to GA4 in this range."}))));
      return;
    }
    const total = {day: "Total", _class: "total", consistent: true};
    const sum = (a, b) => {
      for (const [k, v] of Object.entries(b || {})) a[k] = (a[k] || 0) + v;
      return a;
    };
    for (const d of active) {
      for (const k of ["calls", "attributed", "owed", "delivered", "pending", "retried", "dead", "not_sent"]) {
        total[k] = (total[k] || 0) + (d[k] || 0);
      }
      total.dead_reasons = sum(total.dead_reasons || {}, d.dead_reasons);
      total.not_sent_reasons = sum(total.not_sent_reasons || {}, d.not_sent_reasons);
      const c = d.conversions || {};
      total.conversions = total.conversions || {owed: 0, delivered: 0};
      total.conversions.owed += c.owed || 0;
      total.conversions.delivered += c.delivered || 0;
      total.consistent = total.consistent && d.consistent !== false;
    }
    const n = (k) => (r) => num(r[k] || 0);
    table("delivery-table", [
      {label: "Day", render: (r) => r.day},
      {label: "Calls", num: true, render: n("calls")},
      {label: "Attributed", num: true, render: n("attributed")},
      {label: "Owed to GA4", num: true, render: n("owed")},
      {label: "Delivered", num: true, render: n("delivered")},
      {label: "Pending", num: true, render: n("pending")},
      {label: "Retried", num: true, render: n("retried")},
      {label: "Dead", num: true, render: (r) => (r.dead ? `${num(r.dead)} (${reasons(r.dead_reasons)})` : "0")},
      {label: "Not sent", num: true, render: n("not_sent")},
      {label: "Why not sent", render: (r) => reasons(r.not_sent_reasons) || "–"},
      {label: "Conversions", num: true, render: (r) => (r.conversions && r.conversions.owed
        ? `${num(r.conversions.delivered)} of ${num(r.conversions.owed)}` : "–")},
      {label: "Adds up", render: (r) => h("span", {
        class: r.consistent === false ? "bad" : "ok", text: r.consistent === false ? "no" : "yes"})},
    ], active.slice().reverse(), total);
    const hidden = days.length - active.length;
    showError("delivery", "");
    $("delivery-note").textContent = hidden
      ? `${hidden} day${hidden === 1 ? "" : "s"} without calls not shown; newest day first.` : "Newest day first.";
  }

  // ------------------------------------------------------------ wiring

  function start() {
    $("key-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = $("key").value.trim();
      if (!value) return;
      sessionStorage.setItem(STORE, value);
      $("key").value = "";
      load();
    });
    $("range").addEventListener("submit", (ev) => {
      ev.preventDefault();
      if ($("from").value && $("to").value && $("from").value > $("to").value) {
        $("status").textContent = "The first day must not come after the last one.";
        return;
      }
      load();
    });
    $("forget").addEventListener("click", () => signOut("The key was forgotten in this tab."));
    $("by").addEventListener("change", reloadSources);
    $("heat-mode").addEventListener("change", renderHeatmap);
    for (const button of document.querySelectorAll("[data-csv]")) {
      button.addEventListener("click", () => downloadCsv(button.dataset.csv));
    }
    if (key()) load();
    else showLogin("");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
