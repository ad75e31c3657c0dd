"""The web console in headless Chromium, driven through chromedriver's
WebDriver HTTP API (the standard library only; driven by the Rust test
crates/tidelake/tests/it/console.rs).

Usage: console_browser.py BASE_URL OUT_DIR EXPECTED_JOBS_STATE [USER:PASSWORD]

With USER:PASSWORD (a server with users) the console must ask for a login,
refuse a wrong password and accept the right one; without, it must say that
no login is needed.

The server has shop.orders (ids 1..120, two commits: ids 1..100, then
101..120) and an empty shop.orders_copy of the same columns. At 1280x800 and then 400x800 the script opens the console, runs
a query and reads the grid's cells, pages, charts, explains, cancels a slow
statement, browses the table's snapshots and travels back to the first,
reads the jobs page's state (where the server has jobs, creates one from the
editor, sees it run with its lag and suspends it) and the health page. It saves a screenshot of
each page in OUT_DIR, prints one `ok NAME` line per check and exits
non-zero (with a traceback) at the first failing one.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

CHROMIUM = os.environ.get("TIDELAKE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TIDELAKE_CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT = 30.0
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CTRL, ENTER, RELEASE = "\ue009", "\ue007", "\ue000"
SLOW = ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000000000) "
        "SELECT count(*) FROM r")


def ok(name):
    print("ok " + name, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """One WebDriver session of a chromedriver child."""

    def __init__(self, profile):
        self.port = free_port()
        self.driver = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + WAIT
        while True:
            try:
                self.call("GET", "/status", session=False)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,800",
                f"--user-data-dir={profile}"]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}}}
        value = self.call("POST", "/session", caps, session=False)
        self.session = value["sessionId"]

    def call(self, method, path, body=None, session=True):
        url = self.base + (f"/session/{self.session}" if session else "") + path
        data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=WAIT * 2) as response:
                return json.load(response)["value"]
        except urllib.error.HTTPError as e:
            raise AssertionError(f"WebDriver {method} {path}: {e.read().decode(errors='replace')}")

    def close(self):
        try:
            self.call("DELETE", "")
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=WAIT)

    def size(self, width, height):
        """Makes the page's viewport width x height; returns what it got."""
        self.call("POST", "/window/rect", {"width": width, "height": height})
        inner = self.js("return [window.innerWidth, window.innerHeight]")
        self.call("POST", "/window/rect", {"width": 2 * width - inner[0], "height": 2 * height - inner[1]})
        return self.js("return [window.innerWidth, window.innerHeight]")

    def open(self, url):
        self.call("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        return self.wait(lambda: self.call("POST", "/elements", {"using": "css selector", "value": css}),
                         f"an element {css}")[0][ELEMENT]

    def click(self, css):
        self.call("POST", f"/element/{self.find(css)}/click")

    def type(self, css, text):
        element = self.find(css)
        self.call("POST", f"/element/{element}/clear")
        self.call("POST", f"/element/{element}/value", {"text": text})

    def text(self, css):
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.innerText : null", css)

    def wait(self, probe, what, timeout=WAIT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = probe()
            except AssertionError as e:
                last = e
            if last and not isinstance(last, AssertionError):
                return last
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what} (last: {last})")

    def screenshot(self, out_dir, name):
        png = base64.b64decode(self.call("GET", "/screenshot"))
        path = os.path.join(out_dir, name + ".png")
        with open(path, "wb") as f:
            f.write(png)
        return path


def grid_cells(b):
    """The rows of the visible grid, each a list of cell texts (row number first)."""
    return b.js("""return [...document.querySelectorAll('#page table.grid tbody tr')]
        .map(tr => [...tr.cells].map(td => td.innerText))""")


def run_sql(b, text, *, explain=False):
    b.type("textarea[data-test=sql]", text)
    before = b.text("[data-test=status]")
    keys = CTRL + (("\ue008" + ENTER) if explain else ENTER) + RELEASE
    b.call("POST", f"/element/{b.find('textarea[data-test=sql]')}/value", {"text": keys})
    b.wait(lambda: (s := b.text("[data-test=status]")) and s != before and "running" not in s
           and s != "cancelling…", "the statement to finish")


def no_sideways_scroll(b, page):
    wide = b.js("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert wide[0] <= wide[1] + 1, f"{page}: the page is {wide[0]}px wide in a {wide[1]}px window"


def log_in(b, out, user, password):
    """The login dialog: a wrong password is refused, the right one let in."""
    b.wait(lambda: b.js("return document.getElementById('login').open"), "the login dialog")
    b.type("#login-user", user)
    b.type("#login-password", password + "-wrong")
    b.click("#login-submit")
    b.wait(lambda: b.text("#login-error"), "the refusal of a wrong password")
    ok("login_refused")
    b.screenshot(out, "login-1280")
    b.type("#login-user", user)
    b.type("#login-password", password)
    b.click("#login-submit")
    assert b.wait(lambda: b.text("[data-test=user]"), "the logged-in user") == user
    ok("login")


def sql_page(b, base, out, tag):
    b.open(base + "/")
    b.find("#nav a.active[data-page=sql]")
    run_sql(b, "SELECT id, name, amount FROM shop.orders ORDER BY id")
    b.wait(lambda: grid_cells(b), "grid rows")
    rows = grid_cells(b)
    assert rows[0] == ["1", "1", "name 1", "1.50"], rows[0]
    assert rows[99][:3] == ["100", "100", "name 100"], rows[99]
    assert len(rows) == 100, len(rows)
    assert "page 1 of 2" in b.text("[data-test=page]"), b.text("[data-test=page]")
    assert b.text("[data-test=status]").startswith("SELECT 120"), b.text("[data-test=status]")
    ok(f"query_grid_{tag}")
    b.screenshot(out, f"sql-{tag}")
    b.click("[data-test=next]")
    b.wait(lambda: "page 2 of 2" in (b.text("[data-test=page]") or ""), "the second page")
    rows = grid_cells(b)
    assert rows[0][:2] == ["101", "101"] and len(rows) == 20, rows[:2]
    ok(f"paging_{tag}")
    b.click("[data-test=view-chart]")
    bars = b.wait(lambda: b.js("return document.querySelectorAll('[data-test=chart] rect.bar, [data-test=chart] path.line').length"),
                  "the chart")
    assert bars >= 1
    ok(f"chart_{tag}")
    b.screenshot(out, f"chart-{tag}")
    b.click("[data-test=view-grid]")
    no_sideways_scroll(b, "sql")


def explain_and_cancel(b, out):
    run_sql(b, "SELECT count(*) FROM shop.orders WHERE amount > 10", explain=True)
    text = " ".join(" ".join(r) for r in grid_cells(b))
    assert "plan" in text.lower() or "Projection" in text or "Aggregate" in text, text[:400]
    ok("explain")
    b.type("textarea[data-test=sql]", SLOW)
    b.click("#run")
    b.wait(lambda: "running" in (b.text("[data-test=status]") or ""), "the slow statement to run")
    b.wait(lambda: b.js("return !document.querySelector('#cancel').disabled"), "the cancel button")
    b.click("#cancel")
    b.wait(lambda: b.text("[data-test=error]"), "the cancelled statement's error")
    error = b.text("[data-test=error]")
    assert "57014" in error and "user request" in error, error
    ok("cancel")
    b.screenshot(out, "cancelled-1280")


def catalog_page(b, base, out, tag):
    b.open(base + "/#/catalog")
    b.click("[data-db=shop]")
    b.click("[data-table='shop.orders']")
    b.click("[data-tab=snapshots]")
    snapshots = b.wait(lambda: len(grid_cells(b)) >= 2 and grid_cells(b), "two snapshots")
    assert len(snapshots) == 2, snapshots
    ok(f"snapshots_{tag}")
    b.screenshot(out, f"catalog-snapshots-{tag}")
    # The oldest snapshot (listed last): the table as of the first commit.
    rows = b.call("POST", "/elements", {"using": "css selector", "value": "#page table.grid tbody tr"})
    b.call("POST", f"/element/{rows[-1][ELEMENT]}/click")
    b.find("[data-test=time-travel]")
    b.wait(lambda: "of 100" in (b.text("#page [data-test=pager]") or ""), "the first snapshot's 100 rows")
    ok(f"time_travel_{tag}")
    b.screenshot(out, f"catalog-time-travel-{tag}")
    b.click("[data-tab=schema]")
    b.wait(lambda: any(r[1] == "amount" for r in grid_cells(b)), "the schema")
    ok(f"schema_{tag}")
    no_sideways_scroll(b, "catalog")


def create_job_from_editor(b, base, out):
    """With jobs: CREATE JOB from the editor, see it run with its lag, suspend it."""
    b.open(base + "/#/sql")
    b.type("textarea[data-test=sql]",
           "INSERT INTO shop.orders_copy SELECT id, name, amount FROM shop.orders")
    b.click("#create-job")
    b.type("#job-name", "copy_orders")
    b.click("#job-create")
    b.wait(lambda: b.js("return location.hash") == "#/jobs", "the jobs page after CREATE JOB")
    row = "#page tr[data-job=copy_orders]"
    b.find(row)
    state = b.wait(lambda: b.text(row + " [data-test=job-state]"), "the job's state")
    assert "error" not in state.lower() and "fail" not in state.lower(), state
    b.find("[data-test=lag-chart]")
    ok("job_created")
    b.screenshot(out, "jobs-created-1280")
    b.click(row + " [data-action=suspend]")
    b.wait(lambda: "suspend" in (b.text(row + " [data-test=job-state]") or "").lower(), "the suspended state")
    ok("job_suspended")
    b.screenshot(out, "jobs-suspended-1280")


def jobs_page(b, base, out, tag, expected):
    b.open(base + "/#/jobs")
    b.find("#jobs-state")
    state = b.js("return document.querySelector('#jobs-state').dataset.state")
    assert state == expected, f"the jobs page says {state}, the server's SQL says {expected}"
    ok(f"jobs_{state}_{tag}")
    b.screenshot(out, f"jobs-{tag}")
    no_sideways_scroll(b, "jobs")


def health_page(b, base, out, tag):
    b.open(base + "/#/health")
    b.find("[data-test=health-cards]")
    statements = b.text("[data-test=statements] .value").replace(",", "")
    assert int(statements) > 0, statements
    assert b.text("[data-test=ready] .value") == "ready"
    # A second sample draws the activity chart's lines.
    b.wait(lambda: b.js("return document.querySelectorAll('[data-test=activity-chart] path.line').length"),
           "the activity chart", timeout=20)
    ok(f"health_{tag}")
    b.screenshot(out, f"health-{tag}")
    no_sideways_scroll(b, "health")


def main():
    base, out, expected_jobs = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    os.makedirs(out, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="tidelake-chromium-")
    b = Browser(profile)
    try:
        assert b.size(1280, 800) == [1280, 800]
        b.open(base + "/")
        if len(sys.argv) > 4:
            log_in(b, out, *sys.argv[4].split(":", 1))
        else:
            assert "no login needed" in b.wait(lambda: b.text("[data-test=no-login]"), "the login state")
            ok("no_login")
        sql_page(b, base, out, "1280")
        explain_and_cancel(b, out)
        catalog_page(b, base, out, "1280")
        jobs_page(b, base, out, "1280", expected_jobs)
        if expected_jobs == "available":
            create_job_from_editor(b, base, out)
        health_page(b, base, out, "1280")
        width = b.size(400, 800)[0]
        assert width <= 420, width
        sql_page(b, base, out, "400")
        catalog_page(b, base, out, "400")
        jobs_page(b, base, out, "400", expected_jobs)
        health_page(b, base, out, "400")
        # Script errors; failed requests (a 404 /metrics, a refused
        # statement) are the console's business and are shown on the page.
        logs = b.call("POST", "/se/log", {"type": "browser"})
        errors = [e for e in logs if e.get("level") == "SEVERE"
                  and "Failed to load resource" not in e.get("message", "")]
        assert not errors, errors
        ok("no_script_errors")
    finally:
        b.close()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
