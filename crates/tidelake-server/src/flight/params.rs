//! Parameters of a prepared statement, as Flight SQL binds them (DoPut of
//! Arrow batches, one row per execution): each value becomes a typed SQL
//! literal put in place of `?` or `$n`. Values are rendered from their
//! Arrow type (numbers printed, strings quoted), so a parameter can never
//! become SQL.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{
    DataType, Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use tidelake_sql::SqlError;

use crate::pg::params::{count, number_question_marks, substitute};
use crate::values::{
    binary_value, date_days, date_text, decimal_value, float_text, string_value, time_micros,
    time_text, timestamp_text, timestamp_value,
};
use crate::StatementError;

/// The most parameter rows one DoPut may bind.
pub const MAX_PARAMETER_ROWS: usize = 100_000;

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn cast(literal: impl std::fmt::Display, sql_type: &str) -> String {
    format!("CAST({literal} AS {sql_type})")
}

fn unsupported(t: &DataType) -> StatementError {
    StatementError::refused(
        "0A000",
        format!("parameters of Arrow type {t} are not supported"),
    )
}

/// One value of a parameter column as a SQL literal.
pub fn literal(array: &ArrayRef, row: usize) -> Result<String, StatementError> {
    let t = array.data_type();
    if array.is_null(row) || t == &DataType::Null {
        return Ok("NULL".into());
    }
    macro_rules! int {
        ($ty:ty, $sql:expr) => {
            cast(array.as_primitive::<$ty>().value(row), $sql)
        };
    }
    Ok(match t {
        DataType::Boolean => {
            let b = array.as_any().downcast_ref::<BooleanArray>();
            if b.is_some_and(|b| b.value(row)) {
                "TRUE".into()
            } else {
                "FALSE".into()
            }
        }
        DataType::Int8 => int!(Int8Type, "TINYINT"),
        DataType::Int16 => int!(Int16Type, "SMALLINT"),
        DataType::Int32 => int!(Int32Type, "INT"),
        DataType::Int64 => int!(Int64Type, "BIGINT"),
        DataType::UInt8 => int!(UInt8Type, "SMALLINT"),
        DataType::UInt16 => int!(UInt16Type, "INT"),
        DataType::UInt32 => int!(UInt32Type, "BIGINT"),
        DataType::UInt64 => int!(UInt64Type, "DECIMAL(20, 0)"),
        DataType::Float16 => cast(
            quote(&float_text(f64::from(
                array.as_primitive::<Float16Type>().value(row),
            ))),
            "REAL",
        ),
        DataType::Float32 => cast(
            quote(&float_text(f64::from(
                array.as_primitive::<Float32Type>().value(row),
            ))),
            "REAL",
        ),
        DataType::Float64 => cast(
            quote(&float_text(array.as_primitive::<Float64Type>().value(row))),
            "DOUBLE",
        ),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            let text = decimal_value(array, row).ok_or_else(|| unsupported(t))?;
            cast(text, &format!("DECIMAL({p}, {s})"))
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            quote(string_value(array, row).ok_or_else(|| unsupported(t))?)
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            let bytes = binary_value(array, row).ok_or_else(|| unsupported(t))?;
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("X'{hex}'")
        }
        DataType::Date32 | DataType::Date64 => {
            let days = date_days(array, row).ok_or_else(|| unsupported(t))?;
            cast(quote(&date_text(days)), "DATE")
        }
        DataType::Time32(_) | DataType::Time64(_) => {
            let micros = time_micros(array, row).ok_or_else(|| unsupported(t))?;
            cast(quote(&time_text(micros)), "TIME")
        }
        DataType::Timestamp(_, _) => {
            let micros = timestamp_value(array, row).ok_or_else(|| unsupported(t))?;
            cast(quote(&timestamp_text(micros)), "TIMESTAMP")
        }
        DataType::Dictionary(_, _) => {
            let plain = arrow::compute::cast(array, &DataType::Utf8).map_err(|_| unsupported(t))?;
            return literal(&plain, row);
        }
        other => return Err(unsupported(other)),
    })
}

/// The rows of parameter batches as literals.
pub fn rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, StatementError> {
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    if total > MAX_PARAMETER_ROWS {
        return Err(StatementError::refused(
            "54000",
            format!("{total} parameter rows, more than {MAX_PARAMETER_ROWS} at once"),
        ));
    }
    let mut out = Vec::with_capacity(total);
    for batch in batches {
        for row in 0..batch.num_rows() {
            let values = batch
                .columns()
                .iter()
                .map(|c| literal(c, row))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(values);
        }
    }
    Ok(out)
}

/// The statement with one row of parameters in place (`?` or `$n`).
pub fn bind(sql: &str, values: &[String]) -> Result<String, StatementError> {
    let numbered = number_question_marks(sql);
    let wanted = count(&numbered);
    if values.len() < wanted {
        return Err(StatementError::Sql(SqlError::InvalidParameter(format!(
            "the statement has {wanted} parameters but {} were bound",
            values.len()
        ))));
    }
    Ok(substitute(&numbered, values)?)
}

/// How many parameters a statement takes (the tests check numbering with it).
#[cfg(test)]
pub fn parameter_count(sql: &str) -> usize {
    count(&number_question_marks(sql))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Decimal128Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use std::sync::Arc;

    #[test]
    fn values_become_typed_literals() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(41), None]));
        assert_eq!(literal(&ints, 0).unwrap(), "CAST(41 AS BIGINT)");
        assert_eq!(literal(&ints, 1).unwrap(), "NULL");
        let text: ArrayRef = Arc::new(StringArray::from(vec!["it's; DROP TABLE t"]));
        assert_eq!(literal(&text, 0).unwrap(), "'it''s; DROP TABLE t'");
        let dec: ArrayRef = Arc::new(
            Decimal128Array::from(vec![-1250])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        );
        assert_eq!(literal(&dec, 0).unwrap(), "CAST(-12.50 AS DECIMAL(10, 2))");
        let ts: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![1_500_000]));
        assert_eq!(
            literal(&ts, 0).unwrap(),
            "CAST('1970-01-01 00:00:01.5' AS TIMESTAMP)"
        );
    }

    #[test]
    fn binding_fills_question_marks_in_order() {
        let sql = bind("SELECT ? + ?, '?'", &["1".into(), "2".into()]).unwrap();
        assert_eq!(sql, "SELECT 1 + 2, '?'");
        assert!(bind("SELECT ?", &[]).is_err());
        assert_eq!(parameter_count("SELECT $2"), 2);
    }
}
