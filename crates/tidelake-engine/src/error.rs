//! Errors of the storage engine. Every variant names the table, file or
//! snapshot involved, so that a user can act on the message alone.

use tidelake_format::FormatError;
use tidelake_store::StoreError;

/// Result of the storage engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// What went wrong in the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("database '{0}' does not exist")]
    DatabaseNotFound(String),
    #[error("database '{0}' already exists")]
    DatabaseAlreadyExists(String),
    #[error("database '{0}' is not empty (use CASCADE to drop its tables too)")]
    DatabaseNotEmpty(String),
    #[error("table '{0}' does not exist")]
    TableNotFound(String),
    #[error("table '{0}' already exists")]
    TableAlreadyExists(String),
    #[error("column '{column}' does not exist in table '{table}'")]
    ColumnNotFound { table: String, column: String },
    /// Input that does not fit the table (types, nulls, keys, options).
    #[error("{0}")]
    InvalidInput(String),
    /// Another writer committed something this commit cannot be combined with.
    #[error("commit conflict on table '{table}': {message}")]
    CommitConflict { table: String, message: String },
    /// A metadata or data file that exists but cannot be decoded.
    #[error("corrupt file '{path}': {message}")]
    Corrupt { path: String, message: String },
    #[error("format error in '{path}': {source}")]
    Format {
        path: String,
        #[source]
        source: FormatError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("parquet error in '{path}': {source}")]
    Parquet {
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl EngineError {
    /// Wraps a format error with the path of the file it came from.
    pub fn format(path: impl Into<String>, source: FormatError) -> Self {
        EngineError::Format {
            path: path.into(),
            source,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        EngineError::InvalidInput(message.into())
    }
}

impl From<FormatError> for EngineError {
    fn from(source: FormatError) -> Self {
        EngineError::Format {
            path: String::new(),
            source,
        }
    }
}
