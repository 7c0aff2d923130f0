// attrib dashboard: fetches /api/summary with the bearer token and draws every chart with the vendored uPlot.
// The token comes from the URL fragment (never sent to a server), then lives in sessionStorage only.
(function () {
  "use strict";
  const KEY = "attrib-dashboard-token";
  const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563", "#a3a3a3"];
  const KPIS = [["installs", "installs"], ["purchases", "purchases"], ["revenue", "revenue"],
    ["purchases_unconverted", "purchases without FX rate"], ["unmapped_partners", "unmapped partner values"],
    ["dead_letters", "dead letters"], ["alerts_firing", "alerts firing"]];
  const hash = location.hash.match(/token=([^&]+)/);
  if (hash) {
    sessionStorage.setItem(KEY, decodeURIComponent(hash[1]));
    history.replaceState(null, "", location.pathname);  // the token leaves the address bar and history
  }
  const token = sessionStorage.getItem(KEY) || "";
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const num = (v, digits) => Number(v || 0).toLocaleString("en-US",
    {minimumFractionDigits: digits, maximumFractionDigits: digits});
  let plots = [];

  function kpis(d) {
    const box = $("kpis");
    box.replaceChildren();
    for (const [k, label] of KPIS) {
      const v = d.kpis[k];
      const card = el("div", "kpi" + ((k !== "installs" && k !== "purchases" && k !== "revenue" && v > 0) ? " warn" : ""));
      card.dataset.kpi = k;
      card.append(el("span", "v", k === "revenue" ? num(v, 2) + " " + d.currency : num(v, 0)), el("span", "k", label));
      box.append(card);
    }
  }

  function chart(c, main, range) {
    const box = el("section", "chart");
    box.dataset.chart = c.id;
    box.append(el("h2", "", c.title));
    main.append(box);  // laid out first, so the plot can take the width of its grid cell
    const width = Math.max(320, box.clientWidth - 20);
    const digits = c.id.startsWith("revenue") || c.id === "health" || c.id === "alerts" ? 2 : 0;
    if (!c.x.length) {
      box.append(el("div", "none", "no data in this window"));
    } else {
      const plotBox = el("div", "plot");
      box.append(plotBox);
      const series = [{}].concat(c.series.map((s, i) => ({
        label: s.label, stroke: COLORS[i % COLORS.length], width: 2,
        paths: c.points ? () => null : undefined, points: {show: !!c.points || c.x.length < 3, size: 7},
        value: (u, v) => v == null ? "-" : num(v, digits),
      })));
      // daily charts span the whole window, so days without data show as such
      const x = c.daily ? {time: true, range: () => range} : {time: true};
      const opts = {width: width, height: 220, series: series, scales: {x: x},
        axes: [{}, {size: 60}], legend: {live: true}};
      plots.push(new uPlot(opts, [c.x].concat(c.series.map((s) => s.values)), plotBox));
    }
    const t = el("table", "totals");
    Object.entries(c.totals).forEach(([label, v], i) => {
      const tr = el("tr");
      tr.dataset.label = label;
      const name = el("td");
      name.append(el("span", "swatch c" + Math.min(i, 8)), document.createTextNode(label));
      tr.append(name, el("td", "n", num(v, c.id.startsWith("revenue") ? 2 : 0)));  // money, else counts
      t.append(tr);
    });
    box.append(t);
    return box;
  }

  function alerts(list) {
    const body = $("alerts");
    body.replaceChildren();
    for (const a of list.slice().reverse()) {
      const tr = el("tr");
      tr.dataset.alert = a.alert_id;
      for (const v of [new Date(a.t * 1000).toISOString().slice(0, 16).replace("T", " "), a.direction, a.severity,
        a.scope, a.media_source || "-", a.event_type || "-"]) tr.append(el("td", "", v));
      tr.append(el("td", "n", num(a.observed, 0)), el("td", "n", num(a.expected, 1)),
        el("td", "", a.resolved ? "resolved" : "firing"));
      body.append(tr);
    }
  }

  async function load() {
    if (!token) {
      $("state").textContent = "no token: open this page as /#token=<dashboard.token>";
      return;
    }
    $("state").textContent = "loading…";
    let r;
    try {
      r = await fetch("/api/summary?days=" + encodeURIComponent($("days").value),
        {headers: {Authorization: "Bearer " + token}, cache: "no-store"});
    } catch (e) {
      $("state").textContent = "dashboard server unreachable";
      return;
    }
    const d = await r.json();
    if (!r.ok) {
      $("state").textContent = d.error || ("HTTP " + r.status);
      return;
    }
    plots.forEach((p) => p.destroy());
    plots = [];
    const main = $("charts");
    main.replaceChildren();
    if (d.empty) {
      $("kpis").replaceChildren();
      $("state").textContent = "the warehouse has no rollups yet";
      document.body.dataset.ready = "1";
      return;
    }
    kpis(d);
    $("window").textContent = d.from + " .. " + d.to;
    const range = [Date.parse(d.from + "T00:00:00Z") / 1000, Date.parse(d.to + "T00:00:00Z") / 1000];
    for (const c of d.charts) chart(c, main, range);
    alerts(d.alerts);
    $("state").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.ready = "1";
  }

  $("refresh").addEventListener("click", load);
  $("days").addEventListener("change", load);
  load();
})();
