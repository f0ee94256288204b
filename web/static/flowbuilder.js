// The visual flow builder: the flow's states drawn as a graph (SVG), one
// state edited at a time in people's words, problems found as you edit,
// prompts picked from the audio library and played, and the JSON one
// click away. The JSON textarea (#flow) stays the document that is saved:
// the builder writes it, and reads it back when it is edited by hand.
"use strict";

const svgNS = "http://www.w3.org/2000/svg";
const actions = {
  play: "Play prompts", gather: "Ask for digits", say_digits: "Say digits", say_number: "Say a number", set: "Record an outcome",
  detect: "Detect answering machine", record: "Record the caller", transfer: "Transfer", hangup: "Hang up",
};
// Transitions each action may use, in drawing order.
const exits = {
  play: ["next", "failed"], gather: ["on", "timeout", "invalid", "failed"], say_digits: ["next", "failed"], say_number: ["next", "failed"],
  set: ["next"], detect: ["human", "machine", "failed"], record: ["next", "failed"], transfer: ["next", "failed"], hangup: [],
};
const exitNames = { next: "then", failed: "if it fails", timeout: "no answer", invalid: "wrong key", human: "a person", machine: "a machine" };

const fb = { flow: null, selected: null, prompts: [], promptKeys: {} };

function actionOf(s) {
  for (const a of Object.keys(actions)) {
    const v = s[a];
    if (v !== undefined && v !== false && v !== "" && !(Array.isArray(v) && !v.length)) return a;
  }
  return "";
}

function summary(s) {
  const a = actionOf(s);
  switch (a) {
    case "play": return "play " + s.play.join(", ");
    case "gather": return `ask: ${s.gather.prompt || "?"}`;
    case "set": return Object.entries(s.set).map(([k, v]) => `${k} = ${v}`).join(", ") || "outcome";
    case "say_digits": case "say_number": return "say " + s[a];
    case "record": return "record " + (s.record.name || "");
    case "transfer": return "transfer to " + (s.transfer.to || "?");
    case "detect": return "person or machine?";
    case "hangup": return "hang up";
  }
  return "no action";
}

// edges lists a state's transitions as [label, target].
function edges(s) {
  const out = [];
  for (const k of ["next", "human", "machine"]) if (s[k]) out.push([k === "next" ? "" : exitNames[k], s[k]]);
  for (const [d, t] of Object.entries(s.on || {}).sort()) out.push([d === "*" ? "other key" : "key " + d, t]);
  for (const k of ["timeout", "invalid", "failed"]) if (s[k]) out.push([exitNames[k], s[k]]);
  return out;
}

// problems checks the flow as the server will, and a little more, so a
// manager sees mistakes while editing. Each names its state.
function flowProblems(f) {
  const ps = [];
  const add = (state, reason) => ps.push({ state, reason });
  const states = f.states || {};
  if (!f.start || !states[f.start]) add("", f.start ? `the start state "${f.start}" does not exist` : "the flow has no start state");
  for (const [n, s] of Object.entries(states)) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(n)) add(n, "state names are 1 to 64 letters, digits, _ or -");
    const a = actionOf(s);
    if (!a) add(n, "has no action");
    for (const [label, t] of edges(s)) if (!states[t]) add(n, `${label || "then"} goes to "${t}", which does not exist`);
    const prompts = [...(s.play || []), ...(s.gather && s.gather.prompt ? [s.gather.prompt] : [])];
    for (const p of prompts) if (fb.prompts.length && !fb.prompts.includes(p)) add(n, `prompt "${p}" is not in the audio library`);
    if (a === "gather" && !Object.keys(s.on || {}).length) add(n, "asks for digits but no key leads anywhere");
    if (a === "gather" && !s.gather.prompt) add(n, "asks for digits without a prompt");
    if (a && a !== "hangup" && a !== "transfer" && !edges(s).length) add(n, "has nowhere to go after it (add a next state or end with Hang up)");
  }
  // Unreachable states: never run, probably a missing link.
  const seen = new Set();
  const walk = (n) => { if (seen.has(n) || !states[n]) return; seen.add(n); for (const [, t] of edges(states[n])) walk(t); };
  walk(f.start);
  for (const n of Object.keys(states)) if (!seen.has(n)) add(n, "is never reached from the start");
  return ps;
}

// layout puts each state in the row below every state leading to it
// (longest path from the start; a loop back is drawn as such), so the
// call reads top to bottom.
function layout(f) {
  const names = Object.keys(f.states), level = {};
  if (f.states[f.start]) level[f.start] = 0;
  for (let round = 0; round < names.length; round++) {
    let moved = false;
    for (const n of names) {
      if (level[n] === undefined) continue;
      for (const [, t] of edges(f.states[n])) {
        if (!f.states[t] || t === f.start || level[n] + 1 >= names.length) continue;
        if (level[t] === undefined || level[t] < level[n] + 1) { level[t] = level[n] + 1; moved = true; }
      }
    }
    if (!moved) break;
  }
  const rows = [];
  for (const n of names) if (level[n] !== undefined) (rows[level[n]] ||= []).push(n);
  const compact = rows.filter(Boolean);
  const lost = names.filter((n) => level[n] === undefined);
  if (lost.length) compact.push(lost);
  return { rows: compact };
}

// arrows merges a state's transitions to the same target into one arrow.
function arrows(s) {
  const by = new Map();
  for (const [label, t] of edges(s)) by.set(t, by.has(t) ? [by.get(t), label].filter(Boolean).join(", ") : label);
  return [...by.entries()].map(([t, label]) => [label, t]);
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

const W = 168, H = 50, GX = 22, GY = 56;

function drawFlow() {
  const f = fb.flow, box = $("#flow-graph");
  box.replaceChildren();
  if (!f || !Object.keys(f.states).length) { box.append(el("p", "No states yet: add the first one.", { class: "muted" })); return; }
  const { rows } = layout(f);
  const wide = Math.max(...rows.map((r) => r.length));
  const width = wide * (W + GX) + GX + 40, height = rows.length * (H + GY) + GY / 2;
  const g = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "the flow's states and branches" });
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
  marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }));
  defs.append(marker);
  g.append(defs);
  const pos = {};
  rows.forEach((r, y) => r.forEach((n, x) => {
    const offset = ((wide - r.length) * (W + GX)) / 2;
    pos[n] = { x: GX + offset + x * (W + GX), y: GY / 4 + y * (H + GY) };
  }));
  const bad = new Set(flowProblems(f).map((p) => p.state));
  // Edges first, under the boxes.
  for (const [n, s] of Object.entries(f.states)) {
    const out = arrows(s);
    out.forEach(([label, t], i) => {
      if (!pos[t]) return;
      const a = pos[n], b = pos[t];
      const sx = a.x + (W * (i + 1)) / (out.length + 1), sy = a.y + H;
      let d, lx, ly;
      if (b.y > a.y) {
        const tx = b.x + W / 2, ty = b.y;
        d = `M ${sx} ${sy} C ${sx} ${sy + GY / 2}, ${tx} ${ty - GY / 2}, ${tx} ${ty}`;
        lx = (sx + tx) / 2; ly = (sy + ty) / 2;
      } else { // back or sideways: round the right side
        const tx = b.x + W, ty = b.y + H / 2, side = Math.max(a.x, b.x) + W + GX * 0.8;
        d = `M ${sx} ${sy} C ${sx} ${sy + 24}, ${side} ${sy + 24}, ${side} ${(sy + ty) / 2} S ${tx + 20} ${ty}, ${tx} ${ty}`;
        lx = side; ly = (sy + ty) / 2;
      }
      const edge = svg("g", { class: "edge", "data-from": n, "data-to": t });
      edge.append(svg("path", { d, "marker-end": "url(#arrow)" }));
      if (label) edge.append(svg("text", { x: lx, y: ly, "text-anchor": "middle" }, label));
      g.append(edge);
    });
  }
  for (const [n, s] of Object.entries(f.states)) {
    const p = pos[n];
    const cls = ["node", actionOf(s) || "none", n === f.start ? "start" : "", bad.has(n) ? "bad" : "", n === fb.selected ? "selected" : ""].filter(Boolean).join(" ");
    const node = svg("g", { class: cls, "data-state": n, transform: `translate(${p.x},${p.y})`, tabindex: "0" });
    node.append(svg("rect", { width: W, height: H, rx: 8 }));
    node.append(svg("text", { x: 10, y: 19, class: "name" }, (n === f.start ? "▶ " : "") + n));
    const sum = summary(s);
    node.append(svg("text", { x: 10, y: 38, class: "what" }, sum.length > 24 ? sum.slice(0, 23) + "…" : sum));
    node.addEventListener("click", () => selectState(n));
    node.addEventListener("keydown", (ev) => { if (ev.key === "Enter") selectState(n); });
    g.append(node);
  }
  box.append(g);
}

function showProblems() {
  const ps = fb.flow ? flowProblems(fb.flow) : [];
  const ul = $("#flow-problems");
  ul.replaceChildren(...ps.map((p) => el("li", p.state ? `${p.state}: ${p.reason}` : p.reason, { "data-state": p.state })));
  $("#flow-ok").textContent = fb.flow && !ps.length ? "No problems found." : "";
}

// changed writes the model to the JSON box and redraws.
function changed() {
  $("#flow").value = JSON.stringify(fb.flow, null, 2);
  drawFlow();
  showProblems();
  if (fb.selected && fb.flow.states[fb.selected]) editState(fb.selected);
}

// loadFlowText reads the JSON box into the builder; false if it is not a
// flow document.
function loadFlowText() {
  const text = $("#flow").value.trim();
  $("#flow-json-error").textContent = "";
  if (!text) { fb.flow = { name: "", start: "", states: {} }; drawFlow(); showProblems(); $("#state-editor").hidden = true; return true; }
  try {
    const f = JSON.parse(text);
    if (typeof f !== "object" || !f || typeof f.states !== "object" || !f.states) throw new Error('a flow is an object with "start" and "states"');
    fb.flow = f;
  } catch (e) {
    $("#flow-json-error").textContent = "JSON: " + e.message;
    return false;
  }
  if (!fb.flow.states[fb.selected]) fb.selected = null;
  drawFlow();
  showProblems();
  if (fb.selected) editState(fb.selected); else $("#state-editor").hidden = true;
  return true;
}

async function loadPrompts() {
  try {
    const lib = await api("GET", "/audio");
    fb.promptKeys = {};
    for (const f of lib.files) fb.promptKeys[f.key.replace(/\.[a-z0-9]+$/, "")] = f;
    fb.prompts = Object.keys(fb.promptKeys).sort();
  } catch { fb.prompts = []; }
}

function selectState(n) {
  fb.selected = n;
  drawFlow();
  editState(n);
}

// A select of states, "" for none.
function stateSelect(value, name, none) {
  const s = el("select", undefined, { name });
  s.append(el("option", none || "—", { value: "" }));
  for (const n of Object.keys(fb.flow.states).sort()) s.append(el("option", n, { value: n }));
  s.append(el("option", "+ new state…", { value: "+new" }));
  s.value = value || "";
  return s;
}

// newStateName adds a state that ends the call, named after suggest
// (made unique), and returns its name; rename it in its editor.
function newStateName(suggest) {
  let base = (suggest || "state").replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 60) || "state", n = base;
  for (let k = 2; fb.flow.states[n]; k++) n = base + "_" + k;
  fb.flow.states[n] = { hangup: true };
  if (!fb.flow.start) fb.flow.start = n;
  return n;
}

// renameState renames a state and every transition to it.
function renameState(from, to) {
  if (to === from) return "";
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(to)) return `"${to}": a state name is 1 to 64 letters, digits, _ or -`;
  if (fb.flow.states[to]) return `there is already a state "${to}"`;
  const f = fb.flow;
  f.states[to] = f.states[from];
  delete f.states[from];
  for (const s of Object.values(f.states)) {
    for (const k of ["next", "human", "machine", "timeout", "invalid", "failed"]) if (s[k] === from) s[k] = to;
    for (const d of Object.keys(s.on || {})) if (s.on[d] === from) s.on[d] = to;
  }
  if (f.start === from) f.start = to;
  if (fb.selected === from) fb.selected = to;
  return "";
}

function promptPicker(value, name) {
  const wrap = el("span", undefined, { class: "prompt-pick" });
  const s = el("select", undefined, { name });
  s.append(el("option", fb.prompts.length ? "pick a prompt" : "the audio library is empty", { value: "" }));
  for (const p of fb.prompts) s.append(el("option", p, { value: p }));
  if (value && !fb.prompts.includes(value)) s.append(el("option", value + " (not in the library)", { value }));
  s.value = value || "";
  wrap.append(s);
  if (fb.promptKeys[value]) wrap.append(playButton("/audio/" + fb.promptKeys[value].key, value));
  return [wrap, s];
}

function row(label, ...inputs) {
  const l = el("label", label);
  l.append(...inputs);
  return l;
}

// editState shows one state's form; each change updates the model.
function editState(n) {
  const s = fb.flow.states[n], box = $("#state-editor");
  box.hidden = false;
  const form = el("div");
  const act = actionOf(s);
  $("#state-title").textContent = `State ${n}` + (n === fb.flow.start ? " (start)" : "");
  const name = el("input", undefined, { name: "state-name", value: n, size: "16" });
  name.addEventListener("change", () => {
    const why = renameState(n, name.value.trim());
    $("#flow-json-error").textContent = why;
    if (!why) changed();
  });
  form.append(row("Name ", name));
  const kind = el("select", undefined, { name: "action" });
  for (const [k, v] of Object.entries(actions)) kind.append(el("option", v, { value: k }));
  kind.value = act || "play";
  kind.addEventListener("change", () => {
    for (const k of Object.keys(actions)) delete s[k];
    s[kind.value] = { play: [""], gather: { prompt: "", max_digits: 1, timeout_ms: 5000, retries: 2 }, set: { result: "" }, say_digits: "{{phone}}", say_number: "{{amount}}",
      detect: true, record: { name: "{{phone}}", max_seconds: 60 }, transfer: { to: "", timeout_seconds: 30 }, hangup: true }[kind.value];
    if (kind.value === "gather") s.on = s.on || {};
    for (const k of ["next", "human", "machine", "timeout", "invalid", "failed", "on"]) if (!exits[kind.value].includes(k)) delete s[k];
    changed();
  });
  form.append(row("Does ", kind));
  const setField = (obj, key, conv) => (ev) => { obj[key] = conv ? conv(ev.target.value) : ev.target.value; changed(); };
  switch (act) {
    case "play":
      s.play.forEach((p, i) => {
        const [pick, sel] = promptPicker(p, "play-" + i);
        sel.addEventListener("change", () => { s.play[i] = sel.value; changed(); });
        const rm = el("button", "remove", { type: "button", class: "secondary" });
        rm.addEventListener("click", () => { s.play.splice(i, 1); if (!s.play.length) s.play.push(""); changed(); });
        form.append(row(`Prompt ${i + 1} `, pick, rm));
      });
      { const add = el("button", "+ another prompt", { type: "button", class: "secondary" }); add.addEventListener("click", () => { s.play.push(""); changed(); }); form.append(add); }
      break;
    case "gather": {
      const [pick, sel] = promptPicker(s.gather.prompt, "gather-prompt");
      sel.addEventListener("change", () => { s.gather.prompt = sel.value; changed(); });
      form.append(row("Prompt ", pick));
      const num = (v, name, conv) => { const i = el("input", undefined, { type: "number", name, value: String(v) }); i.addEventListener("change", setField(s.gather, name, conv)); return i; };
      form.append(row("Digits at most ", num(s.gather.max_digits, "max_digits", Number)));
      const secs = el("input", undefined, { type: "number", name: "timeout_s", min: "1", max: "60", value: String(s.gather.timeout_ms / 1000) });
      secs.addEventListener("change", () => { s.gather.timeout_ms = Math.round(Number(secs.value) * 1000); changed(); });
      form.append(row("Wait (seconds) ", secs), row("Ask again ", num(s.gather.retries, "retries", Number), el("span", " times")));
      break;
    }
    case "set":
      for (const [k, v] of Object.entries(s.set)) {
        const key = el("input", undefined, { name: "tag-key", value: k, size: "10", "aria-label": "tag" });
        const val = el("input", undefined, { name: "tag-" + k, value: v, size: "12", "aria-label": "value of " + k });
        key.addEventListener("change", () => { const nv = s.set[k]; delete s.set[k]; if (key.value.trim()) s.set[key.value.trim()] = nv; changed(); });
        val.addEventListener("change", () => { s.set[k] = val.value; changed(); });
        form.append(row("", key, el("span", " = "), val));
      }
      { const add = el("button", "+ tag", { type: "button", class: "secondary" }); add.addEventListener("click", () => { s.set["tag" + (Object.keys(s.set).length + 1)] = ""; changed(); }); form.append(add); }
      form.append(el("small", ' Tag "result" is the outcome the dashboard counts; "dnc" = "true" opts the number out.'));
      break;
    case "say_digits": case "say_number": {
      const i = el("input", undefined, { name: act, value: s[act] });
      i.addEventListener("change", setField(s, act));
      form.append(row("Say ", i, el("small", " a contact field as {{field}}")));
      break;
    }
    case "record": {
      const name = el("input", undefined, { name: "record-name", value: s.record.name });
      name.addEventListener("change", setField(s.record, "name"));
      const max = el("input", undefined, { type: "number", name: "record-max", value: String(s.record.max_seconds) });
      max.addEventListener("change", setField(s.record, "max_seconds", Number));
      form.append(row("File name ", name), row("At most (seconds) ", max));
      break;
    }
    case "transfer": {
      const to = el("input", undefined, { name: "transfer-to", value: s.transfer.to, placeholder: "+14155550100 or sip:desk@pbx" });
      to.addEventListener("change", setField(s.transfer, "to"));
      form.append(row("To ", to));
      break;
    }
  }
  // Transitions.
  const go = el("fieldset");
  go.append(el("legend", "Where next"));
  const link = (key, label, obj = s) => {
    const sel = stateSelect(obj[key], "go-" + label.replace(/\W+/g, "-"), key === "next" ? "— (nowhere)" : "—");
    sel.addEventListener("change", () => {
      let t = sel.value;
      if (t === "+new") t = newStateName(n + "_" + (key === "next" ? "next" : key));
      if (t) obj[key] = t; else delete obj[key];
      changed();
    });
    go.append(row(label + " → ", sel));
  };
  for (const k of exits[act] || []) {
    if (k === "on") {
      s.on = s.on || {};
      for (const d of Object.keys(s.on).sort()) {
        link(d, d === "*" ? "other key" : "key " + d, s.on);
        const rm = el("button", "×", { type: "button", class: "secondary", "aria-label": "remove key " + d });
        rm.addEventListener("click", () => { delete s.on[d]; changed(); });
        go.lastChild.append(rm);
      }
      const key = el("input", undefined, { name: "new-key", size: "3", placeholder: "1", "aria-label": "key" });
      const add = el("button", "+ key", { type: "button", class: "secondary", id: "add-key" });
      add.addEventListener("click", () => {
        const d = key.value.trim();
        if (!/^([0-9*#]{1,20}|\*)$/.test(d)) { $("#flow-json-error").textContent = `key "${d}": digits, * or #`; return; }
        if (!s.on[d]) s.on[d] = newStateName(n + "_" + (d === "*" ? "other" : d));
        changed();
      });
      go.append(row("When the caller presses ", key, add));
    } else link(k, exitNames[k] === "then" ? "Then" : exitNames[k][0].toUpperCase() + exitNames[k].slice(1));
  }
  if (!(exits[act] || []).length) go.append(el("p", "The call ends here.", { class: "muted" }));
  form.append(go);
  const tools = el("p");
  const start = el("button", "Make start", { type: "button", class: "secondary" });
  start.disabled = n === fb.flow.start;
  start.addEventListener("click", () => { fb.flow.start = n; changed(); });
  const del = el("button", "Delete state", { type: "button", class: "danger" });
  del.addEventListener("click", () => { delete fb.flow.states[n]; fb.selected = null; $("#state-editor").hidden = true; changed(); });
  tools.append(start, document.createTextNode(" "), del);
  form.append(tools);
  $("#state-form").replaceChildren(form);
  // A role that may not change flows sees the state, not the controls.
  if (!can("write")) {
    for (const c of form.querySelectorAll("input, select, button:not(.play)")) c.disabled = true;
    tools.hidden = true;
  }
}

function addState() {
  if (!fb.flow) fb.flow = { name: "", start: "", states: {} };
  const want = $("#new-state-name").value.trim();
  if (want && fb.flow.states[want]) { $("#flow-json-error").textContent = `there is already a state "${want}"`; return; }
  if (want && !/^[A-Za-z0-9_-]{1,64}$/.test(want)) { $("#flow-json-error").textContent = `"${want}": a state name is 1 to 64 letters, digits, _ or -`; return; }
  $("#flow-json-error").textContent = "";
  const n = newStateName(want || "state" + (Object.keys(fb.flow.states).length + 1));
  fb.flow.states[n] = { play: [""] };
  $("#new-state-name").value = "";
  fb.selected = n;
  changed();
}

function initFlowBuilder() {
  $("#add-state").addEventListener("click", addState);
  $("#flow").addEventListener("input", () => loadFlowText());
}
