//! Continuous SQL jobs: `INSERT INTO db.sink SELECT ... FROM db.source ...`
//! applied to every snapshot of the source as it is committed, with
//! exactly-once output.
//!
//! The protocol:
//! - A job's progress is the next source snapshot to read. It is recorded
//!   in the properties of the sink snapshot that commits the output of all
//!   snapshots before it (`tidelake.progress.job.<job>.<db>.<table>`): output and
//!   progress become visible together or not at all, so a crash at any
//!   point neither loses nor repeats a change.
//! - A (re)started job reads its progress from the sink (the newest
//!   snapshot carrying it) and resumes there; a job that never committed
//!   starts as the source's `scan.mode` says (default `latest-full`).
//! - Every commit is fenced: it is refused if a sink snapshot committed
//!   since the job read its progress records other progress for the job.
//!   Of two instances of one job, only the first to commit a batch
//!   succeeds; the other stops with an error naming the conflict.
//! - Other conflicts (a writer racing on the same sink bucket) retry the
//!   batch from the committed progress.
//!
//! Window aggregates (`FROM TABLE(TUMBLE(...))`, `HOP`) close windows as
//! the source's watermark passes their end and compute each once, in batch,
//! from the source as of the snapshot that closed it; the watermark is
//! recorded next to the progress (see `window.rs`).
//!
//! With a `consumer-id` among the source's read options, the progress is
//! also recorded as that consumer after each commit, so that expiration
//! keeps the source snapshots the job has not read yet.
//!
//! A join of two streams (`join/`) keeps one progress per table, both in
//! the same sink snapshots, and reads the tables themselves at pinned
//! snapshots instead of a changelog.

mod analyze;
mod dialect;
mod exec;
mod join;
mod plan;
mod progress;
mod window;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use tidelake_engine::introspect::CommitKind;
use tidelake_engine::{
    BackgroundCompactor, Catalog, ChangeReader, ChangeSource, EngineError, ProgressOwner, RowKind,
    StartMode, StreamOptions, TableWriter,
};
use tokio::sync::watch;

use self::exec::{has_retractions, input_batch, per_row_output};
use self::join::JoinJob;
use self::plan::{plan_job, JobPlan, PlannedJob};
pub use self::progress::check_job_name;
use self::progress::{job_owner, progress_key, read_progress, Progress};
use crate::error::{Result, StreamError};
use tidelake_sql::{Result as SqlResult, Session, SqlError};

/// Input rows run through the query at once (bounds memory per step).
const CHUNK_ROWS: usize = 64 * 1024;
/// A batch of snapshots read without committing stops growing after this.
const MAX_DRAIN: Duration = Duration::from_secs(1);
/// Progress over snapshots without changes (compactions) is recorded at
/// most this often, so that a busy source does not flood the sink.
const IDLE_PROGRESS: Duration = Duration::from_secs(10);
/// Conflicts in a row (other writers racing on the sink) before giving up.
const MAX_CONFLICTS: u32 = 10;

/// How a job runs.
#[derive(Clone, Debug)]
pub struct JobOptions {
    /// How long to wait before looking for a new source snapshot.
    pub poll_interval: Duration,
    /// The least time between reading a change and committing it: changes
    /// read meanwhile share one sink snapshot. Zero commits as soon as the
    /// job has read everything committed (snapshots arriving faster than
    /// the job commits still share one sink snapshot).
    pub commit_interval: Duration,
    /// Stop after committing this many source snapshots with changes (the
    /// initial full read counts as one).
    pub max_snapshots: Option<u64>,
    /// Stop once everything committed to the source is committed to the sink.
    pub until_idle: bool,
    /// Read options of the source (`scan.mode`, `consumer-id`, ...), over
    /// its table options and under a hint in the statement.
    pub read_options: BTreeMap<String, String>,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            poll_interval: Duration::from_millis(200),
            commit_interval: Duration::ZERO,
            max_snapshots: None,
            until_idle: false,
            read_options: BTreeMap::new(),
        }
    }
}

/// One commit of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobCommit {
    pub job: String,
    pub sink_snapshot: i64,
    /// The source snapshots committed: `from..next` (next excluded).
    pub from_snapshot: i64,
    pub next_snapshot: i64,
    /// Source snapshots with changes among them.
    pub snapshots: u64,
    pub rows_in: u64,
    pub rows_out: u64,
}

/// Where a job stands: what its sink records and what its source has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobPosition {
    /// The next source snapshot to read; `None` if the job never committed.
    pub next_snapshot: Option<i64>,
    /// The source's latest snapshot.
    pub source_latest: Option<i64>,
    /// The sink snapshot that recorded the progress, and its commit time
    /// (epoch millis).
    pub last_commit: Option<(i64, i64)>,
}

impl JobPosition {
    /// Source snapshots committed and not yet processed into the sink.
    pub fn lag(&self) -> i64 {
        let latest = self.source_latest.unwrap_or(0);
        let done = self.next_snapshot.map_or(0, |next| next - 1);
        (latest - done).max(0)
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobSummary {
    pub commits: u64,
    pub snapshots: u64,
    pub rows_in: u64,
    pub rows_out: u64,
    /// The progress committed last (the next source snapshot to read).
    pub next_snapshot: Option<i64>,
}

/// A checked and planned job; see the module documentation.
pub struct StreamingJob {
    runner: Runner,
}

enum Runner {
    Source(Box<SourceJob>),
    Join(Box<JoinJob>),
}

/// A job over one streamed source.
struct SourceJob {
    name: String,
    owner: ProgressOwner,
    key: String,
    plan: JobPlan,
    options: JobOptions,
    stream_options: StreamOptions,
    consumer_id: Option<String>,
}

impl StreamingJob {
    /// Checks a job statement against the tables of `session`'s warehouse
    /// (names resolve in its current database) and prepares it to run.
    pub async fn prepare(
        session: &Session,
        name: &str,
        sql: &str,
        options: JobOptions,
    ) -> Result<StreamingJob> {
        Self::prepare_in(
            session.catalog(),
            &session.current_database(),
            name,
            sql,
            options,
        )
        .await
    }

    /// [`prepare`](Self::prepare) with names resolved in `database` of
    /// `catalog` (a job declared in the warehouse records its database).
    pub async fn prepare_in(
        catalog: &Catalog,
        database: &str,
        name: &str,
        sql: &str,
        options: JobOptions,
    ) -> Result<StreamingJob> {
        check_job_name(name)?;
        let plan = match plan_job(catalog, database, sql).await? {
            PlannedJob::Single(plan) => plan,
            PlannedJob::Join(plan) => {
                let job = JoinJob::new(name, plan, options)?;
                tracing::info!(job = name, shape = %job.shape(), sources = %job.sources(), sink = %job.sink().identifier(), "job prepared");
                return Ok(StreamingJob {
                    runner: Runner::Join(Box::new(job)),
                });
            }
        };
        let mut read = plan.source.schema().options.clone();
        read.extend(options.read_options.clone());
        read.extend(plan.hint_options.clone());
        let mut stream_options = StreamOptions::from_options(&read)?;
        if matches!(stream_options.mode, StartMode::Incremental { .. }) {
            return Err(SqlError::InvalidParameter(
                "scan.mode 'incremental' is a bounded read; a job follows its source (use --until-idle to stop once it has caught up)".into(),
            )
            .into());
        }
        // The sink's progress decides where to resume, not the consumer.
        let consumer_id = stream_options.consumer_id.take();
        if plan.window.is_some()
            && !matches!(
                stream_options.mode,
                StartMode::LatestFull | StartMode::FromSnapshotFull(_)
            )
        {
            return Err(SqlError::InvalidParameter(format!(
                "job '{name}': a window job starts from a full snapshot of its source (by default its earliest snapshot, or scan.mode 'from-snapshot-full'), so that its watermark covers every row; it cannot start with {:?}",
                stream_options.mode
            ))
            .into());
        }
        let owner = job_owner(name)?;
        let key = progress_key(name, plan.source.identifier())?;
        tracing::info!(job = name, shape = %plan.shape, source = %plan.source.identifier(), sink = %plan.sink.identifier(), "job prepared");
        Ok(StreamingJob {
            runner: Runner::Source(Box::new(SourceJob {
                name: name.to_string(),
                owner,
                key,
                plan,
                options,
                stream_options,
                consumer_id,
            })),
        })
    }
}

/// What one batch of source snapshots has produced so far.
struct Pending {
    writer: TableWriter,
    /// The reader's position when the batch began.
    from: i64,
    input: Vec<datafusion::arrow::array::RecordBatch>,
    input_rows: usize,
    next_seq: i64,
    snapshots: u64,
    rows_in: u64,
    rows_out: u64,
    first_read: Option<Instant>,
    /// Window jobs: the watermark after the snapshots read so far
    /// (microseconds), the largest event time of the snapshot being read,
    /// and the watermark moves that close windows, to compute at commit.
    watermark: Option<i64>,
    snapshot_max_event: Option<i64>,
    closing: Vec<window::ClosingStep>,
}

impl Pending {
    fn new(writer: TableWriter, from: i64, watermark: Option<i64>) -> Pending {
        Pending {
            writer,
            from,
            input: Vec::new(),
            input_rows: 0,
            next_seq: 0,
            snapshots: 0,
            rows_in: 0,
            rows_out: 0,
            first_read: None,
            watermark,
            snapshot_max_event: None,
            closing: Vec::new(),
        }
    }
}

/// Why a commit failed.
enum CommitError {
    /// Worth another try from the committed progress.
    Retry(SqlError),
    Fatal(StreamError),
}

impl StreamingJob {
    pub fn name(&self) -> &str {
        match &self.runner {
            Runner::Source(job) => &job.name,
            Runner::Join(job) => job.name(),
        }
    }

    /// "projection/filter", "aggregate", "lookup join", "inner join of two
    /// streams", ...
    pub fn shape(&self) -> &str {
        match &self.runner {
            Runner::Source(job) => &job.plan.shape,
            Runner::Join(job) => job.shape(),
        }
    }

    /// The streamed source table (two, comma-separated, for a join).
    pub fn source(&self) -> String {
        match &self.runner {
            Runner::Source(job) => job.plan.source.identifier().to_string(),
            Runner::Join(job) => job.sources(),
        }
    }

    pub fn sink(&self) -> String {
        match &self.runner {
            Runner::Source(job) => job.plan.sink.identifier().to_string(),
            Runner::Join(job) => job.sink().identifier().to_string(),
        }
    }

    /// The sink snapshot property that records the job's progress (for a
    /// join, the one of its left table; see [`progress_keys`](Self::progress_keys)).
    pub fn progress_key(&self) -> &str {
        match &self.runner {
            Runner::Source(job) => &job.key,
            Runner::Join(job) => &job.progress_keys()[0],
        }
    }

    /// Every sink snapshot property that records the job's progress: one
    /// per streamed source.
    pub fn progress_keys(&self) -> Vec<String> {
        match &self.runner {
            Runner::Source(job) => vec![job.key.clone()],
            Runner::Join(job) => job.progress_keys().to_vec(),
        }
    }

    /// Where the job stands, read from its sink and source now (for a join
    /// of two streams, through its left table).
    pub async fn position(&self) -> Result<JobPosition> {
        let (sink, key, source) = match &self.runner {
            Runner::Source(job) => (&job.plan.sink, job.key.as_str(), &job.plan.source),
            Runner::Join(job) => (job.sink(), job.progress_keys()[0].as_str(), job.left()),
        };
        let progress = read_progress(sink, key).await?;
        let last_commit = match progress.recorded_in {
            Some(id) => sink
                .snapshots()
                .snapshot(id)
                .await?
                .map(|s| (id, s.time_millis)),
            None => None,
        };
        Ok(JobPosition {
            next_snapshot: progress.next,
            source_latest: source.snapshots().latest_snapshot_id().await?,
            last_commit,
        })
    }

    /// Runs until `stop` turns true (then after the current commit), or
    /// until the bounds of the options are reached. `on_commit` hears of
    /// every commit.
    pub async fn run(
        &self,
        stop: watch::Receiver<bool>,
        on_commit: &mut (dyn FnMut(&JobCommit) + Send),
    ) -> Result<JobSummary> {
        // The sink is compacted in the background, off the path from a
        // source commit to the sink commit; what is queued when the job
        // stops is compacted before `run` returns.
        let (sink, name) = match &self.runner {
            Runner::Source(job) => (&job.plan.sink, job.name.as_str()),
            Runner::Join(job) => (job.sink(), job.name()),
        };
        let compactor = BackgroundCompactor::start(sink);
        let result = match &self.runner {
            Runner::Source(job) => job.run_batches(stop, on_commit, &compactor).await,
            Runner::Join(job) => job.run(stop, on_commit, &compactor).await,
        };
        let compaction = compactor.finish().await;
        tracing::debug!(job = %name, rounds = compaction.rounds, snapshots = compaction.snapshots, failures = compaction.failures, "background compaction of the sink finished");
        result
    }
}

impl SourceJob {
    async fn open_reader(&self, next: Option<i64>) -> Result<ChangeReader> {
        let mut options = self.stream_options.clone();
        if let Some(next) = next {
            options.mode = StartMode::FromSnapshot(next);
        } else if self.plan.window.is_some() && options.mode == StartMode::LatestFull {
            // Windows close per snapshot: a first run walks the source's
            // history, so its output does not depend on when it started.
            if let Some(earliest) = self.plan.source.snapshots().earliest_snapshot_id().await? {
                options.mode = StartMode::FromSnapshotFull(earliest);
            }
        }
        Ok(ChangeReader::open(self.plan.source.clone(), options).await?)
    }

    /// A writer of the sink that hands its compaction to `compactor`.
    fn sink_writer(&self, compactor: &BackgroundCompactor) -> TableWriter {
        let mut writer = self.plan.sink.writer();
        writer.compact_in_background(compactor.handle());
        writer
    }

    async fn run_batches(
        &self,
        mut stop: watch::Receiver<bool>,
        on_commit: &mut (dyn FnMut(&JobCommit) + Send),
        compactor: &BackgroundCompactor,
    ) -> Result<JobSummary> {
        let mut progress = read_progress(&self.plan.sink, &self.key).await?;
        let mut reader = self.open_reader(progress.next).await?;
        match progress.recorded_in {
            Some(snapshot) => {
                tracing::info!(job = %self.name, next = reader.position(), sink_snapshot = snapshot, "resuming from the progress recorded in the sink")
            }
            None => {
                tracing::info!(job = %self.name, start = reader.position(), mode = ?self.stream_options.mode, "no progress in the sink: starting per scan.mode")
            }
        }
        let mut summary = JobSummary {
            next_snapshot: progress.next,
            ..JobSummary::default()
        };
        let mut pending = Pending::new(
            self.sink_writer(compactor),
            reader.position(),
            self.recorded_watermark(&progress)?,
        );
        let mut last_commit = Instant::now();
        let mut conflicts = 0u32;
        loop {
            let reached_max = |pending: &Pending| {
                self.options
                    .max_snapshots
                    .is_some_and(|max| summary.snapshots + pending.snapshots >= max)
            };
            let mut ending = *stop.borrow() || reached_max(&pending);
            let read_any = if ending {
                false
            } else {
                match self
                    .drain(&mut reader, &mut pending, &stop, summary.snapshots)
                    .await
                {
                    Ok(read_any) => read_any,
                    Err(e) => {
                        // Files the writer spilled are not committed: remove them.
                        pending.writer.abort().await;
                        return Err(e.into());
                    }
                }
            };
            ending = ending
                || *stop.borrow()
                || reached_max(&pending)
                || (!read_any && self.options.until_idle);
            let moved = reader.position() != pending.from;
            let has_data = pending.snapshots > 0 || pending.rows_in > 0;
            if moved {
                let due = pending
                    .first_read
                    .is_none_or(|t| t.elapsed() >= self.options.commit_interval);
                let commit_now = if has_data {
                    due || ending
                } else {
                    ending || last_commit.elapsed() >= IDLE_PROGRESS
                };
                if commit_now {
                    let position = reader.position();
                    let fresh =
                        Pending::new(self.sink_writer(compactor), position, pending.watermark);
                    let batch = std::mem::replace(&mut pending, fresh);
                    match self.commit(batch, &progress, position).await {
                        Ok((commit, new_progress)) => {
                            progress = new_progress;
                            summary.commits += 1;
                            summary.snapshots += commit.snapshots;
                            summary.rows_in += commit.rows_in;
                            summary.rows_out += commit.rows_out;
                            summary.next_snapshot = Some(commit.next_snapshot);
                            last_commit = Instant::now();
                            conflicts = 0;
                            self.record_consumer(position).await;
                            on_commit(&commit);
                        }
                        Err(CommitError::Fatal(e)) => return Err(e),
                        Err(CommitError::Retry(e)) => {
                            conflicts += 1;
                            if conflicts > MAX_CONFLICTS {
                                return Err(e.into());
                            }
                            tracing::warn!(job = %self.name, attempt = conflicts, "commit conflict, redoing the batch: {e}");
                            progress = read_progress(&self.plan.sink, &self.key).await?;
                            reader = self.open_reader(progress.next).await?;
                            pending = Pending::new(
                                self.sink_writer(compactor),
                                reader.position(),
                                self.recorded_watermark(&progress)?,
                            );
                            tokio::time::sleep(Duration::from_millis(50 << conflicts.min(5))).await;
                        }
                    }
                    continue;
                }
            }
            if ending {
                return Ok(summary);
            }
            let wait = match pending.first_read {
                Some(t) if has_data => self
                    .options
                    .commit_interval
                    .saturating_sub(t.elapsed())
                    .min(self.options.poll_interval),
                _ => self.options.poll_interval,
            };
            pause(&mut stop, wait).await;
        }
    }

    /// Reads the committed snapshots after the reader's position into
    /// `pending` (until the batch is big or old enough, a stop, or the
    /// snapshot bound); says whether any was read.
    async fn drain(
        &self,
        reader: &mut ChangeReader,
        pending: &mut Pending,
        stop: &watch::Receiver<bool>,
        committed_snapshots: u64,
    ) -> SqlResult<bool> {
        let mut read_any = false;
        // `None`: nothing committed after the position yet.
        while let Some(changes) = reader.next_changes().await? {
            read_any = true;
            let first = *pending.first_read.get_or_insert_with(Instant::now);
            if changes.source != ChangeSource::Skipped {
                pending.snapshots += 1;
            }
            let mut batches = changes.batches;
            while let Some(batch) = batches.try_next().await? {
                self.absorb(&batch, pending).await?;
            }
            if let Some(plan) = &self.plan.window {
                window::advance_watermark(plan, pending, changes.snapshot_id);
            }
            let at_max = self
                .options
                .max_snapshots
                .is_some_and(|max| committed_snapshots + pending.snapshots >= max);
            if *stop.borrow()
                || at_max
                || first.elapsed() >= self.options.commit_interval.max(MAX_DRAIN)
            {
                break;
            }
        }
        Ok(read_any)
    }

    /// Adds a batch of changes to the pending input; runs the query when
    /// enough has gathered.
    async fn absorb(
        &self,
        batch: &datafusion::arrow::array::RecordBatch,
        pending: &mut Pending,
    ) -> SqlResult<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if let Some(plan) = &self.plan.window {
            // Windows read their rows from the source when they close: a
            // change only moves the watermark.
            pending.rows_in += batch.num_rows() as u64;
            let max = window::max_added_event_time(
                batch,
                tidelake_engine::ROW_KIND_COLUMN,
                &plan.spec.time_column,
            )?;
            pending.snapshot_max_event = pending.snapshot_max_event.max(max);
            return Ok(());
        }
        let input = input_batch(&self.plan.input_schema, batch, pending.next_seq)?;
        let rows = input.num_rows();
        pending.next_seq += rows as i64;
        pending.rows_in += rows as u64;
        pending.input_rows += rows;
        pending.input.push(input);
        if pending.input_rows >= CHUNK_ROWS {
            self.process(pending).await?;
        }
        Ok(())
    }

    /// Runs the query over the pending input and writes its output.
    async fn process(&self, pending: &mut Pending) -> SqlResult<()> {
        if let Some(plan) = &self.plan.window {
            for step in std::mem::take(&mut pending.closing) {
                let rows = window::close_windows(&self.plan, plan, &step).await?;
                for rows in rows {
                    pending.rows_out += rows.num_rows() as u64;
                    pending.writer.write(rows, RowKind::Insert).await?;
                }
            }
            return Ok(());
        }
        let input = std::mem::take(&mut pending.input);
        pending.input_rows = 0;
        if input.is_empty() {
            return Ok(());
        }
        if let Some(call) = &self.plan.min_max {
            if has_retractions(&input) {
                return Err(SqlError::Unsupported(format!(
                    "job '{}': {call} cannot take back the retractions (-U/-D) that source '{}' produced",
                    self.name,
                    self.plan.source.identifier()
                )));
            }
        }
        let context = &self.plan.context;
        context.set_source(&self.plan.source_ref, self.plan.input_schema.clone(), input)?;
        let output = context.run(&self.plan.exec).await;
        // The memory table holds the input until replaced: drop it now.
        context.set_source(
            &self.plan.source_ref,
            self.plan.input_schema.clone(),
            Vec::new(),
        )?;
        let output = output?;
        if self.plan.aggregate {
            for batch in output.iter().filter(|b| b.num_rows() > 0) {
                let rows = self.plan.mapping.sink_batch(batch, 0)?;
                pending.rows_out += rows.num_rows() as u64;
                pending.writer.write(rows, RowKind::Insert).await?;
            }
        } else if let Some((sorted, kinds)) = per_row_output(&output)? {
            let rows = self.plan.mapping.sink_batch(&sorted, 2)?;
            pending.rows_out += rows.num_rows() as u64;
            pending.writer.write_with_kinds(rows, &kinds).await?;
        }
        Ok(())
    }

    /// Commits the output of a batch of snapshots with the progress after it.
    async fn commit(
        &self,
        mut pending: Pending,
        progress: &Progress,
        position: i64,
    ) -> std::result::Result<(JobCommit, Progress), CommitError> {
        if let Err(e) = self.process(&mut pending).await {
            pending.writer.abort().await;
            return Err(CommitError::Fatal(e.into()));
        }
        let mut properties = BTreeMap::from([(self.key.clone(), position.to_string())]);
        if let (Some(_), Some(watermark)) = (&self.plan.window, pending.watermark) {
            properties.insert(window::watermark_key(&self.owner), watermark.to_string());
            // Paimon's snapshot field, in milliseconds, for other engines.
            pending.writer.set_watermark(watermark.div_euclid(1_000));
        }
        let fence = progress.fence(&self.owner);
        let committed_properties = properties.clone();
        let committed = pending
            .writer
            .commit_fenced(CommitKind::Append, properties, Some(&fence))
            .await;
        match committed {
            Ok(Some(id)) => {
                let commit = JobCommit {
                    job: self.name.clone(),
                    sink_snapshot: id,
                    from_snapshot: pending.from,
                    next_snapshot: position,
                    snapshots: pending.snapshots,
                    rows_in: pending.rows_in,
                    rows_out: pending.rows_out,
                };
                tracing::info!(job = %self.name, sink_snapshot = id, from = pending.from, next = position, rows_in = pending.rows_in, rows_out = pending.rows_out, "committed");
                Ok((
                    commit,
                    Progress {
                        read_at: Some(id),
                        next: Some(position),
                        recorded_in: Some(id),
                        properties: committed_properties,
                    },
                ))
            }
            Ok(None) => Err(CommitError::Fatal(
                SqlError::Internal("a fenced commit created no snapshot".into()).into(),
            )),
            Err(EngineError::CommitConflict { message, .. }) => {
                // Fenced, or a writer racing on a sink bucket: the sink's
                // progress tells which.
                match read_progress(&self.plan.sink, &self.key).await {
                    Ok(now) if now.next != progress.next => {
                        let show = |n: Option<i64>| n.map_or("none".to_string(), |n| n.to_string());
                        Err(CommitError::Fatal(StreamError::Fenced {
                            job: self.name.clone(),
                            sink: self.plan.sink.identifier().to_string(),
                            recorded: format!(
                                "{} (snapshot {})",
                                show(now.next),
                                show(now.recorded_in)
                            ),
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

    /// The watermark a window job recorded with its progress.
    fn recorded_watermark(&self, progress: &Progress) -> SqlResult<Option<i64>> {
        if self.plan.window.is_none() {
            return Ok(None);
        }
        let key = window::watermark_key(&self.owner);
        progress
            .properties
            .get(&key)
            .map(|value| window::parse_recorded_watermark(&key, value))
            .transpose()
    }

    async fn record_consumer(&self, position: i64) {
        if let Some(id) = &self.consumer_id {
            if let Err(e) = self.plan.source.record_consumer(id, position).await {
                tracing::warn!(job = %self.name, consumer = %id, "could not record the consumer: {e}");
            }
        }
    }
}

/// Sleeps, or less if a stop is asked for meanwhile. A dropped sender
/// disables the stop branch (it would otherwise fire at once, forever).
async fn pause(stop: &mut watch::Receiver<bool>, wait: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        Ok(()) = stop.changed() => {}
    }
}
