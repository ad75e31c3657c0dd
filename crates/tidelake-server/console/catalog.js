// The catalog browser: databases and their tables; a table's schema,
// options, snapshots, files, partitions and tags from SHOW / DESCRIBE and
// the t$... system tables; its rows at any snapshot (VERSION AS OF).

import { sql, el, errorBox, ident } from "./api.js";
import { grid } from "./grid.js";
import { setEditorText } from "./editor.js";

const TABS = [
  ["data", "Data"], ["schema", "Schema"], ["options", "Options"], ["snapshots", "Snapshots"],
  ["files", "Files"], ["partitions", "Partitions"], ["tags", "Tags"],
];

const state = { open: new Set(), tables: new Map(), selected: null, tab: "data", version: "" };

/** db.table, or a system table db.table$suffix (quoted whole when the name needs it). */
function qualified(db, table, suffix = "") {
  const plain = ident(table) === table;
  return `${ident(db)}.${plain ? table + suffix : ident(table + suffix)}`;
}

/** The SQL a tab of a table runs. */
export function tabSql(db, table, tab, version) {
  switch (tab) {
    case "data":
      return `SELECT * FROM ${qualified(db, table)}${version ? ` VERSION AS OF ${version}` : ""} LIMIT 1000`;
    case "schema":
      return `DESCRIBE ${qualified(db, table)}`;
    case "snapshots":
      return `SELECT * FROM ${qualified(db, table, "$snapshots")} ORDER BY snapshot_id DESC`;
    default:
      return `SELECT * FROM ${qualified(db, table, "$" + tab)}`;
  }
}

export function mount(root, app) {
  const tree = el("div", { class: "tree panel", id: "catalog-tree" });
  const detail = el("div", { class: "detail panel", id: "catalog-detail" });
  let live = true;

  async function loadTree() {
    let dbs;
    try {
      dbs = (await sql("SHOW DATABASES")).rows.map((r) => r[0]);
    } catch (e) {
      tree.replaceChildren(errorBox(e));
      return;
    }
    for (const db of state.open) if (!state.tables.has(db)) await loadTables(db);
    drawTree(dbs);
  }

  async function loadTables(db) {
    try {
      state.tables.set(db, (await sql(`SHOW TABLES IN ${ident(db)}`)).rows.map((r) => r[0]));
    } catch (e) {
      state.tables.set(db, e);
    }
  }

  function drawTree(dbs) {
    const list = el("ul", {});
    for (const db of dbs) {
      const open = state.open.has(db);
      const li = el("li", {}, el("button", { class: "db" + (open ? " open" : ""), "data-db": db,
        onclick: async () => {
          if (open) state.open.delete(db); else { state.open.add(db); await loadTables(db); }
          drawTree(dbs);
        } }, db));
      if (open) {
        const tables = state.tables.get(db);
        const sub = el("ul", {});
        if (tables instanceof Error) sub.append(el("li", { class: "error" }, tables.message));
        else if (!tables || !tables.length) sub.append(el("li", { class: "muted" }, "  (no tables)"));
        else for (const t of tables) {
          const sel = state.selected && state.selected.db === db && state.selected.table === t;
          sub.append(el("li", {}, el("button", { class: sel ? "selected" : null, "data-table": `${db}.${t}`,
            onclick: () => { select(db, t); drawTree(dbs); } }, t)));
        }
        li.append(sub);
      }
      list.append(li);
    }
    tree.replaceChildren(el("h2", {}, "Databases"), list);
  }

  function select(db, table) {
    if (!state.selected || state.selected.db !== db || state.selected.table !== table) state.version = "";
    state.selected = { db, table };
    drawDetail();
  }

  async function drawDetail() {
    const sel = state.selected;
    if (!sel) {
      detail.replaceChildren(el("div", { class: "empty" }, "Pick a table on the left."));
      return;
    }
    const versionSelect = el("select", { id: "version", title: "Time travel: the table as of a snapshot" },
      el("option", { value: "" }, "latest"));
    versionSelect.addEventListener("change", () => { state.version = versionSelect.value; state.tab = "data"; drawDetail(); });
    const body = el("div", { class: "results", "data-test": "catalog-body" }, el("div", { class: "muted" }, "loading…"));
    const query = tabSql(sel.db, sel.table, state.tab, state.version);
    const tabs = el("div", { class: "tabs" }, TABS.map(([k, label]) =>
      el("button", { class: state.tab === k ? "active" : null, "data-tab": k,
        onclick: () => { state.tab = k; drawDetail(); } }, label)));
    detail.replaceChildren(
      el("div", { class: "row" }, el("h1", {}, `${sel.db}.${sel.table}`), el("span", { class: "spacer" }),
        el("label", {}, "version ", versionSelect),
        el("button", { title: "Open this query in the SQL editor",
          onclick: () => { setEditorText(query + ";"); app.go("sql"); } }, "Open in editor")),
      tabs, body);
    // The versions for time travel, newest first.
    sql(tabSql(sel.db, sel.table, "snapshots")).then((r) => {
      const at = r.columns.findIndex((c) => c.name === "snapshot_id");
      const when = r.columns.findIndex((c) => c.name === "commit_time");
      for (const row of r.rows) {
        const id = String(row[at]);
        versionSelect.append(el("option", { value: id, selected: id === state.version },
          `snapshot ${id}${when >= 0 ? " · " + String(row[when]).replace("T", " ").slice(0, 19) : ""}`));
      }
    }).catch(() => {});
    try {
      const r = await sql(query, { maxRows: 10000 });
      if (!live) return;
      const opts = { pageSize: 50 };
      if (state.tab === "snapshots") {
        const at = r.columns.findIndex((c) => c.name === "snapshot_id");
        opts.rowTitle = "Show the table as of this snapshot";
        opts.onRowClick = (row) => { state.version = String(row[at]); state.tab = "data"; drawDetail(); };
      }
      const note = state.tab === "data" && state.version
        ? el("div", { class: "message", "data-test": "time-travel" }, `As of snapshot ${state.version} (VERSION AS OF ${state.version}).`)
        : state.tab === "snapshots" ? el("div", { class: "muted" }, "Click a snapshot to see the table as of it.") : null;
      body.replaceChildren(...[note, grid(r, opts)].filter(Boolean));
    } catch (e) {
      body.replaceChildren(errorBox(e));
    }
  }

  root.replaceChildren(el("div", { class: "split" }, tree, detail));
  loadTree();
  drawDetail();
  return { unmount() { live = false; } };
}
