//! The MySQL/MariaDB source through the sink: tables equal the source after
//! the snapshot, while streaming, and after a restart (kill and resume from
//! the positions the sink recorded).

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use tidelake_cdc::mysql::{MysqlConfig, MysqlSource, StartMode};
use tidelake_cdc::{CdcError, Pipeline, RunEnd, SinkConfig};
use tidelake_engine::{Catalog, Identifier};
use tidelake_testkit::warehouse::KeptOnFailure;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::common::read_rows;

const DB: &str = "cdc_it_sink";

struct Running {
    stop: watch::Sender<bool>,
    handle: JoinHandle<Result<(Pipeline, RunEnd), CdcError>>,
}

async fn start(catalog: &Catalog, server_id: u32) -> Running {
    let mut sink = SinkConfig::new("mysql_it", "ods");
    sink.commit_interval = Duration::from_millis(100);
    sink.idle_progress_interval = Duration::from_millis(500);
    let mut pipeline = Pipeline::open(catalog.clone(), sink).await.unwrap();
    let resume = pipeline.resume();
    let mut config = MysqlConfig::new(format!("mysql://root@127.0.0.1:3306/{DB}"));
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
    let mut conn = Conn::new(Opts::from_url("mysql://root@127.0.0.1:3306").unwrap())
        .await
        .unwrap();
    conn.query_drop(format!("DROP DATABASE IF EXISTS {DB}"))
        .await
        .unwrap();
    conn.query_drop(format!("CREATE DATABASE {DB}"))
        .await
        .unwrap();
    conn.query_drop(format!("USE {DB}")).await.unwrap();
    conn.query_drop("CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(20), n BIGINT)")
        .await
        .unwrap();
    let values: Vec<String> = (1..=500)
        .map(|i| format!("({i}, 'v{i}', {})", i * 10))
        .collect();
    conn.query_drop(format!("INSERT INTO items VALUES {}", values.join(",")))
        .await
        .unwrap();
    let dir = KeptOnFailure::new("cdc-mysql-sink");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();

    let running = start(&catalog, 92_001).await;
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
    let running = start(&catalog, 92_002).await;
    wait_equal(&catalog, &mut conn, &running).await;
    let _ = running.stop.send(true);
    let (_, end) = running.handle.await.unwrap().unwrap();
    assert!(matches!(end, RunEnd::Stopped));
}
