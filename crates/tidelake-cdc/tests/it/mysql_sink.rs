//! The MySQL/MariaDB source through the sink: tables equal the source after
//! the snapshot, while streaming, and after a restart (kill and resume from
//! the positions the sink recorded).

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tidelake_cdc::mysql::{MysqlConfig, MysqlSource, StartMode};
use tidelake_cdc::{CdcError, Pipeline, RunEnd, SinkConfig};
use tidelake_engine::{Catalog, Identifier};
use tidelake_testkit::warehouse::KeptOnFailure;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::common::read_rows;
use crate::mysql::{fresh_database_on, MARIADB};

const DB: &str = "cdc_it_sink";

struct Running {
    stop: watch::Sender<bool>,
    handle: JoinHandle<Result<(Pipeline, RunEnd), CdcError>>,
}

async fn start_on(catalog: &Catalog, db: &str, server_id: u32) -> Running {
    start_at(catalog, MARIADB, db, server_id).await
}

/// A pipeline from `db` on `server` into `ods`, resumed from what the
/// catalog recorded if anything.
async fn start_at(catalog: &Catalog, server: &str, db: &str, server_id: u32) -> Running {
    let mut sink = SinkConfig::new("mysql_it", "ods");
    sink.commit_interval = Duration::from_millis(100);
    sink.idle_progress_interval = Duration::from_millis(500);
    let mut pipeline = Pipeline::open(catalog.clone(), sink).await.unwrap();
    let resume = pipeline.resume();
    let mut config = MysqlConfig::new(format!("{server}/{db}"));
    config.server_id = server_id;
    if !resume.tables.is_empty() {
        config.start = StartMode::Resume(resume);
    }
    let mut source = MysqlSource::start(config).await.unwrap();
    let (stop, stopped) = watch::channel(false);
    let handle = tokio::spawn(async move {
        let end = pipeline.run(&mut source, stopped).await?;
        Ok((pipeline, end))
    });
    Running { stop, handle }
}

async fn source_rows(conn: &mut Conn) -> Vec<String> {
    let mut rows: Vec<String> = conn
        .query("SELECT CONCAT_WS('|', id, COALESCE(v, 'NULL'), COALESCE(n, 'NULL')) FROM items")
        .await
        .unwrap();
    rows.sort();
    rows
}

async fn wait_equal(catalog: &Catalog, conn: &mut Conn, running: &Running) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let expected = source_rows(conn).await;
        let exists = catalog
            .load_table(&Identifier::new("ods", "items"))
            .await
            .is_ok();
        let actual = if exists {
            read_rows(catalog, "ods", "items").await
        } else {
            Vec::new()
        };
        if exists && actual == expected {
            return;
        }
        assert!(!running.handle.is_finished(), "the pipeline ended early");
        if Instant::now() > deadline {
            assert_eq!(actual, expected, "ods.items never equalled the source");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_through_the_sink_snapshot_stream_and_restart() {
    through_the_sink_snapshot_stream_and_restart(MARIADB, 92_001).await;
}

/// The copy, the stream, a kill mid-stream and a restart from the
/// recorded positions (after a binlog rotation): `ods.items` equals the
/// source after each.
pub async fn through_the_sink_snapshot_stream_and_restart(server: &str, server_id: u32) {
    let mut conn = fresh_database_on(
        server,
        DB,
        &["CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(20), n BIGINT)"],
    )
    .await;
    let values: Vec<String> = (1..=500)
        .map(|i| format!("({i}, 'v{i}', {})", i * 10))
        .collect();
    conn.query_drop(format!("INSERT INTO items VALUES {}", values.join(",")))
        .await
        .unwrap();
    let dir = KeptOnFailure::new("cdc-mysql-sink");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();

    let running = start_at(&catalog, server, DB, server_id).await;
    wait_equal(&catalog, &mut conn, &running).await;
    conn.query_drop("INSERT INTO items VALUES (1001, 'new', 1), (1002, NULL, NULL)")
        .await
        .unwrap();
    conn.query_drop("UPDATE items SET v = 'changed' WHERE id <= 10")
        .await
        .unwrap();
    conn.query_drop("BEGIN; DELETE FROM items WHERE id BETWEEN 11 AND 20; UPDATE items SET n = -1 WHERE id = 1001; COMMIT")
        .await
        .unwrap();
    wait_equal(&catalog, &mut conn, &running).await;

    // Killed like a SIGKILL; changes meanwhile; a restart resumes from the
    // recorded position.
    running.handle.abort();
    let _ = running.handle.await;
    conn.query_drop("INSERT INTO items VALUES (2001, 'after', 2)")
        .await
        .unwrap();
    conn.query_drop("FLUSH BINARY LOGS").await.unwrap();
    conn.query_drop("UPDATE items SET v = 'again' WHERE id BETWEEN 21 AND 30")
        .await
        .unwrap();
    conn.query_drop("DELETE FROM items WHERE id = 2")
        .await
        .unwrap();
    let running = start_at(&catalog, server, DB, server_id + 1).await;
    wait_equal(&catalog, &mut conn, &running).await;
    let _ = running.stop.send(true);
    let (_, end) = running.handle.await.unwrap().unwrap();
    assert!(matches!(end, RunEnd::Stopped));
}

/// One UPDATE of 200,000 rows, a single source transaction: the binlog's
/// full images need no lookups and the sink keeps no images of them; the
/// rows go to the writer in batches and the table ends equal to the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_large_transaction_ends_equal() {
    const LARGE_DB: &str = "cdc_it_large";
    let mut conn = fresh_database_on(
        MARIADB,
        LARGE_DB,
        &[
            "CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(40), n BIGINT)",
            "INSERT INTO items SELECT seq, MD5(seq), seq * 10 FROM seq_1_to_200000",
        ],
    )
    .await;
    let dir = KeptOnFailure::new("cdc-mysql-large");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let running = start_on(&catalog, LARGE_DB, 92_011).await;
    wait_equal(&catalog, &mut conn, &running).await;
    conn.query_drop("UPDATE items SET n = n + 1, v = CONCAT(v, 'x')")
        .await
        .unwrap();
    wait_equal(&catalog, &mut conn, &running).await;
    let _ = running.stop.send(true);
    let (pipeline, _) = running.handle.await.unwrap().unwrap();
    assert_eq!(
        pipeline.stats().spilled_images,
        0,
        "no images are kept for MySQL"
    );
    conn.query_drop(format!("DROP DATABASE {LARGE_DB}"))
        .await
        .unwrap();
}

/// A table the sink never committed (here: its Paimon table dropped while
/// the pipeline was down, as after a crash between the copy's commits of
/// two tables) is copied again at the restart under a fresh read view, and
/// streamed from that view's position; the other table resumes from its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_table_never_committed_is_copied_again_on_resume() {
    const RESUME_DB: &str = "cdc_it_recopy";
    let mut conn = fresh_database_on(
        MARIADB,
        RESUME_DB,
        &[
            "CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(20), n BIGINT)",
            "CREATE TABLE other (id INT PRIMARY KEY, w INT)",
            "INSERT INTO items SELECT seq, CONCAT('v', seq), seq FROM seq_1_to_300",
            "INSERT INTO other SELECT seq, seq FROM seq_1_to_200",
        ],
    )
    .await;
    let dir = KeptOnFailure::new("cdc-mysql-recopy");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let running = start_on(&catalog, RESUME_DB, 92_021).await;
    wait_equal(&catalog, &mut conn, &running).await;
    let _ = running.stop.send(true);
    running.handle.await.unwrap().unwrap();

    catalog
        .drop_table(&Identifier::new("ods", "other"), false)
        .await
        .unwrap();
    for sql in [
        "UPDATE items SET n = -n WHERE id <= 50",
        "UPDATE other SET w = w * 100 WHERE id <= 50",
        "DELETE FROM other WHERE id > 190",
        "INSERT INTO other VALUES (1000, 1)",
    ] {
        conn.query_drop(sql).await.unwrap();
    }
    let running = start_on(&catalog, RESUME_DB, 92_022).await;
    wait_equal(&catalog, &mut conn, &running).await;
    conn.query_drop("UPDATE other SET w = -1 WHERE id = 1000")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut expected: Vec<String> = conn
            .query("SELECT CONCAT_WS('|', id, w) FROM other")
            .await
            .unwrap();
        expected.sort();
        let actual = match catalog.load_table(&Identifier::new("ods", "other")).await {
            Ok(_) => read_rows(&catalog, "ods", "other").await,
            Err(_) => Vec::new(),
        };
        if actual == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ods.other: {actual:?} != {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = running.stop.send(true);
    running.handle.await.unwrap().unwrap();
    conn.query_drop(format!("DROP DATABASE {RESUME_DB}"))
        .await
        .unwrap();
}
