// elastidial dashboard: a single page over the REST API. The API token is
// kept in this browser's localStorage and sent as a Bearer header.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { token: localStorage.getItem("elastidial-token") || "", selected: null, history: [], timer: null, fleet: [], opsTimer: null };

async function api(method, path, body, contentType) {
  const headers = { Authorization: "Bearer " + state.token };
  if (body !== undefined && contentType) headers["Content-Type"] = contentType;
  const resp = await fetch("/api/v1" + path, { method, headers, body });
  if (resp.status === 401) { signOut(); throw new Error("Your token was refused; sign in again."); }
  const text = await resp.text();
  let data = text;
  if ((resp.headers.get("Content-Type") || "").startsWith("application/json")) data = JSON.parse(text);
  if (!resp.ok) throw new Error((data && data.error) || text || resp.statusText);
  return data;
}
const json = (method, path, obj) => api(method, path, JSON.stringify(obj), "application/json");

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function show(view) {
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== "view-" + view;
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.dataset.view === view);
  if (view === "campaigns") loadCampaigns();
  if (view === "trunks") loadTrunks();
  if (view === "audio") loadAudio();
  clearInterval(state.opsTimer);
  if (view === "ops") {
    loadOps();
    state.opsTimer = setInterval(() => loadOps().catch(() => {}), 2000);
  }
}

const money = (v) => "$" + v.toFixed(v < 1 ? 4 : 2);

function age(sec) {
  if (sec < 120) return Math.round(sec) + " s";
  if (sec < 7200) return Math.round(sec / 60) + " min";
  return (sec / 3600).toFixed(1) + " h";
}

// loadOps shows the fleet: nodes, demand against capacity, cost, budget.
async function loadOps() {
  const f = await api("GET", "/fleet");
  $("#ops-nodes").textContent = f.nodes.length;
  $("#ops-demand").textContent = f.demand_calls;
  $("#ops-ready").textContent = f.ready_slots;
  $("#ops-cost").textContent = money(f.cost_per_hour);
  $("#ops-budget").textContent = f.budget_per_hour > 0 ? money(f.budget_per_hour) + (f.budget_limited ? " (holding capacity down)" : "") : "none";
  const ul = $("#ops-reasons");
  ul.replaceChildren(...f.reasons.map((r) => el("li", r)));
  const body = $("#nodes tbody");
  body.replaceChildren();
  for (const n of f.nodes) {
    const tr = el("tr");
    tr.append(el("td", n.id), el("td", n.state), el("td", String(n.active_calls)), el("td", String(n.capacity)),
      el("td", Math.round(100 * n.cpu) + "%"), el("td", n.load1.toFixed(2)), el("td", age(n.age_seconds)));
    body.append(tr);
  }
  state.fleet.push([f.demand_calls, f.ready_slots]);
  if (state.fleet.length > 150) state.fleet.shift();
  plot($("#ops-chart"), [state.fleet.map((p) => p[0]), state.fleet.map((p) => p[1])], ["demand", "capacity"], "calls");
  const c = await api("GET", "/cost?format=json");
  $("#cost-total").textContent = money(c.Total);
  $("#cost-per-call").textContent = c.AnsweredCalls ? money(c.PerAnsweredCall) : "–";
  $("#cost-static").textContent = money(c.StaticPeakCost);
  plot($("#cost-chart"), [(c.Hours || []).map((h) => h.Cost)], ["demand"], "$ per hour, last 24 h");
  const cb = $("#cost-campaigns tbody");
  cb.replaceChildren();
  for (const k of c.Campaigns || []) {
    const tr = el("tr");
    tr.append(el("td", k.CampaignID), el("td", String(Math.round(k.CallSeconds))), el("td", money(k.Cost)));
    cb.append(tr);
  }
}

// plot draws one polyline per series, sharing the vertical scale.
function plot(svg, series, classes, unit) {
  const W = 400, H = 120, pad = 14, ns = "http://www.w3.org/2000/svg";
  const max = Math.max(1, ...series.flat());
  svg.replaceChildren();
  series.forEach((h, k) => {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("class", classes[k]);
    line.setAttribute("points", h.map((v, i) => `${pad + (i * (W - 2 * pad)) / Math.max(1, h.length - 1)},${H - pad - (v * (H - 2 * pad)) / max}`).join(" "));
    svg.append(line);
  });
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", 2);
  label.setAttribute("y", 10);
  label.textContent = `${unit} (max ${max})`;
  svg.append(label);
}

function signOut() {
  localStorage.removeItem("elastidial-token");
  state.token = "";
  $("#login").hidden = false;
  $("#logout").hidden = true;
  $("#whoami").textContent = "";
  for (const v of document.querySelectorAll(".view")) v.hidden = true;
}

async function signIn(token) {
  state.token = token;
  let me;
  try {
    me = await api("GET", "/whoami");
  } catch (e) {
    $("#login-error").textContent = e.message;
    return;
  }
  // Show only what this token's role may do; the API checks it anyway.
  for (const e of document.querySelectorAll("[data-perm]")) {
    e.hidden = !e.dataset.perm.split(" ").every((p) => me.perms.includes(p));
  }
  state.perms = me.perms;
  $("#whoami").textContent = `${me.name} (${me.role}${me.campaigns ? ", " + me.campaigns.length + " campaigns" : ""})`;
  localStorage.setItem("elastidial-token", token);
  $("#login").hidden = true;
  $("#logout").hidden = false;
  $("#login-error").textContent = "";
  show("campaigns");
}

async function loadCampaigns() {
  const list = await api("GET", "/campaigns");
  const body = $("#campaigns tbody");
  body.replaceChildren();
  for (const c of list) {
    const tr = el("tr", undefined, { "data-id": c.id });
    tr.append(el("td", c.name), el("td", c.status), el("td", String(c.target)), el("td", c.flow_version ? "v" + c.flow_version : "none"));
    if (state.selected === c.id) tr.classList.add("selected");
    tr.addEventListener("click", () => select(c.id));
    body.append(tr);
  }
}

async function select(id) {
  state.selected = id;
  state.history = [];
  $("#detail").hidden = false;
  $("#import-report").replaceChildren();
  $("#flow-result").textContent = "";
  $("#action-error").textContent = "";
  await refresh(true);
  loadCampaigns();
  clearInterval(state.timer);
  state.timer = setInterval(() => refresh(false).catch(() => {}), 2000);
}

async function refresh(withFlow) {
  const id = state.selected;
  if (!id) return;
  const [c, st] = await Promise.all([api("GET", "/campaigns/" + id), api("GET", "/campaigns/" + id + "/stats")]);
  $("#detail-name").textContent = c.name;
  $("#detail-status").textContent = c.status;
  $("#detail-id").textContent = c.id;
  $("#stat-inprogress").textContent = st.in_progress;
  $("#stat-answered").textContent = st.answered_calls;
  $("#stat-pending").textContent = st.contacts.pending || 0;
  fillCounts("#by-state tbody", st.contacts);
  fillCounts("#by-disposition tbody", st.attempts);
  state.history.push(st.in_progress);
  if (state.history.length > 150) state.history.shift();
  drawChart();
  if (withFlow) {
    $("#flow").value = c.flow_version ? JSON.stringify(await api("GET", "/campaigns/" + id + "/flow"), null, 2) : "";
    loadRecordings().catch(() => {});
  }
}

// loadRecordings lists the campaign's latest recordings with signed links
// (they play without the token, until they expire); not refreshed with
// the stats, so a recording playing is not cut off.
async function loadRecordings() {
  if (!(state.perms || []).includes("results")) return;
  const id = state.selected;
  const rs = await api("GET", `/campaigns/${id}/recordings?limit=50&expires_in=3600`);
  if (id !== state.selected) return;
  const body = $("#recordings tbody");
  body.replaceChildren();
  if (!rs.length) {
    const tr = el("tr");
    tr.append(el("td", "No recordings yet.", { colspan: "5" }));
    body.append(tr);
    return;
  }
  for (const r of rs) {
    const tr = el("tr", undefined, { "data-call": r.call_id });
    const listen = el("td");
    if (r.signed_url) {
      listen.append(el("audio", undefined, { controls: "", preload: "none", src: r.signed_url }), el("a", "Download", { href: r.signed_url, download: r.call_id + ".wav" }));
    }
    tr.append(el("td", r.call_id), el("td", r.phone), el("td", r.disposition.replace("_", " ")), el("td", new Date(r.ended_at).toLocaleString()), listen);
    body.append(tr);
  }
}

function fillCounts(sel, counts) {
  const body = $(sel);
  body.replaceChildren();
  for (const [k, v] of Object.entries(counts || {}).sort()) {
    const tr = el("tr");
    tr.append(el("td", k.replace("_", " ")), el("td", String(v)));
    body.append(tr);
  }
}

function drawChart() {
  plot($("#chart"), [state.history], ["demand"], "calls in progress");
}

async function act(action) {
  $("#action-error").textContent = "";
  try {
    await api("POST", `/campaigns/${state.selected}/${action}`);
    await refresh(false);
    loadCampaigns();
  } catch (e) {
    $("#action-error").textContent = e.message;
  }
}

async function upload(ev) {
  ev.preventDefault();
  const file = $("#dial-list").files[0];
  const form = new FormData();
  form.append("file", file);
  const out = $("#import-report");
  out.replaceChildren(el("p", "Importing " + file.name + "…"));
  try {
    const r = await api("POST", `/campaigns/${state.selected}/contacts?region=${encodeURIComponent($("#region").value)}`, form);
    const summary = el("p", `${r.rows} rows: ${r.imported} imported, ${r.rejected} rejected`, { id: "import-summary", class: "ok" });
    out.replaceChildren(summary);
    if (r.rejections.length) {
      const t = el("table", undefined, { id: "rejections" });
      t.append(el("thead"));
      t.tHead.append(el("tr"));
      t.tHead.rows[0].append(el("th", "Line"), el("th", "Reason"));
      const tb = el("tbody");
      for (const rj of r.rejections) {
        const tr = el("tr");
        tr.append(el("td", String(rj.line)), el("td", rj.reason));
        tb.append(tr);
      }
      t.append(tb);
      out.append(t);
      if (r.rejected > r.rejections.length) out.append(el("p", `…and ${r.rejected - r.rejections.length} more in the rejections CSV.`));
    }
    refresh(false);
  } catch (e) {
    out.replaceChildren(el("p", e.message, { class: "error", id: "import-error" }));
  }
}

async function saveFlow() {
  const res = $("#flow-result");
  let doc;
  try {
    doc = JSON.parse($("#flow").value);
  } catch (e) {
    res.className = "error";
    res.textContent = "Not valid JSON: " + e.message;
    return;
  }
  try {
    const r = await json("PUT", `/campaigns/${state.selected}/flow`, doc);
    res.className = "ok";
    res.textContent = `Saved as version ${r.flow_version}.`;
    loadCampaigns();
  } catch (e) {
    res.className = "error";
    res.textContent = e.message;
  }
}

async function downloadResults() {
  const resp = await fetch(`/api/v1/campaigns/${state.selected}/results.csv`, { headers: { Authorization: "Bearer " + state.token } });
  const blob = await resp.blob();
  const a = el("a", undefined, { href: URL.createObjectURL(blob), download: state.selected + "-results.csv" });
  document.body.append(a);
  a.click();
  a.remove();
}

async function loadAudio() {
  const lib = await api("GET", "/audio");
  $("#audio-version").textContent = lib.version;
  const body = $("#audio-files tbody");
  body.replaceChildren();
  for (const f of lib.files) {
    const tr = el("tr");
    tr.append(el("td", f.key), el("td", f.size + " B"), el("td", f.sha256.slice(0, 16) + "…"));
    body.append(tr);
  }
}

async function uploadAudio(ev) {
  ev.preventDefault();
  const res = $("#audio-result");
  const form = new FormData();
  form.append("file", $("#audio-file").files[0]);
  try {
    const r = await api("POST", "/audio/" + encodeURIComponent($("#audio-set").value), form);
    res.className = "ok";
    res.textContent = "Stored " + r.stored.map((o) => o.key).join(", ") + "; library version " + r.version + ".";
    loadAudio();
  } catch (e) {
    res.className = "error";
    res.textContent = e.message;
  }
}

async function loadTrunks() {
  const body = $("#trunks tbody");
  body.replaceChildren();
  for (const t of await api("GET", "/trunks")) {
    const tr = el("tr");
    tr.append(el("td", t.name), el("td", String(t.max_channels)), el("td", String(t.max_cps)));
    body.append(tr);
  }
}

function formObject(form) {
  const o = {};
  for (const [k, v] of new FormData(form)) o[k] = form.elements[k].type === "number" ? Number(v) : v;
  return o;
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("#token").value.trim()); });
  $("#logout").addEventListener("click", signOut);
  for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => show(t.dataset.view));
  for (const b of document.querySelectorAll("[data-action]")) b.addEventListener("click", () => act(b.dataset.action));
  $("#upload").addEventListener("submit", upload);
  $("#audio-form").addEventListener("submit", uploadAudio);
  $("#save-flow").addEventListener("click", saveFlow);
  $("#download-results").addEventListener("click", downloadResults);
  $("#load-recordings").addEventListener("click", () => loadRecordings().catch((e) => ($("#action-error").textContent = e.message)));
  $("#new-campaign").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#new-campaign-error").textContent = "";
    try {
      const c = await json("POST", "/campaigns", formObject(ev.target));
      ev.target.reset();
      await loadCampaigns();
      select(c.id);
    } catch (e) {
      $("#new-campaign-error").textContent = e.message;
    }
  });
  $("#trunk-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#trunk-error").textContent = "";
    const o = formObject(ev.target);
    try {
      await json("PUT", "/trunks/" + encodeURIComponent(o.name), { max_channels: o.max_channels, max_cps: o.max_cps });
      loadTrunks();
    } catch (e) {
      $("#trunk-error").textContent = e.message;
    }
  });
  if (state.token) signIn(state.token); else signOut();
});
