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
    /// Rows with another number of values than the table has columns.
    #[error("table '{table}' has {expected} columns but {given} values were given per row")]
    ColumnCountMismatch {
        table: String,
        expected: usize,
        given: usize,
    },
    /// A value that cannot become the column's type.
    #[error("column '{column}' of table '{table}' is {expected} but a value of type {given} was given: {detail}")]
    TypeMismatch {
        table: String,
        column: String,
        expected: String,
        given: String,
        detail: String,
    },
    /// Another writer committed something this commit cannot be combined with.
    #[error("commit conflict on table '{table}': {message}")]
    CommitConflict { table: String, message: String },
    /// The store did not say whether `snapshot-{snapshot}` was created by
    /// this commit, and reading it back did not tell either. Nothing this
    /// commit wrote was deleted, since a live snapshot may reference it.
    #[error("the outcome of the commit of snapshot {snapshot} of table '{table}' is unknown: {message}. Nothing was deleted: read the table's latest snapshots to see whether the change is there before repeating it")]
    CommitUnknown {
        table: String,
        snapshot: i64,
        message: String,
    },
    /// A broken internal invariant: a bug in Tidelake, not bad input.
    #[error("internal error (a bug in Tidelake): {0}")]
    Internal(String),
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
    /// One failure of a group commit, reported to each statement of the
    /// group (see `orchestrate::group`).
    #[error(transparent)]
    Shared(std::sync::Arc<EngineError>),
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

    /// A broken internal invariant (a bug, not bad input).
    pub fn internal(message: impl Into<String>) -> Self {
        EngineError::Internal(message.into())
    }

    /// True when a commit's outcome is unknown: the caller must keep every
    /// file the commit may reference.
    pub fn is_commit_unknown(&self) -> bool {
        match self {
            EngineError::CommitUnknown { .. } => true,
            EngineError::Shared(inner) => inner.is_commit_unknown(),
            _ => false,
        }
    }

    /// True for a commit conflict (another writer got there first).
    pub fn is_commit_conflict(&self) -> bool {
        match self {
            EngineError::CommitConflict { .. } => true,
            EngineError::Shared(inner) => inner.is_commit_conflict(),
            _ => false,
        }
    }

    /// True when the error comes from the rows a writer was given (their
    /// types, values or kinds), not from storage or the commit: a group
    /// commit then fails that statement alone.
    pub fn is_input_error(&self) -> bool {
        match self {
            EngineError::InvalidInput(_)
            | EngineError::ColumnCountMismatch { .. }
            | EngineError::TypeMismatch { .. }
            | EngineError::ColumnNotFound { .. }
            | EngineError::Arrow(_)
            | EngineError::Unsupported(_) => true,
            EngineError::Shared(inner) => inner.is_input_error(),
            _ => false,
        }
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
