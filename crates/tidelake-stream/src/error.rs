//! Errors of streaming. A statement, table or option that is wrong, or SQL
//! that fails while a job runs, is a [`SqlError`] and keeps its SQLSTATE;
//! what only streaming can meet has its own variant, so that a supervisor
//! can tell what is worth running again.

use datafusion::arrow::error::ArrowError;
use datafusion::common::DataFusionError;
use tidelake_engine::EngineError;
use tidelake_sql::SqlError;

/// Result of the streaming layer.
pub type Result<T, E = StreamError> = std::result::Result<T, E>;

/// What went wrong while streaming.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StreamError {
    /// Planning, an option, a table, or SQL failing at run time.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// Another instance of the job committed progress for it since this
    /// one read its progress: this one stops, and must not be restarted.
    #[error("job '{job}' stops: sink '{sink}' records progress {recorded} for it, but this instance started from {started_from}: another instance of the job is running, and two instances never commit the same source snapshot ({detail})")]
    Fenced {
        job: String,
        sink: String,
        /// The progress found in the sink, as text (a pair for a join).
        recorded: String,
        started_from: String,
        /// The engine's description of the conflict.
        detail: String,
    },
    /// A supervisor runs one job of a name.
    #[error("job '{job}' is already supervised")]
    AlreadySupervised { job: String },
    /// The task running a job ended without a result.
    #[error("job '{job}' panicked: {message}")]
    Panicked { job: String, message: String },
}

impl StreamError {
    /// The SQLSTATE code of this error, as PostgreSQL would report it.
    pub fn code(&self) -> &'static str {
        match self {
            StreamError::Sql(e) => e.code(),
            // serialization_failure, as for any commit conflict.
            StreamError::Fenced { .. } => "40001",
            // duplicate_object
            StreamError::AlreadySupervised { .. } => "42710",
            StreamError::Panicked { .. } => "XX000",
        }
    }

    /// Whether running the job again may succeed: commit conflicts with
    /// other writers that outlasted the job's own retries, store I/O, and
    /// commits whose outcome is unknown (a rerun reads from the sink whether
    /// the commit happened).
    /// Never a fenced job (it would fence the running instance, or be
    /// fenced again), nor a statement or data the job cannot process.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StreamError::Sql(
                SqlError::CommitConflict(_) | SqlError::CommitUnknown(_) | SqlError::Io(_)
            )
        )
    }
}

impl From<EngineError> for StreamError {
    fn from(e: EngineError) -> Self {
        StreamError::Sql(e.into())
    }
}

impl From<DataFusionError> for StreamError {
    fn from(e: DataFusionError) -> Self {
        StreamError::Sql(e.into())
    }
}

impl From<ArrowError> for StreamError {
    fn from(e: ArrowError) -> Self {
        StreamError::Sql(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_conflicts_with_writers_and_io_are_transient() {
        assert!(StreamError::Sql(SqlError::CommitConflict("race".into())).is_transient());
        assert!(StreamError::Sql(SqlError::Io("reset".into())).is_transient());
        assert!(StreamError::Sql(SqlError::CommitUnknown("lost".into())).is_transient());
        assert!(!StreamError::Sql(SqlError::Plan("bad".into())).is_transient());
        assert!(!StreamError::Sql(SqlError::DivisionByZero).is_transient());
        let fenced = StreamError::Fenced {
            job: "j".into(),
            sink: "db.s".into(),
            recorded: "4".into(),
            started_from: "3".into(),
            detail: "fence".into(),
        };
        assert!(!fenced.is_transient());
        assert_eq!(fenced.code(), "40001");
        assert!(fenced.to_string().contains("another instance of the job"));
    }
}
