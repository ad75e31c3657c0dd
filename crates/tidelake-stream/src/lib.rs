//! # tidelake-stream
//!
//! Streaming over Tidelake tables. It owns:
//! - continuous exactly-once SQL jobs ([`StreamingJob`]): `INSERT INTO
//!   sink SELECT ... FROM source ...` applied to every snapshot committed to
//!   the source, with the job's progress committed in the same sink snapshot
//!   as its output; per-row queries, lookup joins, aggregates into
//!   aggregation sinks, TUMBLE/HOP windows closed by the source's watermark,
//!   and joins of two streams;
//! - the streaming `SELECT` ([`ChangeStream`]): a table's changes, snapshot
//!   by snapshot, through a per-row query, with an [`OP_COLUMN`];
//! - the [`Supervisor`], which runs many jobs in one process: one failing
//!   job is reported and does not stop the others, transient failures are
//!   retried with bounded backoff, and a stop lets each job finish its
//!   current commit.
//!
//! It builds on `tidelake-sql` for what SQL means (the session's catalog
//! and current database, DataFusion configuration, table providers,
//! watermarks, [`SqlError`](tidelake_sql::SqlError)) and on `tidelake-engine`
//! for change readers, writers and fenced commits. It must not know file
//! formats, object stores or the warehouse layout, nor anything of the
//! command line or protocol servers that drive it (no signals or printing
//! here beyond [`shutdown_signal`], which callers choose to use).
//!
//! ```no_run
//! # async fn demo() -> Result<(), tidelake_stream::StreamError> {
//! use tidelake_stream::{JobOptions, RestartPolicy, StreamingJob, Supervisor};
//! let session = tidelake_sql::Session::open("./warehouse").await?;
//! let job = StreamingJob::prepare(
//!     &session,
//!     "totals",
//!     "INSERT INTO db.totals SELECT k, sum(v) FROM db.events GROUP BY k",
//!     JobOptions::default(),
//! )
//! .await?;
//! let mut supervisor = Supervisor::new(RestartPolicy::default());
//! supervisor.spawn(job, |commit| println!("{commit:?}"))?;
//! let outcomes = supervisor.run(tidelake_stream::shutdown_signal(), |_| {}).await;
//! # Ok(()) }
//! ```

mod context;
mod error;
mod job;
mod row_kinds;
mod select;
mod signal;
mod statement_text;
mod supervisor;

pub use error::{Result, StreamError};
pub use job::{check_job_name, JobCommit, JobOptions, JobPosition, JobSummary, StreamingJob};
pub use select::{ChangeSet, ChangeStream, OP_COLUMN};
pub use signal::shutdown_signal;
pub use supervisor::{JobOutcome, JobState, JobStatus, RestartPolicy, StatusBoard, Supervisor};
