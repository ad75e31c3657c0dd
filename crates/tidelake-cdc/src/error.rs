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
    #[error(transparent)]
    Engine(#[from] tidelake_engine::EngineError),
}

pub type Result<T> = std::result::Result<T, CdcError>;
