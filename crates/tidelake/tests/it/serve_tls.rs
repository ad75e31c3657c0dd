//! `tidelake serve --tls-cert --tls-key` end to end, with a self-signed
//! certificate made for the test (openssl): psql and psycopg with
//! `sslmode=require`, HTTPS with curl, Flight SQL over `grpc+tls://`
//! (ADBC); a client without TLS gets a refusal that says why.

use std::path::Path;
use std::process::Command;

use tidelake_testkit::process::{run, Finished};
use tidelake_testkit::python;
use tidelake_testkit::warehouse::KeptOnFailure;

use crate::serve::{http, port_after, serve, TIMEOUT};

/// A self-signed certificate for localhost and 127.0.0.1: (cert, key).
fn self_signed(dir: &Path) -> (String, String) {
    let cert = dir.join("server.crt").display().to_string();
    let key = dir.join("server.key").display().to_string();
    let mut command = Command::new("openssl");
    command
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-keyout", &key, "-out", &cert]);
    let done = run(&mut command, "", TIMEOUT);
    assert!(done.status.success(), "openssl: {}", done.stderr);
    (cert, key)
}

fn psql_conninfo(conninfo: &str, sql: &str) -> Finished {
    let mut command = Command::new("psql");
    command
        .args([
            "-X",
            "-w",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            conninfo,
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD")
        .env_remove("PGSSLMODE");
    run(&mut command, "", TIMEOUT)
}

fn curl(args: &[&str]) -> Finished {
    let mut command = Command::new("curl");
    command.args(["-s", "-S", "--max-time", "30"]).args(args);
    run(&mut command, "", TIMEOUT)
}

const CLIENTS: &str = r#"
import sys
import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions
import psycopg

pg, flight = sys.argv[1], sys.argv[2]
with psycopg.connect(f"host=127.0.0.1 port={pg} user=tester dbname=default sslmode=require",
                     autocommit=True) as conn:
    assert conn.pgconn.ssl_in_use, "psycopg is not on TLS"
    conn.execute("INSERT INTO t VALUES (2, 'psycopg')")
    print("psycopg", conn.execute("SELECT count(*) FROM t").fetchone()[0])
try:
    psycopg.connect(f"host=127.0.0.1 port={pg} user=tester dbname=default sslmode=disable")
    print("plain psycopg connected")
except psycopg.OperationalError as e:
    print("plain psycopg refused:", str(e).strip().splitlines()[-1])
with flight_sql.connect(
    f"grpc+tls://127.0.0.1:{flight}",
    db_kwargs={"username": "tester", "password": "x",
               DatabaseOptions.TLS_SKIP_VERIFY.value: "true"},
    autocommit=True,
) as conn:
    with conn.cursor() as cur:
        cur.execute("SELECT name FROM t ORDER BY id")
        print("flight", [r[0] for r in cur.fetchall()])
"#;

#[test]
fn every_port_requires_tls_and_serves_over_it() {
    let dir = KeptOnFailure::new("serve-tls");
    let (cert, key) = self_signed(dir.path());
    let wh = dir.path().join("wh");
    std::fs::create_dir_all(&wh).unwrap();
    let mut server = serve(
        &wh,
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--flight",
            "127.0.0.1:0",
        ],
    );
    let out = server.child.stdout();
    assert!(out.contains("TLS: required on every port"), "{out}");
    let flight = port_after(&out, "Flight SQL: listening on").expect("a Flight SQL port");
    let (p, h) = (server.pg, server.http);

    // psql over TLS.
    let tls = format!("host=127.0.0.1 port={p} user=tester dbname=default sslmode=require");
    let done = psql_conninfo(
        &tls,
        "CREATE TABLE t (id BIGINT, name STRING); INSERT INTO t VALUES (1, 'psql'); SELECT name FROM t",
    );
    assert!(done.status.success(), "{}\n{}", done.stdout, done.stderr);
    assert!(done.stdout.contains("psql"), "{}", done.stdout);
    // psql without TLS: refused, and told why.
    let plain = format!("host=127.0.0.1 port={p} user=tester dbname=default sslmode=disable");
    let done = psql_conninfo(&plain, "SELECT 1");
    assert!(!done.status.success(), "{}", done.stdout);
    assert!(
        done.stderr.contains("this server requires TLS"),
        "{}",
        done.stderr
    );

    // psycopg (and a plain psycopg refused) and Flight SQL over TLS.
    let python = python::find().expect("the test venv's python (scripts/test builds it)");
    let mut command = Command::new(python);
    command
        .args(["-c", CLIENTS])
        .args([p.to_string(), flight.to_string()]);
    let done = run(&mut command, "", TIMEOUT);
    assert!(
        done.status.success(),
        "{}\n{}\nserver:\n{}",
        done.stdout,
        done.stderr,
        server.child.stderr()
    );
    assert!(done.stdout.contains("psycopg 2\n"), "{}", done.stdout);
    assert!(
        done.stdout.contains("plain psycopg refused:")
            && done.stdout.contains("this server requires TLS"),
        "{}",
        done.stdout
    );
    assert!(
        done.stdout.contains("flight ['psql', 'psycopg']"),
        "{}",
        done.stdout
    );

    // HTTPS; plain HTTP gets a 400 that says why.
    let done = curl(&[
        "-k",
        "--data-binary",
        "SELECT count(*) AS n FROM t",
        &format!("https://127.0.0.1:{h}/v1/statements"),
    ]);
    assert!(done.status.success(), "{}", done.stderr);
    assert!(done.stdout.contains("[[2]]"), "{}", done.stdout);
    let done = curl(&["-k", &format!("https://127.0.0.1:{h}/healthz")]);
    assert!(done.status.success(), "{}", done.stderr);
    let (status, body) = http(h, "GET", "/healthz", "text/plain", "");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("requires TLS"), "{body}");
    let (status, body) = http(h, "GET", "/metrics", "text/plain", "");
    assert_eq!(status, 400, "{body}");

    // The refusals are counted.
    let done = curl(&["-k", &format!("https://127.0.0.1:{h}/metrics")]);
    assert!(
        done.stdout
            .contains("tidelake_connections_refused_total{protocol=\"pg\",reason=\"tls\"}"),
        "{}",
        done.stdout
    );
    server.child.kill();
}

#[test]
fn a_bad_certificate_stops_the_server_at_start() {
    let dir = KeptOnFailure::new("serve-tls-bad");
    let cert = dir.path().join("not-a.crt");
    std::fs::write(&cert, "not a certificate\n").unwrap();
    let (_, key) = self_signed(dir.path());
    let mut command = crate::TIDELAKE.command(dir.path());
    command.args(["serve", "--pg", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
    command.args(["--tls-cert", &cert.display().to_string(), "--tls-key", &key]);
    let done = run(&mut command, "", TIMEOUT);
    assert!(!done.status.success());
    assert!(
        done.stderr.contains("TLS:") && done.stderr.contains("not-a.crt"),
        "{}",
        done.stderr
    );
}
