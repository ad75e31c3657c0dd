// Talking to the server: SQL over POST /v1/statements, cancel, status,
// with the HTTP Basic credentials of the login (kept for this tab only).

const AUTH_KEY = "tidelake.auth";

/** A statement's failure: the SQLSTATE and the server's message. */
export class SqlError extends Error {
  constructor(code, message, httpStatus) {
    super(message);
    this.code = code;
    this.httpStatus = httpStatus;
  }
}

let onUnauthorized = () => {};

/** Called with the server's message when a request answers 401. */
export function setUnauthorizedHandler(f) { onUnauthorized = f; }

export function credentials() {
  const user = sessionStorage.getItem(AUTH_KEY + ".user");
  return user === null ? null : { user, password: sessionStorage.getItem(AUTH_KEY + ".password") || "" };
}

export function setCredentials(user, password) {
  if (user === null) {
    sessionStorage.removeItem(AUTH_KEY + ".user");
    sessionStorage.removeItem(AUTH_KEY + ".password");
  } else {
    sessionStorage.setItem(AUTH_KEY + ".user", user);
    sessionStorage.setItem(AUTH_KEY + ".password", password);
  }
}

function headers(extra) {
  // Says "the console asks for the password itself": a 401 then comes
  // without the browser's own login prompt.
  const h = Object.assign({ "X-Tidelake-Console": "1" }, extra);
  const c = credentials();
  if (c) {
    const bytes = new TextEncoder().encode(c.user + ":" + c.password);
    h.Authorization = "Basic " + btoa(String.fromCharCode(...bytes));
  }
  return h;
}

async function request(method, path, body, extraHeaders) {
  let response;
  try {
    response = await fetch(path, { method, body, headers: headers(extraHeaders), cache: "no-store" });
  } catch (e) {
    throw new SqlError("08006", "the server does not answer: " + e.message, 0);
  }
  if (response.status === 401) {
    const text = await response.text();
    onUnauthorized(text);
    throw new SqlError("28000", "log in to continue", 401);
  }
  return response;
}

let counter = 0;

/** A fresh statement id, for cancelling it while it runs. */
export function statementId() {
  counter += 1;
  return "c" + Date.now().toString(36) + "-" + counter + "-" + Math.random().toString(36).slice(2, 8);
}

/**
 * Runs SQL; resolves to {id, columns, rows, status, truncated, ms} or
 * rejects with a SqlError.
 */
export async function sql(text, opts = {}) {
  const body = { sql: text, id: opts.id || statementId() };
  if (opts.database) body.database = opts.database;
  if (opts.maxRows) body.max_rows = opts.maxRows;
  const started = performance.now();
  const response = await request("POST", "/v1/statements", JSON.stringify(body),
    { "Content-Type": "application/json" });
  let answer;
  try {
    answer = await response.json();
  } catch (e) {
    throw new SqlError("XX000", "the server's answer is not JSON (HTTP " + response.status + ")", response.status);
  }
  if (!response.ok || answer.error) {
    const err = answer.error || { code: "XX000", message: "HTTP " + response.status };
    throw new SqlError(err.code, err.message, response.status);
  }
  answer.ms = performance.now() - started;
  return answer;
}

/** Cancels the running statement `id`; true when one was running. */
export async function cancel(id) {
  const response = await request("DELETE", "/v1/statements/" + encodeURIComponent(id));
  return response.ok;
}

/** GET a JSON route; null when it does not exist. */
export async function getJson(path) {
  const response = await request("GET", path);
  if (response.status === 404) return null;
  if (!response.ok) throw new SqlError("XX000", path + ": HTTP " + response.status, response.status);
  return response.json();
}

/** GET a text route (such as /metrics); null when it does not exist. */
export async function getText(path) {
  const response = await request("GET", path);
  if (!response.ok) return null;
  return response.text();
}

/** An identifier as SQL writes it: plain when it can be, else quoted. */
export function ident(name) {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : '"' + name.replace(/"/g, '""') + '"';
}

/** A string literal. */
export function literal(text) {
  return "'" + String(text).replace(/'/g, "''") + "'";
}

/** Escapes text for HTML. */
export function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

/** An element: el("div", {class: "x", onclick: f}, child, "text", ...). */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An error box for a failed statement. */
export function errorBox(e) {
  return el("div", { class: "message error", "data-test": "error" },
    el("span", { class: "code" }, e.code || "error"), e.message);
}
