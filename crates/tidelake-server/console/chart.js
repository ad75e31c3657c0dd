// Charts as SVG, drawn here: bars or a line of one numeric column of a
// result, and lines of values over time (job lag, server counters).

import { el } from "./api.js";
import { isNumericType } from "./grid.js";

const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#0b5f8a", "#d1495b", "#2a9d8f", "#e9a03b", "#6f42c1", "#5b8c2a", "#8a5a44", "#3d5a80"];

function svg(tag, attrs, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Round tick values covering [lo, hi]. */
export function ticks(lo, hi, count = 4) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [Number((Math.floor(lo / step) * step).toPrecision(12))];
  while (out[out.length - 1] < hi - step * 1e-9) out.push(Number((out[out.length - 1] + step).toPrecision(12)));
  return out;
}

export function short(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toPrecision(3) + "G";
  if (a >= 1e6) return (v / 1e6).toPrecision(3) + "M";
  if (a >= 1e4) return (v / 1e3).toPrecision(3) + "k";
  return String(Number(v.toPrecision(4)));
}

/** The width a chart gets: the page's, so that its text keeps its size. */
function pageWidth() {
  const page = document.getElementById("page");
  return Math.max(300, Math.min(1600, (page ? page.clientWidth : 800) - 40));
}

/** The frame of a chart: y axis with ticks; returns {root, x0, x1, y(v)}. */
function frame(width, height, lo, hi) {
  const t = ticks(Math.min(0, lo), hi);
  const ylo = t[0], yhi = t[t.length - 1];
  const left = 8 + Math.max(...t.map((v) => short(v).length)) * 7, right = width - 10, top = 10, bottom = height - 34;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  const y = (v) => bottom - ((v - ylo) / (yhi - ylo || 1)) * (bottom - top);
  for (const v of t) {
    root.append(svg("line", { class: "gridline", x1: left, x2: right, y1: y(v), y2: y(v) }));
    root.append(svg("text", { x: left - 5, y: y(v) + 4, "text-anchor": "end" }, short(v)));
  }
  root.append(svg("line", { class: "axis", x1: left, x2: right, y1: y(Math.max(ylo, 0)), y2: y(Math.max(ylo, 0)) }));
  return { root, x0: left, x1: right, y, bottom };
}

/** Bars (few rows) or a line (many) of `values`, labelled by `labels`. */
export function valuesChart(values, labels, width = pageWidth(), height = 280) {
  const nums = values.map((v) => (v === null ? 0 : Number(v)));
  const f = frame(width, height, Math.min(...nums, 0), Math.max(...nums, 0));
  const n = nums.length;
  const span = f.x1 - f.x0;
  const every = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(span / 70))));
  if (n <= 80) {
    const w = span / n;
    nums.forEach((v, i) => {
      const y0 = f.y(0), y1 = f.y(v);
      const bar = svg("rect", { class: "bar", x: f.x0 + i * w + w * 0.12, width: Math.max(1, w * 0.76),
        y: Math.min(y0, y1), height: Math.max(1, Math.abs(y1 - y0)) });
      bar.append(svg("title", {}, `${labels[i]}: ${values[i]}`));
      f.root.append(bar);
      if (i % every === 0) {
        f.root.append(svg("text", { x: f.x0 + i * w + w / 2, y: f.bottom + 16, "text-anchor": "middle" },
          String(labels[i]).slice(0, 12)));
      }
    });
  } else {
    const x = (i) => f.x0 + (i / (n - 1)) * span;
    const d = nums.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${f.y(v).toFixed(1)}`).join("");
    f.root.append(svg("path", { class: "line", d, stroke: COLORS[0] }));
    for (let i = 0; i < n; i += every) {
      f.root.append(svg("text", { x: x(i), y: f.bottom + 16, "text-anchor": "middle" }, String(labels[i]).slice(0, 12)));
    }
  }
  return f.root;
}

/** A chart of a result: pick the numeric column and the label column. */
export function resultChart(result) {
  const cols = result.columns || [];
  const numeric = cols.map((c, i) => [c, i]).filter(([c]) => isNumericType(c.type));
  const root = el("div", { class: "chart", "data-test": "chart" });
  if (!numeric.length || !result.rows.length) {
    root.append(el("div", { class: "empty" }, "No numeric column to chart."));
    return root;
  }
  let yi = numeric[numeric.length > 1 && numeric[0][0].name === "id" ? 1 : 0][1];
  const firstText = cols.findIndex((c) => !isNumericType(c.type));
  let xi = firstText >= 0 ? firstText : -1;
  const area = el("div");
  const draw = () => {
    const rows = result.rows.slice(0, 2000);
    const labels = rows.map((r, i) => (xi < 0 ? i + 1 : r[xi] === null ? "NULL" : r[xi]));
    area.replaceChildren(valuesChart(rows.map((r) => r[yi]), labels));
  };
  const controls = el("div", { class: "row" },
    el("label", {}, "value ", el("select", { "data-test": "chart-y", onchange: (e) => { yi = Number(e.target.value); draw(); } },
      numeric.map(([c, i]) => el("option", { value: i, selected: i === yi }, c.name)))),
    el("label", {}, "label ", el("select", { onchange: (e) => { xi = Number(e.target.value); draw(); } },
      el("option", { value: -1, selected: xi < 0 }, "(row number)"),
      cols.map((c, i) => el("option", { value: i, selected: i === xi }, c.name)))),
    result.rows.length > 2000 ? el("span", { class: "muted" }, "first 2,000 rows") : null);
  root.append(controls, area);
  draw();
  return root;
}

/**
 * Lines over time: series is Map name -> [[timeMs, value]]. The x axis is
 * the last `windowMs` up to now.
 */
export function timeChart(series, opts = {}) {
  const width = opts.width || pageWidth(), height = opts.height || 220;
  const root = el("div", { class: "chart", "data-test": opts.test || "time-chart" });
  const all = [...series.values()].flat();
  if (!all.length) {
    root.append(el("div", { class: "empty" }, opts.empty || "No samples yet."));
    return root;
  }
  const now = Math.max(...all.map((p) => p[0]));
  const start = Math.min(...all.map((p) => p[0]), now - (opts.minWindowMs || 60000));
  const f = frame(width, height, 0, Math.max(...all.map((p) => p[1]), opts.minMax || 1));
  const x = (t) => f.x0 + ((t - start) / (now - start || 1)) * (f.x1 - f.x0);
  [start, (start + now) / 2, now].forEach((t, i) => {
    const ago = Math.round((now - t) / 1000);
    f.root.append(svg("text", { x: x(t), y: f.bottom + 16, "text-anchor": ["start", "middle", "end"][i] },
      ago ? `-${ago}s` : "now"));
  });
  const legend = el("div", { class: "legend" }, opts.unit ? el("span", {}, opts.unit + ":") : null);
  let k = 0;
  for (const [name, points] of series) {
    const color = COLORS[k++ % COLORS.length];
    const d = points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${f.y(p[1]).toFixed(1)}`).join("");
    f.root.append(svg("path", { class: "line", d, stroke: color }));
    if (points.length === 1) f.root.append(svg("circle", { cx: x(points[0][0]), cy: f.y(points[0][1]), r: 3, fill: color }));
    const sw = el("i");
    sw.style.background = color;
    legend.append(el("span", {}, sw, name));
  }
  root.append(f.root, legend);
  return root;
}
