//! Errors of the worker crate: what the engine, SQL and streaming layers
//! report, kept as they are, so that a statement keeps its SQLSTATE.

use tidelake_engine::EngineError;
use tidelake_sql::SqlError;
use tidelake_stream::StreamError;

/// Result of the worker crate.
pub type Result<T, E = WorkerError> = std::result::Result<T, E>;

/// What went wrong while managing or running work.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Stream(#[from] StreamError),
}

impl From<WorkerError> for SqlError {
    fn from(e: WorkerError) -> Self {
        match e {
            WorkerError::Engine(e) => e.into(),
            WorkerError::Sql(e) | WorkerError::Stream(StreamError::Sql(e)) => e,
            WorkerError::Stream(e @ StreamError::Fenced { .. }) => {
                SqlError::CommitConflict(e.to_string())
            }
            WorkerError::Stream(e) => SqlError::Execution(e.to_string()),
        }
    }
}
