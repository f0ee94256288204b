// The live campaign view: rates in percent, what the flow captured, an
// ETA, searchable results, and prompts and recordings played in the page.
"use strict";

const pct = (n, of) => (of > 0 ? Math.round((100 * n) / of) + "%" : "–");

function duration(sec) {
  if (sec < 60) return (sec < 10 ? sec.toFixed(1) : Math.round(sec)) + " s";
  if (sec < 3600) return Math.floor(sec / 60) + " min " + twoDigits(Math.round(sec % 60)) + " s";
  return Math.floor(sec / 3600) + " h " + twoDigits(Math.round((sec % 3600) / 60)) + " min";
}

// liveStats fills the rates, outcomes and ETA from the campaign's stats,
// outcomes and history (h: its attempts over the picked range).
// Outcomes and results read every attempt of the campaign on the server,
// so the live view asks for them at most every 5 s.
const slow = { every: 5000, outcomes: null, outcomesAt: 0, outcomesFor: "", resultsAt: 0 };

async function liveStats(c, st, h) {
  if (slow.outcomesFor !== c.id || Date.now() - slow.outcomesAt > slow.every) {
    slow.outcomes = await api("GET", `/campaigns/${c.id}/outcomes`);
    slow.outcomesAt = Date.now();
    slow.outcomesFor = c.id;
  }
  const o = slow.outcomes;
  $("#stat-answer-rate").textContent = pct(o.answered, o.attempts);
  const contacts = Object.values(st.contacts || {}).reduce((a, b) => a + b, 0);
  const open = (st.contacts.pending || 0) + (st.contacts.leased || 0);
  $("#stat-done").textContent = pct(contacts - open, contacts);
  // ETA: contacts still open over the attempts made in the last ten
  // minutes of history (retries may add more).
  const now = Date.now() / 1000, t = h.times, a = h.values.attempts || [];
  let i = t.findIndex((x) => x >= now - 600);
  let rate = 0;
  if (i >= 0 && t.length - 1 > i && a[i] != null && a[t.length - 1] != null) rate = (a[t.length - 1] - a[i]) / (t[t.length - 1] - t[i]);
  if (c.status === "completed" || open === 0) { $("#stat-eta").textContent = "done"; $("#stat-eta-note").textContent = "no contact left"; }
  else if (rate > 0) { $("#stat-eta").textContent = duration(open / rate); $("#stat-eta-note").textContent = `to finish at ${(rate * 60).toFixed(1)} attempts/min (retries may add more)`; }
  else { $("#stat-eta").textContent = "–"; $("#stat-eta-note").textContent = c.status === "running" ? "to finish: no attempts in the last 10 min" : `to finish: ${c.status}`; }

  const disp = $("#by-disposition tbody");
  disp.replaceChildren(...Object.entries(o.by_disposition).sort((x, y) => y[1] - x[1]).map(([d, n]) => {
    const tr = el("tr");
    tr.append(el("td", outcomeNames[d] || d), el("td", String(n)), el("td", pct(n, o.attempts)));
    return tr;
  }));
  // Outcomes: every tag value the flow set, "result" first.
  const rows = [];
  for (const [tag, values] of Object.entries(o.tags).sort(([x], [y]) => (x === "result" ? -1 : y === "result" ? 1 : x.localeCompare(y)))) {
    for (const [v, n] of Object.entries(values).sort((x, y) => y[1] - x[1])) {
      const tr = el("tr");
      tr.append(el("td", tag === "result" ? v.replaceAll("_", " ") : `${tag}: ${v}`), el("td", String(n)), el("td", pct(n, o.answered)));
      rows.push(tr);
    }
  }
  if (!rows.length) rows.push(el("tr"));
  if (!Object.keys(o.tags).length) rows[0].append(el("td", "nothing yet"));
  $("#outcomes tbody").replaceChildren(...rows);
  // The IVR's abandon: answered calls that ended before the flow set a
  // tag; meaningful only for a flow that sets tags.
  const setsTags = /"set"\s*:/.test(state.flowText || "");
  $("#abandon-box").hidden = !setsTags;
  $("#stat-abandon").textContent = pct(o.answered_without_outcome, o.answered);
}

// Results, searched on the server a page at a time.
const results = { offset: 0, limit: 25 };

async function searchResults(reset) {
  if (!state.selected || $("#result-search").hidden) return;
  if (reset) results.offset = 0;
  slow.resultsAt = Date.now();
  const q = new URLSearchParams({ q: $("#result-q").value, disposition: $("#result-disposition").value, limit: results.limit, offset: results.offset });
  const page = await api("GET", `/campaigns/${state.selected}/results?${q}`);
  $("#result-count").textContent = page.matched
    ? `Showing ${results.offset + 1}–${results.offset + page.rows.length} of ${page.matched} matching attempts (${page.total} in all)`
    : `No attempt matches (${page.total} in all)`;
  $("#result-prev").disabled = results.offset === 0;
  $("#result-next").disabled = results.offset + page.rows.length >= page.matched;
  $("#results tbody").replaceChildren(...page.rows.map((r) => {
    const tr = el("tr");
    const tags = Object.entries(r.tags).map(([k, v]) => (k === "result" ? v.replaceAll("_", " ") : `${k}=${v}`)).join(", ");
    const play = el("td");
    if (r.recording) play.append(playButton(r.recording.replace(/^\/api\/v1/, ""), "recording"));
    tr.append(el("td", r.phone), el("td", String(r.attempt)), el("td", outcomeNames[r.disposition] || r.disposition), el("td", tags || "–"),
      el("td", r.talk_seconds ? duration(r.talk_seconds) : "–"), el("td", new Date(r.started_at).toLocaleString()), play);
    return tr;
  }));
}

// playButton fetches audio with the token (an <audio src> cannot send
// it) and plays it in the page.
function playButton(path, what) {
  const b = el("button", "▶ Play", { type: "button", class: "secondary play", "aria-label": "play " + what });
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      const resp = await fetch("/api/v1" + path, { headers: { Authorization: "Bearer " + state.token } });
      if (!resp.ok) throw new Error((await resp.json().catch(() => ({}))).error || resp.statusText);
      const audio = el("audio", undefined, { controls: "", src: URL.createObjectURL(await resp.blob()) });
      b.replaceWith(audio);
      audio.play().catch(() => {}); // autoplay may be refused; the controls remain
    } catch (e) {
      b.replaceWith(el("span", e.message, { class: "error" }));
    }
  });
  return b;
}

// Prompt details (format, length) by content hash: read once.
const promptInfo = new Map();

async function describePrompt(f) {
  if (!promptInfo.has(f.sha256)) promptInfo.set(f.sha256, api("GET", `/audio/${f.key}?info=1`).catch((e) => ({ error: e.message })));
  return promptInfo.get(f.sha256);
}

async function loadAudio() {
  const lib = await api("GET", "/audio");
  $("#audio-version").textContent = lib.version;
  const body = $("#audio-files tbody");
  body.replaceChildren();
  for (const f of lib.files) {
    const tr = el("tr", undefined, { "data-key": f.key });
    const len = el("td", "…"), fmt = el("td", "…"), play = el("td");
    tr.append(el("td", f.key), len, fmt, el("td", f.size < 10240 ? f.size + " B" : Math.round(f.size / 1024) + " KB"), play);
    body.append(tr);
    describePrompt(f).then((info) => {
      if (info.error) { fmt.textContent = info.error; len.textContent = "–"; return; }
      len.textContent = duration(info.seconds);
      fmt.textContent = `${info.format}, ${info.sample_rate / 1000} kHz`;
      play.append(info.playable ? playButton("/audio/" + f.key, f.key) : el("span", "Asterisk only", { class: "muted" }));
    });
  }
  return lib;
}
