//! Continuous jobs in process, deterministic: every accepted shape ends
//! equal to its query run in batch over the source, after runs that stop
//! and resume; the checks that need the tables refuse what a sink or a
//! source cannot do; a second instance of a job is fenced; progress lives
//! in the sink's snapshots and survives other commits.

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use tidelake_engine::Identifier;
use tidelake_sql::{JobOptions, JobSummary, Session, SqlError, StatementResult};
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

async fn run_job(s: &Session, name: &str, statement: &str) -> Result<JobSummary, SqlError> {
    let job = s.prepare_job(name, statement, until_idle()).await?;
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
    let message = match s.prepare_job("j", statement, until_idle()).await {
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

#[tokio::test]
async fn a_second_instance_of_a_job_is_fenced() {
    let (_dir, s) = session().await;
    sql(
        &s,
        "CREATE TABLE db.src (k INT NOT NULL, v BIGINT); \
         CREATE TABLE db.sums (k INT NOT NULL, total BIGINT, PRIMARY KEY (k) NOT ENFORCED) \
           WITH ('merge-engine' = 'aggregation', 'fields.total.aggregate-function' = 'sum'); \
         INSERT INTO db.src VALUES (1, 10), (2, 20); INSERT INTO db.src VALUES (1, 1)",
    )
    .await;
    let statement = "INSERT INTO db.sums SELECT k, sum(v) FROM db.src GROUP BY k";
    let a = s
        .prepare_job("sums", statement, until_idle())
        .await
        .unwrap();
    let b = s
        .prepare_job("sums", statement, until_idle())
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
    let fenced: Vec<&SqlError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
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
    let bad_name = s
        .prepare_job(
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
    let job = s
        .prepare_job(
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
    let job = s
        .prepare_job("bounded", statement, options.clone())
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
    let job = s.prepare_job("bounded", statement, options).await.unwrap();
    let second = job.run(stopped, &mut |_| {}).await.unwrap();
    assert_eq!((second.snapshots, second.next_snapshot), (1, Some(4)));
    assert_eq!(
        rows(&s, "SELECT * FROM db.copy").await,
        ["1|1", "2|2", "3|3"]
    );
}

/// Event rows of one source commit: (event time in ms, page, bytes).
type Commit = Vec<(i64, &'static str, i64)>;

/// What a window job must have written, computed from the commits alone:
/// the watermark after commit i is the largest event time of commits
/// 0..=i minus the delay; a window closes at the first commit whose
/// watermark reaches its end and counts the rows of commits up to it.
/// Rows render as `start_ms|end_ms|page|count|sum`.
fn window_model(commits: &[Commit], delay: i64, slide: i64, size: i64) -> Vec<String> {
    let mut out = Vec::new();
    let mut closed_upto: Option<i64> = None;
    let mut max_event: Option<i64> = None;
    for i in 0..commits.len() {
        for (t, _, _) in &commits[i] {
            max_event = Some(max_event.map_or(*t, |m| m.max(*t)));
        }
        let Some(watermark) = max_event.map(|m| m - delay) else {
            continue;
        };
        if closed_upto.is_some_and(|c| c >= watermark) {
            continue;
        }
        let visible: Vec<&(i64, &str, i64)> = commits[..=i].iter().flatten().collect();
        let mut groups: BTreeMap<(i64, &str), (i64, i64)> = BTreeMap::new();
        for (t, page, bytes) in &visible {
            // Every window holding t: starts k * slide in (t - size, t].
            let mut start = t.div_euclid(slide) * slide;
            while start > t - size {
                let end = start + size;
                if end <= watermark && closed_upto.is_none_or(|c| end > c) {
                    let g = groups.entry((start, page)).or_default();
                    g.0 += 1;
                    g.1 += bytes;
                }
                start -= slide;
            }
        }
        for ((start, page), (n, sum)) in groups {
            out.push(format!("{start}|{}|{page}|{n}|{sum}", start + size));
        }
        closed_upto = Some(watermark);
    }
    out.sort();
    out
}

async fn append_events(s: &Session, commit: &Commit) {
    let values: Vec<String> = commit
        .iter()
        .map(|(t, page, bytes)| format!("(to_timestamp_millis({t}), '{page}', {bytes})"))
        .collect();
    sql(
        s,
        &format!("INSERT INTO db.clicks VALUES {}", values.join(", ")),
    )
    .await;
}

const WINDOW_SINK_QUERY: &str = "SELECT CAST(window_start AS BIGINT), CAST(window_end AS BIGINT), page, n, total FROM db.per_window";

/// Commits with out-of-order rows inside the delay (8 s after 12 s), late
/// rows (4 s after the window [0 s, 10 s) closed, -2 s, 19.5 s), windows
/// spanning commits, event times before the epoch.
fn click_commits() -> Vec<Commit> {
    vec![
        vec![
            (1_000, "a", 1),
            (3_000, "b", 2),
            (12_000, "a", 4),
            (-3_000, "c", 256),
        ],
        vec![(8_000, "a", 8)],
        vec![(16_000, "b", 16)],
        vec![(4_000, "a", 32), (21_000, "a", 64)],
        vec![(26_000, "b", 128), (-2_000, "d", 2048)],
        vec![(19_500, "b", 512), (41_000, "a", 1024)],
    ]
}

async fn window_tables(s: &Session) {
    sql(
        s,
        "CREATE TABLE db.clicks (ts TIMESTAMP(3), page STRING, bytes BIGINT, \
           WATERMARK FOR ts AS ts - INTERVAL '5' SECOND); \
         CREATE TABLE db.per_window (window_start TIMESTAMP(3) NOT NULL, window_end TIMESTAMP(3) NOT NULL, \
           page STRING NOT NULL, n BIGINT, total BIGINT, \
           PRIMARY KEY (window_start, window_end, page) NOT ENFORCED)",
    )
    .await;
}

/// Runs the commits with the job caught up after each commit index in `runs`.
async fn run_windows(s: &Session, job: &str, commits: &[Commit], runs: &[usize]) {
    for (i, commit) in commits.iter().enumerate() {
        append_events(s, commit).await;
        if runs.contains(&i) {
            job_ok(s, "win", job).await;
        }
    }
    job_ok(s, "win", job).await;
}

#[tokio::test]
async fn tumbling_windows_close_once_at_the_watermark_whatever_the_batching() {
    let commits = click_commits();
    let expected = window_model(&commits, 5_000, 10_000, 10_000);
    assert!(expected.len() >= 4, "{expected:?}");
    let job = "INSERT INTO db.per_window \
        SELECT window_start, window_end, page, count(*), sum(bytes) \
        FROM TABLE(TUMBLE(TABLE db.clicks, DESCRIPTOR(ts), INTERVAL '10' SECOND)) \
        GROUP BY window_start, window_end, page";
    // Caught up after every commit, after some, and only at the end.
    for runs in [vec![0, 1, 2, 3, 4], vec![1, 3], vec![]] {
        let (_dir, s) = session().await;
        window_tables(&s).await;
        run_windows(&s, job, &commits, &runs).await;
        assert_eq!(rows(&s, WINDOW_SINK_QUERY).await, expected, "runs {runs:?}");
        let properties = latest_properties(&s, "per_window").await;
        // 41 s - 5 s, in microseconds.
        assert_eq!(
            properties["tidelake.progress.job.win.watermark"],
            "36000000"
        );
        // Paimon's own snapshot field, in milliseconds.
        let sink = s
            .catalog()
            .load_table(&Identifier::new("db", "per_window"))
            .await
            .unwrap();
        let snapshot = sink.snapshots().latest_snapshot().await.unwrap().unwrap();
        assert_eq!(snapshot.watermark, Some(36_000));
        let next = latest_source_snapshot(&s, "clicks").await + 1;
        assert_eq!(
            properties["tidelake.progress.job.win.db.clicks"],
            next.to_string()
        );
    }
    // The late row (4 s, bytes 32) and the row of 19.5 s (after [10, 20)
    // closed at 26 s) are in no window.
    assert!(expected
        .iter()
        .all(|r| !r.ends_with("|32") && !r.contains("|d|") && !r.contains("|a|1|1024")));
    for row in ["-10000|0|c|1|256", "0|10000|a|2|9", "10000|20000|b|1|16"] {
        assert!(expected.contains(&row.to_string()), "{expected:?}");
    }
}

#[tokio::test]
async fn hopping_windows_count_a_row_in_every_window_holding_it() {
    let commits = click_commits();
    let expected = window_model(&commits, 5_000, 5_000, 15_000);
    let (_dir, s) = session().await;
    window_tables(&s).await;
    let job = "INSERT INTO db.per_window /*+ OPTIONS('scan.mode' = 'latest-full') */ \
        SELECT w.window_start, w.window_end, page, count(*) AS n, sum(w.bytes) AS total \
        FROM TABLE(HOP(TABLE db.clicks, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '15' SECOND)) AS w \
        WHERE page <> 'zzz' GROUP BY w.window_start, w.window_end, page";
    run_windows(&s, job, &commits, &[0, 2, 4]).await;
    assert_eq!(rows(&s, WINDOW_SINK_QUERY).await, expected);
    // A row lands in size / slide = 3 windows: -3 s in [-15, 0), [-10, 5), [-5, 10).
    for start in [-15_000, -10_000, -5_000] {
        assert!(
            expected.contains(&format!("{start}|{}|c|1|256", start + 15_000)),
            "{expected:?}"
        );
    }
}

#[tokio::test]
async fn averages_and_other_batch_aggregates_run_per_window() {
    let (_dir, s) = session().await;
    sql(
        &s,
        "CREATE TABLE db.clicks (ts TIMESTAMP(6) WITH LOCAL TIME ZONE, page STRING, bytes BIGINT) \
           WITH ('schema.watermark.0.rowtime' = 'ts', 'schema.watermark.0.strategy.expr' = '`ts`'); \
         CREATE TABLE db.stats (window_end TIMESTAMP(6) WITH LOCAL TIME ZONE, mean DOUBLE, top BIGINT, pages BIGINT)",
    )
    .await;
    let job =
        "INSERT INTO db.stats SELECT window_end, avg(bytes), max(bytes), count(DISTINCT page) \
        FROM TABLE(TUMBLE(TABLE db.clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) \
        GROUP BY window_start, window_end";
    sql(
        &s,
        "INSERT INTO db.clicks VALUES (to_timestamp_millis(1000), 'a', 10), (to_timestamp_millis(2000), 'b', 30); \
         INSERT INTO db.clicks VALUES (to_timestamp_millis(60000), 'a', 5)",
    )
    .await;
    job_ok(&s, "stats", job).await;
    assert_eq!(
        rows(
            &s,
            "SELECT CAST(window_end AS BIGINT), mean, top, pages FROM db.stats"
        )
        .await,
        vec!["60000000|20.0|30|2".to_string()]
    );
}

#[tokio::test]
async fn windows_are_refused_without_what_they_need() {
    let (_dir, s) = session().await;
    sql(
        &s,
        "CREATE TABLE db.raw (ts TIMESTAMP(3), n INT, page STRING); \
         CREATE TABLE db.clicks (ts TIMESTAMP(3), other TIMESTAMP(3), page STRING, \
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND); \
         CREATE TABLE db.out (window_start TIMESTAMP(3), window_end TIMESTAMP(3), page STRING, n BIGINT)",
    )
    .await;
    let tumble = |src: &str, column: &str| {
        format!(
            "INSERT INTO db.out SELECT window_start, window_end, page, count(*) \
             FROM TABLE(TUMBLE(TABLE {src}, DESCRIPTOR({column}), INTERVAL '1' MINUTE)) \
             GROUP BY window_start, window_end, page"
        )
    };
    refused(
        &s,
        &tumble("db.raw", "ts"),
        &["without a watermark", "WATERMARK FOR ts"],
    )
    .await;
    refused(&s, &tumble("db.raw", "n"), &["'n'", "not TIMESTAMP"]).await;
    refused(
        &s,
        &tumble("db.clicks", "other"),
        &["watermark is on column 'ts'"],
    )
    .await;
    refused(&s, &tumble("db.clicks", "nope"), &["no column 'nope'"]).await;
    refused(
        &s,
        "INSERT INTO db.out SELECT window_start, window_end, page, 1 \
         FROM TABLE(TUMBLE(TABLE db.clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))",
        &["without an aggregate"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.out SELECT window_start, window_start, page, count(*) \
         FROM TABLE(TUMBLE(TABLE db.clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) \
         GROUP BY window_start, page",
        &["GROUP BY window_start, window_end"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.out SELECT window_start, window_end, page, count(*) \
         FROM TABLE(SESSION(TABLE db.clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) \
         GROUP BY window_start, window_end, page",
        &["SESSION windows"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.out SELECT w.window_start, w.window_end, w.page, count(*) \
         FROM TABLE(TUMBLE(TABLE db.clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) w \
         JOIN db.raw FOR SYSTEM_TIME AS OF PROCTIME() r ON w.page = r.page \
         GROUP BY w.window_start, w.window_end, w.page",
        &["window over a join"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.out SELECT page, page, page, count(*) FROM db.clicks \
         GROUP BY TUMBLE(ts, INTERVAL '1' MINUTE), page",
        &["group window", "FROM TABLE(TUMBLE(TABLE"],
    )
    .await;
    refused(
        &s,
        &format!(
            "{} /*+ OPTIONS('scan.mode' = 'latest') */",
            tumble("db.clicks", "ts")
        ),
        &["full snapshot"],
    )
    .await;
    // A job-level watermark through the statement's hint.
    s.prepare_job(
        "j",
        &format!(
            "{} /*+ OPTIONS('schema.watermark.0.rowtime' = 'ts', 'schema.watermark.0.strategy.expr' = 'ts') */",
            tumble("db.raw", "ts")
        ),
        until_idle(),
    )
    .await
    .unwrap();
}

// --- Joins of two streams -------------------------------------------------

const JOIN_TABLES: &str =
    "CREATE TABLE db.orders (id BIGINT NOT NULL, customer_id INT, amount INT, \
       PRIMARY KEY (id) NOT ENFORCED) WITH ('bucket' = '2'); \
     CREATE TABLE db.customers (id INT NOT NULL, name STRING, tier INT, \
       PRIMARY KEY (id) NOT ENFORCED) WITH ('bucket' = '2', 'changelog-producer' = 'lookup'); \
     CREATE TABLE db.enriched (id BIGINT NOT NULL, amount INT, name STRING, tier INT, \
       PRIMARY KEY (id) NOT ENFORCED)";

const INNER_JOB: &str = "INSERT INTO db.enriched SELECT o.id, o.amount, c.name, c.tier \
     FROM db.orders AS o JOIN db.customers AS c ON o.customer_id = c.id WHERE o.amount > 0";
const INNER_BATCH: &str = "SELECT o.id, o.amount, c.name, c.tier \
     FROM db.orders AS o JOIN db.customers AS c ON o.customer_id = c.id WHERE o.amount > 0";
const LEFT_JOB: &str = "INSERT INTO db.enriched SELECT o.id, o.amount, c.name, c.tier \
     FROM db.orders AS o LEFT JOIN db.customers AS c ON o.customer_id = c.id AND c.tier > 0";
const LEFT_BATCH: &str = "SELECT o.id, o.amount, c.name, c.tier \
     FROM db.orders AS o LEFT JOIN db.customers AS c ON o.customer_id = c.id AND c.tier > 0";

#[tokio::test]
async fn inner_join_of_two_streams_follows_updates_and_deletes_on_both_sides() {
    let (_dir, s) = session().await;
    sql(&s, JOIN_TABLES).await;
    sql(
        &s,
        "INSERT INTO db.customers VALUES (1, 'ada', 1), (2, 'bob', 2), (3, 'cyd', 0); \
         INSERT INTO db.orders VALUES (10, 1, 5), (11, 2, 6), (12, 4, 7), (13, 1, 0)",
    )
    .await;
    let first = job_ok(&s, "enrich", INNER_JOB).await;
    assert_eq!((first.commits, first.rows_out), (1, 2));
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        ["10|5|ada|1", "11|6|bob|2"]
    );
    // An order changes its customer, a customer its name, one is deleted,
    // the customer of an orphan order appears.
    sql(
        &s,
        "UPDATE db.orders SET customer_id = 3 WHERE id = 10; \
         UPDATE db.customers SET name = 'bobby' WHERE id = 2; \
         INSERT INTO db.customers VALUES (4, 'dan', 3)",
    )
    .await;
    job_ok(&s, "enrich", INNER_JOB).await;
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        ["10|5|cyd|0", "11|6|bobby|2", "12|7|dan|3"]
    );
    sql(
        &s,
        "DELETE FROM db.customers WHERE id = 4; DELETE FROM db.orders WHERE id = 11; \
         UPDATE db.orders SET amount = 0 WHERE id = 10; INSERT INTO db.orders VALUES (14, 2, 9)",
    )
    .await;
    job_ok(&s, "enrich", INNER_JOB).await;
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        ["14|9|bobby|2"]
    );
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        rows(&s, INNER_BATCH).await
    );
    // Nothing new: nothing committed.
    assert_eq!(job_ok(&s, "enrich", INNER_JOB).await.commits, 0);
    let properties = latest_properties(&s, "enriched").await;
    assert_eq!(
        properties["tidelake.progress.job.enrich.db.orders"],
        (latest_source_snapshot(&s, "orders").await + 1).to_string()
    );
    assert_eq!(
        properties["tidelake.progress.job.enrich.db.customers"],
        (latest_source_snapshot(&s, "customers").await + 1).to_string()
    );
}

/// INSERT OVERWRITE replaces rows without naming the ones it drops: the
/// keys it removes must leave the sink too, on either side of the join.
#[tokio::test]
async fn overwriting_a_joined_table_drops_the_rows_it_replaced() {
    let (_dir, s) = session().await;
    sql(&s, JOIN_TABLES).await;
    sql(
        &s,
        "INSERT INTO db.customers VALUES (1, 'ada', 1), (2, 'bob', 2); \
         INSERT INTO db.orders VALUES (10, 1, 5), (11, 2, 6), (12, 1, 7)",
    )
    .await;
    job_ok(&s, "enrich", INNER_JOB).await;
    assert_eq!(rows(&s, "SELECT * FROM db.enriched").await.len(), 3);
    sql(
        &s,
        "INSERT OVERWRITE db.orders VALUES (12, 2, 8), (13, 1, 9)",
    )
    .await;
    job_ok(&s, "enrich", INNER_JOB).await;
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        ["12|8|bob|2", "13|9|ada|1"]
    );
    sql(&s, "INSERT OVERWRITE db.customers VALUES (2, 'bea', 5)").await;
    job_ok(&s, "enrich", INNER_JOB).await;
    assert_eq!(rows(&s, "SELECT * FROM db.enriched").await, ["12|8|bea|5"]);
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        rows(&s, INNER_BATCH).await
    );
}

#[tokio::test]
async fn left_join_null_extension_appears_and_disappears() {
    let (_dir, s) = session().await;
    sql(&s, JOIN_TABLES).await;
    sql(
        &s,
        "INSERT INTO db.customers VALUES (1, 'ada', 1); \
         INSERT INTO db.orders VALUES (10, 1, 5), (11, 2, 6), (12, NULL, 7)",
    )
    .await;
    job_ok(&s, "enrich", LEFT_JOB).await;
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        ["10|5|ada|1", "11|6|NULL|NULL", "12|7|NULL|NULL"]
    );
    // Customer 2 appears: order 11 gains its match; ada's tier drops to 0,
    // which the ON condition rejects: order 10 loses its match.
    sql(
        &s,
        "INSERT INTO db.customers VALUES (2, 'bob', 2); UPDATE db.customers SET tier = 0 WHERE id = 1",
    )
    .await;
    job_ok(&s, "enrich", LEFT_JOB).await;
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        ["10|5|NULL|NULL", "11|6|bob|2", "12|7|NULL|NULL"]
    );
    // Customer 2 goes; order 12 gets a customer; order 10 is deleted.
    sql(
        &s,
        "DELETE FROM db.customers WHERE id = 2; UPDATE db.orders SET customer_id = 1 WHERE id = 12; \
         UPDATE db.customers SET tier = 5 WHERE id = 1; DELETE FROM db.orders WHERE id = 10",
    )
    .await;
    job_ok(&s, "enrich", LEFT_JOB).await;
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        ["11|6|NULL|NULL", "12|7|ada|5"]
    );
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        rows(&s, LEFT_BATCH).await
    );
}

#[tokio::test]
async fn right_join_keeps_every_row_of_the_right_table() {
    let (_dir, s) = session().await;
    sql(&s, JOIN_TABLES).await;
    sql(
        &s,
        "INSERT INTO db.customers VALUES (1, 'ada', 1); \
         INSERT INTO db.orders VALUES (10, 1, 5), (11, 2, 6)",
    )
    .await;
    let job = "INSERT INTO db.enriched SELECT o.id, o.amount, c.name, c.tier \
               FROM db.customers c RIGHT JOIN db.orders o ON c.id = o.customer_id";
    let batch = "SELECT o.id, o.amount, c.name, c.tier \
                 FROM db.customers c RIGHT JOIN db.orders o ON c.id = o.customer_id";
    job_ok(&s, "enrich", job).await;
    sql(
        &s,
        "INSERT INTO db.customers VALUES (2, 'bob', 2); DELETE FROM db.customers WHERE id = 1; \
         INSERT INTO db.orders VALUES (12, 1, 1)",
    )
    .await;
    job_ok(&s, "enrich", job).await;
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        ["10|5|NULL|NULL", "11|6|bob|2", "12|1|NULL|NULL"]
    );
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        rows(&s, batch).await
    );
}

/// splitmix64, for reproducible random changes.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// A random change to one of the two tables, join-key changes included.
fn random_change(rng: &mut Rng) -> String {
    let order = rng.below(30);
    let customer = rng.below(8);
    match rng.below(7) {
        0 | 1 => {
            let values: Vec<String> = (0..1 + rng.below(5))
                .map(|_| format!("({}, {}, {})", rng.below(30), rng.below(9), rng.below(20)))
                .collect();
            format!("INSERT INTO db.orders VALUES {}", values.join(", "))
        }
        2 => format!(
            "UPDATE db.orders SET customer_id = {customer} WHERE id % 5 = {}",
            order % 5
        ),
        3 => format!("DELETE FROM db.orders WHERE id % 7 = {}", order % 7),
        4 => format!(
            "INSERT INTO db.customers VALUES ({customer}, 'c{}', {})",
            rng.below(100),
            rng.below(3)
        ),
        5 => format!(
            "UPDATE db.customers SET tier = {} WHERE id = {customer}",
            rng.below(3)
        ),
        _ => format!("DELETE FROM db.customers WHERE id = {customer}"),
    }
}

#[tokio::test]
async fn random_changes_to_both_streams_end_equal_to_the_batch_join() {
    for seed in [1u64, 2, 3] {
        let (_dir, s) = session().await;
        sql(&s, JOIN_TABLES).await;
        sql(
            &s,
            "CREATE TABLE db.enriched_inner (id BIGINT NOT NULL, amount INT, name STRING, tier INT, \
               PRIMARY KEY (id) NOT ENFORCED)",
        )
        .await;
        let inner = INNER_JOB.replace("db.enriched", "db.enriched_inner");
        let mut rng = Rng(seed);
        for round in 0..6 {
            for _ in 0..1 + rng.below(6) {
                sql(&s, &random_change(&mut rng)).await;
            }
            job_ok(&s, "left", LEFT_JOB).await;
            job_ok(&s, "inner", &inner).await;
            assert_eq!(
                rows(&s, "SELECT * FROM db.enriched").await,
                rows(&s, LEFT_BATCH).await,
                "seed {seed}, round {round}: left join"
            );
            assert_eq!(
                rows(&s, "SELECT * FROM db.enriched_inner").await,
                rows(&s, INNER_BATCH).await,
                "seed {seed}, round {round}: inner join"
            );
        }
    }
}

#[tokio::test]
async fn joins_of_two_streams_refuse_what_they_cannot_maintain() {
    let (_dir, s) = session().await;
    sql(&s, JOIN_TABLES).await;
    sql(
        &s,
        "CREATE TABLE db.log (id BIGINT NOT NULL, customer_id INT); \
         CREATE TABLE db.by_name (name STRING NOT NULL, id BIGINT, PRIMARY KEY (name) NOT ENFORCED); \
         CREATE TABLE db.totals (id BIGINT NOT NULL, amount INT, PRIMARY KEY (id) NOT ENFORCED) \
           WITH ('merge-engine' = 'aggregation', 'fields.amount.aggregate-function' = 'sum'); \
         CREATE TABLE db.plain (id BIGINT, amount INT, name STRING, tier INT)",
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.plain SELECT l.id, 0, c.name, c.tier FROM db.log l JOIN db.customers c ON l.customer_id = c.id",
        &["'db.log' has none", "FOR SYSTEM_TIME AS OF PROCTIME()"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.plain SELECT o.id, o.amount, c.name, c.tier FROM db.orders o JOIN db.customers c ON o.customer_id = c.id",
        &["sink 'db.plain'", "deduplicate"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.totals SELECT o.id, o.amount FROM db.orders o JOIN db.customers c ON o.customer_id = c.id",
        &["sink 'db.totals'", "deduplicate"],
    )
    .await;
    // Customers are matched by tier, not by key: several per order.
    refused(
        &s,
        "INSERT INTO db.enriched SELECT o.id, o.amount, c.name, c.tier FROM db.orders o JOIN db.customers c ON o.customer_id = c.tier",
        &["must identify each output row", "'db.customers'", "missing: id"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.enriched SELECT o.id, o.amount, c.name, c.tier FROM db.orders o LEFT JOIN db.customers c ON o.customer_id = c.tier",
        &["left join", "right table 'db.customers' must match at most one row", "missing: id"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.by_name SELECT c.name, o.id FROM db.customers c LEFT JOIN db.orders o ON o.customer_id = c.id",
        &["left join", "'db.orders' must match at most one row"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.by_name SELECT c.name, o.id FROM db.orders o LEFT JOIN db.customers c ON o.customer_id = c.id",
        &["primary key of sink 'db.by_name' must include", "missing: id"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.enriched SELECT o.id, o.amount, c.name, c.tier FROM db.orders o FULL OUTER JOIN db.customers c ON o.customer_id = c.id",
        &["FULL OUTER JOIN"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.enriched SELECT o.id, o.amount, c.name, c.tier FROM db.orders o JOIN db.customers c ON o.amount > c.tier",
        &["non-equi join"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.enriched SELECT o.id, o.amount, c.name, c.tier FROM db.orders o JOIN db.customers c ON o.id = o.customer_id",
        &["non-equi join"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.enriched SELECT o.id, o.amount, c.name, c.tier FROM db.orders o JOIN db.orders c ON o.customer_id = c.id",
        &["with itself"],
    )
    .await;
}

#[tokio::test]
async fn a_join_job_pins_its_versions_and_names_one_that_expired() {
    let (_dir, s) = session().await;
    sql(&s, JOIN_TABLES).await;
    sql(
        &s,
        "INSERT INTO db.customers VALUES (1, 'ada', 1); INSERT INTO db.orders VALUES (10, 1, 5)",
    )
    .await;
    job_ok(&s, "enrich", INNER_JOB).await;
    let orders = s
        .catalog()
        .load_table(&Identifier::new("db", "orders"))
        .await
        .unwrap();
    let pinned = orders.consumer("enrich").await.unwrap();
    assert_eq!(pinned, Some(latest_source_snapshot(&s, "orders").await));
    for i in 0..4 {
        sql(
            &s,
            &format!("INSERT INTO db.orders VALUES ({}, 1, 1)", 20 + i),
        )
        .await;
    }
    // The consumer keeps the version the sink reflects.
    sql(
        &s,
        "CALL sys.expire_snapshots(table => 'db.orders', retain_max => 1, retain_min => 1)",
    )
    .await;
    job_ok(&s, "enrich", INNER_JOB).await;
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        rows(&s, INNER_BATCH).await
    );
    // Without the consumer, expiration takes it: the job says so.
    sql(&s, "INSERT INTO db.orders VALUES (30, 1, 1)").await;
    sql(&s, "INSERT INTO db.orders VALUES (31, 1, 1)").await;
    assert!(orders.delete_consumer("enrich").await.unwrap());
    sql(
        &s,
        "CALL sys.expire_snapshots(table => 'db.orders', retain_max => 1, retain_min => 1)",
    )
    .await;
    let error = run_job(&s, "enrich", INNER_JOB)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("enrich") && error.contains("db.orders") && error.contains("expired"),
        "{error}"
    );
}
