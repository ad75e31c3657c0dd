// The results grid: a page of rows at a time, NULLs and numbers set apart.

import { el } from "./api.js";

const NUMERIC = /^(TINYINT|SMALLINT|INT|BIGINT|FLOAT|DOUBLE|DECIMAL|REAL|INTEGER)/i;

export function isNumericType(type) { return NUMERIC.test(type || ""); }

/** A cell as text; decimals keep their column's scale (JSON drops trailing zeros). */
function cellText(v, type) {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "object") return JSON.stringify(v);
  const scale = typeof v === "number" && /^DECIMAL\(\d+,\s*(\d+)\)/i.exec(type || "");
  if (scale && Number(scale[1]) <= 20) return v.toFixed(Number(scale[1]));
  return String(v);
}

/**
 * A grid of `result` ({columns, rows}) with a pager.
 * opts: pageSize, onRowClick(row, index), rowTitle
 */
export function grid(result, opts = {}) {
  const root = el("div", { class: "results-grid", "data-test": "grid" });
  let pageSize = opts.pageSize || 100;
  let page = 0;
  const rows = result.rows || [];
  const columns = result.columns || [];
  const numeric = columns.map((c) => isNumericType(c.type));

  function render() {
    const pages = Math.max(1, Math.ceil(rows.length / pageSize));
    page = Math.min(page, pages - 1);
    const start = page * pageSize;
    const slice = rows.slice(start, start + pageSize);
    const head = el("tr", {}, el("th", { class: "rownum" }, "#"),
      columns.map((c) => el("th", {}, c.name, el("span", { class: "type" }, c.type))));
    const body = slice.map((row, i) => {
      const tr = el("tr", {
        class: opts.onRowClick ? "clickable" : null,
        title: opts.rowTitle || null,
        onclick: opts.onRowClick ? () => opts.onRowClick(row, start + i) : null,
      }, el("td", { class: "rownum" }, start + i + 1));
      row.forEach((v, j) => {
        const text = cellText(v, columns[j].type);
        const cls = v === null ? "null" : numeric[j] ? "num" : text.includes("\n") ? "multi" : null;
        tr.append(el("td", { class: cls, title: text.length > 40 ? text : null }, text));
      });
      return tr;
    });
    const table = el("table", { class: "grid" }, el("thead", {}, head), el("tbody", {}, body));
    const pager = el("div", { class: "pager", "data-test": "pager" },
      el("button", { onclick: () => { page = 0; render(); }, disabled: page === 0, title: "First page" }, "«"),
      el("button", { onclick: () => { page -= 1; render(); }, disabled: page === 0, title: "Previous page", "data-test": "prev" }, "‹"),
      el("span", { "data-test": "page" }, `page ${page + 1} of ${pages}`),
      el("button", { onclick: () => { page += 1; render(); }, disabled: page >= pages - 1, title: "Next page", "data-test": "next" }, "›"),
      el("button", { onclick: () => { page = pages - 1; render(); }, disabled: page >= pages - 1, title: "Last page" }, "»"),
      el("span", {}, `rows ${rows.length ? start + 1 : 0}–${start + slice.length} of ${rows.length}`),
      el("span", { class: "spacer" }),
      el("label", {}, "per page ",
        el("select", { onchange: (e) => { pageSize = Number(e.target.value); page = 0; render(); } },
          [25, 50, 100, 500].map((n) => el("option", { value: n, selected: n === pageSize }, n)))));
    root.replaceChildren(el("div", { class: "grid-wrap" }, table), pager);
  }
  if (!columns.length) {
    root.append(el("div", { class: "message" }, result.status || "done"));
  } else {
    render();
  }
  return root;
}
