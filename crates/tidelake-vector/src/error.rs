//! Errors of vector search and vector indexes.

use tidelake_engine::EngineError;

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// A vector index definition (table options, CALL arguments) that
    /// Paimon would refuse.
    #[error("vector index on table '{table}': {message}")]
    Definition { table: String, message: String },
    /// A vector value that does not fit its column (dimension, NULL, NaN).
    #[error("{0}")]
    BadVector(String),
    /// A search request that cannot run (unknown column, wrong query).
    #[error("{0}")]
    BadSearch(String),
    /// An index payload that cannot be read or written.
    #[error("vector index file '{path}': {message}")]
    Payload { path: String, message: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("internal error (a bug in Tidelake): {0}")]
    Internal(String),
}

pub type Result<T, E = VectorError> = std::result::Result<T, E>;

impl VectorError {
    pub(crate) fn definition(table: impl ToString, message: impl Into<String>) -> Self {
        VectorError::Definition {
            table: table.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn payload(path: impl Into<String>, e: impl std::fmt::Display) -> Self {
        VectorError::Payload {
            path: path.into(),
            message: e.to_string(),
        }
    }
}

/// Errors the engine's hooks return: bad input stays bad input.
impl From<VectorError> for EngineError {
    fn from(e: VectorError) -> Self {
        match e {
            VectorError::Engine(e) => e,
            VectorError::Internal(m) => EngineError::internal(m),
            other => EngineError::invalid(other.to_string()),
        }
    }
}

/// Errors in SQL: the SQLSTATE-like class that fits.
impl From<VectorError> for tidelake_sql::SqlError {
    fn from(e: VectorError) -> Self {
        use tidelake_sql::SqlError;
        match e {
            VectorError::Definition { .. } | VectorError::BadSearch(_) => {
                SqlError::InvalidParameter(e.to_string())
            }
            VectorError::BadVector(m) => SqlError::InvalidValue(m),
            VectorError::Engine(e) => SqlError::from(e),
            other => SqlError::Execution(other.to_string()),
        }
    }
}
