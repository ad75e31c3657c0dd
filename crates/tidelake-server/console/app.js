// The console's shell: the pages behind #/sql, #/catalog, #/jobs, #/health,
// and logging in (HTTP Basic, once the server has users).

import { getJson, credentials, setCredentials, setUnauthorizedHandler, el } from "./api.js";
import * as editor from "./editor.js";
import * as catalog from "./catalog.js";
import * as jobs from "./jobs.js";
import * as health from "./health.js";

const PAGES = { sql: editor, catalog, jobs, health };
const TITLES = { sql: "SQL", catalog: "Catalog", jobs: "Jobs", health: "Health" };
let current = null;

const app = {
  go(page) {
    if (location.hash !== "#/" + page) location.hash = "#/" + page;
    else route();
  },
};

function route() {
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1];
  const page = PAGES[name] ? name : "sql";
  if (current && current.unmount) current.unmount();
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page);
  document.title = `${TITLES[page]} · Tidelake console`;
  const root = document.getElementById("page");
  root.dataset.page = page;
  current = PAGES[page].mount(root, app) || null;
}

async function showWho() {
  const who = document.getElementById("who");
  let auth = {};
  try {
    const status = await getJson("/v1/status");
    auth = (status && status.auth) || {};
  } catch (e) {
    // A 401 has opened the login already.
    if (e.httpStatus === 401) auth = { required: true };
  }
  // Read after the request: a refused login has forgotten its credentials.
  const c = credentials();
  if (c) {
    who.replaceChildren(el("span", { class: "badge", "data-test": "user" }, c.user),
      el("button", { id: "logout", onclick: () => { setCredentials(null); location.reload(); } }, "Log out"));
  } else if (auth.required) {
    who.replaceChildren(el("button", { id: "login-open", onclick: () => login("") }, "Log in"));
    login("");
  } else {
    who.title = auth.reason || "";
    who.replaceChildren(el("span", { class: "badge", "data-test": "no-login" }, "no login needed"),
      el("span", {}, "loopback server without users"));
  }
}

function login(message) {
  const dialog = document.getElementById("login");
  if (dialog.open) return;
  const err = document.getElementById("login-error");
  err.hidden = !message;
  err.textContent = message ? "The server refused: " + message.slice(0, 200) : "";
  dialog.showModal();
}

document.getElementById("login-form").addEventListener("submit", () => {
  setCredentials(document.getElementById("login-user").value, document.getElementById("login-password").value);
  showWho();
  route();
});

setUnauthorizedHandler((text) => {
  setCredentials(null);
  let message = text;
  try { message = JSON.parse(text).error.message; } catch (e) { /* plain text */ }
  login(message || "wrong user or password");
});

window.addEventListener("hashchange", route);
route();
showWho();
