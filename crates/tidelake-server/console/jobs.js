// The jobs page: sys.jobs (or SHOW JOBS) polled, each job's state, lag
// over time as a chart, last error, and suspend / resume / drop. A server
// without jobs gets a clear "not available" state instead.

import { sql, el, errorBox, ident } from "./api.js";
import { grid } from "./grid.js";
import { timeChart } from "./chart.js";
import { setEditorText } from "./editor.js";

const POLL_MS = 3000;
const HISTORY_MS = 10 * 60 * 1000;
/** Lag samples by job name, kept across visits of the page. */
const history = new Map();

const TEMPLATE = `-- A continuous job: the SELECT runs on every change of its sources.
CREATE JOB my_job AS
INSERT INTO shop.daily
SELECT dt, count(*) AS orders, sum(amount) AS amount
FROM shop.payments
GROUP BY dt;`;

/** A lag value in seconds: a number (ms when the column says so) or "1.5s", "350ms", "00:00:02". */
export function lagSeconds(value, column) {
  if (value === null || value === undefined) return null;
  if (typeof value === "number") return /ms|millis/i.test(column) ? value / 1000 : value;
  const text = String(value).trim();
  let m = /^(-?[\d.]+)\s*(ms|s|sec|secs|seconds|m|min|h)?$/i.exec(text);
  if (m) {
    const n = Number(m[1]);
    const unit = (m[2] || (/ms|millis/i.test(column) ? "ms" : "s")).toLowerCase();
    return unit === "ms" ? n / 1000 : unit.startsWith("m") && unit !== "ms" ? n * 60 : unit === "h" ? n * 3600 : n;
  }
  m = /^(\d+):(\d\d):(\d\d(?:\.\d+)?)$/.exec(text);
  if (m) return Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
  const n = Number(text);
  return Number.isFinite(n) ? n : null;
}

function columnIndex(columns, ...patterns) {
  for (const p of patterns) {
    const i = columns.findIndex((c) => p.test(c.name));
    if (i >= 0) return i;
  }
  return -1;
}

/** Reads the jobs: {result, source} or throws {unavailable: [errors]}. */
async function readJobs() {
  const errors = [];
  for (const [text, source] of [["SELECT * FROM sys.jobs", "sys.jobs"], ["SHOW JOBS", "SHOW JOBS"]]) {
    try {
      return { result: await sql(text), source };
    } catch (e) {
      if (e.httpStatus === 401) throw e;
      errors.push([text, e]);
    }
  }
  const err = new Error("jobs are not available");
  err.unavailable = errors;
  throw err;
}

export function mount(root, app) {
  const status = el("span", { class: "status muted", "data-test": "jobs-status" });
  const body = el("div", { class: "results", id: "jobs-body" }, el("div", { class: "muted" }, "loading…"));
  const refresh = el("button", { onclick: () => poll() }, "Refresh");
  const newJob = el("button", { class: "primary", id: "new-job", onclick: () => { setEditorText(TEMPLATE); app.go("sql"); } }, "New job in the editor");
  root.replaceChildren(
    el("div", { class: "toolbar" }, el("h1", {}, "Jobs"), refresh, newJob, el("span", { class: "spacer" }), status),
    body);
  let timer = null;
  let live = true;
  let armed = null; // the job whose Drop button waits for its confirmation

  async function act(statement) {
    status.textContent = statement + " …";
    try {
      const r = await sql(statement);
      status.textContent = `${statement}: ${r.status}`;
    } catch (e) {
      status.textContent = "";
      body.prepend(errorBox(e));
      return;
    }
    await poll();
  }

  function draw(result, source) {
    const cols = result.columns;
    const name = Math.max(0, columnIndex(cols, /^name$/i, /^job/i));
    const stateAt = columnIndex(cols, /^state$/i, /^status$/i);
    const lagAt = columnIndex(cols, /lag/i);
    const errAt = columnIndex(cols, /error/i);
    const now = Date.now();
    for (const row of result.rows) {
      if (lagAt < 0) break;
      const lag = lagSeconds(row[lagAt], cols[lagAt].name);
      if (lag === null) continue;
      const key = String(row[name]);
      const points = (history.get(key) || []).filter((p) => now - p[0] < HISTORY_MS);
      points.push([now, lag]);
      history.set(key, points);
    }
    const names = new Set(result.rows.map((r) => String(r[name])));
    for (const k of [...history.keys()]) if (!names.has(k)) history.delete(k);

    const list = el("div", { class: "grid-wrap" });
    const table = el("table", { class: "grid", "data-test": "jobs-table" });
    table.append(el("thead", {}, el("tr", {}, el("th", {}, "job"), stateAt >= 0 ? el("th", {}, "state") : null,
      lagAt >= 0 ? el("th", {}, cols[lagAt].name) : null, errAt >= 0 ? el("th", {}, "last error") : null, el("th", {}, ""))));
    const tbody = el("tbody", {});
    for (const row of result.rows) {
      const job = String(row[name]);
      const st = stateAt >= 0 ? String(row[stateAt] ?? "") : "";
      const lower = st.toLowerCase();
      const dropBtn = el("button", { class: "danger" + (armed === job ? " armed" : ""), "data-action": "drop",
        onclick: () => {
          if (armed === job) { armed = null; act(`DROP JOB ${ident(job)}`); } else { armed = job; draw(result, source); }
        } }, armed === job ? "Confirm drop" : "Drop");
      tbody.append(el("tr", { "data-job": job },
        el("td", {}, job),
        stateAt >= 0 ? el("td", {}, el("span", { class: "state " + lower, "data-test": "job-state" }, st || "?")) : null,
        lagAt >= 0 ? el("td", { class: "num" }, row[lagAt] === null ? "—" : String(row[lagAt])) : null,
        errAt >= 0 ? el("td", { class: row[errAt] ? "error" : "null", title: row[errAt] || null }, row[errAt] || "none") : null,
        el("td", {}, el("div", { class: "row" },
          /suspend|paused/.test(lower)
            ? el("button", { "data-action": "resume", onclick: () => act(`ALTER JOB ${ident(job)} RESUME`) }, "Resume")
            : el("button", { "data-action": "suspend", onclick: () => act(`ALTER JOB ${ident(job)} SUSPEND`) }, "Suspend"),
          dropBtn))));
    }
    table.append(tbody);
    list.append(table);
    const parts = [
      el("div", { id: "jobs-state", "data-state": "available", class: "muted" },
        `${result.rows.length} job${result.rows.length === 1 ? "" : "s"} · from ${source} · refreshed every ${POLL_MS / 1000} s`),
    ];
    if (!result.rows.length) {
      parts.push(el("div", { class: "empty" }, "No jobs yet. Write an INSERT … SELECT in the editor and press “Create job…”."));
    } else {
      parts.push(list);
      if (lagAt >= 0) parts.push(el("h2", {}, "Lag over time"), timeChart(history, { test: "lag-chart", unit: "seconds", empty: "No lag reported yet." }));
    }
    parts.push(el("details", {}, el("summary", {}, `All columns of ${source}`), grid(result, { pageSize: 25 })));
    body.replaceChildren(...parts);
  }

  function drawUnavailable(errors) {
    body.replaceChildren(el("div", { class: "unavailable", id: "jobs-state", "data-state": "unavailable" },
      el("h2", {}, "Jobs are not available on this server"),
      el("p", {}, "This server does not know SHOW JOBS or sys.jobs yet: it runs SQL, but continuous jobs are managed elsewhere ",
        "(", el("code", {}, "tidelake stream --job"), "). What the server answered:"),
      ...errors.map(([text, e]) => el("div", {}, el("code", {}, text), errorBox(e)))));
  }

  async function poll() {
    clearTimeout(timer);
    try {
      const { result, source } = await readJobs();
      if (!live) return;
      draw(result, source);
      status.textContent = "updated " + new Date().toLocaleTimeString();
    } catch (e) {
      if (!live) return;
      if (e.unavailable) drawUnavailable(e.unavailable);
      else body.replaceChildren(errorBox(e));
      status.textContent = "";
    }
    if (live) timer = setTimeout(poll, POLL_MS);
  }
  poll();
  return { unmount() { live = false; clearTimeout(timer); } };
}
