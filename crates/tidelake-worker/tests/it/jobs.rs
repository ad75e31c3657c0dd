//! Jobs declared from SQL and run by in-process workers over a local-disk
//! warehouse: statements and `sys.jobs`, refusal at CREATE, two workers
//! sharing jobs, SUSPEND/RESUME without loss, maintenance of write-only
//! tables.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::util::display::array_value_to_string;
use tidelake_sql::{Session, StatementResult};
use tidelake_stream::{JobOptions, StreamingJob};
use tidelake_worker::{JobsExtension, Worker, WorkerConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const TIMEOUT: Duration = Duration::from_secs(60);

async fn session(dir: &Path) -> Session {
    let plain = Session::open(dir.to_str().unwrap()).await.unwrap();
    Session::with_extensions(plain.catalog().clone(), vec![Arc::new(JobsExtension)])
        .await
        .unwrap()
}

async fn sql(s: &Session, statements: &str) {
    if let Err(e) = s.execute(statements).await {
        panic!("{statements}\n{e}");
    }
}

/// Each row as `a|b|c`, sorted.
fn render(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(move |r| {
                let cells: Vec<String> = b
                    .columns()
                    .iter()
                    .map(|c| match c.is_null(r) {
                        true => "NULL".to_string(),
                        false => array_value_to_string(c, r).unwrap(),
                    })
                    .collect();
                cells.join("|")
            })
        })
        .collect();
    rows.sort();
    rows
}

async fn rows(s: &Session, query: &str) -> Vec<String> {
    let results = s
        .execute(query)
        .await
        .unwrap_or_else(|e| panic!("{query}\n{e}"));
    let Some(StatementResult::Rows { batches, .. }) = results.last() else {
        panic!("{query} returned no rows");
    };
    render(batches)
}

/// Waits until `query` returns `expected`, failing with what it returned.
async fn eventually(s: &Session, query: &str, expected: &[String]) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let got = rows(s, query).await;
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{query} did not reach {expected:?}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config(id: &str) -> WorkerConfig {
    WorkerConfig {
        id: Some(id.into()),
        slots: 4,
        lease_ttl: Duration::from_millis(3000),
        maintenance_interval: Duration::from_millis(200),
        job_options: JobOptions {
            poll_interval: Duration::from_millis(20),
            ..JobOptions::default()
        },
        ..WorkerConfig::default()
    }
}

/// A worker running in a task until its sender says stop.
fn start_worker(s: &Session, id: &str) -> (watch::Sender<bool>, JoinHandle<()>) {
    let worker = Worker::new(s.catalog().clone(), config(id));
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        worker
            .run(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
            .unwrap();
    });
    (stop, task)
}

async fn setup(s: &Session) {
    sql(
        s,
        "CREATE DATABASE db;
         CREATE TABLE db.src (id BIGINT NOT NULL, k STRING, v BIGINT, PRIMARY KEY (id) NOT ENFORCED)
           WITH ('bucket' = '1', 'changelog-producer' = 'lookup');
         CREATE TABLE db.totals (k STRING NOT NULL, n BIGINT, s BIGINT, PRIMARY KEY (k) NOT ENFORCED)
           WITH ('bucket' = '1', 'merge-engine' = 'aggregation',
                 'fields.n.aggregate-function' = 'sum', 'fields.s.aggregate-function' = 'sum');
         CREATE TABLE db.copy (id BIGINT NOT NULL, k STRING, v BIGINT, PRIMARY KEY (id) NOT ENFORCED)
           WITH ('bucket' = '1')",
    )
    .await;
}

/// Waits until both sinks equal their queries run in batch.
async fn caught_up(s: &Session) {
    let totals = rows(s, TOTALS_BATCH).await;
    eventually(s, "SELECT k, n, s FROM db.totals", &totals).await;
    let copied = rows(s, "SELECT id, k, v FROM db.src WHERE v > 2").await;
    eventually(s, "SELECT * FROM db.copy", &copied).await;
}

const TOTALS: &str = "INSERT INTO db.totals SELECT k, count(*), sum(v) FROM db.src GROUP BY k";
const TOTALS_BATCH: &str = "SELECT k, count(*), sum(v) FROM db.src GROUP BY k";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_statements_declare_describe_alter_and_drop() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(dir.path()).await;
    setup(&s).await;
    sql(&s, &format!("CREATE JOB totals AS {TOTALS}")).await;
    let err = s
        .execute(&format!("CREATE JOB totals AS {TOTALS}"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    sql(&s, &format!("CREATE JOB IF NOT EXISTS totals AS {TOTALS}")).await;
    // Nobody runs it yet: pending, no owner, lag = the source's snapshots.
    assert_eq!(
        rows(&s, "SELECT name, kind, state, owner, lag FROM sys.jobs").await,
        ["totals|sql|PENDING|NULL|0"]
    );
    let described = rows(&s, "DESCRIBE JOB totals").await;
    assert!(
        described.contains(&format!("statement|{TOTALS}")),
        "{described:?}"
    );
    assert!(
        described.contains(&"database|default".to_string()),
        "{described:?}"
    );
    sql(&s, "ALTER JOB totals SUSPEND").await;
    assert_eq!(
        rows(&s, "SELECT name, state, version FROM sys.jobs").await,
        ["totals|SUSPENDED|2"]
    );
    sql(&s, "ALTER JOB totals RESUME").await;
    assert_eq!(rows(&s, "SHOW JOBS").await.len(), 1);
    sql(&s, "DROP JOB totals").await;
    assert!(rows(&s, "SHOW JOBS").await.is_empty());
    assert!(s.execute("DROP JOB totals").await.is_err());
    assert!(s.execute("ALTER JOB totals RESUME").await.is_err());
    sql(&s, "DROP JOB IF EXISTS totals").await;
    // Declared again after a drop: a new version of the same folder.
    sql(&s, &format!("CREATE JOB totals AS {TOTALS}")).await;
    assert_eq!(
        rows(&s, "SELECT name, version FROM sys.jobs").await,
        ["totals|5"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_job_refuses_what_the_runner_cannot_run_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(dir.path()).await;
    setup(&s).await;
    for statement in [
        "INSERT INTO db.copy SELECT id, k, v FROM db.src ORDER BY id",
        "INSERT INTO db.copy SELECT id, k, v FROM db.missing",
        "SELECT * FROM db.src",
    ] {
        let runner = match StreamingJob::prepare(&s, "bad", statement, JobOptions::default()).await
        {
            Ok(_) => panic!("the runner accepted {statement}"),
            Err(e) => e.to_string(),
        };
        let refused = s
            .execute(&format!("CREATE JOB bad AS {statement}"))
            .await
            .unwrap_err();
        assert_eq!(refused.to_string(), runner, "{statement}");
    }
    assert!(rows(&s, "SHOW JOBS").await.is_empty());
    assert!(!dir.path().join("_jobs/bad").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_share_jobs_and_suspend_and_resume_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(dir.path()).await;
    setup(&s).await;
    sql(&s, &format!("CREATE JOB totals AS {TOTALS}")).await;
    sql(
        &s,
        "CREATE JOB copy AS INSERT INTO db.copy SELECT id, k, v FROM db.src WHERE v > 2",
    )
    .await;
    let (stop_a, a) = start_worker(&s, "a");
    let (stop_b, b) = start_worker(&s, "b");
    for i in 0..5 {
        sql(
            &s,
            &format!("INSERT INTO db.src VALUES ({i}, 'k{}', {i})", i % 2),
        )
        .await;
    }
    caught_up(&s).await;
    // One job each: ceil(2 jobs / 2 workers).
    eventually(
        &s,
        "SELECT DISTINCT owner FROM sys.jobs",
        &["a".to_string(), "b".to_string()],
    )
    .await;

    let totals = rows(&s, TOTALS_BATCH).await;
    sql(&s, "ALTER JOB totals SUSPEND").await;
    // Suspended: stopped after its commit and its lease released.
    eventually(
        &s,
        "SELECT state, owner FROM sys.jobs WHERE name = 'totals'",
        &["SUSPENDED|NULL".to_string()],
    )
    .await;
    sql(
        &s,
        "INSERT INTO db.src VALUES (10, 'k0', 10), (11, 'k2', 11)",
    )
    .await;
    assert_eq!(rows(&s, "SELECT k, n, s FROM db.totals").await, totals);
    sql(&s, "ALTER JOB totals RESUME").await;
    caught_up(&s).await;

    // A worker that leaves hands its job over.
    stop_a.send_replace(true);
    a.await.unwrap();
    sql(&s, "INSERT INTO db.src VALUES (12, 'k1', 12)").await;
    caught_up(&s).await;
    eventually(
        &s,
        "SELECT DISTINCT owner FROM sys.jobs",
        &["b".to_string()],
    )
    .await;
    stop_b.send_replace(true);
    b.await.unwrap();
    // Leaving released everything.
    eventually(
        &s,
        "SELECT name, state, owner FROM sys.jobs",
        &[
            "copy|PENDING|NULL".to_string(),
            "totals|PENDING|NULL".to_string(),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_compact_and_expire_write_only_tables() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(dir.path()).await;
    sql(
        &s,
        "CREATE DATABASE db;
         CREATE TABLE db.w (id BIGINT NOT NULL, v BIGINT, PRIMARY KEY (id) NOT ENFORCED)
           WITH ('bucket' = '1', 'write-only' = 'true', 'snapshot.num-retained.min' = '2',
                 'snapshot.num-retained.max' = '3')",
    )
    .await;
    for i in 0..8 {
        sql(
            &s,
            &format!("INSERT INTO db.w VALUES ({i}, {i}), (100, {i})"),
        )
        .await;
    }
    let before = rows(&s, "SELECT * FROM db.w").await;
    // A write-only writer neither compacts nor expires.
    assert_eq!(rows(&s, "SELECT count(*) FROM db.w$snapshots").await, ["8"]);
    let (stop, worker) = start_worker(&s, "m");
    eventually(
        &s,
        "SELECT count(*) > 0 FROM db.w$snapshots WHERE commit_kind = 'COMPACT'",
        &["true".to_string()],
    )
    .await;
    eventually(
        &s,
        "SELECT count(*) <= 3 FROM db.w$snapshots",
        &["true".to_string()],
    )
    .await;
    assert_eq!(rows(&s, "SELECT * FROM db.w").await, before);
    stop.send_replace(true);
    worker.await.unwrap();
}
