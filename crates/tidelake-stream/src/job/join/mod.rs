//! Continuous jobs that join two streams: `INSERT INTO db.sink SELECT ...
//! FROM db.a [INNER | LEFT | RIGHT] JOIN db.b ON a.x = b.y ...`, both
//! primary-key tables.
//!
//! The job keeps no join state: the two tables are the state, read at
//! pinned snapshots. Its progress is a pair (pa, pb) of next snapshots to
//! read, committed as two sink snapshot properties in the same snapshot as
//! the output they account for and fenced on both: the sink reflects the
//! join of A@(pa-1) and B@(pb-1). A step brings it to A@a', B@b' (the latest
//! snapshots read), where A is the side whose rows the output is local to
//! (the left one, the right one for RIGHT JOIN) and B the other:
//! 1. K_A, the keys written to A in snapshots pa..=a'. The query run with A
//!    replaced by its rows with those keys at pa-1, then at a' (B at pb-1)
//!    gives the old and the new output of those rows; every other output
//!    row is unchanged, since each comes from one row of A.
//! 2. With A at a': the rows of B with a key written in pb..=b', at pb-1
//!    and at b', give the join values whose matches changed; the rows of
//!    A@a' with those values are the only ones whose output changes. The
//!    query over them with B@(pb-1), then B@b', gives old and new output
//!    (a LEFT join's null-extended rows appear and vanish here).
//! 3. Each difference is written as `-D` for old sink keys that vanish,
//!    then `+I` for new rows, and everything commits with (a'+1, b'+1).
//!
//! A job that never committed writes the join of both tables' latest
//! snapshots. The job records a consumer (`consumer-id`, default the job's
//! name) on both tables at pa-1 and pb-1 so that expiration keeps the
//! versions it reads; if one is gone anyway the job stops with an error
//! naming it.

pub(crate) mod analyze;
mod delta;
pub(crate) mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::TableProvider;
use tidelake_engine::introspect::CommitKind;
use tidelake_engine::{BackgroundCompactor, EngineError, ProgressOwner, Table, TableWriter};
use tokio::sync::watch;

use self::delta::{
    column_types, difference, join_values, rows_matching, table_at, touched_keys, Touched,
};
use self::plan::{JoinPlan, Side};
use super::progress::{job_owner, progress_key, read_pair_progress, PairProgress};
use super::{
    pause, CommitError, JobCommit, JobOptions, JobSummary, IDLE_PROGRESS, MAX_CONFLICTS, MAX_DRAIN,
};
use crate::error::StreamError;
use tidelake_sql::{Result, SqlError};

/// A join of two streams, ready to run.
pub(crate) struct JoinJob {
    name: String,
    plan: JoinPlan,
    options: JobOptions,
    owner: ProgressOwner,
    /// Progress keys of the left and the right table.
    keys: [String; 2],
    consumer_id: String,
    /// The positions last recorded for the consumer (recorded once each).
    recorded: std::sync::Mutex<Option<(i64, i64)>>,
}

/// The output of one step, written but not committed.
struct Step {
    writer: TableWriter,
    next: (i64, i64),
    snapshots: u64,
    rows_in: u64,
    rows_out: u64,
}

impl JoinJob {
    pub fn new(name: &str, plan: JoinPlan, options: JobOptions) -> Result<JoinJob> {
        let owner = job_owner(name)?;
        let keys = [
            progress_key(name, plan.left.identifier())?,
            progress_key(name, plan.right.identifier())?,
        ];
        let consumer_id = options
            .read_options
            .get("consumer-id")
            .cloned()
            .unwrap_or_else(|| name.to_string());
        Ok(JoinJob {
            name: name.to_string(),
            plan,
            options,
            owner,
            keys,
            consumer_id,
            recorded: std::sync::Mutex::new(None),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn shape(&self) -> &str {
        &self.plan.shape
    }

    pub fn sources(&self) -> String {
        format!(
            "{}, {}",
            self.plan.left.identifier(),
            self.plan.right.identifier()
        )
    }

    pub fn left(&self) -> &Table {
        &self.plan.left
    }

    pub fn sink(&self) -> &Table {
        &self.plan.sink
    }

    pub fn progress_keys(&self) -> &[String; 2] {
        &self.keys
    }

    fn writer(&self, compactor: &BackgroundCompactor) -> TableWriter {
        let mut writer = self.plan.sink.writer();
        writer.compact_in_background(compactor.handle());
        writer
    }

    /// Keeps the versions the sink reflects from expiring.
    async fn record_consumers(&self, next: (i64, i64)) {
        if let Ok(recorded) = self.recorded.lock() {
            if *recorded == Some(next) {
                return;
            }
        }
        for (table, next) in [(&self.plan.left, next.0), (&self.plan.right, next.1)] {
            if let Err(e) = table
                .record_consumer(&self.consumer_id, (next - 1).max(1))
                .await
            {
                tracing::warn!(job = %self.name, table = %table.identifier(), consumer = %self.consumer_id, "could not record the consumer: {e}");
                return;
            }
        }
        if let Ok(mut recorded) = self.recorded.lock() {
            *recorded = Some(next);
        }
    }

    /// Runs until `stop` turns true (after the current commit) or the
    /// options' bounds are reached.
    pub async fn run(
        &self,
        stop: watch::Receiver<bool>,
        on_commit: &mut (dyn FnMut(&JobCommit) + Send),
        compactor: &BackgroundCompactor,
    ) -> crate::Result<JobSummary> {
        let mut stop = stop;
        let mut summary = JobSummary::default();
        let mut conflicts = 0u32;
        let mut last_commit = Instant::now();
        loop {
            let at_max = self
                .options
                .max_snapshots
                .is_some_and(|max| summary.snapshots >= max);
            if *stop.borrow() || at_max {
                return Ok(summary);
            }
            let progress = read_pair_progress(&self.plan.sink, &self.keys).await?;
            let step = match progress.next {
                None => {
                    tracing::info!(job = %self.name, "no progress in the sink: writing the join of both tables' latest snapshots");
                    self.initial(compactor).await?
                }
                Some((pa, pb)) => {
                    let ending = *stop.borrow() || self.options.until_idle;
                    let force = ending || last_commit.elapsed() >= IDLE_PROGRESS;
                    match self.step(pa, pb, force, compactor).await? {
                        Some(step) => step,
                        None if self.options.until_idle => return Ok(summary),
                        None => {
                            pause(&mut stop, self.options.poll_interval).await;
                            continue;
                        }
                    }
                }
            };
            match self.commit(step, &progress).await {
                Ok(commit) => {
                    conflicts = 0;
                    last_commit = Instant::now();
                    summary.commits += 1;
                    summary.snapshots += commit.snapshots;
                    summary.rows_in += commit.rows_in;
                    summary.rows_out += commit.rows_out;
                    summary.next_snapshot = Some(commit.next_snapshot);
                    on_commit(&commit);
                }
                Err(CommitError::Retry(e)) => {
                    conflicts += 1;
                    if conflicts > MAX_CONFLICTS {
                        return Err(e.into());
                    }
                    tracing::warn!(job = %self.name, attempt = conflicts, "commit conflict, redoing the step: {e}");
                    tokio::time::sleep(Duration::from_millis(50 << conflicts.min(5))).await;
                }
                Err(CommitError::Fatal(e)) => return Err(e),
            }
        }
    }

    /// The first commit: the whole join at both tables' latest snapshots.
    async fn initial(&self, compactor: &BackgroundCompactor) -> Result<Step> {
        let plan = &self.plan;
        let a = plan
            .left
            .snapshots()
            .latest_snapshot_id()
            .await?
            .unwrap_or(0);
        let b = plan
            .right
            .snapshots()
            .latest_snapshot_id()
            .await?
            .unwrap_or(0);
        self.record_consumers((a + 1, b + 1)).await;
        let left = table_at(&plan.left, a, &self.name, &self.consumer_id).await?;
        let right = table_at(&plan.right, b, &self.name, &self.consumer_id).await?;
        let output = self.run_query(left, right).await?;
        let mut writer = self.writer(compactor);
        let mut rows_out = 0;
        if let Some((rows, kinds)) = difference(&plan.mapping, &plan.sink_key, &[], &output)? {
            rows_out = rows.num_rows() as u64;
            if let Err(e) = writer.write_with_kinds(rows, &kinds).await {
                writer.abort().await;
                return Err(e.into());
            }
        }
        Ok(Step {
            writer,
            next: (a + 1, b + 1),
            snapshots: 1,
            rows_in: 0,
            rows_out,
        })
    }

    /// The query over these versions of the left and right tables.
    async fn run_query(
        &self,
        left: Arc<dyn TableProvider>,
        right: Arc<dyn TableProvider>,
    ) -> Result<Vec<RecordBatch>> {
        let plan = &self.plan;
        plan.context.register(plan.left_ref.clone(), left)?;
        plan.context.register(plan.right_ref.clone(), right)?;
        plan.context.run(&plan.query).await
    }

    /// The query with the driver's and the other side's versions given.
    async fn run_sides(
        &self,
        driver: Arc<dyn TableProvider>,
        other: Arc<dyn TableProvider>,
    ) -> Result<Vec<RecordBatch>> {
        match self.plan.driver() {
            Side::Left => self.run_query(driver, other).await,
            Side::Right => self.run_query(other, driver).await,
        }
    }

    /// Reads what the two tables' new snapshots changed; `None` when there
    /// is nothing to commit (nothing new, or only snapshots without changes
    /// and `force` is not set).
    async fn step(
        &self,
        pa: i64,
        pb: i64,
        force: bool,
        compactor: &BackgroundCompactor,
    ) -> Result<Option<Step>> {
        let plan = &self.plan;
        let driver_side = plan.driver();
        let (a_next, b_next) = match driver_side {
            Side::Left => (pa, pb),
            Side::Right => (pb, pa),
        };
        let a_table = plan.table(driver_side);
        let b_table = plan.table(driver_side.other());
        self.record_consumers((pa, pb)).await;
        let a = touched_keys(a_table, a_next, MAX_DRAIN)
            .await
            .map_err(|e| self.context(a_table, e))?;
        let b = touched_keys(b_table, b_next, MAX_DRAIN)
            .await
            .map_err(|e| self.context(b_table, e))?;
        let moved = a.next != a_next || b.next != b_next;
        let changed = a.keys.is_some() || b.keys.is_some();
        if !moved || (!changed && !force) {
            return Ok(None);
        }
        let mut writer = self.writer(compactor);
        let written = self
            .write_changes(&mut writer, (a_next, &a), (b_next, &b))
            .await;
        let rows_out = match written {
            Ok(rows) => rows,
            Err(e) => {
                writer.abort().await;
                return Err(e);
            }
        };
        let next = match driver_side {
            Side::Left => (a.next, b.next),
            Side::Right => (b.next, a.next),
        };
        Ok(Some(Step {
            writer,
            next,
            snapshots: a.snapshots + b.snapshots,
            rows_in: a.rows + b.rows,
            rows_out,
        }))
    }

    /// Steps 1 and 2 of the module documentation; returns the rows written.
    async fn write_changes(
        &self,
        writer: &mut TableWriter,
        (a_from, a): (i64, &Touched),
        (b_from, b): (i64, &Touched),
    ) -> Result<u64> {
        let plan = &self.plan;
        let ctx = plan.context.session();
        let driver_side = plan.driver();
        let a_table = plan.table(driver_side);
        let b_table = plan.table(driver_side.other());
        let (job, consumer) = (self.name.as_str(), self.consumer_id.as_str());
        let a_last = a.next - 1;
        let b_last = b.next - 1;
        let a_keys = a_table.primary_keys().to_vec();
        let b_keys = b_table.primary_keys().to_vec();
        let mut rows_out = 0u64;
        // 1. The driver's changed rows, against B as the sink has it.
        if let Some(keys) = &a.keys {
            let b_old = table_at(b_table, b_from - 1, job, consumer).await?;
            let a_old = table_at(a_table, a_from - 1, job, consumer).await?;
            let a_new = table_at(a_table, a_last, job, consumer).await?;
            let old_rows = rows_matching(ctx, a_old, &a_keys, keys).await?;
            let new_rows = rows_matching(ctx, a_new, &a_keys, keys).await?;
            let old = self.run_sides(old_rows, b_old.clone()).await?;
            let new = self.run_sides(new_rows, b_old).await?;
            rows_out += self.write_difference(writer, &old, &new).await?;
        }
        // 2. B's changed rows, against the driver's rows they match.
        if let Some(keys) = &b.keys {
            let b_old = table_at(b_table, b_from - 1, job, consumer).await?;
            let b_new = table_at(b_table, b_last, job, consumer).await?;
            let a_now = table_at(a_table, a_last, job, consumer).await?;
            let b_old_rows = rows_matching(ctx, b_old.clone(), &b_keys, keys).await?;
            let b_new_rows = rows_matching(ctx, b_new.clone(), &b_keys, keys).await?;
            let a_columns = plan.join_columns(driver_side);
            let b_columns = plan.join_columns(driver_side.other());
            let types = column_types(a_table, &a_columns)?;
            let values = join_values(ctx, [b_old_rows, b_new_rows], &b_columns, &types).await?;
            if let Some(values) = values {
                let affected = rows_matching(ctx, a_now, &a_columns, &values).await?;
                let old = self.run_sides(affected.clone(), b_old).await?;
                let new = self.run_sides(affected, b_new).await?;
                rows_out += self.write_difference(writer, &old, &new).await?;
            }
        }
        Ok(rows_out)
    }

    async fn write_difference(
        &self,
        writer: &mut TableWriter,
        old: &[RecordBatch],
        new: &[RecordBatch],
    ) -> Result<u64> {
        let Some((rows, kinds)) = difference(&self.plan.mapping, &self.plan.sink_key, old, new)?
        else {
            return Ok(0);
        };
        let n = rows.num_rows() as u64;
        writer.write_with_kinds(rows, &kinds).await?;
        Ok(n)
    }

    fn context(&self, table: &Table, e: SqlError) -> SqlError {
        match e {
            SqlError::InvalidParameter(m) => SqlError::InvalidParameter(format!(
                "job '{}' cannot read the changes of '{}' (its consumer '{}' should have kept them from expiring): {m}",
                self.name,
                table.identifier(),
                self.consumer_id
            )),
            other => other,
        }
    }

    async fn commit(
        &self,
        mut step: Step,
        progress: &PairProgress,
    ) -> std::result::Result<JobCommit, CommitError> {
        let properties = BTreeMap::from([
            (self.keys[0].clone(), step.next.0.to_string()),
            (self.keys[1].clone(), step.next.1.to_string()),
        ]);
        let fence = progress.fence(&self.owner, &self.keys);
        let committed = step
            .writer
            .commit_fenced(CommitKind::Append, properties, Some(&fence))
            .await;
        let from = progress.next.map_or(0, |(a, _)| a);
        match committed {
            Ok(Some(id)) => {
                tracing::info!(job = %self.name, sink_snapshot = id, next_left = step.next.0, next_right = step.next.1, rows_in = step.rows_in, rows_out = step.rows_out, "committed");
                self.record_consumers(step.next).await;
                Ok(JobCommit {
                    job: self.name.clone(),
                    sink_snapshot: id,
                    from_snapshot: from,
                    next_snapshot: step.next.0,
                    snapshots: step.snapshots,
                    rows_in: step.rows_in,
                    rows_out: step.rows_out,
                })
            }
            Ok(None) => Err(CommitError::Fatal(
                SqlError::Internal("a fenced commit created no snapshot".into()).into(),
            )),
            Err(EngineError::CommitConflict { message, .. }) => {
                match read_pair_progress(&self.plan.sink, &self.keys).await {
                    Ok(now) if now.next != progress.next => {
                        let show = |p: Option<(i64, i64)>| {
                            p.map_or("none".to_string(), |(a, b)| format!("({a}, {b})"))
                        };
                        Err(CommitError::Fatal(StreamError::Fenced {
                            job: self.name.clone(),
                            sink: self.plan.sink.identifier().to_string(),
                            recorded: show(now.next),
                            started_from: show(progress.next),
                            detail: message,
                        }))
                    }
                    Ok(_) => Err(CommitError::Retry(SqlError::CommitConflict(message))),
                    Err(e) => Err(CommitError::Fatal(e.into())),
                }
            }
            Err(e) => Err(CommitError::Fatal(e.into())),
        }
    }
}
