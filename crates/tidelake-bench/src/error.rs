//! Errors of the benchmark binary: each names the file or step it came from.

use tidelake_engine::EngineError;

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    #[error("cannot read '{path}': {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decode the Parquet input '{path}': {source}")]
    Parquet {
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// The input files or the expected figures are not what the generator writes.
    #[error("bad input: {0}")]
    Input(String),
    #[error("SQL: {0}")]
    Sql(String),
    #[error("a worker task failed: {0}")]
    Task(String),
}

impl BenchError {
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn input(message: impl Into<String>) -> Self {
        BenchError::Input(message.into())
    }
}
