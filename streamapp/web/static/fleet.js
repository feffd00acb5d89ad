// Live fleet page: polls /api/v1/fleet and redraws. No framework, no build step, no CDN.
"use strict";

const REFRESH_MS = 2000;
const CHART_W = 220;
const CHART_H = 44;
const SVG_NS = "http://www.w3.org/2000/svg";
let previous = null;

function fmt(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}

function sum(split) {
  return Object.values(split || {}).reduce((a, b) => a + b, 0);
}

function chart(history, threshold) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", "rul-chart");
  svg.setAttribute("width", CHART_W);
  svg.setAttribute("height", CHART_H);
  svg.setAttribute("viewBox", `0 0 ${CHART_W} ${CHART_H}`);
  if (!history.length) return svg;
  const t0 = history[0].t;
  const t1 = history[history.length - 1].t;
  const values = history.flatMap((p) => [p.rul, p.lower ?? p.rul, p.upper ?? p.rul]);
  const lo = Math.min(0, ...values);
  const hi = Math.max(threshold, ...values) || 1;
  const x = (t) => (t1 === t0 ? CHART_W / 2 : ((t - t0) / (t1 - t0)) * (CHART_W - 4) + 2);
  const y = (v) => CHART_H - 2 - ((v - lo) / (hi - lo)) * (CHART_H - 4);
  const band = history.map((p) => `${x(p.t)},${y(p.upper ?? p.rul)}`)
    .concat(history.slice().reverse().map((p) => `${x(p.t)},${y(p.lower ?? p.rul)}`));
  const polygon = document.createElementNS(SVG_NS, "polygon");
  polygon.setAttribute("points", band.join(" "));
  svg.appendChild(polygon);
  const limit = document.createElementNS(SVG_NS, "line");
  limit.setAttribute("class", "threshold");
  limit.setAttribute("x1", 0);
  limit.setAttribute("x2", CHART_W);
  limit.setAttribute("y1", y(threshold));
  limit.setAttribute("y2", y(threshold));
  svg.appendChild(limit);
  const line = document.createElementNS(SVG_NS, "polyline");
  const points = history.map((p) => `${x(p.t)},${y(p.rul)}`);
  if (points.length === 1) points.push(`${x(history[0].t) + 1},${y(history[0].rul)}`);
  line.setAttribute("points", points.join(" "));
  svg.appendChild(line);
  return svg;
}

function row(asset, rank, threshold) {
  const tr = document.createElement("tr");
  tr.dataset.asset = asset.asset_id;
  tr.className = asset.rul < threshold ? "critical" : asset.rul < 2 * threshold ? "warning" : "healthy";
  const cells = [
    String(rank),
    asset.asset_id,
    asset.asset_class || "–",
    fmt(asset.rul, 1),
    asset.lower === null ? "–" : `[${fmt(asset.lower, 1)}, ${fmt(asset.upper, 1)}] @ ${fmt(100 * (asset.confidence_level || 0))}%`,
    null,
    asset.model_version || "–",
    asset.timestamp || "–",
  ];
  cells.forEach((text, i) => {
    const td = document.createElement("td");
    if (i === 3) td.className = "rul";
    if (i === 5) td.appendChild(chart(asset.history, threshold));
    else td.textContent = text;
    tr.appendChild(td);
  });
  return tr;
}

function render(data, now) {
  const counters = data.counters || {};
  const messagesIn = sum((counters.streamapp_ingest_messages || {}));
  const deadLetters = sum(counters.streamapp_dead_letters);
  document.getElementById("c-assets").textContent = fmt(data.asset_count);
  document.getElementById("c-classes").textContent =
    Object.entries(data.classes || {}).map(([name, count]) => `${name} ${fmt(count)}`).join(" · ") || "–";
  document.getElementById("c-under").textContent = fmt(data.under_threshold);
  document.getElementById("c-threshold").textContent = fmt(data.threshold);
  document.getElementById("c-pred-rate").textContent = fmt(data.predictions_per_minute);
  document.getElementById("c-in").textContent = fmt(messagesIn);
  document.getElementById("c-dlq").textContent = fmt(deadLetters);
  document.getElementById("c-archived").textContent = fmt(sum(counters.streamapp_archive_messages));
  if (previous) {
    const seconds = Math.max(0.001, (now - previous.now) / 1000);
    document.getElementById("c-in-rate").textContent = fmt((messagesIn - previous.messagesIn) / seconds, 1);
    document.getElementById("c-dlq-rate").textContent = fmt((deadLetters - previous.deadLetters) / seconds, 1);
  }
  previous = { now, messagesIn, deadLetters };
  const body = document.querySelector("#fleet tbody");
  const rows = data.assets.map((asset, i) => row(asset, i + 1, data.threshold));
  body.replaceChildren(...rows);
  document.getElementById("empty").hidden = rows.length > 0;
  document.body.dataset.assets = String(rows.length);
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const response = await fetch("/api/v1/fleet", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json(), Date.now());
    status.className = "status live";
    status.textContent = `live · ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    status.className = "status down";
    status.textContent = `worker unreachable (${error.message})`;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
