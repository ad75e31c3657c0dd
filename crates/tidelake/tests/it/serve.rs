//! `tidelake serve` end to end: a real server child process on loopback
//! with ephemeral ports, driven by psql, psycopg 3 (a Python script) and
//! HTTP; garbage on either port must not take it down.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tidelake_testkit::process::{run, wait_until, Finished, Spawned};
use tidelake_testkit::python;
use tidelake_testkit::warehouse::KeptOnFailure;

use crate::TIDELAKE;

pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);

/// A `tidelake serve` child and the ports it printed.
pub(crate) struct Served {
    pub(crate) child: Spawned,
    pub(crate) pg: u16,
    pub(crate) http: u16,
}

pub(crate) fn port_after(stdout: &str, label: &str) -> Option<u16> {
    let line = stdout.lines().find(|l| l.starts_with(label))?;
    line.rsplit(':').next()?.trim().parse().ok()
}

pub(crate) fn serve(warehouse: &Path, extra: &[&str]) -> Served {
    let mut command = TIDELAKE.command(warehouse);
    command.arg("serve");
    // Ephemeral loopback ports unless the test chooses an address.
    for flag in ["--pg", "--http"] {
        if !extra.contains(&flag) {
            command.args([flag, "127.0.0.1:0"]);
        }
    }
    command.args(extra);
    let mut child = Spawned::start(&mut command);
    child.expect_stdout("HTTP: listening on", TIMEOUT);
    let out = child.stdout();
    let pg = port_after(&out, "PostgreSQL: listening on").expect("a PostgreSQL port");
    let http = port_after(&out, "HTTP: listening on").expect("an HTTP port");
    Served { child, pg, http }
}

/// psql with `args` (commands with -c), no psqlrc, never a password prompt.
/// A bare PostgreSQL protocol connection (startup as user `tester`, read
/// up to ReadyForQuery): the stream and what the server sent meanwhile.
pub(crate) fn raw_pg_connect(port: u16) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(TIMEOUT))
        .expect("a read timeout");
    let params = b"user\0tester\0database\0default\0\0";
    let mut startup = ((params.len() + 8) as i32).to_be_bytes().to_vec();
    startup.extend_from_slice(&196_608i32.to_be_bytes());
    startup.extend_from_slice(params);
    stream.write_all(&startup).expect("startup");
    let greeting = read_until_ready(&mut stream);
    (stream, greeting)
}

pub(crate) fn psql(port: u16, args: &[&str]) -> Finished {
    let mut command = Command::new("psql");
    command
        .args(["-X", "-w", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "tester", "-d", "default", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD")
        .env_remove("PGSERVICE");
    run(&mut command, "", TIMEOUT)
}

pub(crate) fn psql_ok(port: u16, args: &[&str]) -> String {
    let done = psql(port, args);
    assert!(
        done.status.success(),
        "psql {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        done.stdout,
        done.stderr
    );
    done.stdout
}

/// One HTTP/1.1 request; the status code and the body.
pub(crate) fn http(
    port: u16,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP port");
    stream
        .set_read_timeout(Some(TIMEOUT))
        .expect("a read timeout");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub(crate) fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn psql_queries_describes_and_reports_errors() {
    let dir = KeptOnFailure::new("serve-psql");
    let mut server = serve(dir.path(), &[]);
    let p = server.pg;
    psql_ok(
        p,
        &[
            "-c",
            "CREATE TABLE t (id BIGINT NOT NULL, tiny TINYINT, name STRING, amount DECIMAL(10, 2), \
             ts TIMESTAMP(3), PRIMARY KEY (id) NOT ENFORCED) WITH ('bucket' = '1')",
            "-c",
            "INSERT INTO t VALUES (1, 7, 'ada', 12.50, TIMESTAMP '2026-11-01 10:00:00'), \
             (2, NULL, NULL, -0.05, NULL)",
        ],
    );
    let out = psql_ok(p, &["-A", "-c", "SELECT * FROM t ORDER BY id"]);
    assert!(
        out.contains(
            "id|tiny|name|amount|ts\n1|7|ada|12.50|2026-11-01 10:00:00\n2|||-0.05|\n(2 rows)"
        ),
        "{out}"
    );
    // FETCH_COUNT makes psql read through a cursor (BEGIN, DECLARE, FETCH).
    let fetched = psql_ok(
        p,
        &[
            "-A",
            "-v",
            "FETCH_COUNT=1",
            "-c",
            "SELECT id FROM t ORDER BY id",
        ],
    );
    assert!(fetched.contains("id\n1\n2\n(2 rows)"), "{fetched}");
    let tables = psql_ok(p, &["-c", "\\dt"]);
    assert!(tables.contains("default | t    | table"), "{tables}");
    let described = psql_ok(p, &["-c", "\\d t"]);
    assert!(described.contains("Table \"default.t\""), "{described}");
    for (column, ty) in [
        ("id", "bigint"),
        ("tiny", "smallint"),
        ("name", "text"),
        ("amount", "numeric(10,2)"),
        ("ts", "timestamp without time zone"),
    ] {
        assert!(
            described
                .lines()
                .any(|l| l.trim_start().starts_with(column) && l.contains(ty)),
            "column {column} of type {ty} in:\n{described}"
        );
    }
    assert!(described.contains("not null"), "{described}");
    psql_ok(p, &["-c", "CREATE DATABASE sales"]);
    let databases = psql_ok(p, &["-c", "\\l"]);
    assert!(
        databases.contains("default") && databases.contains("sales"),
        "{databases}"
    );
    let schemas = psql_ok(p, &["-c", "\\dn"]);
    assert!(schemas.contains("sales"), "{schemas}");
    let missing = psql(p, &["-c", "\\d nothing"]);
    assert!(
        missing
            .stderr
            .contains("Did not find any relation named \"nothing\""),
        "{}",
        missing.stderr
    );

    // An error's SQLSTATE, as psql shows it in verbose mode.
    let failed = psql(
        p,
        &[
            "-c",
            "\\set VERBOSITY verbose",
            "-c",
            "SELECT * FROM nothing",
        ],
    );
    assert!(!failed.status.success());
    assert!(
        failed.stderr.contains("ERROR:  42P01:"),
        "{}",
        failed.stderr
    );

    // statement_timeout ends a long query with 57014.
    let timed_out = psql(
        p,
        &[
            "-c",
            "\\set VERBOSITY verbose",
            "-c",
            "SET statement_timeout = '100ms'",
            "-c",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000000000) SELECT count(*) FROM r",
        ],
    );
    assert!(
        timed_out.stderr.contains("57014") && timed_out.stderr.contains("statement timeout"),
        "{}",
        timed_out.stderr
    );
    // A session of its own: SHOW and SET per connection.
    let shown = psql_ok(p, &["-A", "-t", "-c", "SHOW statement_timeout"]);
    assert_eq!(shown.trim(), "0");
    assert!(
        server.child.try_status().is_none(),
        "the server must still run"
    );
    server.child.kill();
}

#[test]
fn garbage_on_either_port_does_not_stop_the_server() {
    let dir = KeptOnFailure::new("serve-garbage");
    let mut server = serve(dir.path(), &[]);
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for round in 0..20 {
        let len = 1 + (round * 37) % 300;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        for port in [server.pg, server.http] {
            let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
                panic!("the server stopped accepting on {port} after round {round}");
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("a read timeout");
            let _ = stream.write_all(&bytes);
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        }
    }
    // A startup packet that claims a huge length, then nothing.
    let mut stream = TcpStream::connect(("127.0.0.1", server.pg)).expect("connect");
    let _ = stream.write_all(&[0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0]);
    drop(stream);
    let out = psql_ok(server.pg, &["-A", "-t", "-c", "SELECT 40 + 2"]);
    assert_eq!(out.trim(), "42");
    let (status, body) = http(server.http, "GET", "/healthz", "text/plain", "");
    assert_eq!(status, 200, "{body}");
    assert!(server.child.try_status().is_none());
    server.child.kill();
}

/// A frontend message: type byte, length, body.
pub(crate) fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// Reads backend messages up to ReadyForQuery; their type bytes.
pub(crate) fn read_until_ready(stream: &mut TcpStream) -> String {
    let mut kinds = String::new();
    loop {
        let mut header = [0u8; 5];
        stream.read_exact(&mut header).expect("a backend message");
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        stream.read_exact(&mut body).expect("a message body");
        kinds.push(header[0] as char);
        if header[0] == b'Z' {
            return kinds;
        }
    }
}

#[test]
fn portals_stop_at_max_rows_and_resume() {
    let dir = KeptOnFailure::new("serve-portal");
    let mut server = serve(dir.path(), &[]);
    let (mut stream, greeting) = raw_pg_connect(server.pg);
    assert!(
        greeting.starts_with('R') && greeting.contains('K'),
        "{greeting}"
    );
    // Parse, Bind, then Execute with max_rows 2, 2 and 0 (the rest), Sync.
    let mut batch = message(b'P', b"\0SELECT unnest(range(0, 5)) AS n\0\0\0");
    batch.extend(message(b'B', b"\0\0\0\0\0\0\0\0"));
    for max_rows in [2i32, 2, 0] {
        let mut body = b"\0".to_vec();
        body.extend_from_slice(&max_rows.to_be_bytes());
        batch.extend(message(b'E', &body));
    }
    batch.extend(message(b'S', b""));
    stream.write_all(&batch).expect("the extended query");
    // ParseComplete, BindComplete, 2 rows, PortalSuspended, 2 rows,
    // PortalSuspended, the last row, CommandComplete, ReadyForQuery.
    assert_eq!(read_until_ready(&mut stream), "12DDsDDsDCZ");
    server.child.kill();
}

#[test]
fn connections_over_the_limit_are_refused_with_53300() {
    let dir = KeptOnFailure::new("serve-limit");
    let mut server = serve(dir.path(), &["--max-connections", "1"]);
    let held = TcpStream::connect(("127.0.0.1", server.pg)).expect("connect");
    let refused = psql(server.pg, &["-c", "SELECT 1"]);
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("too many clients"),
        "{}",
        refused.stderr
    );
    drop(held);
    // The slot frees once the server sees the held connection close.
    wait_until(TIMEOUT, "a connection after the held one closed", || {
        psql(server.pg, &["-c", "SELECT 1"]).status.success()
    });
    server.child.kill();
}

#[test]
fn http_runs_statements_and_reports_errors() {
    let dir = KeptOnFailure::new("serve-http");
    let mut server = serve(dir.path(), &[]);
    let h = server.http;
    let (status, body) = http(
        h,
        "POST",
        "/v1/statements",
        "text/plain",
        "CREATE TABLE t (id BIGINT, amount DECIMAL(20, 4), name STRING, tags ARRAY<STRING>); \
         INSERT INTO t VALUES (1, 12345678901234.5678, 'a', ARRAY['x', 'y']), (2, NULL, NULL, NULL)",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["status"], "INSERT 0 2", "{body}");
    let (status, body) = http(
        h,
        "POST",
        "/v1/statements",
        "application/json",
        r#"{"sql": "SELECT id, amount, name, tags FROM t ORDER BY id"}"#,
    );
    assert_eq!(status, 200, "{body}");
    // Decimals keep every digit: compare the text, not a float.
    assert!(
        body.contains(r#""rows":[[1,12345678901234.5678,"a",["x","y"]],[2,null,null,null]]"#),
        "{body}"
    );
    let answer = json(&body);
    assert_eq!(answer["columns"][1]["name"], "amount");
    assert_eq!(answer["columns"][1]["type"], "DECIMAL(20, 4)");
    assert_eq!(answer["status"], "SELECT 2");

    let (status, body) = http(
        h,
        "POST",
        "/v1/statements",
        "text/plain",
        "SELECT * FROM nothing",
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["error"]["code"], "42P01", "{body}");
    let (status, body) = http(h, "POST", "/v1/statements", "application/json", "{not json");
    assert_eq!(status, 400, "{body}");
    let (status, _) = http(h, "GET", "/healthz", "text/plain", "");
    assert_eq!(status, 200);
    let (status, body) = http(h, "GET", "/readyz", "text/plain", "");
    assert_eq!(status, 200, "{body}");
    server.child.kill();
}

#[test]
fn psycopg_binary_parameters_cursors_sessions_timeout_and_cancel() {
    let Some(python) = python::or_skip("the psycopg client test") else {
        return;
    };
    let dir = KeptOnFailure::new("serve-psycopg");
    let mut server = serve(dir.path(), &[]);
    let script = python::workspace_root().join("tests/server/psycopg_client.py");
    let mut command = Command::new(python);
    command.arg(script).arg(server.pg.to_string());
    let done = run(&mut command, "", Duration::from_secs(180));
    assert!(
        done.status.success(),
        "the psycopg client failed\nstdout:\n{}\nstderr:\n{}\nserver stderr:\n{}",
        done.stdout,
        done.stderr,
        server.child.stderr()
    );
    assert_ok_lines(
        &done.stdout,
        &[
            "binary_parameters",
            "description_oids",
            "types_round_trip",
            "server_side_cursor",
            "sessions_are_separate",
            "errors_carry_sqlstate",
            "statement_timeout",
            "cancel",
        ],
    );
    server.child.kill();
}

/// Fails unless a client script printed `ok CHECK` for every check.
pub(crate) fn assert_ok_lines(stdout: &str, checks: &[&str]) {
    for check in checks {
        assert!(
            stdout.contains(&format!("ok {check}\n")),
            "no `ok {check}`:\n{stdout}"
        );
    }
}
