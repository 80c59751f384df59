// The Edge Agent dashboard: reads api/summary and api/frames from the agent, draws with uPlot.
// Everything is built with textContent (model names come from the device's folders).
"use strict";

const REFRESH_MS = 5000;
const COUNTERS = [
  ["processed_image_count", "ProcessedImageCount"],
  ["detected_anomaly_count", "DetectedAnomalyCount"],
  ["invalid_image_count", "InvalidImageCount"],
  ["successful_request_count", "SuccessfulRequestCount"],
  ["error_count", "ErrorCount"],
  ["throttled_count", "ThrottledCount"],
];
let windowName = new URLSearchParams(location.search).get("window") || "1d";
const charts = new Map();

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

const count = (n) => Number(n || 0).toLocaleString("en-US");
const percent = (r) => (100 * (r || 0)).toFixed(2) + "%";
const ms = (v) => (v === null || v === undefined ? "–" : v.toFixed(1) + " ms");

function row(label, value, field) {
  return el("tr", {}, el("td", {}, label), el("td", { "data-field": field }, value));
}

function modelCard(model) {
  const card = el("article", { class: "model", "data-model": model.model_component });
  const w = model.window.totals;
  const stats = el(
    "table",
    {},
    el("tbody", {},
      el("tr", { class: "group" }, el("td", { colSpan: 2 }, "this window (" + windowName + ")")),
      row("Images processed", count(w.processed), "window_processed"),
      row("Anomalies", count(w.anomalous), "window_anomalous"),
      el("tr", { class: "group" }, el("td", { colSpan: 2 }, "since the agent started")),
      ...COUNTERS.map(([key, name]) => row(name, count(model.since_start[key]), key)),
      row("Latency p50", ms(model.latency_ms.p50), "latency_p50"),
      row("Latency p99", ms(model.latency_ms.p99), "latency_p99"),
    ),
  );
  const left = el(
    "div",
    {},
    el("h3", {}, el("span", { "data-field": "name" }, model.model_component),
      el("span", { class: "badge " + model.state, "data-field": "state" }, model.state)),
    el("div", { class: "sub" }, "project " + (model.project || "–") + " · version " + (model.model_version || "–")),
    el("div", { class: "muted" }, "Anomaly ratio"),
    el("div", { class: "ratio", "data-field": "anomaly_ratio" }, percent(model.window.anomaly_ratio)),
    stats,
  );
  const chart = el("div", { class: "chart", "data-field": "chart" });
  card.append(left, chart);
  return [card, chart];
}

function drawChart(node, model) {
  const series = model.window.series;
  const xs = series.map((p) => p[0]);
  const processed = series.map((p) => p[1]);
  const anomalous = series.map((p) => p[2]);
  const ratio = series.map((p) => (p[1] ? (100 * p[2]) / p[1] : null));
  const width = Math.max(320, node.clientWidth || 600);
  const opts = {
    width, height: 230,
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, pct: { range: [0, 100] } },
    axes: [
      { stroke: "#8b98a5", grid: { stroke: "#2b3540" }, ticks: { stroke: "#2b3540" } },
      { stroke: "#8b98a5", grid: { stroke: "#2b3540" }, ticks: { stroke: "#2b3540" }, label: "images" },
      { side: 1, scale: "pct", stroke: "#f0883e", grid: { show: false }, label: "% anomalous", values: (u, v) => v.map((x) => x + "%") },
    ],
    series: [
      {},
      { label: "processed", stroke: "#58a6ff", fill: "rgba(88,166,255,.15)", width: 1.5, paths: uPlot.paths.bars({ size: [0.7, 40] }), points: { show: false } },
      { label: "anomalous", stroke: "#f85149", fill: "rgba(248,81,73,.35)", width: 1.5, paths: uPlot.paths.bars({ size: [0.4, 20] }), points: { show: false } },
      { label: "anomaly %", scale: "pct", stroke: "#f0883e", width: 2, spanGaps: false, points: { size: 5 } },
    ],
  };
  const old = charts.get(node);
  if (old) old.destroy();
  charts.set(node, new uPlot(opts, [xs, processed, anomalous, ratio], node));
}

function renderWindows(names) {
  const nav = document.getElementById("windows");
  nav.replaceChildren(
    ...names.map((name) => {
      const button = el("button", { type: "button", "data-window": name }, name);
      if (name === windowName) button.classList.add("active");
      button.addEventListener("click", () => {
        windowName = name;
        history.replaceState(null, "", "?window=" + name);
        refresh();
      });
      return button;
    }),
  );
}

function renderFrames(data) {
  const section = document.getElementById("frames-section");
  section.hidden = !data.enabled;
  const frames = data.frames.map((f) =>
    el("figure", { class: "frame", "data-frame": String(f.id) },
      el("img", { src: f.url, alt: "anomalous frame from " + f.model_component }),
      el("figcaption", { class: "meta" },
        el("div", {}, f.model_component + " · " + new Date(f.time * 1000).toLocaleString()),
        el("div", { class: "muted" }, "score " + f.anomaly_score.toFixed(3) + " · confidence " + f.confidence.toFixed(3)),
        ...f.anomalies.map((a) => {
          const swatch = el("span", { class: "swatch" });
          swatch.style.background = a.hex_color;
          return el("div", {}, swatch, a.name + " " + percent(a.area));
        }),
      )));
  document.getElementById("frames").replaceChildren(...frames);
}

async function refresh() {
  try {
    const [summary, frames] = await Promise.all([
      fetch("api/summary?window=" + encodeURIComponent(windowName)).then((r) => r.json()),
      fetch("api/frames").then((r) => r.json()),
    ]);
    renderWindows(summary.windows);
    const state = document.getElementById("agent-state");
    state.textContent = summary.serving ? "SERVING" : "NOT_SERVING";
    state.className = "badge " + state.textContent;
    document.getElementById("overview-models").textContent = count(summary.overview.models);
    document.getElementById("overview-processed").textContent = count(summary.overview.processed);
    document.getElementById("overview-anomalous").textContent = count(summary.overview.anomalous);
    document.getElementById("overview-ratio").textContent = percent(summary.overview.anomaly_ratio);
    document.getElementById("store-note").textContent = summary.stats_persistent
      ? ""
      : "History is kept in memory only (start the agent with --stats-db FILE to keep it across restarts).";
    const container = document.getElementById("models");
    charts.forEach((chart) => chart.destroy());
    charts.clear();
    const cards = summary.models.map(modelCard);
    container.replaceChildren(...cards.map(([card]) => card));
    cards.forEach(([, chart], i) => drawChart(chart, summary.models[i]));
    renderFrames(frames);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = String(summary.generated_at);
  } catch (err) {
    document.getElementById("updated").textContent = "cannot reach the agent: " + err;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
