// The health page: the server's counters from GET /v1/status (and its
// Prometheus samples from GET /metrics when the server has them), polled,
// with statements and commits per second over time.

import { getJson, getText, el, errorBox } from "./api.js";
import { timeChart } from "./chart.js";

const POLL_MS = 3000;
const KEEP = 200;
const samples = []; // [timeMs, status]

function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
}

/** Prometheus text: [{name, labels, value}] of its samples. */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m) out.push({ name: m[1], labels: m[2] || "", value: m[3] });
  }
  return out;
}

function card(label, value, test) {
  return el("div", { class: "card", "data-test": test }, el("div", { class: "label" }, label), el("div", { class: "value" }, value));
}

/** Per-second rates between consecutive samples of counter `pick`. */
function rates(pick) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const [t0, a] = samples[i - 1], [t1, b] = samples[i];
    const dt = (t1 - t0) / 1000;
    if (dt > 0) out.push([t1, Math.max(0, (pick(b) - pick(a)) / dt)]);
  }
  return out;
}

export function mount(root) {
  const body = el("div", { id: "health-body", class: "results" }, el("div", { class: "muted" }, "loading…"));
  const updated = el("span", { class: "status muted" });
  root.replaceChildren(el("div", { class: "toolbar" }, el("h1", {}, "Server health"), el("span", { class: "spacer" }), updated), body);
  let timer = null;
  let live = true;

  async function poll() {
    clearTimeout(timer);
    try {
      const [status, ready, metrics] = await Promise.all([
        getJson("/v1/status"),
        fetch("/readyz", { cache: "no-store" }).then((r) => r.ok).catch(() => false),
        getText("/metrics").catch(() => null),
      ]);
      if (!live) return;
      if (status) {
        samples.push([Date.now(), status]);
        if (samples.length > KEEP) samples.shift();
      }
      draw(status, ready, metrics);
      updated.textContent = "updated " + new Date().toLocaleTimeString();
    } catch (e) {
      if (live) body.replaceChildren(errorBox(e));
    }
    if (live) timer = setTimeout(poll, POLL_MS);
  }

  function draw(s, ready, metrics) {
    const parts = [];
    if (s) {
      parts.push(el("div", { class: "cards", "data-test": "health-cards" },
        card("status", ready ? "ready" : "not ready", "ready"),
        card("uptime", duration(s.uptime_seconds), "uptime"),
        card("PG connections", s.connections.postgres, "connections"),
        card("running now", s.statements.running, "running"),
        card("statements", s.statements.total.toLocaleString(), "statements"),
        card("failed", s.statements.failed.toLocaleString(), "failed"),
        card("commits", s.commits.toLocaleString(), "commits"),
        card("HTTP requests", s.http_requests.toLocaleString(), "http")));
      const series = new Map([
        ["statements/s", rates((x) => x.statements.total)],
        ["commits/s", rates((x) => x.commits)],
      ]);
      parts.push(el("h2", {}, "Activity"), timeChart(series, { test: "activity-chart", unit: "per second", empty: "Collecting samples…" }));
      parts.push(el("p", { class: "muted" }, `Tidelake ${s.version}. ` +
        (s.auth && s.auth.required ? "Clients log in." : "No login: " + ((s.auth && s.auth.reason) || "no users exist."))));
    } else {
      parts.push(el("div", { class: "message" }, "This server has no /v1/status route."));
    }
    if (metrics !== null) {
      const rows = parseMetrics(metrics).slice(0, 500);
      parts.push(el("details", { "data-test": "metrics" }, el("summary", {}, `Prometheus metrics (/metrics, ${rows.length} samples)`),
        el("div", { class: "grid-wrap" }, el("table", { class: "grid" },
          el("thead", {}, el("tr", {}, el("th", {}, "metric"), el("th", {}, "labels"), el("th", {}, "value"))),
          el("tbody", {}, rows.map((r) => el("tr", {}, el("td", {}, r.name), el("td", {}, r.labels), el("td", { class: "num" }, r.value))))))));
    }
    body.replaceChildren(...parts);
  }
  poll();
  return { unmount() { live = false; clearTimeout(timer); } };
}
