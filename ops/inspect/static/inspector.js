// Delivery inspector: polls the JSON API and renders with textContent only (payloads are untrusted input).
"use strict";
const params = new URLSearchParams(location.search);
const token = params.get("token") || sessionStorage.getItem("attrib-inspector-token") || "";
if (params.get("token")) {  // keep the token out of history and screenshots, but survive a reload
  sessionStorage.setItem("attrib-inspector-token", token);
  history.replaceState(null, "", location.pathname);
}
const rows = new Map();  // id -> row
let seq = 0, selected = null;
const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#65a30d"];
const $ = (id) => document.getElementById(id);

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
}

function render() {
  const src = $("f-source").value, st = $("f-status").value;
  const body = $("rows");
  const list = [...rows.values()].filter((r) => (!src || r.source === src) && (!st || r.status === st))
    .sort((a, b) => b.at - a.at || b.id - a.id).slice(0, 300);
  body.replaceChildren(...list.map((r) => {
    const tr = document.createElement("tr");
    tr.className = "delivery " + r.status;
    tr.dataset.id = r.id; tr.dataset.source = r.source; tr.dataset.status = r.status;
    cell(tr, new Date(r.at).toISOString().replace("T", " ").slice(0, 23));
    cell(tr, r.source); cell(tr, r.method); cell(tr, r.status + " " + r.http_status, "status");
    cell(tr, r.verification); cell(tr, r.reason); cell(tr, r.size); cell(tr, r.user_key);
    cell(tr, r.event_type); cell(tr, r.outcome);
    tr.addEventListener("click", () => { selected = r.id; showPayload(); });
    return tr;
  }));
  $("state").textContent = rows.size + " deliveries · updated " + new Date().toISOString().slice(11, 19);
}

function showPayload() {
  const r = rows.get(selected);
  if (!r) return;
  $("payload-of").textContent = r.source + " " + (r.delivery_id || "(rejected: nothing stored)");
  $("payload").textContent = r.payload || "(no payload)";
  $("payload").className = "";
}

function sourcesSelect(sources) {
  const sel = $("f-source"), have = new Set([...sel.options].map((o) => o.value));
  for (const s of sources) if (!have.has(s)) { const o = document.createElement("option"); o.value = o.textContent = s; sel.appendChild(o); }
}

function chart(rates) {
  const svg = $("chart"), ns = "http://www.w3.org/2000/svg";
  const series = Object.entries(rates);
  const max = Math.max(1, ...series.flatMap(([, v]) => v));
  svg.replaceChildren();
  $("legend").replaceChildren();
  series.forEach(([src, v], i) => {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", v.map((n, x) => (x * 300 / 59).toFixed(1) + "," + (100 - n * 95 / max).toFixed(1)).join(" "));
    line.setAttribute("fill", "none"); line.setAttribute("stroke", COLORS[i % COLORS.length]);
    line.setAttribute("stroke-width", "1.5"); line.dataset.source = src;
    svg.appendChild(line);
    const key = document.createElement("span");
    key.style.color = COLORS[i % COLORS.length];
    key.textContent = src + " (" + v[v.length - 1] + "/min, peak " + Math.max(...v) + ")";
    $("legend").appendChild(key);
  });
}

function alerts(list) {
  const ul = $("alerts");
  if (!list.length) { const li = document.createElement("li"); li.className = "muted"; li.textContent = "none"; ul.replaceChildren(li); return; }
  ul.replaceChildren(...list.map((a) => {
    const li = document.createElement("li");
    li.className = "sev-" + a.severity;
    li.textContent = a.direction + " · " + a.severity + " · " + a.scope + " — observed " + a.observed +
      " vs expected " + Number(a.expected).toFixed(1) + " (since " + String(a.created_at).slice(0, 16) + ")";
    return li;
  }));
}

async function tick() {
  try {
    const d = await api("api/deliveries?after=" + seq);
    for (const r of d.rows) rows.set(r.id, r);
    seq = d.seq;
    if (rows.size > 2000) for (const id of [...rows.keys()].sort((a, b) => a - b).slice(0, rows.size - 2000)) rows.delete(id);
    const s = await api("api/summary");
    sourcesSelect(s.sources); chart(s.rates); alerts(s.alerts);
    render();
    if (selected != null) showPayload();
  } catch (e) {
    $("state").textContent = "error: " + e.message;
  }
}

$("f-source").addEventListener("change", render);
$("f-status").addEventListener("change", render);
tick();
setInterval(tick, 1000);
