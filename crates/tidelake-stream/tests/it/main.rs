//! Continuous jobs in process, deterministic: every accepted shape ends
//! equal to its query run in batch over the source, after runs that stop
//! and resume; the checks that need the tables refuse what a sink or a
//! source cannot do; a second instance of a job is fenced; progress lives
//! in the sink's snapshots and survives other commits. Windows, joins of
//! two streams and the supervisor have their own modules.

mod job_faults;
mod joins;
mod supervisor;
mod windows;

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use tidelake_engine::Identifier;
use tidelake_sql::{Session, StatementResult};
use tidelake_stream::{JobOptions, JobSummary, StreamError, StreamingJob};
use tokio::sync::watch;

async fn session() -> (tempfile::TempDir, Session) {
    let dir = tempfile::tempdir().unwrap();
    let session = Session::open(dir.path().to_str().unwrap()).await.unwrap();
    session.execute("CREATE DATABASE db").await.unwrap();
    (dir, session)
}

async fn sql(s: &Session, statements: &str) {
    if let Err(e) = s.execute(statements).await {
        panic!("{statements}\n{e}");
    }
}

fn render(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for b in batches {
        let formatters: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| f.value(r).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    rows.sort();
    rows
}

async fn rows(s: &Session, query: &str) -> Vec<String> {
    let results = s.execute(query).await.unwrap();
    let Some(StatementResult::Rows { batches, .. }) = results.last() else {
        panic!("{query} returned no rows");
    };
    render(batches)
}

fn until_idle() -> JobOptions {
    JobOptions {
        poll_interval: Duration::from_millis(5),
        until_idle: true,
        ..JobOptions::default()
    }
}

async fn run_job(s: &Session, name: &str, statement: &str) -> Result<JobSummary, StreamError> {
    let job = StreamingJob::prepare(s, name, statement, until_idle()).await?;
    let (_stop, stopped) = watch::channel(false);
    job.run(stopped, &mut |_| {}).await
}

async fn job_ok(s: &Session, name: &str, statement: &str) -> JobSummary {
    match run_job(s, name, statement).await {
        Ok(summary) => summary,
        Err(e) => panic!("job {name}: {e}"),
    }
}

async fn refused(s: &Session, statement: &str, needles: &[&str]) {
    let message = match StreamingJob::prepare(s, "j", statement, until_idle()).await {
        Ok(_) => panic!("accepted: {statement}"),
        Err(e) => e.to_string(),
    };
    for needle in needles {
        assert!(
            message.contains(needle),
            "{statement}\n  gave: {message}\n  missing: {needle}"
        );
    }
}

/// The properties of the sink's latest snapshot.
async fn latest_properties(s: &Session, table: &str) -> BTreeMap<String, String> {
    let table = s
        .catalog()
        .load_table(&Identifier::new("db", table))
        .await
        .unwrap();
    let snapshot = table.snapshots().latest_snapshot().await.unwrap().unwrap();
    snapshot.properties.unwrap_or_default()
}

async fn latest_source_snapshot(s: &Session, table: &str) -> i64 {
    let table = s
        .catalog()
        .load_table(&Identifier::new("db", table))
        .await
        .unwrap();
    table
        .snapshots()
        .latest_snapshot_id()
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn projection_and_filter_resume_where_they_stopped() {
    let (_dir, s) = session().await;
    sql(
        &s,
        "CREATE TABLE db.clicks (id BIGINT NOT NULL, page STRING, ms INT); \
         CREATE TABLE db.slow (id BIGINT, page STRING, ms2 BIGINT); \
         INSERT INTO db.clicks VALUES (1, 'a', 100), (2, 'b', 2500)",
    )
    .await;
    let job = "INSERT INTO db.slow SELECT id, upper(page), ms * 2 FROM db.clicks WHERE ms >= 1000";
    let first = job_ok(&s, "slow", job).await;
    assert_eq!((first.commits, first.snapshots, first.rows_in), (1, 1, 2));
    sql(
        &s,
        "INSERT INTO db.clicks VALUES (3, 'c', 1000), (4, 'd', 999); \
         INSERT INTO db.clicks VALUES (5, 'e', 5000)",
    )
    .await;
    let second = job_ok(&s, "slow", job).await;
    assert_eq!(
        (second.snapshots, second.rows_in, second.rows_out),
        (2, 3, 2)
    );
    // Nothing new: a third run commits nothing and writes no duplicates.
    assert_eq!(job_ok(&s, "slow", job).await.commits, 0);
    assert_eq!(
        rows(&s, "SELECT * FROM db.slow").await,
        rows(
            &s,
            "SELECT id, upper(page), ms * 2 FROM db.clicks WHERE ms >= 1000"
        )
        .await
    );
    let next = latest_source_snapshot(&s, "clicks").await + 1;
    assert_eq!(
        latest_properties(&s, "slow").await["tidelake.progress.job.slow.db.clicks"],
        next.to_string()
    );
}

#[tokio::test]
async fn upserts_pass_through_by_key_and_refuse_what_an_update_could_strand() {
    let (_dir, s) = session().await;
    sql(
        &s,
        "CREATE TABLE db.src (id BIGINT NOT NULL, v INT, PRIMARY KEY (id) NOT ENFORCED) WITH ('bucket' = '2'); \
         CREATE TABLE db.copy (id BIGINT NOT NULL, v2 INT, PRIMARY KEY (id) NOT ENFORCED) WITH ('bucket' = '1'); \
         INSERT INTO db.src VALUES (1, 10), (2, 20), (3, 30), (4, 40)",
    )
    .await;
    let job = "INSERT INTO db.copy SELECT id, v * 2 FROM db.src WHERE id <> 3";
    job_ok(&s, "copy", job).await;
    sql(
        &s,
        "UPDATE db.src SET v = v + 1 WHERE id <= 2; DELETE FROM db.src WHERE id = 4; \
         INSERT INTO db.src VALUES (5, 50), (1, 11)",
    )
    .await;
    job_ok(&s, "copy", job).await;
    assert_eq!(
        rows(&s, "SELECT * FROM db.copy").await,
        rows(&s, "SELECT id, v * 2 FROM db.src WHERE id <> 3").await
    );
    refused(
        &s,
        "INSERT INTO db.copy SELECT id, v FROM db.src WHERE v > 10",
        &["WHERE clause reads 'v'", "'changelog-producer' = 'lookup'"],
    )
    .await;
    sql(
        &s,
        "CREATE TABLE db.by_v (v INT NOT NULL, id BIGINT, PRIMARY KEY (v) NOT ENFORCED)",
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.by_v SELECT v, id FROM db.src",
        &["key column 'v' of sink 'db.by_v'", "changelog producer"],
    )
    .await;
    sql(&s, "CREATE TABLE db.log (id BIGINT, v INT)").await;
    refused(
        &s,
        "INSERT INTO db.log SELECT id, v FROM db.src",
        &["without a primary key"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.src SELECT id, v FROM db.src",
        &["its own source"],
    )
    .await;
}

#[tokio::test]
async fn a_complete_changelog_moves_rows_across_the_filter() {
    let (_dir, s) = session().await;
    sql(
        &s,
        "CREATE TABLE db.src (id BIGINT NOT NULL, v INT, PRIMARY KEY (id) NOT ENFORCED) \
           WITH ('bucket' = '2', 'changelog-producer' = 'lookup'); \
         CREATE TABLE db.big (id BIGINT NOT NULL, v INT, PRIMARY KEY (id) NOT ENFORCED); \
         INSERT INTO db.src VALUES (1, 5), (2, 50), (3, 500)",
    )
    .await;
    let job = "INSERT INTO db.big SELECT id, v FROM db.src WHERE v >= 10";
    job_ok(&s, "big", job).await;
    // 1 enters the filter, 2 leaves it, 3 is deleted, 4 is new.
    sql(
        &s,
        "UPDATE db.src SET v = 15 WHERE id = 1; UPDATE db.src SET v = 2 WHERE id = 2; \
         DELETE FROM db.src WHERE id = 3; INSERT INTO db.src VALUES (4, 40)",
    )
    .await;
    job_ok(&s, "big", job).await;
    assert_eq!(rows(&s, "SELECT * FROM db.big").await, ["1|15", "4|40"]);
}

#[tokio::test]
async fn aggregates_add_signed_changes_into_an_aggregation_sink() {
    let (_dir, s) = session().await;
    sql(
        &s,
        "CREATE TABLE db.orders (id BIGINT NOT NULL, customer STRING, amount DECIMAL(10, 2), \
           PRIMARY KEY (id) NOT ENFORCED) WITH ('bucket' = '2', 'changelog-producer' = 'lookup'); \
         CREATE TABLE db.per_customer (customer STRING NOT NULL, n BIGINT, total DECIMAL(20, 2), \
           with_amount BIGINT, PRIMARY KEY (customer) NOT ENFORCED) \
           WITH ('merge-engine' = 'aggregation', 'fields.default-aggregate-function' = 'sum'); \
         INSERT INTO db.orders VALUES (1, 'ada', 10.50), (2, 'bob', 3.00), (3, 'ada', NULL)",
    )
    .await;
    let job = "INSERT INTO db.per_customer SELECT customer, count(*), sum(amount), count(amount) \
               FROM db.orders GROUP BY customer";
    job_ok(&s, "totals", job).await;
    sql(
        &s,
        "UPDATE db.orders SET amount = 20.25 WHERE id = 1; \
         UPDATE db.orders SET customer = 'cyd' WHERE id = 3; \
         DELETE FROM db.orders WHERE id = 2; INSERT INTO db.orders VALUES (4, 'ada', 1.25)",
    )
    .await;
    job_ok(&s, "totals", job).await;
    let batch =
        "SELECT customer, count(*), sum(amount), count(amount) FROM db.orders GROUP BY customer";
    // bob's only order is gone: his row stays, with zero counts.
    assert_eq!(
        rows(&s, "SELECT * FROM db.per_customer WHERE n <> 0").await,
        rows(&s, batch).await
    );
    assert_eq!(
        rows(&s, "SELECT * FROM db.per_customer WHERE n = 0").await,
        ["bob|0|0.00|0"]
    );
    refused(
        &s,
        "INSERT INTO db.per_customer SELECT customer, count(*), max(amount), count(amount) FROM db.orders GROUP BY customer",
        &["max(amount) cannot take back", "insert-only source"],
    )
    .await;
    sql(
        &s,
        "CREATE TABLE db.plain (customer STRING NOT NULL, n BIGINT, PRIMARY KEY (customer) NOT ENFORCED); \
         CREATE TABLE db.wrong_fn (customer STRING NOT NULL, n BIGINT, PRIMARY KEY (customer) NOT ENFORCED) \
           WITH ('merge-engine' = 'aggregation', 'fields.n.aggregate-function' = 'max'); \
         CREATE TABLE db.wrong_key (customer STRING NOT NULL, id BIGINT NOT NULL, n BIGINT, \
           PRIMARY KEY (customer, id) NOT ENFORCED) WITH ('merge-engine' = 'aggregation', 'fields.n.aggregate-function' = 'sum'); \
         CREATE TABLE db.upserts (id BIGINT NOT NULL, customer STRING, PRIMARY KEY (id) NOT ENFORCED)",
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.plain SELECT customer, count(*) FROM db.orders GROUP BY customer",
        &["'merge-engine' = 'aggregation'"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.wrong_fn SELECT customer, count(*) FROM db.orders GROUP BY customer",
        &[
            "column 'n'",
            "count(*)",
            "'fields.n.aggregate-function' = 'sum'",
        ],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.wrong_key (customer, n) SELECT customer, count(*) FROM db.orders GROUP BY customer",
        &["primary key of sink 'db.wrong_key' (customer, id)", "(customer)"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.wrong_fn SELECT customer, count(*) FROM db.upserts GROUP BY customer",
        &["cannot take updates out", "'changelog-producer' = 'lookup'"],
    )
    .await;
}

#[tokio::test]
async fn min_and_max_over_an_append_source() {
    let (_dir, s) = session().await;
    sql(
        &s,
        "CREATE TABLE db.readings (sensor STRING NOT NULL, t INT); \
         CREATE TABLE db.extremes (sensor STRING NOT NULL, lo INT, hi INT, n BIGINT, \
           PRIMARY KEY (sensor) NOT ENFORCED) WITH ('merge-engine' = 'aggregation', \
           'fields.lo.aggregate-function' = 'min', 'fields.hi.aggregate-function' = 'max', \
           'fields.n.aggregate-function' = 'sum'); \
         INSERT INTO db.readings VALUES ('a', 5), ('a', 7), ('b', -1)",
    )
    .await;
    let job = "INSERT INTO db.extremes SELECT sensor, min(t), max(t), count(*) FROM db.readings \
               WHERE t IS NOT NULL GROUP BY sensor";
    job_ok(&s, "ext", job).await;
    sql(
        &s,
        "INSERT INTO db.readings VALUES ('a', 2), ('b', NULL), ('c', 1); INSERT INTO db.readings VALUES ('b', 9)",
    )
    .await;
    job_ok(&s, "ext", job).await;
    assert_eq!(
        rows(&s, "SELECT * FROM db.extremes").await,
        rows(
            &s,
            "SELECT sensor, min(t), max(t), count(*) FROM db.readings WHERE t IS NOT NULL GROUP BY sensor"
        )
        .await
    );
}

#[tokio::test]
async fn lookup_joins_read_the_dimension_as_of_processing() {
    let (_dir, s) = session().await;
    sql(
        &s,
        "CREATE TABLE db.orders (id BIGINT NOT NULL, cid INT, amount INT); \
         CREATE TABLE db.customers (id INT NOT NULL, name STRING, PRIMARY KEY (id) NOT ENFORCED); \
         CREATE TABLE db.enriched (id BIGINT NOT NULL, name STRING, amount INT, PRIMARY KEY (id) NOT ENFORCED); \
         INSERT INTO db.customers VALUES (1, 'ada'), (2, 'bob'); \
         INSERT INTO db.orders VALUES (10, 1, 5), (11, 2, 6), (12, 3, 7)",
    )
    .await;
    let job = "INSERT INTO db.enriched SELECT o.id, c.name, o.amount FROM db.orders AS o \
               LEFT JOIN db.customers FOR SYSTEM_TIME AS OF PROCTIME() AS c ON o.cid = c.id";
    let summary = job_ok(&s, "enrich", job).await;
    assert_eq!(summary.rows_out, 3);
    sql(
        &s,
        "INSERT INTO db.customers VALUES (1, 'ada lovelace'), (3, 'cyd'); \
         INSERT INTO db.orders VALUES (13, 1, 8), (14, 3, 9)",
    )
    .await;
    job_ok(&s, "enrich", job).await;
    // Rows processed before the dimension changed keep what it said then.
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        [
            "10|ada|5",
            "11|bob|6",
            "12|NULL|7",
            "13|ada lovelace|8",
            "14|cyd|9"
        ]
    );
    let inner = "INSERT INTO db.enriched SELECT o.id, c.name, o.amount FROM db.orders o \
                 JOIN db.customers FOR SYSTEM_TIME AS OF PROCTIME() c ON o.cid = c.id";
    job_ok(&s, "inner", inner).await;
    refused(
        &s,
        "INSERT INTO db.enriched SELECT o.id, c.name, o.amount FROM db.orders o JOIN db.customers c ON o.cid = c.id",
        &["join of two streams", "'db.orders' has none", "FOR SYSTEM_TIME AS OF PROCTIME()"],
    )
    .await;
}

/// A source with two rows and a sink of sums per key.
async fn sums_tables(s: &Session) {
    sql(
        s,
        "CREATE TABLE db.src (k INT NOT NULL, v BIGINT); \
         CREATE TABLE db.sums (k INT NOT NULL, total BIGINT, PRIMARY KEY (k) NOT ENFORCED) \
           WITH ('merge-engine' = 'aggregation', 'fields.total.aggregate-function' = 'sum'); \
         INSERT INTO db.src VALUES (1, 10), (2, 20)",
    )
    .await;
}

const SUMS_JOB: &str = "INSERT INTO db.sums SELECT k, sum(v) FROM db.src GROUP BY k";

#[tokio::test]
async fn a_second_instance_of_a_job_is_fenced() {
    let (_dir, s) = session().await;
    sums_tables(&s).await;
    sql(&s, "INSERT INTO db.src VALUES (1, 1)").await;
    let statement = SUMS_JOB;
    let a = StreamingJob::prepare(&s, "sums", statement, until_idle())
        .await
        .unwrap();
    let b = StreamingJob::prepare(&s, "sums", statement, until_idle())
        .await
        .unwrap();
    let (_stop, stopped) = watch::channel(false);
    // Both read the (absent) progress before either commits.
    let (mut quiet_a, mut quiet_b) = (|_: &_| {}, |_: &_| {});
    let (ra, rb) = tokio::join!(
        a.run(stopped.clone(), &mut quiet_a),
        b.run(stopped.clone(), &mut quiet_b)
    );
    let results = [ra, rb];
    let fenced: Vec<&StreamError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(fenced.len(), 1, "{results:?}");
    assert_eq!(fenced[0].code(), "40001");
    assert!(
        fenced[0]
            .to_string()
            .contains("another instance of the job"),
        "{}",
        fenced[0]
    );
    assert_eq!(rows(&s, "SELECT * FROM db.sums").await, ["1|11", "2|20"]);
}

#[tokio::test]
async fn progress_is_carried_past_other_commits_to_the_sink() {
    let (_dir, s) = session().await;
    sql(
        &s,
        "CREATE TABLE db.src (k INT NOT NULL, v BIGINT); \
         CREATE TABLE db.sums (k INT NOT NULL, total BIGINT, PRIMARY KEY (k) NOT ENFORCED) \
           WITH ('merge-engine' = 'aggregation', 'fields.total.aggregate-function' = 'sum'); \
         INSERT INTO db.src VALUES (1, 10)",
    )
    .await;
    let statement = "INSERT INTO db.sums SELECT k, sum(v) FROM db.src GROUP BY k";
    job_ok(&s, "sums", statement).await;
    let key = "tidelake.progress.job.sums.db.src";
    let recorded = latest_properties(&s, "sums").await[key].clone();
    // Another writer and a compaction commit to the sink meanwhile.
    sql(
        &s,
        "INSERT INTO db.sums VALUES (9, 100); CALL sys.compact(table => 'db.sums', compact_strategy => 'full')",
    )
    .await;
    assert_eq!(latest_properties(&s, "sums").await[key], recorded);
    sql(&s, "INSERT INTO db.src VALUES (1, 5), (2, 7)").await;
    let summary = job_ok(&s, "sums", statement).await;
    assert_eq!(summary.rows_in, 2, "resumed after what it had committed");
    assert_eq!(
        rows(&s, "SELECT * FROM db.sums").await,
        ["1|15", "2|7", "9|100"]
    );
    // Another job over the same sink keeps its own progress.
    job_ok(&s, "sums_again", statement).await;
    let properties = latest_properties(&s, "sums").await;
    assert!(
        properties.contains_key(key)
            && properties.contains_key("tidelake.progress.job.sums_again.db.src")
    );
}

#[tokio::test]
async fn source_options_and_names_are_checked_at_start() {
    let (_dir, s) = session().await;
    sql(
        &s,
        "CREATE TABLE db.src (k INT NOT NULL, v BIGINT, PRIMARY KEY (k) NOT ENFORCED) \
           WITH ('merge-engine' = 'partial-update'); \
         CREATE TABLE db.out (k INT NOT NULL, v BIGINT, PRIMARY KEY (k) NOT ENFORCED); \
         CREATE TABLE db.log (k INT, v BIGINT)",
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.out SELECT k, v FROM db.src",
        &[
            "partial-update merge engine",
            "'changelog-producer' = 'lookup'",
        ],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.out SELECT k, v FROM db.log /*+ OPTIONS('scan.mode'='incremental', 'incremental-between'='1,2') */",
        &["bounded read"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.out SELECT k FROM db.log",
        &["does not match"],
    )
    .await;
    refused(&s, "INSERT INTO db.nope SELECT k, v FROM db.log", &["nope"]).await;
    let bad_name = StreamingJob::prepare(
        &s,
        "no spaces",
        "INSERT INTO db.out SELECT k, v FROM db.log",
        until_idle(),
    )
    .await;
    assert!(bad_name.is_err());
    // An insert-only source feeds any sink; latest mode skips what is there.
    sql(&s, "INSERT INTO db.log VALUES (1, 1)").await;
    let mut options = until_idle();
    options
        .read_options
        .insert("scan.mode".into(), "latest".into());
    let job = StreamingJob::prepare(
        &s,
        "late",
        "INSERT INTO db.out SELECT k, v FROM db.log",
        options,
    )
    .await
    .unwrap();
    let (_stop, stopped) = watch::channel(false);
    let summary = job.run(stopped, &mut |_| {}).await.unwrap();
    assert_eq!(summary.rows_in, 0);
}

#[tokio::test]
async fn bounded_runs_stop_after_their_snapshots_and_share_commits() {
    let (_dir, s) = session().await;
    sql(
        &s,
        "CREATE TABLE db.src (k INT NOT NULL, v BIGINT); \
         CREATE TABLE db.copy (k INT, v BIGINT); \
         INSERT INTO db.src VALUES (1, 1); INSERT INTO db.src VALUES (2, 2); \
         INSERT INTO db.src VALUES (3, 3)",
    )
    .await;
    let statement = "INSERT INTO db.copy SELECT k, v FROM db.src";
    let mut options = until_idle();
    options
        .read_options
        .insert("scan.mode".into(), "from-snapshot".into());
    options
        .read_options
        .insert("scan.snapshot-id".into(), "1".into());
    options.max_snapshots = Some(2);
    let (_stop, stopped) = watch::channel(false);
    let mut commits = Vec::new();
    let job = StreamingJob::prepare(&s, "bounded", statement, options.clone())
        .await
        .unwrap();
    let first = job
        .run(stopped.clone(), &mut |c| commits.push(c.clone()))
        .await
        .unwrap();
    assert_eq!((first.snapshots, first.next_snapshot), (2, Some(3)));
    assert_eq!(rows(&s, "SELECT * FROM db.copy").await, ["1|1", "2|2"]);
    // Snapshots already committed share one sink commit.
    assert_eq!(commits.len(), 1, "{commits:?}");
    assert_eq!((commits[0].from_snapshot, commits[0].next_snapshot), (1, 3));
    let job = StreamingJob::prepare(&s, "bounded", statement, options)
        .await
        .unwrap();
    let second = job.run(stopped, &mut |_| {}).await.unwrap();
    assert_eq!((second.snapshots, second.next_snapshot), (1, Some(4)));
    assert_eq!(
        rows(&s, "SELECT * FROM db.copy").await,
        ["1|1", "2|2", "3|3"]
    );
}
