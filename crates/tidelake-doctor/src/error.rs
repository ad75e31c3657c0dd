//! Errors of the doctor: each names the table or rule it concerns.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DoctorError {
    /// The target (`db` or `db.table`) does not name a database or table.
    #[error("doctor: {0}")]
    Target(String),
    /// `--explain` of a rule id the doctor does not have.
    #[error("doctor: no rule '{0}' (see `tidelake doctor --explain list`)")]
    UnknownRule(String),
    /// Reading a table's metadata or applying a fix failed.
    #[error("doctor: table {table}: {source}")]
    Table {
        table: String,
        #[source]
        source: Box<tidelake_engine::EngineError>,
    },
    #[error(transparent)]
    Engine(Box<tidelake_engine::EngineError>),
    #[error("doctor: cannot render the report: {0}")]
    Render(String),
}

impl DoctorError {
    pub(crate) fn table(table: impl ToString, source: tidelake_engine::EngineError) -> Self {
        DoctorError::Table {
            table: table.to_string(),
            source: Box::new(source),
        }
    }
}

impl From<tidelake_engine::EngineError> for DoctorError {
    fn from(e: tidelake_engine::EngineError) -> Self {
        DoctorError::Engine(Box::new(e))
    }
}

pub type Result<T> = std::result::Result<T, DoctorError>;
