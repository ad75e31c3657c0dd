//! Primary-key point queries against a real `tidelake serve`: a statement
//! prepared once over the PostgreSQL extended protocol (typed parameters,
//! as drivers send them) returns the key's row through the fast path, sees
//! a commit made by another process at its next execution (the metadata
//! caches never hide a new snapshot), as does a Flight SQL prepared
//! statement with bound parameters, and a statement whose parameters have
//! no declared type (pgbench's); a prepared point query is planned once
//! and planned again after an ALTER; `/metrics` shows the lookups and the
//! caches' hits and misses.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use tidelake_testkit::warehouse::KeptOnFailure;

use crate::flight::{client, read, runtime};
use crate::serve::{http, message, port_after, psql_ok, raw_pg_connect, read_until_ready, serve};
use crate::TIDELAKE;

/// PostgreSQL type OIDs of the parameters.
const TEXT: u32 = 25;
const INT8: u32 = 20;

fn connect(port: u16) -> TcpStream {
    let (stream, greeting) = raw_pg_connect(port);
    assert!(greeting.starts_with('R'), "{greeting}");
    stream
}

/// Parse of a named statement with typed parameters, then Sync.
fn prepare(stream: &mut TcpStream, name: &str, sql: &str, types: &[u32]) {
    let mut body = format!("{name}\0{sql}\0").into_bytes();
    body.extend_from_slice(&(types.len() as i16).to_be_bytes());
    for t in types {
        body.extend_from_slice(&t.to_be_bytes());
    }
    let mut batch = message(b'P', &body);
    batch.extend(message(b'S', b""));
    stream.write_all(&batch).expect("Parse");
    assert_eq!(read_until_ready(stream), "1Z");
}

/// Bind (text parameters, text results), Execute, Sync: the first column
/// of each row returned, and the backend messages' types.
fn execute(stream: &mut TcpStream, name: &str, params: &[&str]) -> (Vec<String>, String) {
    let mut body = format!("\0{name}\0").into_bytes();
    body.extend_from_slice(&0i16.to_be_bytes()); // every parameter as text
    body.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for p in params {
        body.extend_from_slice(&(p.len() as i32).to_be_bytes());
        body.extend_from_slice(p.as_bytes());
    }
    body.extend_from_slice(&0i16.to_be_bytes()); // every result as text
    let mut batch = message(b'B', &body);
    batch.extend(message(b'E', b"\0\0\0\0\0"));
    batch.extend(message(b'S', b""));
    stream.write_all(&batch).expect("Bind and Execute");
    let mut values = Vec::new();
    let mut kinds = String::new();
    loop {
        let mut header = [0u8; 5];
        stream.read_exact(&mut header).expect("a backend message");
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut msg = vec![0u8; len - 4];
        stream.read_exact(&mut msg).expect("a message body");
        kinds.push(header[0] as char);
        match header[0] {
            b'D' => {
                // Column count (2 bytes), then the first column's length and bytes.
                let n = i32::from_be_bytes([msg[2], msg[3], msg[4], msg[5]]);
                let value = if n < 0 {
                    "NULL".to_string()
                } else {
                    String::from_utf8_lossy(&msg[6..6 + n as usize]).into_owned()
                };
                values.push(value);
            }
            b'E' => panic!("the statement failed: {}", String::from_utf8_lossy(&msg)),
            b'Z' => return (values, kinds),
            _ => {}
        }
    }
}

fn scrape(port: u16) -> BTreeMap<String, f64> {
    let (status, body) = http(port, "GET", "/metrics", "text/plain", "");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn get(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

#[test]
fn a_prepared_point_query_takes_the_fast_path_and_sees_other_processes_commits() {
    let dir = KeptOnFailure::new("serve-lookup");
    let mut server = serve(dir.path(), &["--flight", "127.0.0.1:0"]);
    let (p, h) = (server.pg, server.http);
    let flight =
        port_after(&server.child.stdout(), "Flight SQL: listening on").expect("a Flight SQL port");
    psql_ok(
        p,
        &[
            "-c",
            "CREATE TABLE orders (dt STRING, id BIGINT, v STRING, PRIMARY KEY (dt, id)) \
             PARTITIONED BY (dt) WITH ('bucket' = '2')",
            "-c",
            "INSERT INTO orders VALUES ('d1', 1, 'one'), ('d1', 2, 'two'), ('d2', 2, 'other')",
            "-c",
            "UPDATE orders SET v = 'TWO' WHERE dt = 'd1' AND id = 2",
        ],
    );
    let explained = psql_ok(
        p,
        &[
            "-c",
            "EXPLAIN SELECT v FROM orders WHERE id = 2 AND dt = 'd1'",
        ],
    );
    assert!(
        explained.contains("PrimaryKeyLookup: table=default.orders, key=[dt = 'd1', id = 2]"),
        "{explained}"
    );

    let mut stream = connect(p);
    prepare(
        &mut stream,
        "point",
        "SELECT v FROM orders WHERE dt = $1 AND id = $2",
        &[TEXT, INT8],
    );
    let before = scrape(h);
    let (rows, kinds) = execute(&mut stream, "point", &["d1", "2"]);
    assert_eq!(rows, ["TWO"], "{kinds}");
    let (rows, _) = execute(&mut stream, "point", &["d1", "3"]);
    assert!(rows.is_empty(), "{rows:?}");

    // Another process commits; the next execution sees it.
    TIDELAKE.sql(
        dir.path(),
        &["INSERT INTO orders VALUES ('d1', 2, 'newer'), ('d1', 3, 'three')"],
        &[],
    );
    let (rows, _) = execute(&mut stream, "point", &["d1", "2"]);
    assert_eq!(rows, ["newer"]);
    let (rows, _) = execute(&mut stream, "point", &["d1", "3"]);
    assert_eq!(rows, ["three"]);
    TIDELAKE.sql(
        dir.path(),
        &["DELETE FROM orders WHERE dt = 'd1' AND id = 3"],
        &[],
    );
    let (rows, _) = execute(&mut stream, "point", &["d1", "3"]);
    assert!(rows.is_empty(), "a deleted key: {rows:?}");

    // Flight SQL: a prepared statement with parameters bound as a batch.
    runtime().block_on(async {
        let mut c = client(flight).await;
        let mut prepared = c
            .prepare("SELECT v FROM orders WHERE dt = ? AND id = ?".into(), None)
            .await
            .expect("prepare");
        let params = RecordBatch::try_from_iter([
            ("dt", Arc::new(StringArray::from(vec!["d1"])) as ArrayRef),
            ("id", Arc::new(Int64Array::from(vec![2])) as ArrayRef),
        ])
        .expect("a parameter batch");
        prepared.set_parameters(params).expect("bind");
        let info = prepared.execute().await.expect("GetFlightInfo");
        let rows = read(&mut c, &info).await;
        assert!(rows.contains("| newer |"), "{rows}");
    });

    // Parameters of no declared type (pgbench's, PQexecParams without
    // types) arrive as text: the integer key still takes the fast path.
    prepare(
        &mut stream,
        "untyped",
        "SELECT v FROM orders WHERE dt = $1 AND id = $2",
        &[0, 0],
    );
    let lookups = "tidelake_engine_primary_key_lookups_total";
    let untyped_before = get(&scrape(h), lookups);
    let (rows, _) = execute(&mut stream, "untyped", &["d1", "2"]);
    assert_eq!(rows, ["newer"]);
    assert!(get(&scrape(h), lookups) - untyped_before >= 1.0);

    // Executions of a prepared point query skip planning; an ALTER between
    // two makes the next one decline (the schema it was planned with is no
    // longer the latest) and run the normal way, and the one after is
    // planned anew.
    let prepared = "tidelake_prepared_point_queries_total";
    let answered = get(&scrape(h), prepared);
    assert!(answered >= 6.0, "{answered}");
    psql_ok(p, &["-c", "ALTER TABLE orders ADD COLUMN note STRING"]);
    for _ in 0..2 {
        let (rows, _) = execute(&mut stream, "point", &["d1", "2"]);
        assert_eq!(rows, ["newer"]);
    }
    assert_eq!(get(&scrape(h), prepared) - answered, 1.0);

    let after = scrape(h);
    let moved = |series: &str| get(&after, series) - get(&before, series);
    assert!(
        moved("tidelake_engine_primary_key_lookups_total") >= 6.0,
        "{after:#?}"
    );
    assert!(moved("tidelake_engine_cache_hits_total{cache=\"manifest\"}") > 0.0);
    assert!(moved("tidelake_engine_cache_misses_total{cache=\"manifest\"}") > 0.0);
    assert!(moved("tidelake_engine_cache_hits_total{cache=\"footer\"}") > 0.0);
    // Repeated lookups of one key reuse the snapshot and the key indexes.
    assert!(
        moved("tidelake_engine_snapshot_reuses_total") > 0.0,
        "{after:#?}"
    );
    assert!(moved("tidelake_engine_cache_hits_total{cache=\"key_index\"}") > 0.0);
    assert!(moved("tidelake_engine_cache_misses_total{cache=\"key_index\"}") > 0.0);
    // Repeated lookups of one small file decode it once and take rows from it.
    assert!(moved("tidelake_engine_cache_hits_total{cache=\"lookup_rows\"}") > 0.0);
    assert!(moved("tidelake_engine_cache_misses_total{cache=\"lookup_rows\"}") > 0.0);
    // ... and hold them, within --lookup-cache.
    assert!(get(&after, "tidelake_engine_cache_bytes{cache=\"lookup_rows\"}") > 0.0);
    get(&after, "tidelake_engine_lookup_files_skipped_total");
    get(
        &after,
        "tidelake_engine_cache_misses_total{cache=\"footer\"}",
    );
    server.child.kill();
}
