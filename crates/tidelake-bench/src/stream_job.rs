//! `stream_job`: a continuous filter + aggregate job
//! (`INSERT INTO per_k SELECT k, count(*), sum(v) FROM events WHERE ...
//! GROUP BY k`) while a writer commits changes to `events` at a steady
//! rate. Reported: the changes per second sustained, and the delay from
//! each source commit to the sink snapshot that holds its output (p50, p99,
//! max), read afterwards from the snapshots' own commit times and the
//! progress each sink snapshot records. The sink is checked against the
//! same query in batch.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch};
use serde_json::{json, Value};
use tidelake_engine::{Catalog, Identifier, RowKind, Table};
use tidelake_sql::Session;
use tidelake_stream::{JobOptions, StreamingJob};
use tokio::sync::watch;

use crate::error::{BenchError, Result};
use crate::measure::{percentile, Measurement};

const JOB: &str = "per_k";
const GROUPS: i64 = 1000;

/// The knobs of one run.
pub struct StreamJob {
    pub warehouse: PathBuf,
    /// Changes per second the writer commits.
    pub rate: u64,
    /// Source commits per second (each carries rate / commits rows).
    pub commits_per_second: u64,
    pub seconds: u64,
    pub poll_interval: Duration,
    pub commit_interval: Duration,
}

/// A SQL or streaming error, as text.
fn sql_error(e: impl std::fmt::Display) -> BenchError {
    BenchError::Sql(e.to_string())
}

async fn run_sql(session: &Session, sql: &str) -> Result<()> {
    session.execute(sql).await.map_err(sql_error)?;
    Ok(())
}

/// One source commit's rows: ids from `first`, keys spread over the groups.
fn rows(table: &Table, first: i64, count: i64) -> Result<RecordBatch> {
    let ids: Vec<i64> = (first..first + count).collect();
    let k: ArrayRef = Arc::new(Int32Array::from_iter_values(
        ids.iter().map(|i| ((i * 7919) % GROUPS) as i32),
    ));
    let v: ArrayRef = Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| i % 97)));
    let id: ArrayRef = Arc::new(Int64Array::from(ids));
    Ok(RecordBatch::try_new(table.arrow_schema(), vec![id, k, v])?)
}

/// The commit time of every snapshot, and the progress each records.
async fn snapshot_times(table: &Table, key: &str) -> Result<Vec<(i64, i64, Option<i64>)>> {
    let mut out = Vec::new();
    for id in table.snapshots().list_snapshot_ids().await? {
        if let Some(s) = table.snapshots().snapshot(id).await? {
            let progress = s
                .properties
                .as_ref()
                .and_then(|p| p.get(key))
                .and_then(|v| v.parse::<i64>().ok());
            out.push((id, s.time_millis, progress));
        }
    }
    Ok(out)
}

impl StreamJob {
    pub async fn run(&self) -> Result<Value> {
        if self.warehouse.exists() {
            std::fs::remove_dir_all(&self.warehouse)
                .map_err(|e| BenchError::io(self.warehouse.display().to_string(), e))?;
        }
        std::fs::create_dir_all(&self.warehouse)
            .map_err(|e| BenchError::io(self.warehouse.display().to_string(), e))?;
        let uri = self.warehouse.display().to_string();
        let catalog = Catalog::open(&uri).await?;
        let session = crate::sql::open_session(catalog.clone()).await?;
        run_sql(&session, "CREATE DATABASE bench").await?;
        run_sql(
            &session,
            "CREATE TABLE bench.events (id BIGINT NOT NULL, k INT NOT NULL, v BIGINT)",
        )
        .await?;
        run_sql(
            &session,
            "CREATE TABLE bench.per_k (k INT NOT NULL, n BIGINT, total BIGINT, \
             PRIMARY KEY (k) NOT ENFORCED) WITH ('bucket' = '2', \
             'merge-engine' = 'aggregation', 'fields.default-aggregate-function' = 'sum')",
        )
        .await?;
        let statement = "INSERT INTO bench.per_k SELECT k, count(*), sum(v) \
                         FROM bench.events WHERE v % 10 <> 0 GROUP BY k";
        let options = JobOptions {
            poll_interval: self.poll_interval,
            commit_interval: self.commit_interval,
            ..JobOptions::default()
        };
        let job = StreamingJob::prepare(&session, JOB, statement, options)
            .await
            .map_err(sql_error)?;
        let key = job.progress_key().to_string();
        let (stop, stopped) = watch::channel(false);
        let running = tokio::spawn(async move { job.run(stopped, &mut |_| {}).await });

        let source = catalog
            .load_table(&Identifier::new("bench", "events"))
            .await?;
        let per_commit = (self.rate / self.commits_per_second.max(1)).max(1) as i64;
        let tick = Duration::from_secs_f64(1.0 / self.commits_per_second.max(1) as f64);
        let start = Instant::now();
        let mut next_id = 0i64;
        let mut due = start;
        let mut last_source = 0;
        while start.elapsed() < Duration::from_secs(self.seconds) {
            let mut writer = source.writer();
            writer
                .write(rows(&source, next_id, per_commit)?, RowKind::Insert)
                .await?;
            if let Some(id) = writer.commit().await? {
                last_source = id;
            }
            next_id += per_commit;
            due += tick;
            // A writer that falls behind writes back to back.
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
        }
        let written_for = start.elapsed().as_secs_f64();
        // The job catches up with everything written.
        let sink = catalog
            .load_table(&Identifier::new("bench", "per_k"))
            .await?;
        let drain = Instant::now();
        loop {
            let latest = sink.snapshots().latest_snapshot().await?;
            let done = latest
                .and_then(|s| s.properties)
                .and_then(|p| p.get(&key).and_then(|v| v.parse::<i64>().ok()))
                .is_some_and(|next| next > last_source);
            if done {
                break;
            }
            if running.is_finished() || drain.elapsed() > Duration::from_secs(120) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let drain_seconds = drain.elapsed().as_secs_f64();
        let _ = stop.send(true);
        let summary = running
            .await
            .map_err(|e| BenchError::Task(e.to_string()))?
            .map_err(sql_error)?;

        let source_times = snapshot_times(&source, &key).await?;
        let sink_times = snapshot_times(&sink, &key).await?;
        let mut delays: Vec<f64> = Vec::new();
        for (id, committed, _) in &source_times {
            let visible = sink_times
                .iter()
                .find(|(_, _, progress)| progress.is_some_and(|p| p > *id))
                .map(|(_, at, _)| *at);
            match visible {
                Some(at) => delays.push((at - committed) as f64),
                None => {
                    return Err(BenchError::input(format!(
                        "source snapshot {id} never reached the sink"
                    )))
                }
            }
        }
        delays.sort_by(|a, b| a.total_cmp(b));
        let check = session
            .execute(
                "SELECT (SELECT count(*) FROM (SELECT k, count(*) AS n, sum(v) AS total \
                 FROM bench.events WHERE v % 10 <> 0 GROUP BY k) b \
                 JOIN bench.per_k s ON b.k = s.k AND b.n = s.n AND b.total = s.total) AS same, \
                 (SELECT count(DISTINCT k) FROM bench.events WHERE v % 10 <> 0) AS groups, \
                 (SELECT count(*) FROM bench.per_k) AS sink_rows",
            )
            .await
            .map_err(sql_error)?;
        let check_rows = check.last().map(|r| r.row_count()).unwrap_or(0);
        let (same, groups, sink_rows) = match check.last() {
            Some(tidelake_sql::StatementResult::Rows { batches, .. }) if check_rows == 1 => {
                let get = |i: usize| -> i64 {
                    batches[0]
                        .column(i)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .map(|a| a.value(0))
                        .unwrap_or(-1)
                };
                (get(0), get(1), get(2))
            }
            _ => (-1, -2, -3),
        };
        let written = next_id as u64;
        let measurement = Measurement::new("stream_job", written, written_for)
            .with("source_commits", json!(source_times.len()))
            .with("sink_commits", json!(summary.commits))
            .with("job_rows_in", json!(summary.rows_in))
            .with("changes_per_s_target", json!(self.rate))
            .with(
                "poll_interval_ms",
                json!(self.poll_interval.as_millis() as u64),
            )
            .with(
                "commit_interval_ms",
                json!(self.commit_interval.as_millis() as u64),
            )
            .with("delay_p50_ms", json!(percentile(&delays, 50.0)))
            .with("delay_p99_ms", json!(percentile(&delays, 99.0)))
            .with("delay_max_ms", json!(delays.last().copied()))
            .with("drain_seconds", json!(drain_seconds))
            .with(
                "check",
                json!(
                    if same == groups && sink_rows == groups && summary.rows_in == written {
                        "ok"
                    } else {
                        "mismatch"
                    }
                ),
            );
        Ok(measurement.to_json())
    }
}
