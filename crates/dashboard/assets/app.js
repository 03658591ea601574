// ttcbench dashboard: fetches aggregates from the JSON API (docs/dashboard.md), draws tables and SVG
// charts, and follows the latest run through server-sent events. No framework, no network beyond this server.
"use strict";

const $ = (sel) => document.querySelector(sel);
const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"];
const SVGNS = "http://www.w3.org/2000/svg";

const state = {
  runs: [], selected: [], summary: null, kpis: null,
  sort: { col: "policy", dir: 1 },
  requestFilter: { policy: "", suite: "", status: "", offset: 0 },
  colors: new Map(),
  live: { runId: null, rows: [] },
};

// ------------------------------------------------------------------------------------------ helpers

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
const num = (v) => typeof v === "number" && isFinite(v);
// Formats shared with the browser test: latency in ms with 1 decimal, quality with 3, rates with 1.
const fmtMs = (s) => (num(s) ? (s * 1000).toFixed(1) : "–");
const fmtQ = (v) => (num(v) ? v.toFixed(3) : "–");
const fmtRate = (v) => (num(v) ? v.toFixed(1) : "–");
// Dollars: sub-cent prices in scientific notation so they do not all read $0.00.
const fmtUsd = (v) => (!num(v) ? "–" : v !== 0 && Math.abs(v) < 0.01 ? "$" + v.toExponential(2) : "$" + v.toFixed(4));
const fmtPct = (v) => (num(v) ? (v * 100).toFixed(1) + "%" : "–");

function colorOf(policy) {
  if (!state.colors.has(policy)) state.colors.set(policy, PALETTE[state.colors.size % PALETTE.length]);
  return state.colors.get(policy);
}

async function api(path) {
  const res = await fetch(path, { cache: "no-store" });
  const body = await res.json().catch(() => ({ error: res.statusText }));
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function showError(e) {
  const el = $("#error");
  if (!e) { el.hidden = true; return; }
  el.textContent = String(e.message || e);
  el.hidden = false;
}

function showWarnings(list) {
  const el = $("#warnings");
  el.hidden = !list.length;
  el.innerHTML = list.map((w) => "&#9888; " + esc(w)).join("<br>");
}

const runParam = () => encodeURIComponent(state.selected.join(","));

function fillSelect(sel, values, keepFirst = true) {
  const el = $(sel);
  const current = el.value;
  const fixed = keepFirst ? [...el.options].slice(0, 1).map((o) => o.outerHTML).join("") : "";
  el.innerHTML = fixed + values.map((v) => `<option value="${esc(v)}">${esc(v)}</option>`).join("");
  if ([...el.options].some((o) => o.value === current)) el.value = current;
}

function el(tag, attrs = {}, parent) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// "Nice" axis ticks (Heckbert, Graphics Gems 1990).
function ticks(lo, hi, count = 5) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

// An SVG frame with axes; returns { svg, x, y, g } where x/y map data to pixels.
function frame(container, xDomain, yDomain, opts = {}) {
  const W = opts.width || 560, H = opts.height || 300, m = { l: 54, r: 14, t: 12, b: 40 };
  container.innerHTML = "";
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, container);
  const [x0, x1] = xDomain, [y0, y1] = yDomain;
  const x = (v) => m.l + ((v - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
  const y = (v) => H - m.b - ((v - y0) / (y1 - y0 || 1)) * (H - m.t - m.b);
  const axis = el("g", { class: "axis" }, svg);
  for (const t of ticks(x0, x1)) {
    el("line", { x1: x(t), x2: x(t), y1: m.t, y2: H - m.b, class: "grid-line" }, axis);
    el("text", { x: x(t), y: H - m.b + 14, "text-anchor": "middle" }, axis).textContent = opts.xFmt ? opts.xFmt(t) : t;
  }
  for (const t of ticks(y0, y1)) {
    el("line", { x1: m.l, x2: W - m.r, y1: y(t), y2: y(t), class: "grid-line" }, axis);
    el("text", { x: m.l - 6, y: y(t) + 4, "text-anchor": "end" }, axis).textContent = opts.yFmt ? opts.yFmt(t) : t;
  }
  el("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b }, axis);
  el("line", { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b }, axis);
  if (opts.xLabel) el("text", { x: (m.l + W - m.r) / 2, y: H - 6, "text-anchor": "middle" }, axis).textContent = opts.xLabel;
  if (opts.yLabel) el("text", { x: 12, y: (m.t + H - m.b) / 2, transform: `rotate(-90 12 ${(m.t + H - m.b) / 2})`, "text-anchor": "middle" }, axis).textContent = opts.yLabel;
  return { svg, x, y, W, H, m };
}

function padded(values, pad = 0.08, zero = false) {
  const v = values.filter(num);
  if (!v.length) return [0, 1];
  let lo = Math.min(...v), hi = Math.max(...v);
  if (zero) lo = Math.min(0, lo);
  const span = hi - lo || Math.abs(hi) || 1;
  return [zero ? lo : lo - span * pad, hi + span * pad];
}

function legend(svg, names, x, y) {
  const g = el("g", { class: "legend" }, svg);
  names.forEach((n, i) => {
    el("rect", { x, y: y + i * 15, width: 10, height: 10, fill: colorOf(n) }, g);
    el("text", { x: x + 14, y: y + i * 15 + 9 }, g).textContent = n;
  });
}

function tooltip(evt, text) {
  const t = $("#tooltip");
  if (!text) { t.hidden = true; return; }
  t.textContent = text;
  t.style.left = evt.clientX + 12 + "px";
  t.style.top = evt.clientY + 12 + "px";
  t.hidden = false;
}

// --------------------------------------------------------------------------------------------- runs

async function loadRuns() {
  const data = await api("/api/runs");
  $("#results-dir").textContent = data.results_dir;
  state.runs = data.runs;
  $("#empty").hidden = data.runs.length > 0;
  $("#empty-hint").textContent = data.hint || "";
  for (const s of document.querySelectorAll("main > section:not(#empty), main > .grid")) s.hidden = data.runs.length === 0;
  const known = new Set(data.runs.map((r) => r.run_id));
  state.selected = state.selected.filter((id) => known.has(id));
  if (!state.selected.length && data.runs.length) state.selected = [data.runs[0].run_id];
  renderRuns();
  showWarnings(data.runs.flatMap((r) => r.warnings.map((w) => `${r.run_id}: ${w}`)));
}

function renderRuns() {
  const tbody = $("#runs-table tbody");
  tbody.innerHTML = state.runs.map((r) => `
    <tr data-run="${esc(r.run_id)}">
      <td><input type="checkbox" class="run-select" data-run="${esc(r.run_id)}" ${state.selected.includes(r.run_id) ? "checked" : ""}></td>
      <td class="text">${esc(r.run_id)}</td><td class="text">${esc(r.started_at || "")}</td>
      <td class="text">${esc(r.model || "")}${r.weights ? " (" + esc(r.weights) + ")" : ""}</td><td class="text">${esc(r.backend || "")}</td>
      <td class="text" title="${esc(r.policies.join(", "))}">${r.policies.length}: ${esc(r.policies.slice(0, 3).join(", "))}${r.policies.length > 3 ? ", …" : ""}</td>
      <td>${r.n_records}${r.planned ? " / " + r.planned : ""}</td><td class="${r.n_errors ? "status-error" : ""}">${r.n_errors}</td>
      <td class="text ${r.status === "running" ? "status-running" : ""}">${esc(r.status)}${r.warnings.length ? " &#9888;" : ""}</td>
      <td class="text muted">${esc((r.config_hash || "").slice(0, 10))}</td>
    </tr>`).join("");
  for (const cb of tbody.querySelectorAll(".run-select")) {
    cb.addEventListener("change", () => {
      const id = cb.dataset.run;
      state.selected = cb.checked ? [...new Set([...state.selected, id])] : state.selected.filter((x) => x !== id);
      state.requestFilter.offset = 0;
      refreshSelected();
    });
  }
}

// ------------------------------------------------------------------------------------- comparison

const COLUMNS = [
  { key: "run_id", label: "Run", text: true, get: (g) => g.run_id, multiRun: true },
  { key: "policy", label: "Policy", text: true, get: (g) => g.policy },
  { key: "suite", label: "Suite", text: true, get: (g) => g.suite },
  { key: "n", label: "n", get: (g) => g.n, fmt: (v) => v },
  { key: "error_rate", label: "Errors", get: (g) => g.error_rate, fmt: fmtPct, kpi: "error_rate" },
  { key: "ttft_p50", label: "TTFT p50 (ms)", get: (g) => g.ttft_s.p50, fmt: fmtMs, kpi: "p50 ttft_s" },
  { key: "ttft_p95", label: "TTFT p95 (ms)", get: (g) => g.ttft_s.p95, fmt: fmtMs, kpi: "p95 ttft_s" },
  { key: "e2e_p50", label: "E2E p50 (ms)", get: (g) => g.e2e_s.p50, fmt: fmtMs, kpi: "p50 e2e_s" },
  { key: "e2e_p95", label: "E2E p95 (ms)", get: (g) => g.e2e_s.p95, fmt: fmtMs, kpi: "p95 e2e_s" },
  { key: "tpot_p50", label: "TPOT p50 (ms)", get: (g) => g.tpot_s.p50, fmt: fmtMs, kpi: "p50 tpot_s" },
  { key: "output_tok_s", label: "Output tok/s", get: (g) => g.output_tok_s, fmt: fmtRate, kpi: "output_tok_s" },
  { key: "goodput", label: "Goodput (req/s)", get: (g) => g.goodput, fmt: (v) => (num(v) ? v.toFixed(2) : "–"), kpi: "goodput" },
  { key: "quality", label: "Quality", get: (g) => (g.primary_metric && g.quality[g.primary_metric] ? g.quality[g.primary_metric].value : null), quality: true },
  { key: "tok_per_correct", label: "Out tok / correct", get: (g) => g.output_tokens_per_correct, fmt: fmtRate },
  { key: "cost_request", label: "$ / request", get: (g) => (g.cost ? g.cost.per_request_usd : null), fmt: fmtUsd, cost: true },
  { key: "cost_1m", label: "$ / 1M out tok", get: (g) => (g.cost ? g.cost.per_1m_output_usd : null), fmt: fmtUsd, cost: true },
  { key: "cost_correct", label: "$ / correct", get: (g) => (g.cost ? g.cost.per_correct_usd : null), fmt: fmtUsd, cost: true },
  { key: "pareto", label: "Pareto", get: (g) => (g.pareto_optimal ? 1 : 0), fmt: (v) => (v ? "&#9733;" : "") },
];

// KPI outcomes by run/policy/suite/metric label; a policy-wide KPI (suite null) applies to each suite row.
function kpiOutcome(g, label) {
  if (!state.kpis) return null;
  let out = null;
  for (const k of state.kpis.results) {
    if (k.run_id !== g.run_id || k.policy !== g.policy || k.metric !== label) continue;
    if (k.suite !== null && k.suite !== g.suite) continue;
    if (k.outcome === "fail") return "fail";
    if (k.outcome === "pass") out = "pass";
  }
  return out;
}

function renderCompare() {
  const s = state.summary;
  if (!s) return;
  const multi = s.runs.length > 1;
  // Cost columns appear when a run set a price (`cost:` in its run file).
  const priced = s.groups.some((g) => g.cost);
  const cols = COLUMNS.filter((c) => (!c.multiRun || multi) && (!c.cost || priced));
  $("#compare-runs").textContent = s.runs.join(", ") + ` · ${s.n_records} records`;
  $("#slo").textContent = s.slo;
  const thead = $("#compare-table thead");
  thead.innerHTML = "<tr>" + cols.map((c) => {
    const sorted = state.sort.col === c.key ? (state.sort.dir > 0 ? "sorted-asc" : "sorted-desc") : "";
    return `<th data-col="${c.key}" class="${c.text ? "text " : ""}${sorted}">${c.label}</th>`;
  }).join("") + "</tr>";
  for (const th of thead.querySelectorAll("th")) {
    th.addEventListener("click", () => {
      const col = th.dataset.col;
      state.sort = { col, dir: state.sort.col === col ? -state.sort.dir : 1 };
      renderCompare();
    });
  }
  const col = COLUMNS.find((c) => c.key === state.sort.col) || COLUMNS[1];
  const groups = [...s.groups].sort((a, b) => {
    const va = col.get(a), vb = col.get(b);
    if (va === vb) return 0;
    if (va === null || va === undefined) return 1;
    if (vb === null || vb === undefined) return -1;
    return (va < vb ? -1 : 1) * state.sort.dir;
  });
  $("#compare-table tbody").innerHTML = groups.map((g) => {
    const cells = cols.map((c) => {
      const v = c.get(g);
      if (c.text) return `<td class="text" data-col="${c.key}">${esc(v)}</td>`;
      if (c.quality) {
        const m = g.primary_metric, e = m ? g.quality[m] : null;
        const outcome = m ? kpiOutcome(g, "mean " + m) : null;
        const ci = e ? ` <span class="ci">[${fmtQ(e.lo)}, ${fmtQ(e.hi)}]</span>` : "";
        return `<td data-col="quality" data-value="${e ? e.value : ""}" class="${outcome || ""}" title="${esc(m || "")}">${e ? fmtQ(e.value) : "–"}${ci}</td>`;
      }
      const outcome = c.kpi ? kpiOutcome(g, c.kpi) : null;
      return `<td data-col="${c.key}" data-value="${num(v) ? v : ""}" class="${outcome || ""}">${c.fmt(v)}</td>`;
    }).join("");
    return `<tr data-run="${esc(g.run_id)}" data-policy="${esc(g.policy)}" data-suite="${esc(g.suite)}">${cells}</tr>`;
  }).join("");
  for (const tr of $("#compare-table tbody").querySelectorAll("tr")) {
    tr.addEventListener("click", () => {
      Object.assign(state.requestFilter, { policy: tr.dataset.policy, suite: tr.dataset.suite, offset: 0 });
      $("#req-policy").value = tr.dataset.policy;
      $("#req-suite").value = tr.dataset.suite;
      loadRequests();
      $("#requests").scrollIntoView({ behavior: "smooth" });
    });
  }
}

function renderKpiList() {
  const k = state.kpis;
  if (!k) return;
  $("#kpi-source").textContent = k.source;
  $("#kpi-list").innerHTML = `<strong>KPIs: ${k.passed} pass, ${k.failed} fail, ${k.skipped} skipped</strong> ` + k.results.map((r) =>
    `<span class="${r.outcome}" title="${esc(r.note || "")}">${esc(r.policy)}${r.suite ? "/" + esc(r.suite) : ""}: ${esc(r.kpi)} ${num(r.value) ? (+r.value.toPrecision(4)) : "n/a"} ${esc(r.requirement)}</span>`).join("");
}

// ------------------------------------------------------------------------------------------- load

// Latency-vs-offered-load curves per policy (sweep levels, else unsaturated capacity probes), capacity bars,
// the probes and the recommendation. Hidden for runs without a sweep or a capacity search.
function loadCurves(s) {
  const curves = new Map();
  const add = (policy, rate, e2e, ttft) => {
    if (!curves.has(policy)) curves.set(policy, []);
    curves.get(policy).push({ rate, e2e, ttft });
  };
  const sweep = s.groups.filter((g) => num(g.offered_rate));
  if (sweep.length) {
    for (const g of sweep) add(g.policy, g.offered_rate, [g.e2e_s.p50, g.e2e_s.p95], [g.ttft_s.p50, g.ttft_s.p95]);
  } else {
    for (const c of s.capacity || []) {
      for (const p of c.probes.filter((p) => !p.stats.saturation)) {
        add(c.policy, p.stats.offered_rate, [p.stats.e2e_s.p50, p.stats.e2e_s.p95], [p.stats.ttft_s.p50, p.stats.ttft_s.p95]);
      }
    }
  }
  for (const v of curves.values()) v.sort((a, b) => a.rate - b.rate);
  return curves;
}

function sloBound(s, field) {
  const slo = (s.capacity || [])[0]?.slo || "";
  const m = slo.match(new RegExp("p\\d+(?:\\.\\d+)?_" + field + "<=?([0-9.eE+-]+)"));
  return m ? +m[1] : null;
}

function drawLoadChart(container, curves, key, bound) {
  const pts = [...curves.values()].flat();
  const xs = pts.map((p) => p.rate), ys = pts.flatMap((p) => p[key]).concat(num(bound) ? [bound] : []);
  const f = frame(container, padded(xs, 0.05, true), padded(ys, 0.08, true), { xLabel: "offered load (requests/s)", yLabel: "seconds" });
  if (num(bound)) el("line", { x1: f.m.l, x2: f.W - f.m.r, y1: f.y(bound), y2: f.y(bound), stroke: "#dc2626", "stroke-dasharray": "3 3" }, f.svg);
  for (const [policy, v] of curves) {
    [1, 0].forEach((i) => {
      const line = v.filter((p) => num(p[key][i])).map((p) => `${f.x(p.rate)},${f.y(p[key][i])}`).join(" ");
      el("polyline", { points: line, fill: "none", stroke: colorOf(policy), "stroke-width": 2, "stroke-dasharray": i ? "" : "5 3" }, f.svg);
    });
  }
  legend(f.svg, [...curves.keys()], f.W - f.m.r - 150, f.m.t + 4);
}

function renderLoad() {
  const s = state.summary;
  const section = $("#load");
  const curves = s ? loadCurves(s) : new Map();
  const caps = s ? s.capacity || [] : [];
  section.hidden = !curves.size && !caps.length;
  if (section.hidden) return;
  drawLoadChart($("#load-e2e"), curves, "e2e", sloBound(s, "e2e_s"));
  drawLoadChart($("#load-ttft"), curves, "ttft", sloBound(s, "ttft_s"));
  const bars = $("#capacity-bars");
  bars.innerHTML = "";
  if (caps.length) {
    const f = frame(bars, [0, caps.length], padded(caps.map((c) => c.capacity_rps), 0.1, true), { xFmt: () => "", yLabel: "requests/s" });
    caps.forEach((c, i) => {
      const x0 = f.x(i + 0.15), x1 = f.x(i + 0.85), y = f.y(c.capacity_rps), base = f.y(0);
      const r = el("rect", { x: x0, y, width: x1 - x0, height: Math.max(0, base - y), fill: colorOf(c.policy) }, f.svg);
      r.addEventListener("mousemove", (e) => tooltip(e, `${c.policy}: ${c.capacity_rps} r/s (SLO ${c.slo})`));
      r.addEventListener("mouseleave", () => tooltip(null));
      el("text", { x: (x0 + x1) / 2, y: base + 14, "text-anchor": "middle" }, f.svg).textContent = c.policy;
    });
  }
  $("#recommendation").innerHTML = (s.recommendations || []).map((r) =>
    `<p><strong>Recommendation (${esc(r.slo)}):</strong> ${esc(r.paragraph.replace(/\*\*|`/g, ""))}</p>`).join("");
  $("#probe-table tbody").innerHTML = caps.flatMap((c) => c.probes.map((p) => {
    const v = p.stats.saturation ? "saturated: " + p.stats.saturation : p.pass ? "pass" : "fail: " + p.failed.join(", ");
    return `<tr><td class="text">${esc(c.policy)}</td><td>${fmtQ(p.stats.offered_rate)}</td><td>${fmtQ(p.stats.achieved_rate)}</td><td>${p.stats.n}</td>` +
      `<td>${fmtMs(p.stats.ttft_s.p95)}</td><td>${fmtMs(p.stats.e2e_s.p50)}</td><td>${fmtMs(p.stats.e2e_s.p95)}</td><td class="text ${p.pass ? "pass" : "fail"}">${esc(v)}</td></tr>`;
  })).join("");
}

// Each router's requests by route (hidden without routers).
function renderRoutes() {
  const routes = (state.summary && state.summary.routes) || [];
  $("#routes").hidden = !routes.length;
  $("#routes-table tbody").innerHTML = routes.map((g) => {
    const rules = Object.entries(g.rules).map(([r, n]) => Object.keys(g.rules).length > 1 ? `${r} (${n})` : r).join(", ");
    const q = g.primary_quality == null ? "-" : `${g.primary_metric} ${fmtQ(g.primary_quality)}`;
    return `<tr><td class="text">${esc(g.policy)}</td><td class="text">${esc(g.suite)}</td><td class="text">${esc(g.routed_policy)}</td>` +
      `<td class="text">${esc(rules)}</td><td>${g.n}</td><td>${(100 * g.share).toFixed(1)}%</td><td>${fmtMs(g.e2e_s.p50)}</td><td>${fmtMs(g.e2e_s.p95)}</td><td>${esc(q)}</td></tr>`;
  }).join("");
}

// Each policy's fidelity pooled over suites (hidden when no record carries fidelity).
function renderFidelity() {
  const rows = (state.summary && state.summary.fidelity) || [];
  $("#fidelity").hidden = !rows.length;
  const ci = (e) => e ? `${fmtQ(e.value)} [${fmtQ(e.lo)}, ${fmtQ(e.hi)}]` : "-";
  $("#fidelity-table tbody").innerHTML = rows.map((f) =>
    `<tr><td class="text">${esc(state.selected.length > 1 ? `${f.policy} (${f.run_id})` : f.policy)}</td><td class="text">${esc(f.suites.join(" + "))}</td><td>${f.n}</td>` +
    `<td>${ci(f.metrics.fidelity_top1)}</td><td>${ci(f.metrics.fidelity_kl)}</td><td>${ci(f.metrics.fidelity_exact_match)}</td></tr>`).join("");
}

// ------------------------------------------------------------------------------------- trade-offs

async function loadTradeoffs() {
  const latency = $("#latency-axis").value || "e2e_p95";
  const metric = $("#quality-metric").value;
  const data = await api(`/api/tradeoffs?run=${runParam()}&latency=${latency}&metric=${encodeURIComponent(metric)}`);
  const suite = $("#tradeoff-suite").value;
  const pts = data.points.filter((p) => !suite || p.suite === suite);
  const box = $("#scatter");
  if (!pts.length) { box.innerHTML = `<p class="muted">No policy has both a ${esc(latency)} latency and a quality score${metric ? " for " + esc(metric) : ""}.</p>`; return; }
  const f = frame(box, padded(pts.map((p) => p.latency_s * 1000), 0.1), padded(pts.flatMap((p) => [p.quality_lo, p.quality_hi]), 0.1),
    { width: 900, height: 340, xLabel: `${latency.replace("_", " ")} latency (ms)`, yLabel: metric || "primary quality metric" });
  // Frontier per run x suite: the Pareto-optimal points in latency order, as a staircase.
  const fronts = new Map();
  for (const p of pts.filter((p) => p.pareto)) {
    const k = p.run_id + "\u0000" + p.suite;
    if (!fronts.has(k)) fronts.set(k, []);
    fronts.get(k).push(p);
  }
  for (const front of fronts.values()) {
    front.sort((a, b) => a.latency_s - b.latency_s);
    let d = "";
    front.forEach((p, i) => {
      const X = f.x(p.latency_s * 1000), Y = f.y(p.quality);
      d += i === 0 ? `M${X},${Y}` : `H${X}V${Y}`;
    });
    el("path", { d, class: "frontier" }, f.svg);
  }
  for (const p of pts) {
    const X = f.x(p.latency_s * 1000);
    el("line", { x1: X, x2: X, y1: f.y(p.quality_lo), y2: f.y(p.quality_hi), stroke: colorOf(p.policy), "stroke-opacity": 0.4 }, f.svg);
    const c = el("circle", { cx: X, cy: f.y(p.quality), r: 6, fill: colorOf(p.policy), class: "point" + (p.pareto ? " pareto" : ""),
      "data-policy": p.policy, "data-suite": p.suite }, f.svg);
    const text = `${p.policy} · ${p.suite}${state.selected.length > 1 ? " · " + p.run_id : ""}\n${latency}: ${fmtMs(p.latency_s)} ms\n` +
      `${p.metric}: ${fmtQ(p.quality)} [${fmtQ(p.quality_lo)}, ${fmtQ(p.quality_hi)}]\nn = ${p.n}${p.pareto ? "\nPareto-optimal" : ""}`;
    c.addEventListener("mousemove", (e) => tooltip(e, text));
    c.addEventListener("mouseleave", (e) => tooltip(e, null));
  }
  legend(f.svg, [...new Set(pts.map((p) => p.policy))], f.W - 150, 16);
}

// ----------------------------------------------------------------------------------- distributions

async function loadDistributions() {
  const suite = $("#dist-suite").value;
  const data = await api(`/api/distributions?run=${runParam()}&suite=${encodeURIComponent(suite)}`);
  const name = (d) => (state.selected.length > 1 ? `${d.policy} (${d.run_id})` : d.policy);
  for (const [key, box] of [["ttft_s", "#cdf-ttft"], ["e2e_s", "#cdf-e2e"]]) {
    const series = data.policies.filter((d) => d[key].points.length);
    if (!series.length) { $(box).innerHTML = '<p class="muted">No successful requests.</p>'; continue; }
    const xs = series.flatMap((d) => d[key].points.map((p) => p[0] * 1000));
    const f = frame($(box), padded(xs, 0.02), [0, 1], { width: 420, height: 260, xLabel: "ms", yLabel: "fraction of requests" });
    for (const d of series) {
      const pts = d[key].points.map(([v, q]) => `${f.x(v * 1000)},${f.y(q)}`).join(" ");
      const line = el("polyline", { points: pts, fill: "none", stroke: colorOf(d.policy), "stroke-width": 2, class: "cdf", "data-policy": d.policy }, f.svg);
      line.addEventListener("mousemove", (e) => tooltip(e, `${name(d)}: n = ${d[key].n}`));
      line.addEventListener("mouseleave", (e) => tooltip(e, null));
    }
    legend(f.svg, [...new Set(series.map((d) => d.policy))], f.W - 130, 150);
  }
  // Box plot: whiskers p5-p95, box p25-p75, line at the median; the label is the aggregate throughput.
  const rows = data.policies.filter((d) => d.throughput_tok_s.n);
  const box = $("#tput-box");
  if (!rows.length) { box.innerHTML = '<p class="muted">No successful requests.</p>'; return; }
  const xs = rows.flatMap((d) => [d.throughput_tok_s.p5, d.throughput_tok_s.p95]);
  const H = Math.max(140, 30 * rows.length + 60);
  const f = frame(box, padded(xs, 0.05, true), [0, rows.length], { width: 420, height: H, xLabel: "tok/s per request", yFmt: () => "" });
  rows.forEach((d, i) => {
    const b = d.throughput_tok_s, yc = f.y(i + 0.5), c = colorOf(d.policy);
    el("line", { x1: f.x(b.p5), x2: f.x(b.p95), y1: yc, y2: yc, stroke: c }, f.svg);
    el("rect", { x: f.x(b.p25), y: yc - 8, width: Math.max(1, f.x(b.p75) - f.x(b.p25)), height: 16, fill: c, "fill-opacity": 0.3, stroke: c }, f.svg);
    el("line", { x1: f.x(b.p50), x2: f.x(b.p50), y1: yc - 8, y2: yc + 8, stroke: c, "stroke-width": 2 }, f.svg);
    el("text", { x: f.m.l + 4, y: yc - 10 }, f.svg).textContent = `${name(d)} · aggregate ${fmtRate(d.output_tok_s)} tok/s`;
  });
}

// ------------------------------------------------------------------------------------------ trends

async function loadTrends() {
  const data = await api("/api/trends");
  fillSelect("#trend-metric", data.metrics, false);
  const metric = $("#trend-metric").value || data.metrics[0];
  const runs = [...new Set(data.points.map((p) => p.run_id))];
  const box = $("#trend-chart");
  const pts = data.points.filter((p) => num(p.values[metric]));
  if (!pts.length) { box.innerHTML = '<p class="muted">No runs with this metric yet.</p>'; return; }
  const isLatency = metric.endsWith("_s");
  const scale = isLatency ? 1000 : 1;
  const f = frame(box, [-0.5, runs.length - 0.5], padded(pts.map((p) => p.values[metric] * scale), 0.1),
    { width: 900, height: 280, xFmt: () => "", yLabel: metric + (isLatency ? " (ms)" : "") });
  runs.forEach((r, i) => {
    el("text", { x: f.x(i), y: f.H - f.m.b + 14, "text-anchor": "middle" }, f.svg).textContent = r.length > 22 ? r.slice(0, 21) + "…" : r;
  });
  const byPolicy = new Map();
  for (const p of pts) {
    if (!byPolicy.has(p.policy)) byPolicy.set(p.policy, []);
    byPolicy.get(p.policy).push(p);
  }
  for (const [policy, ps] of byPolicy) {
    const xy = ps.map((p) => [f.x(runs.indexOf(p.run_id)), f.y(p.values[metric] * scale), p]);
    el("polyline", { points: xy.map(([x, y]) => `${x},${y}`).join(" "), fill: "none", stroke: colorOf(policy), "stroke-width": 2 }, f.svg);
    for (const [x, y, p] of xy) {
      const c = el("circle", { cx: x, cy: y, r: 4, fill: colorOf(policy) }, f.svg);
      const label = `${policy} · ${p.run_id}\n${p.started_at || ""}\n${metric}${metric === "quality" && p.quality_metric ? " (" + p.quality_metric + ")" : ""}: ${+(p.values[metric] * scale).toPrecision(4)}\nn = ${p.n}`;
      c.addEventListener("mousemove", (e) => tooltip(e, label));
      c.addEventListener("mouseleave", (e) => tooltip(e, null));
    }
  }
  legend(f.svg, [...byPolicy.keys()], f.W - 150, 16);
}

// ---------------------------------------------------------------------------------------- requests

function recordRowHtml(r, withId) {
  const status = r.status === "error" ? `<span class="status-error">${esc(r.error_class || "error")}</span>` : "ok";
  return `<tr data-id="${r.id ?? ""}" data-run="${esc(r.run_id)}" data-policy="${esc(r.policy)}" data-suite="${esc(r.suite)}" data-sample="${esc(r.sample_id)}">` +
    (withId ? `<td>${r.id ?? ""}</td>` : "") +
    `<td class="text">${esc(r.policy)}</td><td class="text">${esc(r.suite)}</td>` + (withId ? `<td class="text">${esc(r.task || "")}</td>` : "") +
    `<td class="text">${esc(r.sample_id)}</td><td class="text">${status}</td><td>${fmtMs(r.ttft_s)}</td><td>${fmtMs(r.e2e_s)}</td>` +
    (withId ? `<td>${fmtMs(r.tpot_s)}</td>` : "") + `<td>${r.output_tokens ?? "–"}</td>` + (withId ? `<td>${fmtRate(r.throughput_tok_s)}</td>` : "") +
    `<td title="${esc(r.quality_metric || "")}">${fmtQ(r.quality)}</td></tr>`;
}

function bindDrill(tbody) {
  for (const tr of tbody.querySelectorAll("tr")) {
    if (tr.dataset.bound) continue;
    tr.dataset.bound = "1";
    tr.addEventListener("click", () => openDrill(tr.dataset));
  }
}

async function loadRequests() {
  if (state.selected.length !== 1) {
    $("#req-table tbody").innerHTML = '<tr><td colspan="12" class="text muted">Select exactly one run to browse its requests.</td></tr>';
    return;
  }
  const f = state.requestFilter;
  const q = `run=${runParam()}&policy=${encodeURIComponent(f.policy)}&suite=${encodeURIComponent(f.suite)}&status=${f.status}&offset=${f.offset}&limit=50`;
  const page = await api("/api/records?" + q);
  $("#req-table tbody").innerHTML = page.rows.map((r) => recordRowHtml(r, true)).join("") ||
    '<tr><td colspan="12" class="text muted">No requests match.</td></tr>';
  bindDrill($("#req-table tbody"));
  $("#req-page").textContent = page.total ? `${page.offset + 1}–${page.offset + page.rows.length} of ${page.total}` : "0";
  $("#req-prev").disabled = page.offset === 0;
  $("#req-next").disabled = page.offset + page.rows.length >= page.total;
}

async function openDrill(d) {
  const q = d.id !== "" && d.id !== undefined
    ? `run=${encodeURIComponent(d.run)}&id=${d.id}`
    : `run=${encodeURIComponent(d.run)}&policy=${encodeURIComponent(d.policy)}&suite=${encodeURIComponent(d.suite)}&sample=${encodeURIComponent(d.sample)}`;
  try {
    const { record: r, quality_metric } = await api("/api/record?" + q);
    $("#drill-title").textContent = `${r.policy} · ${r.suite}${r.task ? " / " + r.task : ""} · ${r.sample_id} (${r.status})`;
    $("#drill-prediction").textContent = r.prediction || (r.error_message ? "error: " + r.error_message : "");
    $("#drill-reference").textContent = r.reference ?? "(no reference)";
    const metrics = Object.entries(r.metrics).concat(Object.entries(r.extra_metrics).map(([k, v]) => ["extra." + k, v]));
    $("#drill-metrics tbody").innerHTML = metrics.map(([k, v]) =>
      `<tr><td class="text">${esc(k)}${k === quality_metric ? " (primary)" : ""}</td><td>${fmtQ(v)}</td></tr>`).join("") || '<tr><td class="text muted">not scored</td></tr>';
    const stats = Object.entries(r.policy_stats).filter(([, v]) => v !== null && v !== undefined);
    const rows = [["TTFT (ms)", fmtMs(r.ttft_s)], ["E2E (ms)", fmtMs(r.e2e_s)], ["TPOT (ms)", fmtMs(r.tpot_s)], ["ITL mean (ms)", fmtMs(r.itl_mean_s)],
      ["ITL p99 (ms)", fmtMs(r.itl_p99_s)], ["prompt / output tokens", `${r.prompt_tokens ?? "–"} / ${r.output_tokens ?? "–"} (${r.token_count_source || "?"})`],
      ["tok/s", fmtRate(r.throughput_tok_s)], ["attempts / backoff", `${r.attempts} / ${r.backoff_s.toFixed(2)} s`], ["finish", r.finish_reason || "–"],
      ["start offset (s)", r.start_offset_s.toFixed(3)], ["model", `${r.model}${r.weights ? " (" + r.weights + ")" : ""} · ${r.backend}`],
      ["params", r.params_json], ...stats.map(([k, v]) => [k, Array.isArray(v) ? v.join(" ") : String(v)])];
    $("#drill-timings tbody").innerHTML = rows.map(([k, v]) => `<tr><td class="text">${esc(k)}</td><td class="text">${esc(v)}</td></tr>`).join("");
    // Token arrival times: one tick per content chunk.
    const tt = r.token_times_s || [];
    const box = $("#drill-tokens");
    if (tt.length) {
      const f = frame(box, [0, Math.max(...tt) * 1000 * 1.05 || 1], [0, tt.length], { width: 420, height: 150, xLabel: "ms since send", yLabel: "chunks" });
      el("polyline", { points: tt.map((t, i) => `${f.x(t * 1000)},${f.y(i + 1)}`).join(" "), fill: "none", stroke: colorOf(r.policy), "stroke-width": 2 }, f.svg);
    } else box.innerHTML = "";
    $("#drill").hidden = false;
  } catch (e) { showError(e); }
}

// -------------------------------------------------------------------------------------------- live

function renderLiveSummary(groups) {
  $("#live-summary tbody").innerHTML = groups.map((g) => {
    const m = g.primary_metric, e = m ? g.quality[m] : null;
    return `<tr data-policy="${esc(g.policy)}" data-suite="${esc(g.suite)}"><td class="text">${esc(g.policy)}</td><td class="text">${esc(g.suite)}</td><td>${g.n}</td>` +
      `<td>${g.n_error}</td><td>${fmtMs(g.e2e_s.p95)}</td><td>${e ? fmtQ(e.value) : "–"}</td></tr>`;
  }).join("");
}

function connectLive() {
  const source = new EventSource("/api/events");
  const on = (name, fn) => source.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  source.onopen = () => $("#live-dot").classList.add("on");
  source.onerror = () => $("#live-dot").classList.remove("on");
  on("run", (d) => {
    state.live = { runId: d.run_id, rows: [] };
    $("#live-run").textContent = d.run_id;
    $("#live-table tbody").innerHTML = "";
    if (!state.runs.some((r) => r.run_id === d.run_id)) loadRuns().then(refreshSelected).catch(showError);
  });
  on("empty", (d) => {
    $("#live-run").textContent = "(no run)";
    if (state.runs.length) loadRuns().catch(showError);
    else $("#empty-hint").textContent = $("#empty-hint").textContent || d.message;
  });
  on("records", (d) => {
    const tbody = $("#live-table tbody");
    const html = d.rows.slice().reverse().map((r) => recordRowHtml(r, false)).join("");
    tbody.insertAdjacentHTML("afterbegin", html);
    if (!d.initial) for (const tr of [...tbody.rows].slice(0, d.rows.length)) tr.classList.add("new");
    while (tbody.rows.length > 200) tbody.deleteRow(-1);
    bindDrill(tbody);
  });
  on("progress", (p) => {
    $("#live-done").textContent = p.planned ? `${p.done} / ${p.planned}` : String(p.done);
    $("#live-errors").textContent = p.errors;
    $("#live-tput").textContent = fmtRate(p.recent_tok_s);
    $("#live-tput-all").textContent = fmtRate(p.output_tok_s);
    $("#live-bar").style.width = p.planned ? Math.min(100, (100 * p.done) / p.planned) + "%" : "0";
    const row = state.runs.find((r) => r.run_id === p.run_id);
    if (row && (row.n_records !== p.done || row.status !== p.status)) {
      Object.assign(row, { n_records: p.done, n_errors: p.errors, status: p.status });
      renderRuns();
    }
  });
  on("runner", (p) => {
    $("#live-done").textContent = p.planned ? `${p.done} / ${p.planned}` : String(p.done);
    $("#live-errors").textContent = p.errors;
  });
  on("summary", (d) => {
    renderLiveSummary(d.groups);
    // The comparison table fills in too when it shows the live run.
    if (state.summary && state.selected.includes(d.run_id)) {
      const others = state.summary.groups.filter((g) => g.run_id !== d.run_id);
      state.summary.groups = others.concat(d.groups);
      state.summary.n_records = state.summary.groups.reduce((n, g) => n + g.n, 0);
      renderCompare();
      scheduleRefresh();
    }
  });
  on("warning", (d) => showWarnings(d.warnings.map((w) => `${d.run_id}: ${w}`)));
}

// Charts and KPIs follow the live run at most every 3 s (the table above updates immediately).
let refreshTimer = null;
function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refreshSelected(true).catch(showError); }, 3000);
}

// ---------------------------------------------------------------------------------------- main flow

async function refreshSelected(quiet) {
  if (!state.selected.length) {
    state.summary = null;
    $("#compare-table tbody").innerHTML = "";
    return;
  }
  try {
    const [summary, kpis] = await Promise.all([api(`/api/summary?run=${runParam()}`), api(`/api/kpis?run=${runParam()}`)]);
    state.summary = summary;
    state.kpis = kpis;
    fillSelect("#latency-axis", summary.latency_axes, false);
    if (!quiet && !$("#latency-axis").dataset.init) { $("#latency-axis").value = "e2e_p95"; $("#latency-axis").dataset.init = "1"; }
    fillSelect("#quality-metric", summary.quality_metrics);
    const suites = [...new Set(summary.groups.map((g) => g.suite))].sort();
    const policies = [...new Set(summary.groups.map((g) => g.policy))].sort();
    for (const s of ["#tradeoff-suite", "#dist-suite", "#req-suite"]) fillSelect(s, suites);
    // One point per policy by default: the first suite ("all" overlays every suite's front).
    if (!$("#tradeoff-suite").dataset.init && suites.length) { $("#tradeoff-suite").value = suites[0]; $("#tradeoff-suite").dataset.init = "1"; }
    fillSelect("#req-policy", policies);
    renderCompare();
    renderKpiList();
    renderLoad();
    renderRoutes();
    renderFidelity();
    await Promise.all([loadTradeoffs(), loadDistributions(), loadRequests()]);
    if (!quiet) showError(null);
  } catch (e) { showError(e); }
}

function bindControls() {
  $("#latency-axis").addEventListener("change", () => loadTradeoffs().catch(showError));
  $("#quality-metric").addEventListener("change", () => loadTradeoffs().catch(showError));
  $("#tradeoff-suite").addEventListener("change", () => loadTradeoffs().catch(showError));
  $("#dist-suite").addEventListener("change", () => loadDistributions().catch(showError));
  $("#trend-metric").addEventListener("change", () => loadTrends().catch(showError));
  const reqChange = () => {
    Object.assign(state.requestFilter, { policy: $("#req-policy").value, suite: $("#req-suite").value, status: $("#req-status").value, offset: 0 });
    loadRequests().catch(showError);
  };
  for (const s of ["#req-policy", "#req-suite", "#req-status"]) $(s).addEventListener("change", reqChange);
  $("#req-prev").addEventListener("click", () => { state.requestFilter.offset = Math.max(0, state.requestFilter.offset - 50); loadRequests().catch(showError); });
  $("#req-next").addEventListener("click", () => { state.requestFilter.offset += 50; loadRequests().catch(showError); });
  $("#drill-close").addEventListener("click", () => { $("#drill").hidden = true; });
  $("#drill").addEventListener("click", (e) => { if (e.target.id === "drill") $("#drill").hidden = true; });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("#drill").hidden = true; });
}

async function main() {
  bindControls();
  try {
    await loadRuns();
    await refreshSelected();
    await loadTrends();
  } catch (e) { showError(e); }
  connectLive();
  document.body.dataset.ready = "1";
}

main();
