// The recorder's page: live view, recordings, sessions and their analyses, drawn from the REST API
// the page is served beside. Plain script, no build step; charts are uPlot (vendor/).
"use strict";

const LIVE_POLL_MS = 300;     // several updates a second, at under 1 % of a core of the server (benchmarks/test_bench_page.py)
// the live strip chart's window (s); ?strip_s= shortens it (the tests see it trimmed in seconds)
const STRIP_SECONDS = Number(new URLSearchParams(location.search).get("strip_s")) || 30;
const COLORS = ["#c8102e", "#1f5fbf", "#16803c", "#8a4fd1", "#b35c00", "#00838f"];
const state = { token: sessionStorage.getItem("rt-token"), tokenRequired: false, liveTimer: null, view: null };
const charts = {};   // name → uPlot (tests and curious users read their data)
const maps = {};     // name → {points, markers} of the SVG track maps
window.rt = { charts, maps, state };

// ---- small helpers ---------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const main = () => document.getElementById("main");
const fmt = (v, digits = 0) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(digits));

/** A lap or sector time in ms as m:ss.mmm (– when unknown). */
function lapTime(ms) {
  if (ms === null || ms === undefined || ms < 0) return "–";
  const m = Math.floor(ms / 60000), s = Math.floor((ms % 60000) / 1000), milli = Math.round(ms % 1000);
  return `${m}:${String(s).padStart(2, "0")}.${String(milli).padStart(3, "0")}`;
}

function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KB", "MB", "GB", "TB"];
  const k = Math.min(units.length - 1, Math.floor(Math.log10(n) / 3));
  return `${(n / 10 ** (3 * k)).toFixed(k ? 1 : 0)} ${units[k]}`;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = Math.floor(seconds % 60);
  return h ? `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}` : `${m}:${String(s).padStart(2, "0")}`;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
const badge = (text) => el("span", { class: `badge ${text}` }, text ?? "–");

// ---- the API ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

/** Ask for the API token in the page's dialog; resolves with it, rejects on Cancel. */
function askToken() {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  input.value = "";
  return new Promise((resolve, reject) => {
    dialog.addEventListener("close", () => {
      if (dialog.returnValue === "ok" && input.value) {
        state.token = input.value;
        sessionStorage.setItem("rt-token", state.token);
        document.getElementById("token-state").hidden = false;
        resolve(state.token);
      } else reject(new ApiError(401, "unauthorized", "a change needs the recorder's API token, and none was given"));
    }, { once: true });
    dialog.showModal();
  });
}

/** Call the API; resolves with the JSON answer, or throws ApiError worded as the API words it. */
async function api(method, path, body) {
  const changing = method !== "GET";
  if (changing && state.tokenRequired && !state.token) await askToken();
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (changing && state.token) headers.Authorization = `Bearer ${state.token}`;
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (exc) {
    throw new ApiError(0, "unreachable", `the recorder did not answer (${exc.message}); is it still running?`);
  }
  if (resp.status === 204) return null;
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!resp.ok) {
    if (resp.status === 401 && changing) {  // a wrong token: ask again next time
      state.token = null;
      sessionStorage.removeItem("rt-token");
      document.getElementById("token-state").hidden = true;
    }
    const err = data && data.error;
    throw new ApiError(resp.status, err ? err.code : `http_${resp.status}`, err ? err.message : `HTTP ${resp.status} ${resp.statusText}`);
  }
  return data;
}

function showError(err) {
  const box = document.getElementById("error");
  const status = err.status ? ` (${err.status} ${err.code})` : "";
  box.textContent = `${err.message}${status}`;
  box.hidden = false;
}

function clearError() { document.getElementById("error").hidden = true; }

/** Run an action from a button; its error is shown, never swallowed. */
async function act(fn) {
  clearError();
  try { await fn(); } catch (err) { showError(err); }
}

// ---- charts ----------------------------------------------------------------------------------

function destroyCharts() {
  for (const name of Object.keys(charts)) { charts[name].destroy(); delete charts[name]; }
  for (const name of Object.keys(maps)) delete maps[name];
}

/** A uPlot chart named ``name`` in ``box``; ``series``: [{label, scale?, color?, points?}]. */
function chart(name, box, title, data, series, { axes = null, scales = {}, height = 220, xLabel = "", hooks = {} } = {}) {
  if (charts[name]) charts[name].destroy();
  const width = Math.max(320, box.clientWidth || main().clientWidth - 40);
  const opts = {
    title, width, height, scales: { x: { time: false }, ...scales },
    series: [{ label: xLabel }, ...series.map((s, k) => ({
      label: s.label, scale: s.scale || "y", stroke: s.color || COLORS[k % COLORS.length], width: s.width || 1.5,
      spanGaps: true, points: { show: !!s.points, size: 4 }, ...(s.points ? { paths: () => null } : {}),
    }))],
    axes: axes || [{ label: xLabel }, { scale: "y" }],
    legend: { live: false },
    hooks,  // given here: uPlot reads them as it initialises (a redraw before that leaves the scales unset)
  };
  const plot = new uPlot(opts, data, box);
  charts[name] = plot;
  return plot;
}

/** A track map (SVG, x right, z up, equal scale): the line, the stretches where ``brake`` is on in
 * red, and numbered ``markers`` ({x, z, label, color}). */
function trackMap(name, box, x, z, { brake = null, markers = [] } = {}) {
  const points = [];
  for (let i = 0; i < x.length; i++) if (x[i] !== null && z[i] !== null) points.push([x[i], z[i], brake ? brake[i] : 0]);
  maps[name] = { points: points.length, markers: markers.length };
  if (points.length < 2) { box.append(el("p", { class: "muted" }, "No positions to draw a map from.")); return; }
  const xs = points.map((p) => p[0]), zs = points.map((p) => p[1]);
  const [x0, x1, z0, z1] = [Math.min(...xs), Math.max(...xs), Math.min(...zs), Math.max(...zs)];
  const pad = 0.06 * Math.max(x1 - x0, z1 - z0, 1);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "map");
  svg.setAttribute("data-name", name);
  svg.setAttribute("viewBox", `${x0 - pad} ${-(z1 + pad)} ${x1 - x0 + 2 * pad} ${z1 - z0 + 2 * pad}`);
  const stroke = 0.006 * Math.max(x1 - x0, z1 - z0, 1);
  const path = (pts, color, width) => {
    const p = document.createElementNS(ns, "path");
    p.setAttribute("d", pts.map((q, i) => `${i ? "L" : "M"}${q[0].toFixed(1)},${(-q[1]).toFixed(1)}`).join(""));
    p.setAttribute("fill", "none");
    p.setAttribute("stroke", color);
    p.setAttribute("stroke-width", width);
    p.setAttribute("stroke-linejoin", "round");
    svg.append(p);
  };
  path(points, "#9aa3b5", stroke);
  if (brake) {  // braking stretches over the line
    let run = [];
    for (const p of points) {
      if (p[2] > 0.05) run.push(p);
      else if (run.length) { if (run.length > 1) path(run, "#c8102e", stroke * 1.8); run = []; }
    }
    if (run.length > 1) path(run, "#c8102e", stroke * 1.8);
  }
  for (const m of markers) {
    const c = document.createElementNS(ns, "circle");
    c.setAttribute("cx", m.x); c.setAttribute("cy", -m.z); c.setAttribute("r", stroke * 4);
    c.setAttribute("fill", m.color || "#1f5fbf");
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", m.x); t.setAttribute("y", -m.z);
    t.setAttribute("style", `font-size:${stroke * 4.5}px`);
    t.textContent = m.label;
    svg.append(c, t);
  }
  box.append(svg);
}

// ---- live ------------------------------------------------------------------------------------

function stopLive() {
  if (state.liveTimer) clearTimeout(state.liveTimer);
  state.liveTimer = null;
}

/** The feed whose car the page shows: the one with the freshest data. */
function focusedFeed(feeds) {
  let best = null;
  for (const [name, f] of Object.entries(feeds)) {
    if (f.speed_kmh === null || f.speed_kmh === undefined || f.last_packet_age_ms === null) continue;
    if (!best || f.last_packet_age_ms < feeds[best].last_packet_age_ms) best = name;
  }
  return best;
}

function showLive() {
  const strip = { t: [], speed: [], rpm: [], throttle: [], brake: [] };  // the last STRIP_SECONDS only
  const feedsBody = el("tbody");
  const values = el("div", { class: "values", id: "focus" });
  const box = el("div", { id: "strip" });
  const rec = el("p", { id: "live-recording", class: "muted" });
  main().replaceChildren(
    el("section", {}, el("h2", {}, "Feeds"), rec,
      el("table", {}, el("thead", {}, el("tr", {}, ...["feed", "health", "port", "rate (Hz)", "packets", "malformed",
        "dropped", "kernel dropped", "sequence gaps", "last packet", "car", "track"].map((h, k) => el("th", { class: k > 1 ? "num" : null }, h)))), feedsBody)),
    el("section", {}, el("h2", { id: "focus-title" }, "Car"), values),
    el("section", {}, el("h2", {}, `Last ${STRIP_SECONDS} s`), box));
  const plot = chart("live", box, null, [[], [], [], [], []], [
    { label: "speed (km/h)", scale: "kmh" }, { label: "rpm", scale: "rpm" },
    { label: "throttle (%)", scale: "pct" }, { label: "brake (%)", scale: "pct" }],
  { scales: { pct: { range: [0, 100] } }, xLabel: "s",
    axes: [{ label: "s" }, { scale: "kmh", label: "km/h" }, { scale: "rpm", side: 1, label: "rpm", grid: { show: false } }] });
  const t0 = performance.now();

  async function tick() {
    try {
      const live = await api("GET", "/api/live");
      clearError();
      rec.textContent = live.recording ? `Recording: ${live.recording.name} (${live.recording.status})` : "Not recording.";
      feedsBody.replaceChildren(...Object.entries(live.feeds).map(([name, f]) => el("tr", { dataset: { feed: name } },
        el("td", {}, name), el("td", {}, badge(f.health)), el("td", { class: "num" }, f.port ?? "–"),
        el("td", { class: "num" }, fmt(f.frequency_hz, 1)), el("td", { class: "num" }, f.packets),
        el("td", { class: "num" }, f.malformed), el("td", { class: "num" }, f.dropped),
        el("td", { class: "num" }, f.kernel_dropped ?? "–"), el("td", { class: "num" }, f.sequence_gaps ?? "–"),
        el("td", { class: "num" }, f.last_packet_age_ms === null ? "never" : `${fmt(f.last_packet_age_ms)} ms ago`),
        el("td", {}, f.car ?? "–"), el("td", {}, f.track ?? "–"))));
      const name = focusedFeed(live.feeds);
      const f = name ? live.feeds[name] : null;
      document.getElementById("focus-title").textContent = f ? `Car on ${name}` : "Car (no feed has data yet)";
      const value = (label, v, id) => el("div", {}, el("b", { id }, v), el("span", {}, label));
      values.replaceChildren(...(f ? [
        value("km/h", fmt(f.speed_kmh), "v-speed"), value("rpm", fmt(f.rpm), "v-rpm"),
        value("gear", f.gear === null ? "–" : f.gear === -1 ? "R" : f.gear === 0 ? "N" : f.gear, "v-gear"),
        value("throttle %", fmt(f.throttle === null ? null : f.throttle * 100), "v-throttle"),
        value("brake %", fmt(f.brake === null ? null : f.brake * 100), "v-brake"),
        value("lap", f.lap_count ?? "–", "v-lap"), value("lap time", lapTime(f.lap_time_ms), "v-laptime"),
        value("last lap", lapTime(f.last_lap_ms), "v-last"), value("best lap", lapTime(f.best_lap_ms), "v-best"),
      ] : []));
      if (f) {
        const t = (performance.now() - t0) / 1000;
        strip.t.push(t); strip.speed.push(f.speed_kmh); strip.rpm.push(f.rpm);
        strip.throttle.push(f.throttle === null ? null : f.throttle * 100);
        strip.brake.push(f.brake === null ? null : f.brake * 100);
        while (strip.t.length && strip.t[0] < t - STRIP_SECONDS) for (const k in strip) strip[k].shift();
        plot.setData([strip.t, strip.speed, strip.rpm, strip.throttle, strip.brake]);
      }
    } catch (err) {
      showError(err);
    }
    if (state.view === "live") state.liveTimer = setTimeout(tick, LIVE_POLL_MS);
  }
  tick();
}

// ---- recordings ------------------------------------------------------------------------------

async function showRecordings() {
  const list = await api("GET", "/api/recordings");
  const active = list.find((r) => r.status === "recording");
  const name = el("input", { id: "rec-name", placeholder: "name (optional)", maxlength: 200 });
  const form = el("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); act(async () => {
    await api("POST", "/api/recordings", name.value ? { name: name.value } : {});
    await showRecordings();
  }); } }, name, el("button", { class: "primary", id: "rec-start", disabled: !!active }, "Start recording"),
  active ? el("button", { type: "button", id: "rec-stop", onclick: () => act(async () => {
    await api("POST", "/api/recordings/stop"); await showRecordings();
  }) }, "Stop recording") : null);
  const rows = list.map((r) => {
    const feeds = Object.entries(r.feeds || {}).filter(([, c]) => c.packets > 0);
    const first = feeds.map(([, c]) => c.first_time).filter(Boolean).sort()[0];
    const last = feeds.map(([, c]) => c.last_time).filter(Boolean).sort().pop();
    const seconds = first && last ? (Date.parse(last) - Date.parse(first)) / 1000 : null;
    const done = r.status !== "recording";
    const links = feeds.map(([feed]) => el("div", { class: "links" }, `${feed}: `,
      el("a", { href: `/api/recordings/${r.id}/data/${feed}`, download: "" }, "raw"),
      ...(done ? ["csv", "parquet", "ld", "ldx"].map((ext) =>
        el("a", { href: `/api/recordings/${r.id}/export/${feed}.${ext}`, download: "" }, ext)) : [])));
    return el("tr", { dataset: { id: r.id } }, el("td", {}, r.name), el("td", {}, badge(r.status)),
      el("td", {}, when(r.created_at)), el("td", { class: "num" }, duration(seconds)),
      el("td", { class: "num" }, bytes(r.size_bytes)), el("td", {}, [r.game, r.track, r.car].map((v) => v ?? "–").join(" · ")),
      el("td", {}, links),
      el("td", {}, done ? el("button", { class: "danger", dataset: { delete: r.id }, onclick: () => act(async () => {
        if (!confirm(`Delete recording "${r.name}" and all its files? This cannot be undone.`)) return;
        await api("DELETE", `/api/recordings/${r.id}`);
        await showRecordings();
      }) }, "Delete") : el("button", { onclick: () => act(async () => {
        await api("POST", `/api/recordings/${r.id}/stop`); await showRecordings();
      }) }, "Stop")));
  });
  main().replaceChildren(el("section", {}, el("h2", {}, "Record"), form),
    el("section", {}, el("h2", {}, `Recordings (${list.length})`), list.length ? el("table", { id: "recordings" },
      el("thead", {}, el("tr", {}, ...["name", "status", "started", "duration", "size", "game · track · car", "download", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)) : el("p", { class: "muted" }, "No recordings yet.")));
}

// ---- sessions --------------------------------------------------------------------------------

async function showSessions() {
  const [list, useCases] = await Promise.all([api("GET", "/api/sessions"), api("GET", "/api/use-cases")]);
  const select = el("select", { id: "use-case" }, useCases.map((u) => el("option", { value: u }, u.replaceAll("_", " "))));
  const label = el("input", { id: "session-label", placeholder: "label (optional)", maxlength: 200 });
  const form = el("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); act(async () => {
    const made = await api("POST", "/api/sessions", { use_case: select.value, ...(label.value ? { label: label.value } : {}) });
    location.hash = `#session/${made.id}`;
  }); } }, select, label, el("button", { class: "primary", id: "session-create" }, "Create session"));
  main().replaceChildren(el("section", {}, el("h2", {}, "New session"), form),
    el("section", {}, el("h2", {}, `Sessions (${list.length})`), list.length ? el("table", {},
      el("thead", {}, el("tr", {}, ...["session", "use case", "status", "runs", "created"].map((h) => el("th", {}, h)))),
      el("tbody", {}, list.map((s) => el("tr", {},
        el("td", {}, el("a", { href: `#session/${s.id}` }, s.label || s.id.slice(0, 8))), el("td", {}, s.use_case),
        el("td", {}, badge(s.status)), el("td", { class: "num" }, s.runs.length), el("td", {}, when(s.created_at))))))
      : el("p", { class: "muted" }, "No sessions yet.")));
}

async function showSession(id) {
  const [session, live] = await Promise.all([api("GET", `/api/sessions/${id}`), api("GET", "/api/live")]);
  const reload = () => showSession(id);
  const running = session.runs.some((r) => r.status === "recording");
  const feeds = Object.keys(live.feeds);
  const feed = el("select", { id: "run-feed" }, feeds.map((f) => el("option", { value: f, selected: live.feeds[f].health === "healthy" && !session.runs.length ? true : null }, f)));
  const preferred = feeds.find((f) => live.feeds[f].health === "healthy");
  if (preferred) feed.value = preferred;
  const merges = feeds.map((f) => el("label", {}, el("input", { type: "checkbox", value: f, class: "merge" }), ` ${f}`));
  const runLabel = el("input", { id: "run-label", placeholder: "run label (optional)", maxlength: 200 });
  const controls = [];
  if (session.status === "active") {
    controls.push(el("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); act(async () => {
      const merge = [...document.querySelectorAll("input.merge:checked")].map((c) => c.value).filter((f) => f !== feed.value);
      await api("POST", `/api/sessions/${id}/runs`, { feed_name: feed.value, merge_feeds: merge, ...(runLabel.value ? { label: runLabel.value } : {}) });
      await reload();
    }); } }, "Feed ", feed, " merge with ", ...merges, runLabel,
    el("button", { class: "primary", id: "run-start", disabled: running }, "Start run")));
    controls.push(el("button", { id: "session-complete", disabled: running || !session.runs.length, onclick: () => act(async () => {
      await api("POST", `/api/sessions/${id}/complete`); await reload();
    }) }, "Complete and analyse"));
  } else {
    controls.push(el("button", { id: "session-reopen", onclick: () => act(async () => {
      await api("POST", `/api/sessions/${id}/reopen`); await reload();
    }) }, "Reopen for more runs"));
  }
  controls.push(el("button", { class: "danger", onclick: () => act(async () => {
    if (!confirm("Delete this session and its runs' analyses? Its recordings stay.")) return;
    await api("DELETE", `/api/sessions/${id}`); location.hash = "#sessions";
  }) }, "Delete session"));
  const runs = el("table", { id: "runs" }, el("thead", {}, el("tr", {}, ...["run", "feed", "merged", "status", "frames", "started", "stopped", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, session.runs.map((r) => el("tr", {}, el("td", {}, r.label || r.id.slice(0, 8)), el("td", {}, r.feed_name),
      el("td", {}, (r.merge_feeds || []).join(", ") || "–"), el("td", {}, badge(r.status)), el("td", { class: "num" }, r.frame_count ?? "–"),
      el("td", {}, when(r.started_at)), el("td", {}, when(r.stopped_at)),
      el("td", {}, r.status === "recording" ? el("button", { class: "run-stop", onclick: () => act(async () => {
        await api("POST", `/api/sessions/${id}/runs/${r.id}/stop`); await reload();
      }) }, "Stop run") : null)))));
  const analysis = el("div", { id: "analysis" });
  main().replaceChildren(
    el("section", {}, el("h2", {}, `${session.use_case.replaceAll("_", " ")}${session.label ? ` — ${session.label}` : ""} `, badge(session.status)),
      el("p", { class: "guidance" }, session.guidance), ...controls),
    el("section", {}, el("h2", {}, "Runs"), session.runs.length ? runs : el("p", { class: "muted" }, "No runs yet: start one, drive, stop it.")),
    analysis);
  if (session.analysis) await drawAnalysis(analysis, session);
  main().dataset.shown = id;  // drawn to the end (what a test or a screenshot waits for)
}

// ---- analyses --------------------------------------------------------------------------------

function summaryTable(summary) {
  const rows = Object.entries(summary || {}).filter(([, v]) => v === null || typeof v !== "object" || Array.isArray(v));
  return el("table", { class: "summary" }, el("tbody", {}, rows.map(([k, v]) => el("tr", {},
    el("th", {}, k.replaceAll("_", " ")), el("td", {}, Array.isArray(v) ? v.join(", ") || "–" : k.endsWith("_ms") ? lapTime(v) : v ?? "–")))));
}

function lapTable(a) {
  const laps = a.laps || [];
  const best = a.best_lap_ms;
  const sectors = Math.max(0, ...laps.map((l) => (l.sectors_ms || []).length));
  const head = ["lap", "time", "valid", ...Array.from({ length: sectors }, (_, k) => `S${k + 1}`), "source"];
  const rows = laps.map((l) => el("tr", { class: [l.valid ? "" : "invalid", l.valid && l.time_ms === best ? "best" : ""].join(" ").trim() || null, dataset: { lap: l.lap } },
    el("td", { class: "num" }, l.lap), el("td", { class: "num lap-time", dataset: { ms: l.time_ms ?? "" } }, lapTime(l.time_ms)),
    el("td", {}, l.valid ? "valid" : `invalid${l.invalid_reason ? ` (${l.invalid_reason.replaceAll("_", " ")})` : ""}${l.complete === false ? ", partial" : ""}`),
    ...Array.from({ length: sectors }, (_, k) => el("td", { class: "num" }, lapTime((l.sectors_ms || [])[k]))),
    el("td", {}, l.source ?? "–")));
  const foot = [];
  if (a.best_sectors_ms) foot.push(el("tr", {}, el("th", {}, "best sectors"), el("td", {}), el("td", {}),
    ...a.best_sectors_ms.map((ms) => el("td", { class: "num" }, lapTime(ms))), el("td", {})));
  const extra = el("p", {}, `Best lap ${lapTime(best)}`, a.theoretical_best_ms !== undefined ? ` · theoretical best ${lapTime(a.theoretical_best_ms)}` : "",
    a.mean_lap_ms ? ` · mean ${lapTime(a.mean_lap_ms)}` : "");
  return el("div", {}, extra, el("table", { id: "lap-table" }, el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))), el("tbody", {}, rows), el("tfoot", {}, foot)));
}

async function drawAnalysis(box, session) {
  const a = session.analysis;
  destroyCharts();
  box.append(el("section", {}, el("h2", {}, "Summary"), summaryTable(a.summary)));
  const section = (title, id) => { const s = el("section", { id }, el("h2", {}, title)); box.append(s); return s; };
  const uc = session.use_case;
  if (uc === "lap_times" || uc === "sector_analysis") section("Laps", "laps").append(lapTable(a));
  if (uc === "shift_points") drawShiftPoints(section("Shift points", "shift"), a);
  if (uc === "racing_line") drawRacingLine(section("Racing line", "line"), a);
  if (uc === "general") {
    const s = section("Time in gear", "gears");
    const gears = Object.entries(a.gear_time_pct || {}).filter(([, v]) => v > 0);
    s.append(el("table", {}, el("tbody", {}, gears.map(([g, v]) => el("tr", {}, el("th", {}, `gear ${g}`), el("td", { class: "num" }, `${fmt(v, 1)} %`))))));
  }
  if (uc === "braking_analysis") {
    const s = section("Braking zones", "zones");
    s.append(el("table", {}, el("thead", {}, el("tr", {}, ...["zone", "at (m)", "entry km/h", "min km/h", "peak decel (g)", "duration (s)", "trail braking"].map((h) => el("th", {}, h)))),
      el("tbody", {}, (a.zones || []).map((z) => el("tr", {}, el("td", { class: "num" }, z.number), el("td", { class: "num" }, fmt(z.distance_m)),
        el("td", { class: "num" }, fmt(z.entry_speed_kmh)), el("td", { class: "num" }, fmt(z.min_speed_kmh)),
        el("td", { class: "num" }, fmt(z.peak_decel_g, 2)), el("td", { class: "num" }, fmt(z.duration_s, 2)),
        el("td", { class: "num" }, `${fmt((z.trail_braking_share || 0) * 100)} %`))))));
  }
  // every analysis of laps: the laps laid over each other, with the time delta, and the map
  const run = session.runs.find((r) => r.recording_id);
  if (run) await drawLaps(section("Laps compared", "compare"), run, a, uc);
}

function drawShiftPoints(box, a) {
  const curves = (a.curves && a.curves.gears) || [];
  const tables = curves.map((g) => [g.speed_kmh, g.accel_ms2]);
  const measured = curves.filter((g) => g.measured_speed_kmh && g.measured_speed_kmh.length).map((g) => [g.measured_speed_kmh, g.measured_accel_ms2]);
  const chartBox = el("div", { id: "shift-chart" });
  box.append(el("p", {}, a.summary && a.summary.line ? `Shift at: ${a.summary.line}` : ""),
    el("table", {}, el("thead", {}, el("tr", {}, ...["gear", "recommended rpm", "at km/h", "observed rpm", "basis", "confidence"].map((h) => el("th", {}, h)))),
      el("tbody", {}, (a.gears || []).map((g) => el("tr", {}, el("td", { class: "num" }, `${g.gear}→${g.gear + 1}`),
        el("td", { class: "num rec-rpm" }, fmt(g.recommended_rpm)), el("td", { class: "num" }, fmt(g.recommended_speed_kmh)),
        el("td", { class: "num" }, g.observed_rpm ? fmt(g.observed_rpm.mean) : "–"), el("td", {}, g.basis ?? "–"),
        el("td", { class: "num" }, fmt(g.confidence, 2)))))), chartBox);
  if (!tables.length) { chartBox.append(el("p", { class: "muted" }, "No acceleration curves.")); return; }
  // uPlot wants one x: the per-gear curves (and measured points) joined on speed
  const data = uPlot.join([...tables, ...measured].map((t) => sortXY(t[0], t[1])));
  const series = [...curves.map((g, k) => ({ label: `gear ${g.gear}`, color: COLORS[k % COLORS.length], width: 2 })),
    ...curves.filter((g) => g.measured_speed_kmh && g.measured_speed_kmh.length).map((g, k) => ({ label: `gear ${g.gear} measured`, color: COLORS[k % COLORS.length], points: true }))];
  // the recommended shift speeds, drawn as dashed vertical lines
  const speeds = (a.gears || []).map((g) => g.recommended_speed_kmh).filter((v) => v !== null);
  const drawLines = (u) => {
    const ctx = u.ctx;
    ctx.save(); ctx.strokeStyle = "#333"; ctx.setLineDash([4, 4]);
    for (const v of speeds) { const px = u.valToPos(v, "x", true); ctx.beginPath(); ctx.moveTo(px, u.bbox.top); ctx.lineTo(px, u.bbox.top + u.bbox.height); ctx.stroke(); }
    ctx.restore();
  };
  chart("shift", chartBox, `Acceleration (${a.curves.accel_unit}) against speed (km/h): shift where the next gear's curve crosses (dashed)`,
    data, series, { height: 320, xLabel: "km/h", hooks: { draw: [drawLines] } });
}

function sortXY(x, y) {
  const idx = x.map((_, i) => i).filter((i) => x[i] !== null).sort((p, q) => x[p] - x[q]);
  const xs = [], ys = [];
  for (const i of idx) { if (xs.length && xs[xs.length - 1] === x[i]) continue; xs.push(x[i]); ys.push(y[i]); }
  return [xs, ys];
}

function drawRacingLine(box, a) {
  const laps = a.laps || [];
  const chartBox = el("div", { id: "line-chart" });
  box.append(el("p", {}, `Reference lap ${a.reference_lap ? a.reference_lap.lap : "–"} (${lapTime(a.reference_lap && a.reference_lap.time_ms)}); lateral distance of each lap from it, along the lap.`), chartBox);
  const x = (a.norm_pos || []).map((p) => p * 100);
  chart("racing_line", chartBox, "Deviation from the reference line (m) along the lap (%)", [x, ...laps.map((l) => l.lateral_m)],
    laps.map((l, k) => ({ label: `lap ${l.lap}${l.reference ? " (ref)" : ""}`, color: COLORS[k % COLORS.length] })), { xLabel: "% of lap" });
  if (a.hotspots && a.hotspots.length) box.append(el("table", {}, el("thead", {}, el("tr", {}, ...["where (% of lap)", "lap", "deviation (m)"].map((h) => el("th", {}, h)))),
    el("tbody", {}, a.hotspots.map((h) => el("tr", {}, el("td", { class: "num" }, fmt(h.norm_pos * 100, 1)), el("td", { class: "num" }, h.lap), el("td", { class: "num" }, fmt(h.deviation_m, 2)))))));
}

async function drawLaps(box, run, a, uc) {
  const base = `/api/recordings/${run.recording_id}/laps`;
  const table = await api("GET", `${base}?feed=${encodeURIComponent(run.feed_name)}`);
  const whole = table.laps.filter((l) => l.complete && l.time_ms !== null);
  if (!whole.length) { box.append(el("p", { class: "muted" }, "No complete lap in this recording to compare.")); return; }
  const best = whole.reduce((b, l) => (l.valid && (!b || l.time_ms < b.time_ms) ? l : b), null) || whole[0];
  const picks = el("div", { class: "inline" }, "Laps: ", whole.map((l) => el("label", {}, el("input", { type: "checkbox", class: "lap-pick", value: l.number, checked: whole.indexOf(l) >= whole.length - 3 || l === best ? true : null }),
    ` ${l.number} (${lapTime(l.time_ms)}${l.valid ? "" : ", invalid"}) `)));
  const ref = el("select", { id: "ref-lap" }, whole.map((l) => el("option", { value: l.number, selected: l === best ? true : null }, `reference: lap ${l.number}`)));
  const charts_ = el("div", { class: "charts" });
  const mapBox = el("div", { id: "map" });
  box.append(picks, ref, el("div", { class: "two" }, charts_, mapBox));
  const draw = () => act(async () => {
    const chosen = [...box.querySelectorAll("input.lap-pick:checked")].map((c) => Number(c.value));
    const traces = await Promise.all(chosen.map((n) => api("GET", `${base}/${n}/trace?feed=${encodeURIComponent(run.feed_name)}&channels=speed_kmh,throttle,brake,pos_x,pos_z&x=distance&step_m=5&ref=${ref.value}`)));
    charts_.replaceChildren();
    mapBox.replaceChildren();
    if (!traces.length) return;
    const boxes = ["speed", "pedals", "delta"].map((n) => { const b = el("div", { id: `chart-${n}` }); charts_.append(b); return b; });
    const join = (pick) => uPlot.join(traces.map((t) => [t.distance_m, ...pick(t)]));
    const lapSeries = (suffix, width) => chosen.map((n, k) => ({ label: `lap ${n}${suffix}`, color: COLORS[k % COLORS.length], width }));
    chart("speed", boxes[0], "Speed (km/h) against distance (m)", join((t) => [t.channels.speed_kmh]), lapSeries("", 1.5), { xLabel: "m" });
    chart("pedals", boxes[1], "Throttle and brake (0–1) against distance (m)", join((t) => [t.channels.throttle, t.channels.brake]),
      chosen.flatMap((n, k) => [{ label: `lap ${n} throttle`, color: COLORS[k % COLORS.length] }, { label: `lap ${n} brake`, color: COLORS[k % COLORS.length], width: 3 }]), { xLabel: "m", height: 180 });
    chart("delta", boxes[2], `Time delta to lap ${ref.value} (s; above 0: slower)`, join((t) => [t.ref.delta_s]), lapSeries("", 1.5), { xLabel: "m", height: 180 });
    // the map of the reference lap (or the first chosen): braking in red, numbered corners or zones
    const at = chosen.indexOf(Number(ref.value));
    const shown = traces[at >= 0 ? at : 0], shownLap = chosen[at >= 0 ? at : 0];
    const x = shown.channels.pos_x, z = shown.channels.pos_z;
    let markers = [];
    if (uc === "track_map") markers = (a.corners || []).map((c) => ({ x: c.x, z: c.z, label: c.number }));
    else if (uc === "braking_analysis") markers = (a.zones || []).map((zone) => {
      const k = nearest(shown.distance_m, zone.distance_m);
      return { x: x[k], z: z[k], label: zone.number, color: "#c8102e" };
    }).filter((m) => m.x !== null);
    mapBox.append(el("p", { class: "muted" }, `Lap ${shownLap}: braking in red${markers.length ? (uc === "track_map" ? ", corners numbered" : ", braking zones numbered") : ""}.`));
    trackMap("track", mapBox, x, z, { brake: shown.channels.brake, markers });
  });
  box.addEventListener("change", draw);
  await draw();
}

function nearest(xs, v) {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (Math.abs(xs[i] - v) < Math.abs(xs[best] - v)) best = i;
  return best;
}

// ---- routing ---------------------------------------------------------------------------------

const VIEWS = { live: showLive, recordings: showRecordings, sessions: showSessions, session: showSession };

async function route() {
  stopLive();
  destroyCharts();
  clearError();
  delete main().dataset.shown;
  const [name, arg] = (location.hash.slice(1) || "live").split("/");
  const view = VIEWS[name] ? name : "live";
  state.view = view;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === (view === "session" ? "sessions" : view));
  try {
    await VIEWS[view](arg);
  } catch (err) {
    showError(err);
    main().replaceChildren(el("p", { class: "muted" }, "This view could not be shown: see the message above."));
  }
}

async function start() {
  try {
    const config = await api("GET", "/ui/config.json");
    state.tokenRequired = config.token_required;
  } catch (err) { showError(err); }
  document.getElementById("token-state").hidden = !state.token;
  window.addEventListener("hashchange", route);
  await route();
}

start();
