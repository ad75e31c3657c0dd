//! `tidelake serve` with users, limits and metrics, end to end: a real
//! server child on loopback (ephemeral ports) with a users file written by
//! `tidelake user add`; psql, raw PostgreSQL messages, psycopg and HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tidelake_testkit::process::{run, Finished};
use tidelake_testkit::python;
use tidelake_testkit::warehouse::KeptOnFailure;

use crate::serve::{message, psql_ok, read_until_ready, serve, Served, TIMEOUT};
use crate::TIDELAKE;

/// `tidelake user add` with the password on stdin.
pub(crate) fn add_user(users: &Path, name: &str, role: &str, password: &str, extra: &[&str]) {
    let mut command = TIDELAKE.bare();
    command
        .args([
            "user",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
            "--users",
        ])
        .arg(users)
        .args(extra);
    let done = run(&mut command, &format!("{password}\n"), TIMEOUT);
    assert!(done.status.success(), "user add {name}: {}", done.stderr);
}

/// A server with users ada (admin), wes (writer) and rita (reader, only
/// database `default`), and `extra` arguments.
fn serve_with_users(dir: &Path, extra: &[&str]) -> Served {
    let users = dir.join("users.toml");
    add_user(&users, "ada", "admin", "ada-pw", &[]);
    add_user(&users, "wes", "writer", "wes-pw", &[]);
    add_user(
        &users,
        "rita",
        "reader",
        "rita-pw",
        &["--database", "default"],
    );
    let text = std::fs::read_to_string(&users).expect("the users file");
    assert!(
        !text.contains("ada-pw") && text.contains("SCRAM-SHA-256$"),
        "{text}"
    );
    let users = users.to_string_lossy().to_string();
    let mut args = vec!["--users", users.as_str()];
    args.extend_from_slice(extra);
    serve(&dir.join("wh"), &args)
}

/// psql as `user` with `password`; errors with their SQLSTATE.
fn psql_as(port: u16, user: &str, password: &str, args: &[&str]) -> Finished {
    let mut command = Command::new("psql");
    command
        .args(["-X", "-w", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", user, "-d", "default", "-v", "ON_ERROR_STOP=1"])
        .args(["-v", "VERBOSITY=verbose", "-A", "-t"])
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGPASSWORD", password)
        .env_remove("PGSERVICE");
    run(&mut command, "", TIMEOUT)
}

fn psql_as_ok(port: u16, user: &str, password: &str, args: &[&str]) -> String {
    let done = psql_as(port, user, password, args);
    assert!(
        done.status.success(),
        "psql as {user} {args:?}: {}\n{}",
        done.stdout,
        done.stderr
    );
    done.stdout
}

/// One HTTP/1.1 request with extra header lines; status and body.
pub(crate) fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP port");
    stream.set_read_timeout(Some(TIMEOUT)).expect("a timeout");
    let text = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n{headers}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(text.as_bytes()).expect("send the request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("the response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(head, b)| format!("{head}\n\n{b}"))
        .unwrap_or_default();
    (status, body)
}

pub(crate) fn basic(user: &str, password: &str) -> String {
    // Base64 by hand: the test needs no crate for it.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | (b[2] as u32);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Authorization: Basic {out}\r\n")
}

/// A startup packet for `user` on database `default`.
fn startup(user: &str) -> Vec<u8> {
    let params = format!("user\0{user}\0database\0default\0\0");
    let mut packet = ((params.len() + 8) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(&196_608i32.to_be_bytes());
    packet.extend_from_slice(params.as_bytes());
    packet
}

/// One backend message: its type and body.
fn read_message(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).expect("a backend message");
    let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body).expect("a message body");
    (header[0], body)
}

/// The SQLSTATE of an ErrorResponse body.
fn sqlstate(body: &[u8]) -> String {
    body.split(|b| *b == 0)
        .find(|f| f.first() == Some(&b'C'))
        .map(|f| String::from_utf8_lossy(&f[1..]).to_string())
        .unwrap_or_default()
}

/// A SCRAM exchange with a wrong proof, by hand: the server's answer.
fn scram_with_wrong_proof(port: u16, user: &str) -> (u8, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("a timeout");
    s.write_all(&startup(user)).expect("startup");
    let (kind, body) = read_message(&mut s);
    assert_eq!(kind, b'R');
    assert_eq!(&body[..4], &10i32.to_be_bytes(), "AuthenticationSASL");
    assert!(String::from_utf8_lossy(&body).contains("SCRAM-SHA-256"));
    let first = b"n,,n=,r=clientnonce0123456789";
    let mut initial = b"SCRAM-SHA-256\0".to_vec();
    initial.extend_from_slice(&(first.len() as i32).to_be_bytes());
    initial.extend_from_slice(first);
    s.write_all(&message(b'p', &initial))
        .expect("SASLInitialResponse");
    let (kind, body) = read_message(&mut s);
    assert_eq!((kind, &body[..4]), (b'R', &11i32.to_be_bytes()[..]));
    let server_first = String::from_utf8_lossy(&body[4..]).to_string();
    let nonce = server_first
        .split(',')
        .find_map(|a| a.strip_prefix("r="))
        .expect("a nonce");
    assert!(nonce.starts_with("clientnonce0123456789"), "{server_first}");
    let proof = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let last = format!("c=biws,r={nonce},p={proof}");
    s.write_all(&message(b'p', last.as_bytes()))
        .expect("SASLResponse");
    read_message(&mut s)
}

#[test]
fn users_authenticate_on_pg_and_http_and_roles_are_enforced() {
    let dir = KeptOnFailure::new("serve-users");
    let mut server = serve_with_users(dir.path(), &[]);
    let (p, h) = (server.pg, server.http);
    let create = "CREATE TABLE t (id BIGINT, v STRING)";
    psql_as_ok(p, "ada", "ada-pw", &["-c", create]);
    psql_as_ok(p, "wes", "wes-pw", &["-c", "INSERT INTO t VALUES (1, 'a')"]);
    // The writer may not change what exists.
    let ddl = psql_as(p, "wes", "wes-pw", &["-c", "DROP TABLE t"]);
    assert!(ddl.stderr.contains("42501"), "{}", ddl.stderr);
    // The reader reads, and is refused writes, CALL and DDL before they run.
    let count = psql_as_ok(p, "rita", "rita-pw", &["-c", "SELECT count(*) FROM t"]);
    assert_eq!(count.trim(), "1");
    for statement in [
        "INSERT INTO t VALUES (2, 'b')",
        "DELETE FROM t",
        "CALL sys.compact(table => 'default.t')",
        "CREATE TABLE u (a INT)",
        "WITH x AS (SELECT 3 AS id, 'c' AS v) INSERT INTO t SELECT * FROM x",
    ] {
        let refused = psql_as(p, "rita", "rita-pw", &["-c", statement]);
        assert!(!refused.status.success(), "{statement}");
        assert!(
            refused.stderr.contains("42501") && refused.stderr.contains("role reader"),
            "{statement}: {}",
            refused.stderr
        );
    }
    let count = psql_as_ok(
        p,
        "ada",
        "ada-pw",
        &["-c", "SELECT count(*), max(id) FROM t"],
    );
    assert_eq!(count.trim(), "1|1", "the reader changed nothing");
    // The reader is limited to database `default`.
    psql_as_ok(p, "ada", "ada-pw", &["-c", "CREATE DATABASE hr"]);
    let other = psql_as(p, "rita", "rita-pw", &["-c", "SELECT * FROM hr.people"]);
    assert!(other.stderr.contains("42501"), "{}", other.stderr);
    let other = psql_as(p, "rita", "rita-pw", &["-d", "hr", "-c", "SELECT 1"]);
    assert!(
        other.stderr.contains("may not use database"),
        "{}",
        other.stderr
    );

    // Wrong passwords and unknown users: refused, 28P01 on the wire.
    for (user, password) in [("ada", "nope"), ("nobody", "x")] {
        let refused = psql_as(p, user, password, &["-c", "SELECT 1"]);
        assert!(!refused.status.success());
        assert!(
            refused.stderr.contains("password authentication failed"),
            "{}",
            refused.stderr
        );
    }
    let (kind, body) = scram_with_wrong_proof(p, "ada");
    assert_eq!(kind, b'E');
    assert_eq!(sqlstate(&body), "28P01");

    // HTTP: Basic against the same users; 401 without or with a wrong one.
    let sql = "SELECT count(*) AS n FROM t";
    let (status, body) = request(h, "POST", "/v1/statements", "", sql);
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("WWW-Authenticate") || body.contains("www-authenticate"),
        "{body}"
    );
    let (status, _) = request(h, "POST", "/v1/statements", &basic("ada", "bad"), sql);
    assert_eq!(status, 401);
    let (status, body) = request(h, "POST", "/v1/statements", &basic("rita", "rita-pw"), sql);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""rows":[[1]]"#), "{body}");
    let insert = "INSERT INTO t VALUES (9, 'z')";
    let (status, body) = request(
        h,
        "POST",
        "/v1/statements",
        &basic("rita", "rita-pw"),
        insert,
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("42501"), "{body}");
    let (status, body) = request(h, "POST", "/v1/statements", &basic("wes", "wes-pw"), insert);
    assert_eq!(status, 200, "{body}");

    // A bearer token of POST /v1/login spares each request the password
    // check, and carries the same role.
    let (status, body) = request(h, "POST", "/v1/login", &basic("rita", "wrong"), "");
    assert_eq!(status, 401, "{body}");
    let (status, body) = request(h, "POST", "/v1/login", &basic("rita", "rita-pw"), "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""role":"reader""#), "{body}");
    let token = body
        .split_once(r#""token":""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(token, _)| token.to_string())
        .expect("a token in the login answer");
    let bearer = |token: &str| format!("Authorization: Bearer {token}\r\n");
    let (status, body) = request(h, "POST", "/v1/statements", &bearer(&token), sql);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""rows":[[2]]"#), "{body}");
    let (status, body) = request(h, "POST", "/v1/statements", &bearer(&token), insert);
    assert_eq!(status, 403, "{body}");
    // An altered token is refused.
    let altered = format!("{}x", &token[..token.len() - 1]);
    let (status, body) = request(h, "POST", "/v1/statements", &bearer(&altered), sql);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("invalid bearer token"), "{body}");
    // Health needs no password.
    assert_eq!(request(h, "GET", "/healthz", "", "").0, 200);
    server.child.kill();
}

#[test]
fn without_users_only_loopback_and_cleartext_only_when_asked() {
    let dir = KeptOnFailure::new("serve-loopback");
    let mut command = TIDELAKE.command(dir.path());
    command.args(["serve", "--pg", "0.0.0.0:0", "--http", "127.0.0.1:0"]);
    let done = run(&mut command, "", TIMEOUT);
    assert!(!done.status.success());
    assert!(
        done.stderr.contains("not a loopback address"),
        "{}",
        done.stderr
    );
    // md5 is refused at once: the file keeps SCRAM verifiers only.
    let mut command = TIDELAKE.command(dir.path());
    command.args(["serve", "--pg-auth", "md5"]);
    let done = run(&mut command, "", TIMEOUT);
    assert!(done.stderr.contains("SCRAM"), "{}", done.stderr);
    // With users, any address; cleartext passwords when configured.
    let mut server = serve_with_users(dir.path(), &["--pg-auth", "password", "--pg", "0.0.0.0:0"]);
    let one = psql_as_ok(server.pg, "ada", "ada-pw", &["-c", "SELECT 1"]);
    assert_eq!(one.trim(), "1");
    let refused = psql_as(server.pg, "ada", "wrong", &["-c", "SELECT 1"]);
    assert!(
        refused.stderr.contains("password authentication failed"),
        "{}",
        refused.stderr
    );
    server.child.kill();
}

/// Runs tests/server/limits_client.py against `server`; its stdout.
fn limits_client(server: &mut Served, checks: &str) -> String {
    let python = python::find().expect("the test venv's python (scripts/test builds it)");
    let script = python::workspace_root().join("tests/server/limits_client.py");
    let mut command = Command::new(python);
    command
        .arg(script)
        .arg(server.pg.to_string())
        .arg(server.http.to_string())
        .arg(checks);
    let done = run(&mut command, "", Duration::from_secs(240));
    assert!(
        done.status.success(),
        "limits_client.py {checks} failed\nstdout:\n{}\nstderr:\n{}\nserver stderr:\n{}",
        done.stdout,
        done.stderr,
        server.child.stderr()
    );
    done.stdout
}

#[test]
fn admission_queue_waits_and_cancels_while_queued() {
    let dir = KeptOnFailure::new("serve-admission");
    let mut server = serve(dir.path(), &["--max-concurrent-queries", "1"]);
    let out = limits_client(&mut server, "admission");
    assert!(out.contains("ok admission\n"), "{out}");
    assert!(server.child.try_status().is_none());
    server.child.kill();
}

#[test]
fn a_query_over_its_memory_limit_fails_with_53200_and_others_go_on() {
    let dir = KeptOnFailure::new("serve-memory");
    let mut server = serve(dir.path(), &["--query-memory", "24MB"]);
    let out = limits_client(&mut server, "memory");
    assert!(out.contains("ok memory\n"), "{out}");
    // The server still serves.
    assert_eq!(
        psql_ok(server.pg, &["-A", "-t", "-c", "SELECT 6 * 7"]).trim(),
        "42"
    );
    server.child.kill();
}

/// The value of a Prometheus sample line starting with `prefix`.
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_count_connections_queries_rows_and_commits() {
    let dir = KeptOnFailure::new("serve-metrics");
    let mut server = serve(dir.path(), &[]);
    let p = server.pg;
    psql_ok(
        p,
        &[
            "-c",
            "CREATE TABLE m (id BIGINT)",
            "-c",
            "INSERT INTO m VALUES (1), (2), (3)",
            "-c",
            "SELECT * FROM m",
        ],
    );
    let failed = crate::serve::psql(p, &["-c", "SELECT * FROM missing"]);
    assert!(!failed.status.success());
    let (status, body) = request(server.http, "GET", "/metrics", "", "");
    assert_eq!(status, 200, "{body}");
    for name in [
        "tidelake_connections_opened_total{protocol=\"pg\"}",
        "tidelake_connections_active{protocol=\"pg\"}",
        "tidelake_query_duration_seconds_bucket{protocol=\"pg\",le=\"",
        "tidelake_query_duration_seconds_count{protocol=\"pg\"}",
        "tidelake_queries_total{protocol=\"pg\",outcome=\"ok\"}",
        "tidelake_queries_total{protocol=\"pg\",outcome=\"error\"}",
        "tidelake_rows_returned_total{protocol=\"pg\"}",
        "tidelake_commits_total",
    ] {
        assert!(body.contains(name), "no {name} in\n{body}");
    }
    let opened = sample(&body, "tidelake_connections_opened_total{protocol=\"pg\"}");
    assert!(opened >= Some(2.0), "{body}");
    let errors = sample(
        &body,
        "tidelake_queries_total{protocol=\"pg\",outcome=\"error\"}",
    );
    assert!(errors >= Some(1.0), "{body}");
    let rows = sample(&body, "tidelake_rows_returned_total{protocol=\"pg\"}");
    assert!(rows >= Some(3.0), "{body}");
    assert_eq!(
        sample(&body, "tidelake_commits_total "),
        Some(1.0),
        "{body}"
    );
    assert!(
        body.contains("# TYPE tidelake_query_duration_seconds histogram"),
        "{body}"
    );
    server.child.kill();
}

/// xorshift: a deterministic stream of bytes.
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 24) as u8
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next()).collect()
    }
}

/// Malformed frontend messages after a valid startup: unknown types, bad
/// lengths, truncated Parse/Bind/Execute, random bodies.
fn malformed(rng: &mut Bytes, round: usize) -> Vec<u8> {
    let kinds = b"QPBEDCSHFdcfXpz\x00\xff";
    let kind = kinds[round % kinds.len()];
    match round % 5 {
        0 => message(kind, &rng.take(1 + round % 64)),
        1 => {
            // A length shorter than its own header, or absurdly long.
            let mut m = vec![kind];
            let len: i32 = if round.is_multiple_of(2) {
                2
            } else {
                0x7fff_fff0
            };
            m.extend_from_slice(&len.to_be_bytes());
            m.extend(rng.take(8));
            m
        }
        2 => message(b'B', b"\0nope\0\0\x05\0\x01\0\0\0\x10ab"),
        3 => message(b'P', b"\0SELECT $1\0\x7f\x7f"),
        _ => {
            let mut m = message(b'Q', b"SELECT 1\0");
            m.extend(rng.take(3 + round % 40));
            m
        }
    }
}

#[test]
fn fuzzed_pg_messages_end_one_connection_only() {
    let dir = KeptOnFailure::new("serve-fuzz");
    let mut server = serve(dir.path(), &[]);
    let mut rng = Bytes(0x2545_f491_4f6c_dd1d);
    // A client that stays connected throughout and keeps being served.
    let mut steady = TcpStream::connect(("127.0.0.1", server.pg)).expect("connect");
    steady.set_read_timeout(Some(TIMEOUT)).expect("a timeout");
    steady.write_all(&startup("steady")).expect("startup");
    read_until_ready(&mut steady);
    for round in 0..60usize {
        let mut s = TcpStream::connect(("127.0.0.1", server.pg))
            .unwrap_or_else(|e| panic!("the server stopped accepting after round {round}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a timeout");
        if !round.is_multiple_of(3) {
            let _ = s.write_all(&startup("fuzz"));
        }
        let _ = s.write_all(&malformed(&mut rng, round));
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
        if round.is_multiple_of(10) {
            steady
                .write_all(&message(b'Q', b"SELECT 1\0"))
                .expect("the steady client sends");
            let kinds = read_until_ready(&mut steady);
            assert_eq!(kinds, "TDCZ", "round {round}");
        }
    }
    assert_eq!(
        psql_ok(server.pg, &["-A", "-t", "-c", "SELECT 40 + 2"]).trim(),
        "42"
    );
    assert!(server.child.try_status().is_none(), "the server exited");
    server.child.kill();
}
