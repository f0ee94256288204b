// The campaign form: every field in people's units (HH:MM calling hours
// per weekday, retry delays in minutes, a start time, the trunk and the
// audio set picked from lists), checked field by field before it is sent.
"use strict";

const weekdays = [["mon", "Monday"], ["tue", "Tuesday"], ["wed", "Wednesday"], ["thu", "Thursday"], ["fri", "Friday"], ["sat", "Saturday"], ["sun", "Sunday"]];
const outcomeNames = {
  answered: "Answered by a person", machine: "Answering machine", busy: "Busy", no_answer: "No answer",
  congestion: "Network congestion", rejected: "Declined", invalid_number: "Number does not exist",
  failed: "Failed to connect", ivr_failed: "IVR failed on the node", cut_off: "Cut off mid-call",
};
const defaultRetryMinutes = { answered: 0, machine: 120, busy: 10, no_answer: 30, congestion: 5, rejected: 240, invalid_number: 0, failed: 0, ivr_failed: 30, cut_off: 5 };
const hhmmRE = /^([01]\d|2[0-3]):([0-5]\d)$|^24:00$/;

const hhmm = (min) => twoDigits(Math.floor(min / 60)) + ":" + twoDigits(min % 60);
function minutes(s) { const m = hhmmRE.exec(s); return m ? (m[1] === undefined ? 1440 : Number(m[1]) * 60 + Number(m[2])) : NaN; }

// Windows travel as minutes since midnight; the API may also send "HH:MM".
const windowIn = (w) => ({ start: typeof w.start === "string" ? minutes(w.start) : w.start, end: typeof w.end === "string" ? minutes(w.end) : w.end });
const windowOut = (start, end) => ({ start, end });

class FieldProblem extends Error {
  constructor(input, message) { super(message); this.input = input; }
}

function buildCampaignForm() {
  const hours = $("#hours tbody");
  const row = (key, label) => {
    const tr = el("tr", undefined, { "data-day": key });
    const from = el("input", undefined, { name: "from-" + key, inputmode: "numeric", placeholder: "HH:MM", "aria-label": label + " from", value: "08:00" });
    const to = el("input", undefined, { name: "to-" + key, inputmode: "numeric", placeholder: "HH:MM", "aria-label": label + " to", value: "21:00" });
    const closed = el("input", undefined, { type: "checkbox", name: "closed-" + key, "aria-label": label + " closed" });
    closed.addEventListener("change", () => { from.disabled = to.disabled = closed.checked; });
    const c = el("td"); c.append(closed);
    const f = el("td"); f.append(from);
    const t = el("td"); t.append(to);
    tr.append(el("td", label), f, t, c);
    return tr;
  };
  hours.replaceChildren(...weekdays.map(([k, l]) => row(k, l)));
  const retries = $("#retries tbody");
  retries.replaceChildren(...Object.keys(outcomeNames).map((d) => {
    const tr = el("tr", undefined, { "data-outcome": d });
    const input = el("input", undefined, { type: "number", min: "0", max: "43200", step: "1", name: "retry-" + d, "aria-label": outcomeNames[d] + ": retry after minutes", value: String(defaultRetryMinutes[d]) });
    if (d === "invalid_number") { input.disabled = true; input.title = "a number that does not exist is never called again"; }
    const td = el("td"); td.append(input);
    tr.append(el("td", outcomeNames[d]), td);
    return tr;
  }));
}

// fillFormChoices lists the trunks (with their limits) and audio sets.
async function fillFormChoices() {
  const form = $("#new-campaign");
  const [trunks, lib] = await Promise.all([api("GET", "/trunks"), api("GET", "/audio").catch(() => ({ files: [] }))]);
  const keep = form.elements.trunk.value;
  const opts = trunks.map((t) => el("option", `${t.name} — ${t.max_channels} channels, ${t.max_cps} calls/s`, { value: t.name }));
  if (!opts.length) opts.push(el("option", "add a trunk first (Trunks tab)", { value: "" }));
  form.elements.trunk.replaceChildren(...opts);
  if (keep) form.elements.trunk.value = keep;
  const sets = [...new Set(lib.files.map((f) => f.key.split("/")[0]))].sort();
  const keepSet = form.elements.audio_set.value;
  form.elements.audio_set.replaceChildren(el("option", "none (prompts named in full)", { value: "" }), ...sets.map((s) => el("option", s, { value: s })));
  if (keepSet) form.elements.audio_set.value = keepSet;
  return { trunks, sets };
}

// campaignFromForm reads the form into the API's campaign, or throws a
// FieldProblem naming the field in people's words.
function campaignFromForm(form) {
  const e = form.elements;
  const num = (name, label, lo, hi, whole) => {
    const v = Number(e[name].value);
    if (e[name].value.trim() === "" || !Number.isFinite(v) || v < lo || v > hi || (whole && !Number.isInteger(v))) {
      throw new FieldProblem(e[name], `${label}: "${e[name].value}" — want ${whole ? "a whole number" : "a number"} from ${lo} to ${hi}`);
    }
    return v;
  };
  if (!e.name.value.trim()) throw new FieldProblem(e.name, "Name: give the campaign a name");
  if (!e.trunk.value) throw new FieldProblem(e.trunk, "Trunk: add a trunk first (Trunks tab)");
  const c = {
    name: e.name.value.trim(), trunk: e.trunk.value, caller_id: e.caller_id.value.trim(), audio_set: e.audio_set.value,
    target: num("target", "Concurrent calls", 1, 100000, true), max_cps: num("max_cps", "Call attempts per second", 0.1, 1000, false),
    ring_seconds: num("ring_seconds", "Ring for", 5, 300, true), max_attempts: num("max_attempts", "Attempts per contact", 1, 100, true),
  };
  if (e.start_at.value) {
    const t = new Date(e.start_at.value);
    if (isNaN(t)) throw new FieldProblem(e.start_at, `Start at: "${e.start_at.value}" is not a date and time`);
    c.start_at = t.toISOString();
  }
  // Calling hours: the most common window is the campaign's; other days
  // are exceptions (a closed day is 00:00-00:00).
  const days = {};
  for (const [k, label] of weekdays) {
    if (e["closed-" + k].checked) { days[k] = { start: 0, end: 0 }; continue; }
    const from = minutes(e["from-" + k].value.trim()), to = minutes(e["to-" + k].value.trim());
    if (isNaN(from)) throw new FieldProblem(e["from-" + k], `${label} from: "${e["from-" + k].value}" is not a time of day (HH:MM, 00:00 to 23:59)`);
    if (isNaN(to)) throw new FieldProblem(e["to-" + k], `${label} to: "${e["to-" + k].value}" is not a time of day (HH:MM, 00:00 to 24:00)`);
    if (from === to) throw new FieldProblem(e["to-" + k], `${label}: from and to are both ${hhmm(from)}; tick Closed to call no one that day`);
    days[k] = { start: from, end: to };
  }
  const count = {};
  for (const w of Object.values(days)) if (w.end !== w.start) count[w.start + "-" + w.end] = (count[w.start + "-" + w.end] || 0) + 1;
  const common = Object.entries(count).sort((a, b) => b[1] - a[1])[0];
  if (!common) throw new FieldProblem(e["closed-mon"], "Calling hours: every day is closed; open at least one");
  const [ws, we] = common[0].split("-").map(Number);
  c.window = windowOut(ws, we);
  c.weekdays = {};
  for (const [k, w] of Object.entries(days)) if (w.start !== ws || w.end !== we) c.weekdays[k] = windowOut(w.start, w.end);
  c.retry = {};
  for (const d of Object.keys(outcomeNames)) {
    c.retry[d] = { after_seconds: d === "invalid_number" ? 0 : 60 * num("retry-" + d, outcomeNames[d] + ": try again after", 0, 43200, true) };
  }
  return c;
}

// campaignIntoForm shows a stored campaign in the form, for editing.
function campaignIntoForm(form, c) {
  const e = form.elements;
  for (const k of ["name", "caller_id", "target", "max_cps", "ring_seconds", "max_attempts"]) e[k].value = c[k];
  e.trunk.value = c.trunk;
  e.audio_set.value = c.audio_set || "";
  if (c.start_at) {
    const d = new Date(c.start_at);
    e.start_at.value = `${d.getFullYear()}-${twoDigits(d.getMonth() + 1)}-${twoDigits(d.getDate())}T${hhmm(d.getHours() * 60 + d.getMinutes())}`;
  } else e.start_at.value = "";
  const base = windowIn(c.window);
  for (const [k] of weekdays) {
    const w = c.weekdays && c.weekdays[k] ? windowIn(c.weekdays[k]) : base;
    const closed = w.start === w.end;
    e["closed-" + k].checked = closed;
    e["from-" + k].disabled = e["to-" + k].disabled = closed;
    e["from-" + k].value = hhmm(closed ? base.start : w.start);
    e["to-" + k].value = hhmm(closed ? base.end : w.end);
  }
  for (const d of Object.keys(outcomeNames)) e["retry-" + d].value = String(Math.round(((c.retry || {})[d] || { after_seconds: 0 }).after_seconds / 60));
}

// describeHours says a campaign's calling hours in a line.
function describeHours(c) {
  const base = windowIn(c.window);
  const parts = [`${hhmm(base.start)}–${hhmm(base.end)}`];
  for (const [k, label] of weekdays) {
    const w = c.weekdays && c.weekdays[k];
    if (!w) continue;
    const x = windowIn(w);
    parts.push(x.start === x.end ? `${label.slice(0, 3)} closed` : `${label.slice(0, 3)} ${hhmm(x.start)}–${hhmm(x.end)}`);
  }
  return "calls " + parts.join(", ");
}
