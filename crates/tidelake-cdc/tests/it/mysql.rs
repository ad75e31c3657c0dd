//! The MySQL/MariaDB source against the local MariaDB: snapshot under
//! concurrent writes, streaming changes, resume, DDL, binlog rotation and
//! the type mapping. Each test uses its own database. The scenarios that
//! `mysql_gtid` runs against MySQL too take the server's URL.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use tidelake_cdc::event::{CdcValue, ChangeKind, SourceEvent, SourcePosition, SourceTableId};
use tidelake_cdc::mysql::{MysqlConfig, MysqlSource, StartMode};
use tidelake_cdc::ChangeSource;
use tidelake_cdc::Resume;

use crate::events::{is_change_of, read_until, Materialized};

/// A table and its column definitions, as a DDL event must show them.
type ExpectedColumns = Option<(String, Vec<String>)>;

/// The local MariaDB (scripts/setup/20-mariadb-cdc.sh).
pub const MARIADB: &str = "mysql://root@127.0.0.1:3306";
const SERVER: &str = MARIADB;

pub async fn admin_on(server: &str) -> Conn {
    Conn::new(Opts::from_url(server).unwrap())
        .await
        .unwrap_or_else(|e| panic!("connecting to {server}: {e}"))
}

/// A fresh database with `statements` run in it.
async fn fresh_database(name: &str, statements: &[&str]) -> Conn {
    fresh_database_on(SERVER, name, statements).await
}

pub async fn fresh_database_on(server: &str, name: &str, statements: &[&str]) -> Conn {
    let mut conn = admin_on(server).await;
    conn.query_drop(format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap();
    conn.query_drop(format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    conn.query_drop(format!("USE {name}")).await.unwrap();
    for sql in statements {
        conn.query_drop(*sql).await.unwrap();
    }
    conn
}

fn config(server: &str, database: &str, server_id: u32, start: StartMode) -> MysqlConfig {
    let mut config = MysqlConfig::new(format!("{server}/{database}"));
    config.server_id = server_id;
    config.start = start;
    config
}

async fn source(database: &str, server_id: u32, start: StartMode) -> MysqlSource {
    source_on(SERVER, database, server_id, start).await
}

pub async fn source_on(
    server: &str,
    database: &str,
    server_id: u32,
    start: StartMode,
) -> MysqlSource {
    MysqlSource::start(config(server, database, server_id, start))
        .await
        .expect("source starts")
}

/// What a sink would hand back after committing `table` at `position`.
pub fn resume_at(database: &str, table: &str, position: SourcePosition) -> Resume {
    let mut resume = Resume::default();
    resume
        .tables
        .insert(SourceTableId::new(database, table), position);
    resume
}

pub fn commit_position(event: &SourceEvent) -> Option<SourcePosition> {
    match event {
        SourceEvent::Commit { position } | SourceEvent::CopyEnd { position, .. } => {
            Some(position.clone())
        }
        _ => None,
    }
}

/// The changes of `events`, a copy's rows as inserts.
pub fn changes(events: &[SourceEvent]) -> Vec<(ChangeKind, Vec<CdcValue>)> {
    events
        .iter()
        .flat_map(|e| match e {
            SourceEvent::Change(c) => vec![(c.kind, c.values.clone())],
            SourceEvent::Rows { batch, .. } => tidelake_cdc::rows::rows_of(batch)
                .into_iter()
                .map(|v| (ChangeKind::Insert, v))
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

pub fn int(v: i64) -> CdcValue {
    CdcValue::Int(v)
}

fn s(v: &str) -> CdcValue {
    CdcValue::String(v.to_string())
}

/// The rows of `db.t (id INT, v INT, s VARCHAR)` as the source holds them.
pub async fn source_rows(conn: &mut Conn, table: &str) -> Vec<Vec<CdcValue>> {
    let rows: Vec<(i64, Option<i64>, Option<String>)> = conn
        .query(format!("SELECT id, v, s FROM {table} ORDER BY id"))
        .await
        .unwrap();
    rows.into_iter()
        .map(|(id, v, s)| {
            vec![
                int(id),
                v.map_or(CdcValue::Null, int),
                s.map_or(CdcValue::Null, CdcValue::String),
            ]
        })
        .collect()
}

pub fn sorted(mut rows: Vec<Vec<CdcValue>>) -> Vec<Vec<CdcValue>> {
    rows.sort_by_key(|r| match r[0] {
        CdcValue::Int(i) => i,
        _ => i64::MIN,
    });
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_snapshot_under_concurrent_writes_equals_source() {
    snapshot_under_concurrent_writes_equals_source(SERVER, 91_001).await;
}

/// A snapshot while writers change the table, then the stream: the events
/// rebuild exactly the source's rows. Returns the positions of the commits.
pub async fn snapshot_under_concurrent_writes_equals_source(
    server: &'static str,
    server_id: u32,
) -> Vec<SourcePosition> {
    let db = "cdc_it_snapshot";
    let mut conn = fresh_database_on(
        server,
        db,
        &[
            "CREATE TABLE t (id INT PRIMARY KEY, v INT, s VARCHAR(20))",
            "CREATE TABLE marker (id INT PRIMARY KEY)",
        ],
    )
    .await;
    let values: Vec<String> = (0..3000).map(|i| format!("({i}, {i}, 'row{i}')")).collect();
    conn.query_drop(format!("INSERT INTO t VALUES {}", values.join(",")))
        .await
        .unwrap();

    // Writers run before, during and after the snapshot.
    let writer = tokio::spawn(async move {
        let mut conn = admin_on(server).await;
        conn.query_drop(format!("USE {db}")).await.unwrap();
        for i in 0..400i64 {
            let sql = match i % 4 {
                0 => format!("INSERT INTO t VALUES ({}, {i}, 'new')", 10_000 + i),
                1 => format!("UPDATE t SET v = v + 1, s = 'upd{i}' WHERE id = {}", i * 7 % 3000),
                2 => format!("DELETE FROM t WHERE id = {}", i * 5 % 3000 + 1),
                _ => format!(
                    "BEGIN; UPDATE t SET v = -{i} WHERE id = {}; INSERT INTO t VALUES ({}, NULL, NULL); COMMIT",
                    i % 3000,
                    20_000 + i
                ),
            };
            conn.query_drop(sql).await.unwrap();
        }
        conn.query_drop("INSERT INTO marker VALUES (1)")
            .await
            .unwrap();
    });
    let mut source = source_on(server, db, server_id, StartMode::SnapshotThenStream).await;
    let events = read_until(&mut source, |e| is_change_of(e, "marker", 1)).await;
    writer.await.unwrap();
    let mut view = Materialized::default();
    view.apply_all(&events);
    assert!(view.commits >= 1);
    let expected = source_rows(&mut conn, "t").await;
    assert_eq!(expected.len(), 3000 + 100 + 100 - 100);
    assert_eq!(sorted(view.table(db, "t")), expected);
    events.iter().filter_map(commit_position).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_streams_inserts_updates_deletes_and_resumes_without_loss_or_duplicate() {
    let resumed_from = streams_and_resumes_without_loss_or_duplicate(SERVER, 91_002).await;
    assert!(resumed_from.0.starts_with("gtid=0-1-"), "{resumed_from}");
}

/// A fresh `db.t (id, v, s)` on `server` and a source past its (empty)
/// copy: the connection, the source and the copy's position.
pub async fn streaming_empty_table(
    server: &str,
    db: &str,
    server_id: u32,
) -> (Conn, MysqlSource, SourcePosition) {
    let conn = fresh_database_on(
        server,
        db,
        &["CREATE TABLE t (id INT PRIMARY KEY, v INT, s VARCHAR(20))"],
    )
    .await;
    let mut src = source_on(server, db, server_id, StartMode::SnapshotThenStream).await;
    let copy = read_until(&mut src, |e| commit_position(e).is_some()).await;
    assert_eq!(changes(&copy), vec![]);
    let at = commit_position(copy.last().unwrap()).unwrap();
    (conn, src, at)
}

/// Inserts, updates and deletes streamed as such, one commit each source
/// transaction; a second source resumed from the second commit's position
/// delivers the third transaction again, exactly, then what came after.
/// Returns the position it resumed from.
pub async fn streams_and_resumes_without_loss_or_duplicate(
    server: &str,
    server_id: u32,
) -> SourcePosition {
    let db = "cdc_it_stream";
    let (mut conn, mut first, _) = streaming_empty_table(server, db, server_id).await;
    conn.query_drop("INSERT INTO t VALUES (1, 10, 'a')")
        .await
        .unwrap();
    conn.query_drop("UPDATE t SET v = 11 WHERE id = 1")
        .await
        .unwrap();
    conn.query_drop("BEGIN; INSERT INTO t VALUES (2, 20, 'b'); DELETE FROM t WHERE id = 1; COMMIT")
        .await
        .unwrap();
    let mut stream = Vec::new();
    let mut commits = Vec::new();
    while commits.len() < 3 {
        let events = read_until(&mut first, |e| commit_position(e).is_some()).await;
        commits.push(commit_position(events.last().unwrap()).unwrap());
        stream.push(events);
    }
    let row = |id, v, t: &str| vec![int(id), int(v), s(t)];
    assert_eq!(
        changes(&stream[0]),
        vec![(ChangeKind::Insert, row(1, 10, "a"))]
    );
    assert_eq!(
        changes(&stream[1]),
        vec![
            (ChangeKind::UpdateBefore, row(1, 10, "a")),
            (ChangeKind::UpdateAfter, row(1, 11, "a"))
        ]
    );
    assert_eq!(
        changes(&stream[2]),
        vec![
            (ChangeKind::Insert, row(2, 20, "b")),
            (ChangeKind::Delete, row(1, 11, "a"))
        ]
    );
    for c in stream.iter().flatten() {
        if let SourceEvent::Change(c) = c {
            assert!(c.op_ts_micros.is_some());
        }
    }
    drop(first);

    // A restart from the second commit's position delivers the third
    // transaction next, then what was written meanwhile.
    conn.query_drop("INSERT INTO t VALUES (3, 30, 'c')")
        .await
        .unwrap();
    let mut resumed = source_on(
        server,
        db,
        server_id + 1,
        StartMode::Resume(resume_at(db, "t", commits[1].clone())),
    )
    .await;
    let again = read_until(&mut resumed, |e| commit_position(e).is_some()).await;
    let again_changes = changes(&again);
    assert_eq!(again_changes, changes(&stream[2]));
    assert_eq!(commit_position(again.last().unwrap()).unwrap(), commits[2]);
    let next = read_until(&mut resumed, |e| commit_position(e).is_some()).await;
    assert_eq!(changes(&next), vec![(ChangeKind::Insert, row(3, 30, "c"))]);
    commits[1].clone()
}

fn schema_of(event: &SourceEvent) -> Option<(String, Vec<String>)> {
    match event {
        SourceEvent::Schema { table, schema } => Some((
            table.table.clone(),
            schema
                .columns
                .iter()
                .map(|c| format!("{} {}", c.name, c.data_type))
                .collect(),
        )),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_ddl_mid_stream_emits_new_schemas() {
    let db = "cdc_it_ddl";
    let mut conn = fresh_database(db, &["CREATE TABLE t (id INT PRIMARY KEY, v INT)"]).await;
    let mut src = source(db, 91_004, StartMode::SnapshotThenStream).await;
    read_until(&mut src, |e| commit_position(e).is_some()).await;
    // Each statement, then what the stream must show for it. The schema is
    // re-read from information_schema at the DDL, so each DDL's event is
    // awaited before the next statement (see docs/cdc.md on lag).
    let cols = |table: &str, c: &[&str]| {
        Some((
            table.to_string(),
            c.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ))
    };
    let ddl: [(&str, ExpectedColumns); 6] = [
        (
            "ALTER TABLE t ADD COLUMN note VARCHAR(10)",
            cols("t", &["id INT NOT NULL", "v INT", "note VARCHAR(10)"]),
        ),
        (
            "ALTER TABLE t MODIFY COLUMN v BIGINT",
            cols("t", &["id INT NOT NULL", "v BIGINT", "note VARCHAR(10)"]),
        ),
        (
            "ALTER TABLE t CHANGE COLUMN note remark VARCHAR(10)",
            cols("t", &["id INT NOT NULL", "v BIGINT", "remark VARCHAR(10)"]),
        ),
        (
            "ALTER TABLE t DROP COLUMN remark",
            cols("t", &["id INT NOT NULL", "v BIGINT"]),
        ),
        (
            "CREATE TABLE u (k VARCHAR(5) PRIMARY KEY)",
            cols("u", &["k VARCHAR(5) NOT NULL"]),
        ),
        (
            "ALTER TABLE t ADD COLUMN d DECIMAL(12,3)",
            cols("t", &["id INT NOT NULL", "v BIGINT", "d DECIMAL(12, 3)"]),
        ),
    ];
    let rows = [
        (
            "INSERT INTO t VALUES (1, 1, 'x')",
            vec![int(1), int(1), s("x")],
        ),
        (
            "UPDATE t SET v = 5000000000 WHERE id = 1",
            vec![int(1), int(5_000_000_000), s("x")],
        ),
        (
            "INSERT INTO t VALUES (2, 2, 'y')",
            vec![int(2), int(2), s("y")],
        ),
        ("INSERT INTO t VALUES (3, 3)", vec![int(3), int(3)]),
        ("INSERT INTO u VALUES ('new')", vec![s("new")]),
        (
            "INSERT INTO t VALUES (4, 4, 1.5)",
            vec![int(4), int(4), CdcValue::Decimal(1500, 3)],
        ),
    ];
    for ((ddl, schema), (dml, row)) in ddl.into_iter().zip(rows) {
        conn.query_drop(ddl).await.unwrap();
        let events = read_until(&mut src, |e| schema_of(e).is_some()).await;
        assert_eq!(schema_of(events.last().unwrap()), schema, "after {ddl}");
        conn.query_drop(dml).await.unwrap();
        let mut seen_change = false;
        let events = read_until(&mut src, |e| {
            seen_change |= matches!(e, SourceEvent::Change(_));
            seen_change && commit_position(e).is_some()
        })
        .await;
        let last = changes(&events).pop().unwrap();
        assert_eq!(last.1, row, "after {dml}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_binlog_rotation_during_streaming_and_resume_across_files() {
    let db = "cdc_it_rotate";
    let mut conn = fresh_database(
        db,
        &["CREATE TABLE t (id INT PRIMARY KEY, v INT, s VARCHAR(20))"],
    )
    .await;
    let mut src = source(db, 91_005, StartMode::SnapshotThenStream).await;
    let snapshot = read_until(&mut src, |e| commit_position(e).is_some()).await;
    let before = commit_position(snapshot.last().unwrap()).unwrap();
    conn.query_drop("INSERT INTO t VALUES (1, 1, 'one')")
        .await
        .unwrap();
    conn.query_drop("FLUSH BINARY LOGS").await.unwrap();
    conn.query_drop("INSERT INTO t VALUES (2, 2, 'two')")
        .await
        .unwrap();
    conn.query_drop("FLUSH BINARY LOGS").await.unwrap();
    conn.query_drop("INSERT INTO t VALUES (3, 3, 'three')")
        .await
        .unwrap();
    let events = read_until(&mut src, |e| is_change_of(e, "t", 3)).await;
    let ids: Vec<CdcValue> = changes(&events)
        .into_iter()
        .map(|(_, v)| v[0].clone())
        .collect();
    assert_eq!(ids, vec![int(1), int(2), int(3)]);
    let last = read_until(&mut src, |e| commit_position(e).is_some()).await;
    let after = commit_position(last.last().unwrap()).unwrap();
    let file = |p: &SourcePosition| {
        p.0.split(';')
            .find(|x| x.starts_with("file="))
            .unwrap()
            .to_string()
    };
    assert_ne!(
        file(&before),
        file(&after),
        "the stream followed the rotation"
    );
    drop(src);

    // Resuming from before both rotations finds the rows in the later files.
    let mut resumed = source(db, 91_006, StartMode::Resume(resume_at(db, "t", before))).await;
    let again = read_until(&mut resumed, |e| is_change_of(e, "t", 3)).await;
    let mut view = Materialized::default();
    view.apply_all(&snapshot);
    view.apply_all(&again);
    assert_eq!(
        sorted(view.table(db, "t")),
        source_rows(&mut conn, "t").await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_refuses_bad_credentials_and_positions_with_clear_errors() {
    let mut cfg = MysqlConfig::new("mysql://nobody:wrong@127.0.0.1:3306/shop");
    cfg.server_id = 91_007;
    let err = MysqlSource::start(cfg)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("cannot connect to 127.0.0.1:3306 as nobody"),
        "{err}"
    );
    let db = "cdc_it_badpos";
    fresh_database(db, &[]).await;
    let mut src = source(
        db,
        91_008,
        StartMode::Resume(resume_at(db, "t", SourcePosition("lsn=0/16".into()))),
    )
    .await;
    let err = src
        .next_event()
        .await
        .expect_err("a bad position")
        .to_string();
    assert!(err.contains("lsn=0/16"), "{err}");
}

/// Every MySQL type: its column definition, the Paimon type it maps to, a
/// literal, and the value the source yields (from the snapshot and from
/// the binlog alike).
fn golden_types() -> Vec<(&'static str, &'static str, &'static str, CdcValue)> {
    use CdcValue::*;
    let micros = |h: i64, m: i64, sec: i64, us: i64| ((h * 60 + m) * 60 + sec) * 1_000_000 + us;
    let day_2024_01_02 = 19_724i64 * 86_400_000_000;
    vec![
        ("c_bool TINYINT(1)", "BOOLEAN", "1", Boolean(true)),
        ("c_bit1 BIT(1)", "BOOLEAN", "b'1'", Boolean(true)),
        (
            "c_bit10 BIT(10)",
            "BINARY(2)",
            "b'1000000001'",
            Bytes(vec![0x02, 0x01]),
        ),
        ("c_tiny TINYINT", "TINYINT", "-5", Int(-5)),
        ("c_utiny TINYINT UNSIGNED", "SMALLINT", "200", Int(200)),
        ("c_small SMALLINT", "SMALLINT", "-32768", Int(-32768)),
        ("c_usmall SMALLINT UNSIGNED", "INT", "65535", Int(65535)),
        ("c_medium MEDIUMINT", "INT", "-8388608", Int(-8_388_608)),
        (
            "c_umedium MEDIUMINT UNSIGNED",
            "INT",
            "16777215",
            Int(16_777_215),
        ),
        ("c_int INT", "INT", "-2147483648", Int(-2_147_483_648)),
        (
            "c_uint INT UNSIGNED",
            "BIGINT",
            "4294967295",
            Int(4_294_967_295),
        ),
        (
            "c_big BIGINT",
            "BIGINT",
            "-9223372036854775808",
            Int(i64::MIN),
        ),
        (
            "c_ubig BIGINT UNSIGNED",
            "DECIMAL(20, 0)",
            "18446744073709551615",
            Decimal(u64::MAX as i128, 0),
        ),
        ("c_float FLOAT", "FLOAT", "1.5", Float(1.5)),
        ("c_double DOUBLE", "DOUBLE", "2.25", Double(2.25)),
        (
            "c_dec DECIMAL(10,2)",
            "DECIMAL(10, 2)",
            "-123.45",
            Decimal(-12345, 2),
        ),
        (
            "c_bigdec DECIMAL(50,5)",
            "STRING",
            "123456789012345678901234567890123456789012345.67891",
            String("123456789012345678901234567890123456789012345.67891".into()),
        ),
        ("c_date DATE", "DATE", "'2024-02-29'", Date(19_782)),
        ("c_zero_date DATE", "DATE", "'0000-00-00'", Null),
        (
            "c_time TIME(3)",
            "TIME(3)",
            "'-12:34:56.789'",
            Time(-micros(12, 34, 56, 789_000)),
        ),
        (
            "c_datetime DATETIME(6)",
            "TIMESTAMP(6)",
            "'2024-01-02 03:04:05.123456'",
            Timestamp(day_2024_01_02 + micros(3, 4, 5, 123_456)),
        ),
        // inserted in session time zone +02:00: 03:04:05.5 UTC
        (
            "c_ts TIMESTAMP(3) NULL",
            "TIMESTAMP(3) WITH LOCAL TIME ZONE",
            "'2024-01-02 05:04:05.500'",
            TimestampUtc(day_2024_01_02 + micros(3, 4, 5, 500_000)),
        ),
        ("c_year YEAR", "INT", "2024", Int(2024)),
        ("c_char CHAR(3)", "CHAR(3)", "'ab'", String("ab".into())),
        (
            "c_varchar VARCHAR(10)",
            "VARCHAR(10)",
            "'héllo'",
            String("héllo".into()),
        ),
        (
            "c_text TEXT",
            "STRING",
            "'long text'",
            String("long text".into()),
        ),
        (
            "c_json JSON",
            "STRING",
            "'{\"a\": 1}'",
            String("{\"a\": 1}".into()),
        ),
        ("c_enum ENUM('x','y')", "STRING", "'y'", String("y".into())),
        (
            "c_set SET('a','b','c')",
            "ARRAY<STRING>",
            "'a,c'",
            Array(vec![String("a".into()), String("c".into())]),
        ),
        (
            "c_binary BINARY(2)",
            "BINARY(2)",
            "x'0102'",
            Bytes(vec![1, 2]),
        ),
        (
            "c_varbinary VARBINARY(4)",
            "VARBINARY(4)",
            "x'ff00'",
            Bytes(vec![0xff, 0]),
        ),
        (
            "c_blob BLOB",
            "BYTES",
            "x'deadbeef'",
            Bytes(vec![0xde, 0xad, 0xbe, 0xef]),
        ),
        ("c_null INT", "INT", "NULL", Null),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_type_mapping_golden() {
    type_mapping_golden(SERVER, 91_009).await;
}

/// Every golden type from the snapshot and from the binlog.
pub async fn type_mapping_golden(server: &str, server_id: u32) {
    let db = "cdc_it_types";
    let golden = golden_types();
    let defs: Vec<&str> = golden.iter().map(|g| g.0).collect();
    let create = format!("CREATE TABLE t (id INT PRIMARY KEY, {})", defs.join(", "));
    let mut conn = fresh_database_on(
        server,
        db,
        &[
            &create,
            "SET SESSION sql_mode = ''",
            "SET SESSION time_zone = '+02:00'",
        ],
    )
    .await;
    let literals: Vec<&str> = golden.iter().map(|g| g.2).collect();
    let insert = |id: i64| format!("INSERT INTO t VALUES ({id}, {})", literals.join(", "));
    conn.query_drop(insert(1)).await.unwrap();
    let mut src = source_on(server, db, server_id, StartMode::SnapshotThenStream).await;
    let snapshot = read_until(&mut src, |e| commit_position(e).is_some()).await;
    conn.query_drop(insert(2)).await.unwrap();
    let streamed = read_until(&mut src, |e| is_change_of(e, "t", 2)).await;

    let schema = snapshot
        .iter()
        .find_map(|e| match e {
            SourceEvent::Schema { schema, .. } => Some(schema.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(schema.primary_key, vec!["id".to_string()]);
    let types: Vec<String> = schema
        .columns
        .iter()
        .skip(1)
        .map(|c| c.data_type.to_string())
        .collect();
    let expected_types: Vec<String> = golden.iter().map(|g| g.1.to_string()).collect();
    assert_eq!(types, expected_types);
    let expected_values: Vec<CdcValue> = golden.iter().map(|g| g.3.clone()).collect();
    for (id, events) in [(1, &snapshot), (2, &streamed)] {
        let row = changes(events)
            .into_iter()
            .find(|(_, v)| v[0] == int(id))
            .unwrap()
            .1;
        for ((def, _, _, want), got) in golden.iter().zip(&row[1..]) {
            assert_eq!(got, want, "row {id}, column {def}");
        }
        assert_eq!(row[1..], expected_values[..]);
    }
}
