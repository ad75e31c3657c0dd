//! The web console of `tidelake serve --http`: its assets and the HTTP
//! routes it relies on (statement ids, cancel, `max_rows`, `/v1/status`),
//! then the console itself in headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by scripts/setup/30-chromium.sh) driven by
//! tests/server/console_browser.py at 1280x800 and 400px wide. Its
//! screenshots stay in `<target>/tmp/console-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tidelake_testkit::process::{run, wait_until};
use tidelake_testkit::python;
use tidelake_testkit::warehouse::KeptOnFailure;

use crate::serve::{assert_ok_lines, http, json, serve};

const SLOW: &str = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r \
                    WHERE n < 1000000000) SELECT count(*) FROM r";

fn post_json(port: u16, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let (status, text) = http(
        port,
        "POST",
        "/v1/statements",
        "application/json",
        &body.to_string(),
    );
    (status, json(&text))
}

fn sql_ok(port: u16, sql: &str) -> serde_json::Value {
    let (status, answer) = post_json(port, &serde_json::json!({ "sql": sql }));
    assert_eq!(status, 200, "{sql}: {answer}");
    answer
}

/// shop.orders with ids 1..=120 in two commits (1..=100, then 101..=120),
/// and an empty shop.orders_copy for a job to fill.
fn seed(port: u16) {
    sql_ok(port, "CREATE DATABASE shop");
    sql_ok(
        port,
        "CREATE TABLE shop.orders (id BIGINT NOT NULL, name STRING, amount DECIMAL(10, 2), \
         PRIMARY KEY (id) NOT ENFORCED) WITH ('bucket' = '1')",
    );
    sql_ok(
        port,
        "CREATE TABLE shop.orders_copy (id BIGINT NOT NULL, name STRING, amount DECIMAL(10, 2), \
         PRIMARY KEY (id) NOT ENFORCED) WITH ('bucket' = '1')",
    );
    for ids in [1..=100, 101..=120] {
        let values: Vec<String> = ids.map(|i| format!("({i}, 'name {i}', {i}.50)")).collect();
        sql_ok(
            port,
            &format!("INSERT INTO shop.orders VALUES {}", values.join(", ")),
        );
    }
}

#[test]
fn console_assets_statement_ids_cancel_max_rows_and_status() {
    let dir = KeptOnFailure::new("console-http");
    let mut server = serve(dir.path(), &[]);
    let h = server.http;
    // The page, its scripts and the security policy that keeps them alone.
    for path in ["/", "/console/", "/console/app.js", "/console/console.css"] {
        let (status, body) = http(h, "GET", path, "text/plain", "");
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, page) = http(h, "GET", "/", "text/plain", "");
    assert!(page.contains("<script type=\"module\" src=\"/console/app.js\">"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    let (status, _) = http(h, "GET", "/console/nope.js", "text/plain", "");
    assert_eq!(status, 404);
    // max_rows cuts the answer short and says so; the database is USEd first.
    seed(h);
    let (status, answer) = post_json(
        h,
        &serde_json::json!({"sql": "SELECT id FROM orders ORDER BY id", "database": "shop",
                            "max_rows": 5, "id": "first-five"}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["id"], "first-five");
    assert_eq!(answer["rows"], serde_json::json!([[1], [2], [3], [4], [5]]));
    assert_eq!(answer["truncated"], true);
    assert_eq!(answer["status"], "SELECT 5");
    let all = sql_ok(h, "SELECT count(*) AS n FROM shop.orders");
    assert_eq!(all["rows"], serde_json::json!([[120]]));
    assert!(all.get("truncated").is_none(), "{all}");
    // A bad id is refused; cancelling nothing is a 404.
    let (status, answer) = post_json(h, &serde_json::json!({"sql": "SELECT 1", "id": "a b"}));
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("22023"))
    );
    let (status, body) = http(h, "DELETE", "/v1/statements/nothing", "text/plain", "");
    assert_eq!(status, 404, "{body}");
    // DELETE /v1/statements/{id} cancels the running statement with that id.
    let slow =
        std::thread::spawn(move || post_json(h, &serde_json::json!({"sql": SLOW, "id": "slow-1"})));
    wait_until(
        Duration::from_secs(60),
        "the slow statement to be cancelled",
        || http(h, "DELETE", "/v1/statements/slow-1", "text/plain", "").0 == 200,
    );
    let (status, answer) = slow.join().expect("the slow statement's thread");
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "57014", "{answer}");
    // The counters the health page shows.
    let (status, body) = http(h, "GET", "/v1/status", "text/plain", "");
    assert_eq!(status, 200, "{body}");
    let s = json(&body);
    assert!(s["statements"]["total"].as_u64().unwrap_or(0) >= 8, "{s}");
    assert!(s["statements"]["failed"].as_u64().unwrap_or(0) >= 1, "{s}");
    assert_eq!(s["statements"]["running"], 0, "{s}");
    assert_eq!(s["commits"], 2, "{s}");
    assert_eq!(s["auth"]["required"], false, "{s}");
    server.child.kill();
}

/// Where the browser test leaves its screenshots.
fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
}

#[test]
fn console_in_headless_chromium() {
    let Some(python) = python::or_skip("the console browser test") else {
        return;
    };
    for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: run scripts/setup/30-chromium.sh (scripts/test does)"
        );
    }
    let dir = KeptOnFailure::new("console-browser");
    let mut server = serve(dir.path(), &[]);
    seed(server.http);
    // The jobs page must say what the server's SQL says.
    let (status, _) = post_json(
        server.http,
        &serde_json::json!({"sql": "SELECT * FROM sys.jobs"}),
    );
    let jobs = if status == 200 {
        "available"
    } else {
        "unavailable"
    };
    let out = screenshots();
    let _ = std::fs::remove_dir_all(&out);
    println!("console screenshots: {}", out.display());
    let script = python::workspace_root().join("tests/server/console_browser.py");
    let mut command = Command::new(python);
    command
        .arg(script)
        .arg(format!("http://127.0.0.1:{}", server.http))
        .arg(&out)
        .arg(jobs);
    let done = run(&mut command, "", Duration::from_secs(600));
    assert!(
        done.status.success(),
        "the console browser test failed (screenshots in {})\nstdout:\n{}\nstderr:\n{}\nserver stderr:\n{}",
        out.display(),
        done.stdout,
        done.stderr,
        server.child.stderr()
    );
    let jobs_1280 = format!("jobs_{jobs}_1280");
    let jobs_400 = format!("jobs_{jobs}_400");
    let mut checks = vec![
        "no_login",
        "query_grid_1280",
        "paging_1280",
        "chart_1280",
        "explain",
        "cancel",
        "snapshots_1280",
        "time_travel_1280",
        "schema_1280",
        &jobs_1280,
        "health_1280",
        "query_grid_400",
        "snapshots_400",
        "time_travel_400",
        &jobs_400,
        "health_400",
        "no_script_errors",
    ];
    if jobs == "available" {
        checks.extend(["job_created", "job_suspended"]);
    }
    assert_ok_lines(&done.stdout, &checks);
    for page in ["sql", "catalog-snapshots", "jobs", "health"] {
        for width in ["1280", "400"] {
            let shot = out.join(format!("{page}-{width}.png"));
            assert!(shot.exists(), "no screenshot {}", shot.display());
        }
    }
    server.child.kill();
}

/// What the console's jobs page sends, as a user of a server with users:
/// a reader (and a writer: jobs are DDL) is refused CREATE JOB, ALTER JOB
/// and DROP JOB with 403 / 42501, and no job comes into being; the reader
/// still sees the jobs an admin declared.
#[test]
fn a_reader_cannot_create_or_change_jobs_from_the_console() {
    use crate::serve_access::{add_user, basic, request};
    let dir = KeptOnFailure::new("console-reader-jobs");
    let users = dir.path().join("users.toml");
    add_user(&users, "ada", "admin", "ada-pw", &[]);
    add_user(&users, "wes", "writer", "wes-pw", &[]);
    add_user(&users, "rita", "reader", "rita-pw", &[]);
    let users = users.to_string_lossy().to_string();
    let mut server = serve(&dir.path().join("wh"), &["--users", users.as_str()]);
    let h = server.http;
    // The console sends its header (so a refusal raises no browser prompt).
    let as_user = |user: &str, password: &str, sql: &str| {
        let headers = format!("{}X-Tidelake-Console: 1\r\n", basic(user, password));
        request(h, "POST", "/v1/statements", &headers, sql)
    };
    for sql in [
        "CREATE TABLE src (id BIGINT, v STRING)",
        "CREATE TABLE sink (id BIGINT, v STRING)",
    ] {
        let (status, body) = as_user("ada", "ada-pw", sql);
        assert_eq!(status, 200, "{sql}: {body}");
    }
    let create = "CREATE JOB copy AS INSERT INTO sink SELECT id, v FROM src";
    for (user, password) in [("rita", "rita-pw"), ("wes", "wes-pw")] {
        let (status, body) = as_user(user, password, create);
        assert_eq!(status, 403, "{user}: {body}");
        assert!(body.contains("42501"), "{user}: {body}");
    }
    let (status, body) = as_user("rita", "rita-pw", "SELECT count(*) FROM sys.jobs");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#""rows":[[0]]"#),
        "no job was created: {body}"
    );
    // The admin creates it; the reader sees it but may not change it.
    let (status, body) = as_user("ada", "ada-pw", create);
    assert_eq!(status, 200, "{body}");
    for sql in ["ALTER JOB copy SUSPEND", "DROP JOB copy"] {
        let (status, body) = as_user("rita", "rita-pw", sql);
        assert_eq!(status, 403, "{sql}: {body}");
        assert!(body.contains("42501"), "{sql}: {body}");
    }
    let (status, body) = as_user("rita", "rita-pw", "SELECT name FROM sys.jobs");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""rows":[["copy"]]"#), "{body}");
    server.child.kill();
}
