//! What a statement returns: rows, or a command status as psql prints it.

use std::fmt;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

/// What a statement that returns no rows reports, as psql prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandStatus {
    /// `CREATE TABLE`, `INSERT`, `DELETE`, ...
    pub command: &'static str,
    /// Rows inserted, updated or deleted.
    pub rows: Option<u64>,
}

impl CommandStatus {
    pub fn new(command: &'static str) -> Self {
        CommandStatus {
            command,
            rows: None,
        }
    }

    pub fn with_rows(command: &'static str, rows: u64) -> Self {
        CommandStatus {
            command,
            rows: Some(rows),
        }
    }
}

impl fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.command, self.rows) {
            // PostgreSQL's INSERT tag carries an (always zero) OID.
            ("INSERT", Some(n)) => write!(f, "INSERT 0 {n}"),
            (command, Some(n)) => write!(f, "{command} {n}"),
            (command, None) => f.write_str(command),
        }
    }
}

/// The outcome of one statement.
#[derive(Clone, Debug)]
pub enum StatementResult {
    /// A query (or SHOW/DESCRIBE): its schema and every row.
    Rows {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    /// A statement without rows.
    Status(CommandStatus),
}

impl StatementResult {
    pub fn row_count(&self) -> usize {
        match self {
            StatementResult::Rows { batches, .. } => batches.iter().map(|b| b.num_rows()).sum(),
            StatementResult::Status(_) => 0,
        }
    }
}
