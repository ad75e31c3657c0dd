// The SQL page: the editor, run / explain / cancel, the grid and chart of
// the result, and "create a job" from the editor's statement.

import { sql, cancel, statementId, el, errorBox, ident } from "./api.js";
import { highlight } from "./sql.js";
import { grid } from "./grid.js";
import { resultChart } from "./chart.js";

const TEXT_KEY = "tidelake.editor";
const DB_KEY = "tidelake.database";
const MAX_ROWS = 10000;

const state = {
  text: localStorage.getItem(TEXT_KEY) || "SHOW DATABASES;",
  database: localStorage.getItem(DB_KEY) || "",
  result: null,
  error: null,
  view: "grid",
  running: null,
};

/** Puts `text` into the editor (the catalog's "open in editor"). */
export function setEditorText(text) {
  state.text = text;
  localStorage.setItem(TEXT_KEY, text);
}

export function setDatabase(db) {
  state.database = db;
  localStorage.setItem(DB_KEY, db);
}

/** The editor widget: a textarea over its highlighted copy. */
function editorWidget(onRun) {
  const pre = el("pre", { "aria-hidden": "true" });
  const area = el("textarea", { spellcheck: "false", autocapitalize: "off", autocomplete: "off",
    "aria-label": "SQL", "data-test": "sql" });
  area.value = state.text;
  const sync = () => {
    pre.innerHTML = highlight(area.value);
    pre.scrollTop = area.scrollTop;
    pre.scrollLeft = area.scrollLeft;
  };
  area.addEventListener("input", () => {
    state.text = area.value;
    localStorage.setItem(TEXT_KEY, area.value);
    sync();
  });
  area.addEventListener("scroll", () => { pre.scrollTop = area.scrollTop; pre.scrollLeft = area.scrollLeft; });
  area.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      e.preventDefault();
      onRun(e.shiftKey ? "explain" : "run");
    } else if (e.key === "Tab" && !e.shiftKey && !e.ctrlKey) {
      e.preventDefault();
      area.setRangeText("  ", area.selectionStart, area.selectionEnd, "end");
      area.dispatchEvent(new Event("input"));
    }
  });
  sync();
  return { node: el("div", { class: "editor", id: "editor" }, pre, area), area };
}

/** The text to run: the selection if there is one, else everything. */
function chosenText(area) {
  const { selectionStart: s, selectionEnd: e, value } = area;
  return e > s ? value.slice(s, e) : value;
}

export function mount(root, app) {
  const status = el("span", { class: "status", "data-test": "status" });
  const results = el("div", { class: "results", id: "results" });
  const runBtn = el("button", { class: "primary", id: "run", title: "Run (Ctrl-Enter)" }, "▶ Run");
  const explainBtn = el("button", { id: "explain", title: "Explain (Ctrl-Shift-Enter)" }, "Explain");
  const cancelBtn = el("button", { id: "cancel", disabled: true, title: "Cancel the running statement" }, "■ Cancel");
  const jobBtn = el("button", { id: "create-job", title: "Create a continuous job from this INSERT … SELECT" }, "Create job…");
  const dbSelect = el("select", { id: "database", title: "The database names resolve in (USE)" },
    el("option", { value: "" }, "default database"));
  const jobForm = el("div", { class: "inline-form", hidden: true });
  const { node: editorNode, area } = editorWidget((how) => go(how));

  async function loadDatabases() {
    try {
      const r = await sql("SHOW DATABASES");
      for (const [name] of r.rows) dbSelect.append(el("option", { value: name, selected: name === state.database }, name));
    } catch (e) { /* the grid shows errors of the user's own statements only */ }
  }
  dbSelect.addEventListener("change", () => setDatabase(dbSelect.value));

  function showResults() {
    results.replaceChildren();
    if (state.error) {
      results.append(errorBox(state.error));
      return;
    }
    const r = state.result;
    if (!r) {
      results.append(el("div", { class: "empty" }, "Run a statement with ", el("kbd", {}, "Ctrl"), "+", el("kbd", {}, "Enter"), "."));
      return;
    }
    const tabs = el("div", { class: "tabs" },
      ["grid", "chart"].map((v) => el("button", { class: state.view === v ? "active" : null, "data-test": "view-" + v,
        onclick: () => { state.view = v; showResults(); } }, v === "grid" ? "Grid" : "Chart")));
    const note = r.truncated ? el("div", { class: "message" }, `Showing the first ${r.rows.length.toLocaleString()} rows; the rest were not read.`) : null;
    results.append(...[tabs, note, state.view === "chart" ? resultChart(r) : grid(r)].filter(Boolean));
  }

  async function go(how) {
    if (state.running) return;
    let text = chosenText(area).trim();
    if (!text) return;
    if (how === "explain") text = "EXPLAIN " + text.replace(/;\s*$/, "");
    await runText(text);
  }

  async function runText(text) {
    const id = statementId();
    state.running = id;
    runBtn.disabled = explainBtn.disabled = jobBtn.disabled = true;
    cancelBtn.disabled = false;
    const started = performance.now();
    const tick = setInterval(() => { status.textContent = `running… ${((performance.now() - started) / 1000).toFixed(1)} s`; }, 100);
    status.textContent = "running…";
    try {
      state.result = await sql(text, { id, database: state.database || undefined, maxRows: MAX_ROWS });
      state.error = null;
      status.textContent = `${state.result.status} · ${(state.result.ms / 1000).toFixed(2)} s`;
      if (state.view === "chart" && !state.result.columns.length) state.view = "grid";
    } catch (e) {
      state.error = e;
      state.result = null;
      const how = e.code === "57014" ? "cancelled" : "failed";
      status.textContent = `${how} · ${((performance.now() - started) / 1000).toFixed(2)} s`;
    } finally {
      clearInterval(tick);
      state.running = null;
      runBtn.disabled = explainBtn.disabled = jobBtn.disabled = false;
      cancelBtn.disabled = true;
      showResults();
    }
    return state.error === null;
  }

  cancelBtn.addEventListener("click", async () => {
    if (!state.running) return;
    status.textContent = "cancelling…";
    await cancel(state.running).catch(() => false);
  });
  runBtn.addEventListener("click", () => go("run"));
  explainBtn.addEventListener("click", () => go("explain"));
  jobBtn.addEventListener("click", () => {
    jobForm.hidden = !jobForm.hidden;
    if (!jobForm.hidden) jobForm.querySelector("input").focus();
  });

  const jobName = el("input", { placeholder: "job name", id: "job-name", pattern: "[A-Za-z_][A-Za-z0-9_]*", size: 16 });
  const createBtn = el("button", { class: "primary", id: "job-create" }, "Create job");
  createBtn.addEventListener("click", async () => {
    const name = jobName.value.trim();
    const body = chosenText(area).trim().replace(/;\s*$/, "");
    if (!name || !body) { jobName.focus(); return; }
    const ok = await runText(`CREATE JOB ${ident(name)} AS ${body}`);
    if (ok) app.go("jobs");
  });
  jobForm.append(el("span", {}, "Run the editor's INSERT … SELECT continuously as job"), jobName, createBtn,
    el("button", { onclick: () => { jobForm.hidden = true; } }, "Close"));

  root.replaceChildren(
    el("div", { class: "toolbar" }, runBtn, explainBtn, cancelBtn, dbSelect, jobBtn,
      el("span", { class: "hint muted" }, el("kbd", {}, "Ctrl"), "+", el("kbd", {}, "Enter"), " runs the selection or everything"),
      el("span", { class: "spacer" }), status),
    jobForm, editorNode, results);
  showResults();
  loadDatabases();
  area.focus();
  return {};
}

