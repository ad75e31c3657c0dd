//! Errors of the SQL layer. Every variant has a SQLSTATE-like code (as
//! PostgreSQL spells them) so that protocol servers can forward it, and a
//! message that says what was wrong and where.

use std::fmt;

use datafusion::arrow::error::ArrowError;
use datafusion::common::{DataFusionError, SchemaError};
use datafusion::sql::sqlparser::parser::ParserError;
use tidelake_engine::{EngineError, StoreError};

/// Result of the SQL layer.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;

/// A place in the statement text (1-based line and column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

fn at(position: &Option<Position>) -> String {
    position.map(|p| format!(" at {p}")).unwrap_or_default()
}

/// What went wrong while running SQL.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SqlError {
    /// The text is not a statement we can parse.
    #[error("syntax error{}: {message}", at(.position))]
    Syntax {
        message: String,
        position: Option<Position>,
    },
    #[error("database '{0}' does not exist")]
    UndefinedDatabase(String),
    #[error("table '{0}' does not exist")]
    UndefinedTable(String),
    /// A `table$suffix` whose suffix names no system table.
    #[error("'{table}': '{suffix}' is not a system table (supported: {supported})")]
    UndefinedSystemTable {
        table: String,
        suffix: String,
        supported: String,
    },
    /// A column that the table (or query) does not have.
    #[error("{0}")]
    UndefinedColumn(String),
    /// A data type name that neither Paimon nor Tidelake defines.
    #[error("unknown data type '{text}'{}: {message}", at(.position))]
    UndefinedType {
        text: String,
        message: String,
        position: Option<Position>,
    },
    #[error("database '{0}' already exists")]
    DuplicateDatabase(String),
    #[error("table '{0}' already exists")]
    DuplicateTable(String),
    #[error("{0}")]
    DuplicateColumn(String),
    #[error("database '{0}' is not empty (use DROP DATABASE ... CASCADE to drop its tables too)")]
    DatabaseNotEmpty(String),
    /// A statement that parses but does not make sense (wrong number of
    /// values, ambiguous names, ...).
    #[error("{0}")]
    Plan(String),
    /// An expression whose types do not fit together.
    #[error("{0}")]
    DatatypeMismatch(String),
    /// A value whose text does not represent the target type ('abc' as INT).
    #[error("{0}")]
    InvalidValue(String),
    /// A value outside the range of its type (1e20 as INT).
    #[error("{0}")]
    OutOfRange(String),
    #[error("division by zero")]
    DivisionByZero,
    /// A bad option, snapshot id or other parameter.
    #[error("{0}")]
    InvalidParameter(String),
    #[error(
        "null value in column '{column}' of table '{table}' violates its NOT NULL constraint{hint}"
    )]
    NotNull {
        table: String,
        column: String,
        hint: String,
    },
    /// A NULL where the column forbids it, when the column is not known.
    #[error("{0}")]
    NotNullViolation(String),
    #[error("{0}")]
    Unsupported(String),
    /// A MERGE whose target row is matched by several source rows.
    #[error("{0}")]
    CardinalityViolation(String),
    /// Another writer committed a change this statement cannot be combined with.
    #[error("{0}")]
    CommitConflict(String),
    /// The store never said whether the statement's commit happened.
    #[error("{0}")]
    CommitUnknown(String),
    /// A metadata or data file that is corrupt or missing.
    #[error("{0}")]
    Corrupt(String),
    /// A file or glob outside the warehouse that names no file.
    #[error("{0}")]
    UndefinedFile(String),
    #[error("I/O error: {0}")]
    Io(String),
    #[error("{0}")]
    ResourcesExhausted(String),
    /// Any other failure while running a statement.
    #[error("{0}")]
    Execution(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl SqlError {
    /// The SQLSTATE code of this error, as PostgreSQL would report it.
    pub fn code(&self) -> &'static str {
        match self {
            SqlError::Syntax { .. } => "42601",
            SqlError::UndefinedDatabase(_) => "3F000",
            SqlError::UndefinedTable(_) | SqlError::UndefinedSystemTable { .. } => "42P01",
            SqlError::UndefinedColumn(_) => "42703",
            SqlError::UndefinedType { .. } => "42704",
            SqlError::DuplicateDatabase(_) => "42P06",
            SqlError::DuplicateTable(_) => "42P07",
            SqlError::DuplicateColumn(_) => "42701",
            SqlError::DatabaseNotEmpty(_) => "2BP01",
            SqlError::Plan(_) => "42000",
            SqlError::DatatypeMismatch(_) => "42804",
            SqlError::InvalidValue(_) => "22P02",
            SqlError::OutOfRange(_) => "22003",
            SqlError::DivisionByZero => "22012",
            SqlError::InvalidParameter(_) => "22023",
            SqlError::NotNull { .. } | SqlError::NotNullViolation(_) => "23502",
            SqlError::CardinalityViolation(_) => "21000",
            SqlError::Unsupported(_) => "0A000",
            SqlError::CommitConflict(_) => "40001",
            SqlError::CommitUnknown(_) => "40003",
            SqlError::Corrupt(_) => "XX001",
            SqlError::UndefinedFile(_) => "58P01",
            SqlError::Io(_) => "58030",
            // out_of_memory: a memory limit ended the statement.
            SqlError::ResourcesExhausted(_) => "53200",
            SqlError::Execution(_) => "22000",
            SqlError::Internal(_) => "XX000",
        }
    }

    pub fn syntax(message: impl Into<String>, position: Option<Position>) -> Self {
        SqlError::Syntax {
            message: message.into(),
            position,
        }
    }

    /// Wraps this error for DataFusion, so that it comes back out intact.
    pub fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }

    /// Converts an error of the storage engine.
    pub fn from_engine(e: &EngineError) -> SqlError {
        match e {
            EngineError::DatabaseNotFound(db) => SqlError::UndefinedDatabase(db.clone()),
            EngineError::DatabaseAlreadyExists(db) => SqlError::DuplicateDatabase(db.clone()),
            EngineError::DatabaseNotEmpty(db) => SqlError::DatabaseNotEmpty(db.clone()),
            EngineError::TableNotFound(t) => SqlError::UndefinedTable(t.clone()),
            EngineError::TableAlreadyExists(t) => SqlError::DuplicateTable(t.clone()),
            EngineError::ColumnNotFound { .. } => SqlError::UndefinedColumn(e.to_string()),
            EngineError::InvalidInput(m) => SqlError::InvalidParameter(m.clone()),
            EngineError::ColumnCountMismatch { .. } => SqlError::Plan(e.to_string()),
            EngineError::TypeMismatch { .. } => SqlError::DatatypeMismatch(e.to_string()),
            EngineError::CommitConflict { .. } => SqlError::CommitConflict(e.to_string()),
            EngineError::Corrupt { .. }
            | EngineError::Format { .. }
            | EngineError::Parquet { .. } => SqlError::Corrupt(e.to_string()),
            EngineError::CommitUnknown { .. } => SqlError::CommitUnknown(e.to_string()),
            EngineError::Internal(_) => SqlError::Internal(e.to_string()),
            // A file that metadata refers to is gone: the table is damaged.
            EngineError::Store(store @ StoreError::NotFound { .. }) => {
                SqlError::Corrupt(format!("a file of the table is missing: {store}"))
            }
            EngineError::Store(store) => SqlError::Io(store.to_string()),
            EngineError::Arrow(a) => from_arrow(a),
            EngineError::Unsupported(_) => SqlError::Unsupported(e.to_string()),
            EngineError::Shared(inner) => SqlError::from_engine(inner),
        }
    }

    /// Converts an error of DataFusion, unwrapping ours when DataFusion
    /// carried them through its plans and streams.
    pub fn from_datafusion(e: &DataFusionError) -> SqlError {
        match e {
            DataFusionError::External(inner) => from_external(inner.as_ref()),
            DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
                Self::from_datafusion(inner)
            }
            DataFusionError::Shared(inner) => Self::from_datafusion(inner),
            DataFusionError::Collection(errors) => match errors.first() {
                Some(first) => Self::from_datafusion(first),
                None => SqlError::Internal("an empty collection of errors".into()),
            },
            DataFusionError::SQL(p, _) => from_parser(p),
            DataFusionError::SchemaError(s, _) => from_schema_error(s),
            DataFusionError::ArrowError(a, _) => from_arrow(a),
            DataFusionError::Plan(m) => classify_plan(m),
            DataFusionError::NotImplemented(m) => SqlError::Unsupported(m.clone()),
            DataFusionError::Configuration(m) => SqlError::InvalidParameter(m.clone()),
            DataFusionError::Execution(m) => classify_execution(m),
            DataFusionError::ResourcesExhausted(m) => SqlError::ResourcesExhausted(format!(
                "the statement needs more memory than its limit allows and cannot spill to disk here: {m}"
            )),
            DataFusionError::IoError(io) => SqlError::Io(io.to_string()),
            DataFusionError::ObjectStore(o) => SqlError::Io(o.to_string()),
            DataFusionError::ParquetError(p) => SqlError::Corrupt(p.to_string()),
            DataFusionError::Internal(m) => SqlError::Internal(m.clone()),
            other => SqlError::Internal(other.to_string()),
        }
    }
}

impl From<EngineError> for SqlError {
    fn from(e: EngineError) -> Self {
        SqlError::from_engine(&e)
    }
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        SqlError::from_datafusion(&e)
    }
}

impl From<ArrowError> for SqlError {
    fn from(e: ArrowError) -> Self {
        from_arrow(&e)
    }
}

impl From<ParserError> for SqlError {
    fn from(e: ParserError) -> Self {
        from_parser(&e)
    }
}

fn from_external(inner: &(dyn std::error::Error + Send + Sync + 'static)) -> SqlError {
    if let Some(ours) = inner.downcast_ref::<SqlError>() {
        return ours.clone();
    }
    if let Some(engine) = inner.downcast_ref::<EngineError>() {
        return SqlError::from_engine(engine);
    }
    if let Some(df) = inner.downcast_ref::<DataFusionError>() {
        return SqlError::from_datafusion(df);
    }
    if let Some(arrow) = inner.downcast_ref::<ArrowError>() {
        return from_arrow(arrow);
    }
    SqlError::Execution(inner.to_string())
}

fn from_arrow(e: &ArrowError) -> SqlError {
    match e {
        ArrowError::ExternalError(inner) => from_external(inner.as_ref()),
        ArrowError::CastError(m) | ArrowError::ParseError(m) => classify_cast(m),
        ArrowError::DivideByZero => SqlError::DivisionByZero,
        ArrowError::ArithmeticOverflow(m) => {
            SqlError::OutOfRange(format!("arithmetic overflow: {m}"))
        }
        ArrowError::MemoryError(m) => SqlError::ResourcesExhausted(m.clone()),
        ArrowError::IoError(m, _) => SqlError::Io(m.clone()),
        ArrowError::InvalidArgumentError(m) => classify_execution(m),
        other => SqlError::Execution(other.to_string()),
    }
}

/// Arrow reports both unparsable text and values out of range as cast
/// errors; the message tells them apart.
fn classify_cast(message: &str) -> SqlError {
    let lower = message.to_ascii_lowercase();
    if lower.contains("overflow") || lower.contains("out of range") || lower.contains("too large") {
        SqlError::OutOfRange(format!("value out of range: {message}"))
    } else if lower.contains("can't cast value") || lower.contains("cannot cast value") {
        // Numeric conversions that do not fit the target type.
        SqlError::OutOfRange(format!("value out of range: {message}"))
    } else {
        SqlError::InvalidValue(format!("invalid value: {message}"))
    }
}

fn from_parser(e: &ParserError) -> SqlError {
    let message = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m.clone(),
        ParserError::RecursionLimitExceeded => "the statement is nested too deeply".to_string(),
    };
    let (message, position) = split_position(&message);
    SqlError::Syntax { message, position }
}

/// sqlparser ends its messages with " at Line: L, Column: C".
fn split_position(message: &str) -> (String, Option<Position>) {
    let Some(idx) = message.rfind(" at Line: ") else {
        return (message.to_string(), None);
    };
    let tail = &message[idx + " at Line: ".len()..];
    let mut parts = tail.splitn(2, ", Column: ");
    let line = parts.next().and_then(|l| l.trim().parse::<u64>().ok());
    let column = parts.next().and_then(|c| c.trim().parse::<u64>().ok());
    match (line, column) {
        (Some(line), Some(column)) => (message[..idx].to_string(), Some(Position { line, column })),
        _ => (message.to_string(), None),
    }
}

fn from_schema_error(e: &SchemaError) -> SqlError {
    match e {
        SchemaError::FieldNotFound { field, .. } => {
            let name = match &field.relation {
                Some(r) => format!("{r}.{}", field.name),
                None => field.name.clone(),
            };
            SqlError::UndefinedColumn(format!("column '{name}' does not exist"))
        }
        SchemaError::AmbiguousReference { field } => {
            SqlError::Plan(format!("column reference '{}' is ambiguous", field.name))
        }
        other => SqlError::Plan(other.to_string()),
    }
}

fn classify_plan(message: &str) -> SqlError {
    let lower = message.to_ascii_lowercase();
    if lower.starts_with("inconsistent data length across values list")
        || lower.starts_with("column count doesn't match")
    {
        // PostgreSQL reports a wrong number of INSERT values as a syntax error.
        return SqlError::syntax(
            format!("the number of values does not match the number of columns ({message})"),
            None,
        );
    }
    if lower.starts_with("table '") && lower.ends_with("' not found") {
        let name = &message["table '".len()..message.len() - "' not found".len()];
        return SqlError::UndefinedTable(name.to_string());
    }
    if lower.contains("cannot be cast")
        || lower.contains("cannot infer common")
        || lower.contains("no function matches")
        || lower.contains("failed to coerce")
        || lower.contains("does not support")
    {
        return SqlError::DatatypeMismatch(message.to_string());
    }
    SqlError::Plan(message.to_string())
}

fn classify_execution(message: &str) -> SqlError {
    let lower = message.to_ascii_lowercase();
    if lower.contains("non-nullable but contains null") {
        SqlError::NotNullViolation(format!(
            "a NULL value where the column is NOT NULL: {message}"
        ))
    } else if lower.contains("divide by zero") || lower.contains("division by zero") {
        SqlError::DivisionByZero
    } else if lower.contains("overflow") {
        SqlError::OutOfRange(message.to_string())
    } else if lower.contains("cast error") {
        classify_cast(message)
    } else {
        SqlError::Execution(message.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_positions_are_split_out() {
        let e = SqlError::from(ParserError::ParserError(
            "Expected: an expression, found: EOF at Line: 2, Column: 7".into(),
        ));
        assert_eq!(
            e,
            SqlError::Syntax {
                message: "Expected: an expression, found: EOF".into(),
                position: Some(Position { line: 2, column: 7 })
            }
        );
        assert_eq!(e.code(), "42601");
        assert_eq!(
            e.to_string(),
            "syntax error at line 2, column 7: Expected: an expression, found: EOF"
        );
    }

    #[test]
    fn our_errors_survive_a_trip_through_datafusion() {
        let original = SqlError::UndefinedTable("default.x".into());
        let wrapped = DataFusionError::Context(
            "planning".into(),
            Box::new(original.clone().into_datafusion()),
        );
        assert_eq!(SqlError::from(wrapped), original);
        let engine =
            DataFusionError::External(Box::new(EngineError::TableAlreadyExists("db.t".into())));
        assert_eq!(SqlError::from(engine).code(), "42P07");
    }

    #[test]
    fn cast_errors_tell_bad_text_from_out_of_range() {
        let bad = SqlError::from(ArrowError::CastError(
            "Cannot cast string 'abc' to value of Int32 type".into(),
        ));
        assert_eq!(bad.code(), "22P02");
        let big = SqlError::from(ArrowError::CastError(
            "Can't cast value 100000000000000000000 to type Int32".into(),
        ));
        assert_eq!(big.code(), "22003");
        assert_eq!(SqlError::from(ArrowError::DivideByZero).code(), "22012");
    }

    #[test]
    fn missing_fields_are_undefined_columns() {
        let e = DataFusionError::SchemaError(
            Box::new(SchemaError::FieldNotFound {
                field: Box::new(datafusion::common::Column::new_unqualified("nope")),
                valid_fields: vec![],
            }),
            Box::new(None),
        );
        let e = SqlError::from(e);
        assert_eq!(e.code(), "42703");
        assert_eq!(e.to_string(), "column 'nope' does not exist");
    }

    #[test]
    fn every_code_is_five_characters() {
        let samples = [
            SqlError::syntax("x", None),
            SqlError::NotNull {
                table: "t".into(),
                column: "c".into(),
                hint: String::new(),
            },
            SqlError::CommitConflict("c".into()),
            SqlError::Corrupt("c".into()),
            SqlError::DivisionByZero,
        ];
        for s in samples {
            assert_eq!(s.code().len(), 5, "{s:?}");
        }
    }
}
