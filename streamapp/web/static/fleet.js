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

// An inline SVG line of points {x, y, lower, upper} over their band (where the bounds are
// known), with the threshold dashed; the y range spans the points, the threshold and floor.
function chart(points, threshold, kind, floor = threshold) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", `chart ${kind}`);
  svg.setAttribute("width", CHART_W);
  svg.setAttribute("height", CHART_H);
  svg.setAttribute("viewBox", `0 0 ${CHART_W} ${CHART_H}`);
  if (!points.length) return svg;
  const x0 = points[0].x;
  const x1 = points[points.length - 1].x;
  const values = points.flatMap((p) => [p.y, p.lower ?? p.y, p.upper ?? p.y]);
  const lo = Math.min(floor, threshold, ...values);
  const span = Math.max(threshold, ...values) - lo || 1;
  const x = (t) => (x1 === x0 ? CHART_W / 2 : ((t - x0) / (x1 - x0)) * (CHART_W - 4) + 2);
  const y = (v) => CHART_H - 2 - ((v - lo) / span) * (CHART_H - 4);
  const band = points.map((p) => `${x(p.x)},${y(p.upper ?? p.y)}`)
    .concat(points.slice().reverse().map((p) => `${x(p.x)},${y(p.lower ?? p.y)}`));
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
  const path = points.map((p) => `${x(p.x)},${y(p.y)}`);
  if (path.length === 1) path.push(`${x(points[0].x) + 1},${y(points[0].y)}`);
  line.setAttribute("points", path.join(" "));
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
    if (i === 5) {
      const points = asset.history.map((p) => ({ x: p.t, y: p.rul, lower: p.lower, upper: p.upper }));
      td.appendChild(chart(points, threshold, "rul-chart", 0));
    } else td.textContent = text;
    tr.appendChild(td);
  });
  return tr;
}

// "date [earliest, latest]"; the latest, or the date itself, may lie beyond the horizon.
function endOfLife(eol) {
  if (!eol) return "–";
  if (!eol.date) return eol.date_lower ? `beyond horizon (earliest ${eol.date_lower})` : "beyond horizon";
  return `${eol.date} [${eol.date_lower ?? "–"}, ${eol.date_upper ?? "later"}]`;
}

function evRow(ev, eolSoh) {
  const tr = document.createElement("tr");
  tr.dataset.vin = ev.vin;
  if (ev.soh !== null) tr.className = ev.soh <= eolSoh ? "critical" : "healthy";
  const trend = ev.trend.map((p) => ({ x: Date.parse(p.week), y: p.soh }));
  const cells = [
    ["vin", ev.vin],
    ["soh", fmt(ev.soh, 1)],
    ["", ev.soh_lower === null ? "–" : `[${fmt(ev.soh_lower, 1)}, ${fmt(ev.soh_upper, 1)}]`],
    ["", chart(trend, eolSoh, "soh-chart")],
    ["eol", endOfLife(ev.end_of_life)],
    ["", ev.nominal_kwh === null ? "–" : `${fmt(ev.nominal_kwh, 1)} kWh (${ev.nominal_source || "–"})`],
    ["", ev.week],
  ];
  for (const [className, content] of cells) {
    const td = document.createElement("td");
    if (className) td.className = className;
    if (typeof content === "string") td.textContent = content;
    else td.appendChild(content);
    tr.appendChild(td);
  }
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
  document.getElementById("c-evs").textContent = fmt(data.ev_count);
  document.getElementById("c-evs-under").textContent = fmt(data.evs_under_threshold);
  document.getElementById("c-eol-soh").textContent = fmt(data.eol_soh);
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
  const evRows = data.evs.map((ev) => evRow(ev, data.eol_soh));
  document.querySelector("#evs tbody").replaceChildren(...evRows);
  document.getElementById("ev-empty").hidden = evRows.length > 0;
  document.body.dataset.evs = String(evRows.length);
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
