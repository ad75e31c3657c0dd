//! Errors of change data capture: each names the source, table or position
//! it concerns.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CdcError {
    /// The source refused or dropped the connection, or sent what we could
    /// not read.
    #[error("{source_kind} source: {message}")]
    Source {
        source_kind: &'static str,
        message: String,
    },
    /// The configuration (command-line options) is wrong: what and why.
    #[error("invalid CDC configuration: {0}")]
    Config(String),
    /// A source table cannot be mapped to a Paimon table.
    #[error("table {table}: {message}")]
    Table { table: String, message: String },
    /// A source column changed in a way Paimon's schema evolution cannot
    /// follow: the table stops (unless `--ignore-incompatible`). Boxed: the
    /// variant is the largest and would make every `Result` wide.
    #[error("{0}")]
    Incompatible(Box<IncompatibleChange>),
    /// Another instance of the pipeline committed to a table first.
    #[error("pipeline '{pipeline}': table {table} records position {recorded} written by another instance (this one started from {started_from}); a pipeline runs once: stop the other instance")]
    Fenced {
        pipeline: String,
        table: String,
        recorded: String,
        started_from: String,
    },
    /// A local file (a spill file) could not be written or read.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] tidelake_engine::EngineError),
}

/// A column change of a source table that Paimon cannot apply.
#[derive(Debug, Error)]
#[error("table {table}: column '{column}' changed from {from} to {to}, which Paimon cannot apply ({reason}); the table stops here (fix the source or use --ignore-incompatible)")]
pub struct IncompatibleChange {
    pub table: String,
    pub column: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

impl CdcError {
    pub(crate) fn table(table: impl ToString, message: impl Into<String>) -> CdcError {
        CdcError::Table {
            table: table.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> CdcError {
        CdcError::Config(message.into())
    }
}

pub type Result<T> = std::result::Result<T, CdcError>;
