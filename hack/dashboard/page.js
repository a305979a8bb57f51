// Draws each panel of the Grafana dashboard JSON from the Prometheus
// query_range API over [start, end]: the panel's title, its queries with
// $cluster set, legends from legendFormat, values in the panel's unit.
// window.renderDone turns true when every panel is drawn; window.renderErrors
// lists the queries Prometheus refused (render.mjs fails on any).
/* global uPlot */
(async () => {
  const q = new URLSearchParams(location.search);
  const cluster = q.get("cluster"), start = +q.get("start"), end = +q.get("end"), step = +q.get("step");
  const dash = await (await fetch("/dashboard.json")).json();
  window.renderErrors = [];
  document.getElementById("title").textContent = dash.title;
  const fmtTime = (s) => new Date(s * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  document.getElementById("sub").textContent =
    `cluster = ${cluster} · ${fmtTime(start)} to ${fmtTime(end)} · step ${step}s · ${q.get("note") || ""}`;
  document.getElementById("foot").textContent =
    "Drawn by hack/dashboard (make dashboard-picture) from config/monitoring/grafana-dashboard.json, " +
    "every value queried from a real Prometheus scraping a real local cluster. Not Grafana: same panels, queries, legends and units.";

  // Each unit scales a value to a readable magnitude; axes format all
  // their ticks with the decimals their spacing needs (90.01 d, 90.02 d).
  const IEC = [["TiB", 2 ** 40], ["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 1024], ["B", 1]];
  const SEC = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1], ["ms", 1e-3]];
  const SI = [["M", 1e6], ["k", 1e3], ["", 1]];
  const units = {
    bytes: { steps: IEC, suffix: "" },
    Bps: { steps: IEC, suffix: "/s" },
    s: { steps: SEC, suffix: "" },
    ops: { steps: SI, suffix: " ops/s" },
    short: { steps: SI, suffix: "" },
    none: { steps: SI, suffix: "" },
  };
  function pick(u, mag) {
    for (const [name, f] of u.steps) if (mag >= f) return [name, f];
    return u.steps[u.steps.length - 1];
  }
  function fmtWith(u, name, f, decimals, v) {
    const sep = u.steps === SI ? "" : " ";
    return (v / f).toFixed(decimals) + (name ? sep + name : "") + u.suffix;
  }
  // One value (a stat, a legend): up to 3 significant digits.
  function fmtOne(u, v) {
    if (v == null || isNaN(v)) return "–";
    const [name, f] = pick(u, Math.abs(v));
    const x = Math.abs(v / f);
    const d = Number.isInteger(v / f) ? 0 : x >= 100 ? 0 : x >= 10 ? 1 : 2;
    return fmtWith(u, name, f, d, v);
  }
  // Axis ticks: one unit for the axis, decimals from the tick spacing.
  function fmtAxis(u, vals) {
    const mag = Math.max(...vals.map((v) => Math.abs(v ?? 0)));
    const [name, f] = pick(u, mag);
    const spacing = vals.length > 1 ? Math.abs(vals[1] - vals[0]) / f : 1;
    const d = spacing > 0 ? Math.min(4, Math.max(0, -Math.floor(Math.log10(spacing)))) : 0;
    return vals.map((v) => (v == null ? "" : fmtWith(u, name, f, d, v)));
  }
  const legend = (fmt, metric) =>
    (fmt || JSON.stringify(metric)).replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k) => metric[k] ?? "");

  async function range(expr) {
    const p = new URLSearchParams({ query: expr.replaceAll("$cluster", cluster), start, end, step });
    const r = await (await fetch("/api/v1/query_range?" + p)).json();
    if (r.status !== "success") { window.renderErrors.push(`${expr}: ${r.error}`); return []; }
    return r.data.result;
  }

  const grid = document.getElementById("grid");
  const W = Math.floor((window.innerWidth - 16) / 24);
  const rows = new Map();
  const colors = ["#73bf69", "#f2cc0c", "#5794f2", "#ff780a", "#b877d9", "#f2495c", "#8ab8ff", "#fade2a", "#96d98d", "#ffa6b0"];
  for (const panel of dash.panels) {
    const g = panel.gridPos;
    // Grafana's grid (24 columns) as rows of panels: the row is the
    // panel's gridPos.y, its width gridPos.w; heights follow the legends.
    let row = rows.get(g.y);
    if (!row) {
      row = document.createElement("div");
      row.className = "row";
      rows.set(g.y, row);
      [...rows.keys()].sort((a, b) => a - b).forEach((y) => grid.appendChild(rows.get(y)));
    }
    const el = document.createElement("div");
    el.className = "panel";
    el.style.width = g.w * W - 6 + "px";
    el.style.minHeight = (panel.type === "stat" ? 90 : 250) + "px";
    row.appendChild(el);
    const h2 = document.createElement("h2");
    h2.textContent = panel.title;
    el.appendChild(h2);
    const u = units[panel.fieldConfig?.defaults?.unit || "none"] || units.none;
    const unit = (v) => fmtOne(u, v);
    const series = [];
    for (const t of panel.targets) {
      for (const s of await range(t.expr)) series.push({ name: legend(t.legendFormat, s.metric), values: s.values });
    }
    if (series.length === 0) {
      const p = document.createElement("p");
      p.className = "empty";
      p.textContent = "No data" + (panel.description ? " — " + panel.description : "");
      el.appendChild(p);
      continue;
    }
    series.sort((a, b) => a.name.localeCompare(b.name));
    if (panel.type === "stat") {
      const box = document.createElement("div");
      box.className = "stats";
      for (const s of series) {
        const last = +s.values[s.values.length - 1][1];
        box.insertAdjacentHTML("beforeend", `<div class="stat"><div class="v"></div><div class="l"></div></div>`);
        box.lastChild.querySelector(".v").textContent = unit(last);
        box.lastChild.querySelector(".l").textContent = s.name;
      }
      el.appendChild(box);
      continue;
    }
    // Timeseries: one x axis of every step; a missing point is a gap.
    const xs = [];
    for (let t = start; t <= end; t += step) xs.push(t);
    const idx = new Map(xs.map((t, i) => [t, i]));
    const data = [xs];
    for (const s of series) {
      const ys = new Array(xs.length).fill(null);
      for (const [t, v] of s.values) { const i = idx.get(t); if (i !== undefined) ys[i] = +v; }
      data.push(ys);
    }
    const opts = {
      width: g.w * W - 24,
      height: g.h * 26,
      legend: { show: true, live: false },
      cursor: { show: false },
      scales: { x: { time: true } },
      axes: [
        { stroke: "#9fa7b3", grid: { stroke: "#2c3235" }, ticks: { stroke: "#2c3235" },
          values: (u, vals) => vals.map((v) => new Date(v * 1000).toISOString().slice(11, 19)) },
        { stroke: "#9fa7b3", grid: { stroke: "#2c3235" }, ticks: { stroke: "#2c3235" }, size: 86, font: "11px sans-serif",
          values: (_, vals) => fmtAxis(u, vals) },
      ],
      series: [{}, ...series.map((s, i) => ({ label: s.name, stroke: colors[i % colors.length], width: 1.5, spanGaps: false, value: (u, v) => unit(v) }))],
    };
    const plot = new uPlot(opts, data, el);
    // Give the plot what the title and the legend leave of the panel.
    void plot;
  }
  window.renderDone = true;
})().catch((e) => { window.renderErrors = (window.renderErrors || []).concat(String(e)); window.renderDone = true; });
