//! Window jobs (TUMBLE, HOP): each window is written once, when the
//! source's watermark passes its end, whatever the batching of the runs.

use super::*;

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
    StreamingJob::prepare(&s,
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
