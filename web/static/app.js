// elastidial dashboard: a single page over the REST API. The API token is
// kept in this browser's localStorage and sent as a Bearer header.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { token: localStorage.getItem("elastidial-token") || "", selected: null, timer: null, opsTimer: null, charts: {} };

// pick reads a field under either spelling (the cost report moves from
// Go's PascalCase to snake_case).
const pick = (o, ...names) => { for (const n of names) if (o && o[n] !== undefined) return o[n]; return undefined; };

// charts are made once; the page updates their data.
function chart(name) {
  if (state.charts[name]) return state.charts[name];
  const specs = {
    campaign: { box: "#chart", axes: { y: { label: "calls", unit: "calls" } }, series: [
      { label: "in progress", color: "#2563eb", fill: "rgba(37,99,235,0.08)" },
      { label: "answered (total)", color: "#16a34a" },
      { label: "attempts (total)", color: "#9333ea", dash: [6, 4] },
    ] },
    ops: { box: "#ops-chart", axes: { y: { label: "calls", unit: "calls" }, y2: { label: "cost, $ per hour", unit: "$/h" } }, series: [
      { label: "demand", color: "#2563eb" },
      { label: "ready capacity", color: "#16a34a", fill: "rgba(22,163,74,0.08)" },
      { label: "active calls", color: "#ea580c" },
      { label: "cost", color: "#b42318", axis: "y2", dash: [6, 4] },
    ] },
    cost: { box: "#cost-chart", axes: { y: { label: "$ per hour", unit: "$", min: 0.01 }, y2: { label: "nodes", unit: "nodes", min: 1 } }, series: [
      { label: "cost in the hour", color: "#b42318", fill: "rgba(180,35,24,0.10)" },
      { label: "mean nodes", color: "#0f172a", axis: "y2", dash: [4, 4] },
    ] },
  };
  const spec = specs[name];
  state.charts[name] = new TimeChart($(spec.box), spec);
  return state.charts[name];
}

// history reads a chart's past from the server over the picked range; a
// server that keeps none gives an empty chart, not a broken page.
async function history(path, rangeSel) {
  try {
    return await api("GET", `${path}?last=${$(rangeSel).value}&points=300`);
  } catch (e) {
    if (e.message.startsWith("Your token")) throw e;
    return { times: [], values: {} };
  }
}

async function api(method, path, body, contentType) {
  if (!state.token) throw new Error("Signed out.");
  const headers = { Authorization: "Bearer " + state.token };
  if (body !== undefined && contentType) headers["Content-Type"] = contentType;
  const resp = await fetch("/api/v1" + path, { method, headers, body });
  if (resp.status === 401) {
    // Everything stops at once: no tab keeps polling with a dead token.
    // Several polls may be refused at once: the first says why.
    signOut(state.me ? "Your session ended: the token expired or was revoked. Sign in again." : undefined);
    throw new Error("Your token was refused; sign in again.");
  }
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

// background runs a load whose failure belongs on the page, not in the
// console.
function background(p) {
  return p.catch((e) => { if (state.me) $("#page-error").textContent = e.message; });
}

const can = (perm) => !!state.me && state.me.perms.includes(perm);

function stopPolling() {
  for (const k of ["timer", "opsTimer", "trunkTimer"]) { clearInterval(state[k]); state[k] = null; }
}

function show(view) {
  // Signed out, or a tab this role may not open: nothing loads.
  if (!state.me || $("#tab-" + view).hidden) return;
  stopPolling();
  $("#page-error").textContent = "";
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== "view-" + view;
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.dataset.view === view);
  if (view === "campaigns") {
    background(loadCampaigns());
    background(fillFormChoices());
    if (state.selected) state.timer = setInterval(() => background(refresh(false)), 2000);
  }
  if (view === "trunks") {
    background(loadTrunks());
    state.trunkTimer = setInterval(() => background(loadTrunks()), 5000);
  }
  if (view === "audio") background(loadAudio());
  if (view === "ops") {
    background(loadOps());
    state.opsTimer = setInterval(() => background(loadOps()), 2000);
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
  // Per node: what it reports of itself. On the local cloud every node
  // runs on this machine, so CPU is the host's, shown once.
  const hostCPU = f.cpu_scope === "host";
  $("#cpu-head").textContent = hostCPU ? "Load" : "CPU / load";
  $("#ops-cpu-note").hidden = !hostCPU;
  if (hostCPU) $("#ops-host-cpu").textContent = f.nodes.length ? Math.round(100 * f.nodes[0].cpu) + "%" : "–";
  const body = $("#nodes tbody");
  body.replaceChildren(...f.nodes.map((n) => {
    const tr = el("tr", undefined, { "data-node": n.id });
    const st = el("td", n.state + (n.spot ? " · spot" : "") + (n.spot_notice ? " · interruption notice" : ""));
    if (n.drain_seconds_left != null) st.append(el("small", ` (terminated within ${age(Math.max(0, n.drain_seconds_left))})`));
    const used = el("td");
    const bar = el("meter", undefined, { min: "0", max: String(n.capacity || 1), value: String(n.active_calls) });
    used.append(el("span", `${n.active_calls} / ${n.capacity} (${pct(n.active_calls, n.capacity)})`), bar);
    const heard = el("td", n.heard_seconds_ago == null ? "not yet" : age(n.heard_seconds_ago) + " ago");
    if (n.heard_seconds_ago != null && n.heard_seconds_ago > 30) heard.className = "error";
    tr.append(el("td", n.id), st, used, el("td", String(n.pending_results)), heard,
      el("td", hostCPU ? n.load1.toFixed(2) : `${Math.round(100 * n.cpu)}% / ${n.load1.toFixed(2)}`), el("td", age(n.age_seconds)));
    return tr;
  }));
  const h = await history("/history", "#ops-range");
  chart("ops").set(h.times, [h.values.demand_calls || [], h.values.ready_slots || [], h.values.active_calls || [], h.values.cost_per_hour || []], h.from, h.to);
  const c = await api("GET", "/cost?format=json");
  $("#cost-total").textContent = money(pick(c, "total", "Total"));
  $("#cost-per-call").textContent = pick(c, "answered_calls", "AnsweredCalls") ? money(pick(c, "per_answered_call", "PerAnsweredCall")) : "–";
  $("#cost-static").textContent = money(pick(c, "static_peak_cost", "StaticPeakCost"));
  const hours = pick(c, "hours", "Hours") || [];
  chart("cost").set(hours.map((x) => Date.parse(pick(x, "start", "Start")) / 1000),
    [hours.map((x) => pick(x, "cost", "Cost")), hours.map((x) => pick(x, "nodes", "Nodes"))]);
  // Cost per campaign, by name.
  const names = Object.fromEntries((await api("GET", "/campaigns")).map((x) => [x.id, x.name]));
  const total = pick(c, "total", "Total") || 0;
  const cb = $("#cost-campaigns tbody");
  cb.replaceChildren();
  for (const k of pick(c, "campaigns", "Campaigns") || []) {
    const id = pick(k, "campaign_id", "CampaignID"), cost = pick(k, "cost", "Cost");
    const tr = el("tr", undefined, { "data-id": id });
    tr.append(el("td", names[id] || id), el("td", duration(pick(k, "call_seconds", "CallSeconds"))), el("td", money(cost)), el("td", pct(cost, total)));
    cb.append(tr);
  }
}

function signOut(why) {
  stopPolling();
  localStorage.removeItem("elastidial-token");
  state.token = "";
  state.me = null;
  state.selected = null;
  $("#detail").hidden = true;
  $("#login").hidden = false;
  $("#logout").hidden = true;
  $("#tabs").hidden = true;
  $("#whoami").textContent = "";
  $("#page-error").textContent = "";
  if (why !== undefined) $("#login-error").textContent = why;
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
  state.me = me;
  $("#tabs").hidden = false;
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
    tr.addEventListener("click", () => background(select(c.id)));
    body.append(tr);
  }
}

async function select(id) {
  state.selected = id;
  slow.outcomesAt = 0;
  $("#detail").hidden = false;
  $("#import-report").replaceChildren();
  $("#flow-result").textContent = "";
  $("#action-error").textContent = "";
  await refresh(true);
  background(loadCampaigns());
  searchResults(true).catch((e) => { $("#result-count").textContent = e.message; });
  clearInterval(state.timer);
  state.timer = setInterval(() => background(refresh(false)), 2000);
}

async function refresh(withFlow) {
  const id = state.selected;
  if (!id) return;
  const [c, st] = await Promise.all([api("GET", "/campaigns/" + id), api("GET", "/campaigns/" + id + "/stats")]);
  state.campaign = c;
  $("#detail-name").textContent = c.name;
  $("#detail-status").textContent = c.status;
  $("#detail-summary").textContent = `${describeHours(c)}; up to ${c.max_attempts} attempts per contact` + (c.start_at && c.status === "draft" ? `; starts ${new Date(c.start_at).toLocaleString()}` : "");
  enableActions(c.status);
  $("#detail-id").textContent = c.id;
  $("#stat-inprogress").textContent = st.in_progress;
  $("#stat-answered").textContent = st.answered_calls;
  $("#stat-pending").textContent = st.contacts.pending || 0;
  fillCounts("#by-state tbody", st.contacts);
  if (withFlow) {
    state.flowText = c.flow_version ? JSON.stringify(await api("GET", "/campaigns/" + id + "/flow"), null, 2) : "";
    $("#flow").value = state.flowText;
    await loadPrompts();
    fb.selected = null;
    loadFlowText();
    loadRecordings().catch(() => {});
  }
  const h = await history(`/campaigns/${id}/history`, "#campaign-range");
  chart("campaign").set(h.times, [h.values.in_progress || [], h.values.answered || [], h.values.attempts || []], h.from, h.to);
  await liveStats(c, st, h);
  // Results follow along unless someone is typing a search or listening
  // to a recording (a redraw would cut the player off).
  if (!withFlow && Date.now() - slow.resultsAt > slow.every && !$("#result-search").contains(document.activeElement) && !$("#results audio")) searchResults(false).catch(() => {});
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

// Which actions each status allows (campaign.Transition's diagram):
//   draft --start--> running --pause--> paused --resume--> running
//   any but completed --stop--> completed
const allowed = { draft: ["start", "stop"], scheduled: ["pause", "stop"], running: ["pause", "stop"], paused: ["resume", "stop"], completed: [] };

function enableActions(status) {
  for (const b of document.querySelectorAll("[data-action]")) {
    const ok = (allowed[status] || []).includes(b.dataset.action);
    b.disabled = !ok;
    b.title = ok ? "" : `not possible while the campaign is ${status}`;
  }
}

// confirmStop asks before a campaign is stopped for good.
function confirmStop() {
  const dlg = $("#confirm-stop");
  $("#confirm-stop-name").textContent = state.campaign ? state.campaign.name : "this campaign";
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "stop"), { once: true });
    dlg.returnValue = "";
    dlg.showModal();
  });
}

async function act(action) {
  $("#action-error").textContent = "";
  if (action === "stop" && !(await confirmStop())) return;
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
  loadFlowText();
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
    state.flowText = JSON.stringify(doc);
    drawFlow();
    loadCampaigns();
  } catch (e) {
    res.className = "error";
    res.textContent = e.message;
    // The server names the state at fault: show it in the graph.
    const m = /state "([^"]+)"/.exec(e.message);
    if (m && fb.flow && fb.flow.states[m[1]]) selectState(m[1]);
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
  const ts = await api("GET", "/trunk-usage");
  body.replaceChildren(...ts.map((t) => {
    const tr = el("tr", undefined, { "data-trunk": t.name });
    const use = el("td");
    use.append(el("span", `${t.calls} of ${t.max_channels || "∞"}` + (t.max_channels ? ` (${pct(t.calls, t.max_channels)})` : "")));
    if (t.max_channels) use.append(el("meter", undefined, { min: "0", max: String(t.max_channels), high: String(0.9 * t.max_channels), value: String(t.calls) }));
    tr.append(el("td", t.name), use, el("td", String(t.max_cps)));
    return tr;
  }));
}

function endEditing() {
  state.editing = null;
  const form = $("#new-campaign");
  form.reset();
  buildCampaignForm();
  fillFormChoices().catch(() => {});
  $("#campaign-form-title").textContent = "New campaign";
  $("#campaign-submit").textContent = "Create";
  $("#campaign-cancel").hidden = true;
  $("#new-campaign-box").open = false;
}

async function submitCampaign(ev) {
  ev.preventDefault();
  const form = ev.target, out = $("#new-campaign-error");
  out.textContent = "";
  for (const i of form.querySelectorAll(".bad")) i.classList.remove("bad");
  let c;
  try {
    c = campaignFromForm(form);
  } catch (e) {
    if (!(e instanceof FieldProblem)) throw e;
    e.input.classList.add("bad");
    e.input.focus();
    out.textContent = e.message;
    return;
  }
  try {
    const saved = state.editing ? await json("PUT", "/campaigns/" + state.editing, c) : await json("POST", "/campaigns", c);
    endEditing();
    await loadCampaigns();
    select(saved.id);
  } catch (e) {
    out.textContent = e.message;
  }
}

function formObject(form) {
  const o = {};
  for (const [k, v] of new FormData(form)) o[k] = form.elements[k].type === "number" ? Number(v) : v;
  return o;
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("#token").value.trim()); });
  $("#logout").addEventListener("click", () => signOut(""));
  for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => show(t.dataset.view));
  for (const b of document.querySelectorAll("[data-action]")) b.addEventListener("click", () => act(b.dataset.action));
  $("#upload").addEventListener("submit", upload);
  $("#result-disposition").append(...Object.entries(outcomeNames).map(([k, v]) => el("option", v, { value: k })));
  $("#result-search").addEventListener("submit", (ev) => { ev.preventDefault(); searchResults(true).catch((e) => { $("#result-count").textContent = e.message; }); });
  $("#result-prev").addEventListener("click", () => { results.offset = Math.max(0, results.offset - results.limit); searchResults(false); });
  $("#result-next").addEventListener("click", () => { results.offset += results.limit; searchResults(false); });
  $("#campaign-range").addEventListener("change", () => refresh(false).catch(() => {}));
  $("#ops-range").addEventListener("change", () => loadOps().catch(() => {}));
  $("#audio-form").addEventListener("submit", uploadAudio);
  $("#save-flow").addEventListener("click", saveFlow);
  $("#download-results").addEventListener("click", downloadResults);
  $("#load-recordings").addEventListener("click", () => loadRecordings().catch((e) => ($("#action-error").textContent = e.message)));
  buildCampaignForm();
  initFlowBuilder();
  $("#new-campaign").addEventListener("submit", submitCampaign);
  $("#new-campaign").addEventListener("input", (ev) => ev.target.classList.remove("bad"));
  $("#campaign-cancel").addEventListener("click", () => endEditing());
  $("#edit-campaign").addEventListener("click", () => {
    state.editing = state.campaign.id;
    campaignIntoForm($("#new-campaign"), state.campaign);
    $("#campaign-form-title").textContent = "Settings of " + state.campaign.name;
    $("#campaign-submit").textContent = "Save changes";
    $("#campaign-cancel").hidden = false;
    $("#new-campaign-box").open = true;
    $("#new-campaign").scrollIntoView();
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
  if (state.token) signIn(state.token); else signOut("");
});
