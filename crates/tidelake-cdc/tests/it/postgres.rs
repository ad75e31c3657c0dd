//! The PostgreSQL source against the local server: each test has its own
//! database (`tl_cdc_<test>`), slot and publication, dropped at the end.

use std::process::Command;
use std::time::{Duration, Instant};

use tidelake_cdc::event::{SourceEvent, SourceTableId};
use tidelake_cdc::postgres::{types, ConnectConfig, Mode, PostgresConfig, PostgresSource};
use tidelake_cdc::{CdcError, Pipeline, RunEnd, SinkConfig, TableFilter};
use tidelake_engine::{Catalog, Identifier};
use tidelake_testkit::rng::{seed, Rng};
use tidelake_testkit::warehouse::KeptOnFailure;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::common::read_rows;
use crate::events::{read_until, Materialized};

fn psql(db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            db,
            "-tAqX",
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .args(["-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql -d {db} -c {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// A database of one test, dropped (with its slots) at the end.
pub(crate) struct PgDb {
    pub(crate) name: String,
}

impl PgDb {
    pub(crate) fn new(test: &str) -> PgDb {
        let name = format!("tl_cdc_{test}");
        drop_database(&name);
        psql("postgres", &format!("CREATE DATABASE {name}"));
        PgDb { name }
    }

    pub(crate) fn sql(&self, sql: &str) -> String {
        psql(&self.name, sql)
    }

    /// `query` returning one text column, as sorted lines.
    pub(crate) fn rows(&self, query: &str) -> Vec<String> {
        let mut rows: Vec<String> = self
            .sql(query)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        rows.sort();
        rows
    }

    pub(crate) fn source(&self, pipeline: &str) -> PostgresConfig {
        let connect = ConnectConfig::parse(&format!(
            "host=127.0.0.1 user=postgres dbname={}",
            self.name
        ))
        .unwrap();
        let mut config = PostgresConfig::new(connect, pipeline);
        config.new_table_poll = Duration::from_millis(500);
        config
    }
}

fn drop_database(name: &str) {
    for _ in 0..50 {
        psql(
            "postgres",
            &format!("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = '{name}' AND active"),
        );
        let dropped = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAqX", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{name}'"))
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if dropped {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            drop_database(&self.name);
        }
    }
}

pub(crate) fn sink(pipeline: &str) -> SinkConfig {
    let mut config = SinkConfig::new(pipeline, "ods");
    config.commit_interval = Duration::from_millis(100);
    config.idle_progress_interval = Duration::from_millis(500);
    config
}

/// A pipeline running in a task.
pub(crate) struct Running {
    stop: watch::Sender<bool>,
    handle: JoinHandle<Result<(Pipeline, RunEnd), CdcError>>,
}

pub(crate) async fn start(
    catalog: &Catalog,
    sink: SinkConfig,
    mut source: PostgresConfig,
) -> Running {
    source.filter = sink.filter.clone();
    let mut pipeline = Pipeline::open(catalog.clone(), sink).await.unwrap();
    let mut source = PostgresSource::start(source, pipeline.resume())
        .await
        .unwrap();
    let (stop, stopped) = watch::channel(false);
    let handle = tokio::spawn(async move {
        let end = pipeline.run(&mut source, stopped).await?;
        Ok((pipeline, end))
    });
    Running { stop, handle }
}

impl Running {
    pub(crate) async fn stop(self) -> Pipeline {
        let _ = self.stop.send(true);
        self.handle.await.unwrap().unwrap().0
    }

    /// Like a SIGKILL: the task is dropped wherever it is.
    async fn kill(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }
}

/// Waits (bounded) until the Paimon table equals the source.
pub(crate) async fn wait_equal(
    catalog: &Catalog,
    db: &PgDb,
    table: &str,
    query: &str,
    running: &mut Running,
) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let expected = db.rows(query);
        let exists = catalog
            .load_table(&Identifier::new("ods", table))
            .await
            .is_ok();
        let actual = if exists {
            read_rows(catalog, "ods", table).await
        } else {
            Vec::new()
        };
        if exists && actual == expected {
            return;
        }
        if running.handle.is_finished() {
            let outcome = (&mut running.handle).await.map(|r| r.map(|(_, end)| end));
            panic!("the pipeline ended early: {outcome:?}");
        }
        if Instant::now() > deadline {
            assert_eq!(actual, expected, "ods.{table} never equalled the source");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) const ITEMS: &str =
    "SELECT concat_ws('|', id, coalesce(v, 'NULL'), coalesce(n::text, 'NULL')) FROM items";

pub(crate) fn create_items(db: &PgDb, rows: u32) {
    db.sql("CREATE TABLE items (id int PRIMARY KEY, v text, n bigint)");
    db.sql(&format!(
        "INSERT INTO items SELECT i, md5(i::text), i * 10 FROM generate_series(1, {rows}) i"
    ));
}

/// Random statements over `items`, some in multi-statement transactions.
pub(crate) fn workload(rng: &mut Rng, statements: usize, max_id: u64) -> String {
    let mut sql = String::new();
    let mut i = 0;
    while i < statements {
        let in_tx = rng.chance(0.3);
        let n = if in_tx { rng.range(2, 6) as usize } else { 1 };
        if in_tx {
            sql.push_str("BEGIN;\n");
        }
        for _ in 0..n {
            let id = rng.range(1, max_id);
            sql.push_str(&match rng.below(10) {
                0..=5 => format!("UPDATE items SET n = n + 1, v = v || 'u' WHERE id = {id};\n"),
                6..=8 => format!(
                    "INSERT INTO items VALUES ({id}, 'ins{id}', {id}) ON CONFLICT (id) DO UPDATE SET v = 'up', n = NULL;\n"
                ),
                _ => format!("DELETE FROM items WHERE id = {id};\n"),
            });
            i += 1;
        }
        if in_tx {
            sql.push_str("COMMIT;\n");
        }
    }
    sql
}

pub(crate) fn run_script(db: &str, script: String) -> std::thread::JoinHandle<()> {
    let db = db.to_string();
    std::thread::spawn(move || {
        let file = std::env::temp_dir().join(format!("tl-cdc-{db}-{}.sql", std::process::id()));
        std::fs::write(&file, script).unwrap();
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                &db,
                "-qX",
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
            ])
            .arg(&file)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&file);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_snapshot_under_concurrent_writes_then_streams() {
    let db = PgDb::new("snapshot");
    create_items(&db, 5_000);
    let dir = KeptOnFailure::new("cdc-pg-snapshot");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut rng = Rng::new(seed("postgres_snapshot", "TIDELAKE_CDC_SEED"));
    let writer = run_script(&db.name, workload(&mut rng, 400, 6_000));
    let mut running = start(&catalog, sink("snap"), db.source("snap")).await;
    writer.join().unwrap();
    wait_equal(&catalog, &db, "items", ITEMS, &mut running).await;
    // Streaming inserts, updates and deletes.
    db.sql("INSERT INTO items VALUES (100001, 'new', 1), (100002, NULL, NULL)");
    db.sql("UPDATE items SET v = 'changed' WHERE id <= 10");
    db.sql("DELETE FROM items WHERE id BETWEEN 11 AND 20");
    wait_equal(&catalog, &db, "items", ITEMS, &mut running).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill_and_restart_at_seeded_points_loses_and_repeats_nothing() {
    let db = PgDb::new("restart");
    create_items(&db, 2_000);
    let dir = KeptOnFailure::new("cdc-pg-restart");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut rng = Rng::new(seed("postgres_restart", "TIDELAKE_CDC_SEED"));
    for _round in 0..4 {
        let writer = run_script(&db.name, workload(&mut rng, 150, 2_500));
        let running = start(&catalog, sink("rs"), db.source("rs")).await;
        tokio::time::sleep(Duration::from_millis(rng.range(50, 1_500))).await;
        running.kill().await;
        writer.join().unwrap();
    }
    let mut running = start(&catalog, sink("rs"), db.source("rs")).await;
    wait_equal(&catalog, &db, "items", ITEMS, &mut running).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unchanged_toast_values_are_kept() {
    let db = PgDb::new("toast");
    db.sql("CREATE TABLE docs (id int PRIMARY KEY, body text, n int)");
    db.sql("ALTER TABLE docs ALTER body SET STORAGE EXTERNAL");
    db.sql("INSERT INTO docs VALUES (1, repeat('x', 10000), 0)");
    let dir = KeptOnFailure::new("cdc-pg-toast");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut running = start(&catalog, sink("toast"), db.source("toast")).await;
    let query = "SELECT concat_ws('|', id, left(body, 1) || length(body), n) FROM docs";
    wait_equal(
        &catalog,
        &db,
        "docs",
        "SELECT concat_ws('|', id, body, n) FROM docs",
        &mut running,
    )
    .await;
    // Updates that leave the TOASTed body alone: one of a copied row, one
    // of a row inserted (and updated) while streaming.
    db.sql("UPDATE docs SET n = 1 WHERE id = 1");
    db.sql("INSERT INTO docs VALUES (2, repeat('y', 20000), 0)");
    db.sql("UPDATE docs SET n = 2 WHERE id = 2");
    db.sql("UPDATE docs SET n = 3 WHERE id = 2");
    let expected = db.rows(query);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows: Vec<String> = read_rows(&catalog, "ods", "docs")
            .await
            .into_iter()
            .map(|r| {
                let parts: Vec<&str> = r.split('|').collect();
                let body = format!("{}{}", &parts[1][..1.min(parts[1].len())], parts[1].len());
                format!("{}|{}|{}", parts[0], body, parts[2])
            })
            .collect();
        if rows == expected {
            break;
        }
        assert!(Instant::now() < deadline, "{rows:?} != {expected:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running.stop().await;
}

/// One UPDATE of 200,000 rows (a single source transaction), deletes, and a
/// transaction that updates TOASTed rows twice: the images of the keys the
/// open group wrote go to the spill file past `images_in_memory`, are read
/// back for the unchanged values, and the tables end equal to the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_large_transaction_spills_and_ends_equal() {
    const ROWS: u32 = 200_000;
    let db = PgDb::new("large");
    db.sql("CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL, s text)");
    db.sql(&format!(
        "INSERT INTO big SELECT i, i, md5(i::text) FROM generate_series(1, {ROWS}) i"
    ));
    db.sql("CREATE TABLE docs (id int PRIMARY KEY, body text, n int)");
    db.sql("ALTER TABLE docs ALTER body SET STORAGE EXTERNAL");
    db.sql("INSERT INTO docs SELECT i, repeat(i::text, 3000), 0 FROM generate_series(1, 20) i");
    let dir = KeptOnFailure::new("cdc-pg-large");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut config = sink("large");
    config.images_in_memory = 5;
    let mut running = start(&catalog, config, db.source("large")).await;
    const BIG: &str = "SELECT concat_ws('|', id, v, s) FROM big";
    // The body's length and ends stand for it.
    const DOCS: &str =
        "SELECT concat_ws('|', id, length(body), left(body, 12), right(body, 12), n) FROM docs";
    let docs = |rows: Vec<String>| -> Vec<String> {
        let mut rows: Vec<String> = rows
            .into_iter()
            .map(|r| {
                let parts: Vec<&str> = r.split('|').collect();
                let body = parts[1];
                let (head, tail) = (
                    &body[..12.min(body.len())],
                    &body[body.len().saturating_sub(12)..],
                );
                format!("{}|{}|{head}|{tail}|{}", parts[0], body.len(), parts[2])
            })
            .collect();
        rows.sort();
        rows
    };
    wait_equal(&catalog, &db, "big", BIG, &mut running).await;
    db.sql("UPDATE big SET v = v + 1, s = s || 'x'");
    // Deletes send only the key: the table (deduplicating, no input
    // changelog) deletes by key, NOT NULL columns filled with zeros.
    db.sql("DELETE FROM big WHERE id % 10 = 0");
    db.sql("BEGIN; UPDATE docs SET n = n + 1; UPDATE docs SET n = n * 10 WHERE id % 2 = 0; COMMIT");
    wait_equal(&catalog, &db, "big", BIG, &mut running).await;
    let expected = db.rows(DOCS);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = docs(read_rows(&catalog, "ods", "docs").await);
        if rows == expected {
            break;
        }
        assert!(Instant::now() < deadline, "{rows:?} != {expected:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pipeline = running.stop().await;
    let spilled = pipeline.stats().spilled_images;
    assert!(
        spilled >= u64::from(ROWS) - 10,
        "the images of the large transaction were spilled ({spilled})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_schema_changes_mid_stream() {
    let db = PgDb::new("evolve");
    db.sql("CREATE TABLE t (id int PRIMARY KEY, n int, s varchar(10), f real)");
    db.sql("INSERT INTO t VALUES (1, 1, 'a', 1.5)");
    let dir = KeptOnFailure::new("cdc-pg-evolve");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut running = start(&catalog, sink("ev"), db.source("ev")).await;
    let query = "SELECT concat_ws('|', id, coalesce(n::text, 'NULL'), coalesce(s, 'NULL'), coalesce(f::text, 'NULL'), coalesce(c, 'NULL')) FROM t";
    let q3 = "SELECT concat_ws('|', id, n, s, f) FROM t";
    wait_equal(&catalog, &db, "t", q3, &mut running).await;
    db.sql("ALTER TABLE t ADD COLUMN c text");
    db.sql("INSERT INTO t VALUES (2, 2, 'b', 2.5, 'cc')");
    db.sql("ALTER TABLE t ALTER n TYPE bigint, ALTER s TYPE varchar(50), ALTER f TYPE double precision");
    db.sql("INSERT INTO t VALUES (3, 10000000000, 'a longer string than ten', 3.25, 'c3')");
    db.sql("UPDATE t SET c = 'c1' WHERE id = 1");
    wait_equal(&catalog, &db, "t", query, &mut running).await;
    let table = catalog
        .load_table(&Identifier::new("ods", "t"))
        .await
        .unwrap();
    let fields: Vec<String> = table
        .schema()
        .fields
        .iter()
        .map(|f| format!("{} {}", f.name, f.data_type))
        .collect();
    assert_eq!(
        fields,
        vec![
            "id INT NOT NULL",
            "n BIGINT",
            "s VARCHAR(50)",
            "f DOUBLE",
            "c STRING"
        ]
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_filters_keyless_tables_and_new_tables() {
    let db = PgDb::new("tables");
    db.sql("CREATE TABLE keep_a (id int PRIMARY KEY, v text)");
    db.sql("CREATE TABLE skip_b (id int PRIMARY KEY, v text)");
    db.sql("CREATE TABLE nokey (id int, v text)");
    db.sql("INSERT INTO keep_a VALUES (1, 'a'); INSERT INTO skip_b VALUES (1, 'b'); INSERT INTO nokey VALUES (1, 'n')");
    let dir = KeptOnFailure::new("cdc-pg-tables");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut config = sink("tb");
    config.filter = TableFilter::new(Some("keep_.*|nokey|later_.*"), Some("skip_.*")).unwrap();
    let mut running = start(&catalog, config, db.source("tb")).await;
    let q = |t: &str| format!("SELECT concat_ws('|', id, v) FROM {t}");
    wait_equal(&catalog, &db, "keep_a", &q("keep_a"), &mut running).await;
    // A table created while the sync runs, written right away.
    db.sql("CREATE TABLE later_c (id int PRIMARY KEY, v text)");
    db.sql("INSERT INTO later_c SELECT i, 'v' || i FROM generate_series(1, 100) i");
    wait_equal(&catalog, &db, "later_c", &q("later_c"), &mut running).await;
    db.sql("UPDATE later_c SET v = 'changed' WHERE id < 50; DELETE FROM later_c WHERE id > 90");
    db.sql(
        "INSERT INTO keep_a VALUES (2, 'a2'); UPDATE skip_b SET v = 'x'; UPDATE nokey SET v = 'x'",
    );
    wait_equal(&catalog, &db, "later_c", &q("later_c"), &mut running).await;
    wait_equal(&catalog, &db, "keep_a", &q("keep_a"), &mut running).await;
    let pipeline = running.stop().await;
    assert!(pipeline
        .stats()
        .skipped_without_key
        .contains(&SourceTableId::new("public", "nokey")));
    for absent in ["skip_b", "nokey"] {
        assert!(catalog
            .load_table(&Identifier::new("ods", absent))
            .await
            .is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_types_golden() {
    let db = PgDb::new("types");
    let mut columns = vec!["id int PRIMARY KEY".to_string()];
    let mut values = vec!["1".to_string()];
    for (i, (pg, _, _, _, text)) in types::GOLDEN.iter().enumerate() {
        columns.push(format!("c{i} {pg}"));
        values.push(format!("'{}'", text.replace('\'', "''")));
    }
    db.sql(&format!("CREATE TABLE all_types ({})", columns.join(", ")));
    db.sql(&format!(
        "INSERT INTO all_types VALUES ({})",
        values.join(", ")
    ));
    // The copy (binary where it can) reads each value as the text
    // protocol's reading of the golden text does.
    let mut copy = db.source("ty_copy");
    copy.mode = Mode::SnapshotOnly;
    let mut src = PostgresSource::start(copy, Default::default())
        .await
        .unwrap();
    let events = read_until(&mut src, |e| matches!(e, SourceEvent::CopyEnd { .. })).await;
    let mut view = Materialized::default();
    view.apply_all(&events);
    let copied = view.table("public", "all_types");
    assert_eq!(copied.len(), 1);
    let columns = &view.schemas[&SourceTableId::new("public", "all_types")].columns;
    for (i, (pg, _, _, _, text)) in types::GOLDEN.iter().enumerate() {
        let expected = types::parse_value(text, &columns[i + 1].data_type).unwrap();
        // Debug: NaN equals NaN.
        assert_eq!(
            format!("{:?}", copied[0][i + 1]),
            format!("{expected:?}"),
            "{pg}"
        );
    }
    drop(src);
    let dir = KeptOnFailure::new("cdc-pg-types");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut source = db.source("ty");
    source.mode = Mode::SnapshotOnly;
    let mut pipeline = Pipeline::open(catalog.clone(), sink("ty")).await.unwrap();
    let mut src = PostgresSource::start(source, pipeline.resume())
        .await
        .unwrap();
    let (_stop, stopped) = watch::channel(false);
    assert_eq!(
        pipeline.run(&mut src, stopped).await.unwrap(),
        RunEnd::SourceEnded
    );
    let table = catalog
        .load_table(&Identifier::new("ods", "all_types"))
        .await
        .unwrap();
    let rows = read_rows(&catalog, "ods", "all_types").await;
    assert_eq!(rows.len(), 1);
    let fields = &table.schema().fields;
    for (i, (pg, _, _, paimon, text)) in types::GOLDEN.iter().enumerate() {
        let field = &fields[i + 1];
        assert_eq!(field.data_type.to_string(), *paimon, "{pg}");
        let expected = types::parse_value(text, &field.data_type).unwrap();
        assert_ne!(expected, tidelake_cdc::event::CdcValue::Null, "{pg}");
    }
    // The values, as the sink reads them back, in the golden order.
    let cells: Vec<&str> = rows[0].split('|').collect();
    assert!(cells.iter().skip(1).all(|c| *c != "NULL"), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_bad_credentials_missing_slot_and_second_instance() {
    let db = PgDb::new("errors");
    db.sql("CREATE TABLE k (id int PRIMARY KEY)");
    db.sql("INSERT INTO k VALUES (1)");
    let bad = ConnectConfig::parse(&format!(
        "host=127.0.0.1 user=no_such_user dbname={}",
        db.name
    ))
    .unwrap();
    let err = PostgresSource::start(PostgresConfig::new(bad, "x"), Default::default())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("no_such_user"), "{err}");

    let dir = KeptOnFailure::new("cdc-pg-errors");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut running = start(&catalog, sink("er"), db.source("er")).await;
    wait_equal(&catalog, &db, "k", "SELECT id::text FROM k", &mut running).await;
    // A second instance: the slot is in use; it is refused.
    let mut second = Pipeline::open(catalog.clone(), sink("er")).await.unwrap();
    let mut config = db.source("er");
    config.mode = Mode::StreamOnly;
    let outcome = match PostgresSource::start(config, second.resume()).await {
        Err(e) => Err(e),
        Ok(mut source) => {
            let (_stop, stopped) = watch::channel(false);
            second.run(&mut source, stopped).await.map(|_| ())
        }
    };
    let err = outcome.unwrap_err().to_string();
    assert!(
        err.contains("active") || err.contains("another instance"),
        "{err}"
    );
    running.stop().await;

    // The slot dropped while the tables record positions: a clear error.
    tokio::time::sleep(Duration::from_millis(200)).await;
    db.sql("SELECT pg_drop_replication_slot('tidelake_er')");
    let pipeline = Pipeline::open(catalog.clone(), sink("er")).await.unwrap();
    let err = PostgresSource::start(db.source("er"), pipeline.resume())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("slot 'tidelake_er' does not exist"), "{err}");
}
