//! Event-time watermarks of tables, stored the way Paimon's Flink catalog
//! stores Flink's `WATERMARK FOR ts AS ts - INTERVAL '5' SECOND` clause, so
//! that Flink sees the same watermark: three table options,
//! `schema.watermark.0.rowtime` (the column), `schema.watermark.0.strategy.expr`
//! (the expression as SQL text) and `schema.watermark.0.strategy.data-type`
//! (the column's type).
//!
//! Only the forms a continuous job can evaluate are accepted: `col` and
//! `col - INTERVAL ...` (a fixed delay). Times are handled in microseconds
//! since the epoch; every interval must be a whole number of them.
//!
//! DDL writes and shows these options; `tidelake-stream`'s window jobs read
//! them back with [`watermark_of`] and parse window sizes with
//! [`interval_micros`], so that a table's watermark means the same thing in
//! both crates.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::{DataType as ArrowType, Schema};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, DateTimeField, Expr as SqlExpr, Interval, Value,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{Result, SqlError};

/// The watermark's time column.
pub(crate) const ROWTIME_KEY: &str = "schema.watermark.0.rowtime";
/// The watermark expression as SQL text.
pub(crate) const EXPR_KEY: &str = "schema.watermark.0.strategy.expr";
/// The type of the expression (the column's type).
pub(crate) const DATA_TYPE_KEY: &str = "schema.watermark.0.strategy.data-type";

/// A watermark: `column - delay`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatermarkSpec {
    pub column: String,
    /// Microseconds subtracted from the largest event time seen.
    pub delay_micros: i64,
}

/// Microseconds in one of an interval's units.
fn unit_micros(field: &DateTimeField) -> Option<i64> {
    Some(match field {
        DateTimeField::Day | DateTimeField::Days => 86_400_000_000,
        DateTimeField::Hour | DateTimeField::Hours => 3_600_000_000,
        DateTimeField::Minute | DateTimeField::Minutes => 60_000_000,
        DateTimeField::Second | DateTimeField::Seconds => 1_000_000,
        DateTimeField::Millisecond | DateTimeField::Milliseconds => 1_000,
        DateTimeField::Microsecond | DateTimeField::Microseconds => 1,
        _ => return None,
    })
}

/// The unit a word names (`'5 seconds'` spells its unit inside the string).
fn unit_word_micros(word: &str) -> Option<i64> {
    let field = match word.to_ascii_lowercase().as_str() {
        "day" | "days" => DateTimeField::Day,
        "hour" | "hours" => DateTimeField::Hour,
        "minute" | "minutes" | "min" | "mins" => DateTimeField::Minute,
        "second" | "seconds" | "sec" | "secs" => DateTimeField::Second,
        "millisecond" | "milliseconds" | "ms" => DateTimeField::Millisecond,
        "microsecond" | "microseconds" | "us" => DateTimeField::Microsecond,
        _ => return None,
    };
    unit_micros(&field)
}

/// `amount` (a non-negative decimal such as `5` or `0.001`) of `unit`
/// microseconds, exactly.
fn scaled(amount: &str, unit: i64) -> Option<i64> {
    let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits(whole) || !digits(fraction) || fraction.len() > 9 {
        return None;
    }
    let whole: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let scale = 10i128.pow(fraction.len() as u32);
    let fraction: i128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    let numerator = (whole * scale + fraction).checked_mul(unit as i128)?;
    if numerator % scale != 0 {
        return None;
    }
    i64::try_from(numerator / scale).ok()
}

/// An `INTERVAL 'n' UNIT` (or `INTERVAL 'n unit'`) in microseconds.
pub fn interval_micros(expr: &SqlExpr) -> Result<i64> {
    let bad = |why: &str| {
        SqlError::InvalidParameter(format!(
            "{expr}: {why} (write INTERVAL '5' SECOND, MINUTE, HOUR, DAY or MILLISECOND)"
        ))
    };
    let SqlExpr::Interval(Interval {
        value,
        leading_field,
        last_field: None,
        ..
    }) = expr
    else {
        return Err(bad("expected an interval of one unit"));
    };
    let text = match value.as_ref() {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.trim().to_string(),
            Value::Number(n, _) => n.to_string(),
            _ => return Err(bad("the amount is not a number")),
        },
        _ => return Err(bad("the amount is not a literal")),
    };
    let (amount, unit) = match leading_field {
        Some(field) => (
            text.as_str(),
            unit_micros(field).ok_or_else(|| bad("months and years have no fixed length"))?,
        ),
        None => {
            let mut parts = text.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(amount), Some(unit), None) => (
                    amount,
                    unit_word_micros(unit).ok_or_else(|| bad("unknown unit"))?,
                ),
                _ => return Err(bad("expected an amount and a unit")),
            }
        }
    };
    scaled(amount, unit).ok_or_else(|| bad("not a whole number of microseconds"))
}

/// Reads a watermark expression over `column`: `column` itself, or
/// `column - INTERVAL ...`. Identifiers may be quoted with `"` or with
/// backticks (as Flink writes them).
pub(crate) fn parse_watermark_expr(column: &str, text: &str) -> Result<i64> {
    let expr = Parser::new(&GenericDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| {
            SqlError::InvalidParameter(format!("watermark expression '{text}' does not parse: {e}"))
        })?;
    let is_column = |e: &SqlExpr| match e {
        SqlExpr::Identifier(i) => {
            if i.quote_style.is_some() {
                i.value == column
            } else {
                i.value.eq_ignore_ascii_case(column)
            }
        }
        _ => false,
    };
    let only = || {
        SqlError::Unsupported(format!(
            "watermark expression '{text}': only '{column}' or '{column} - INTERVAL ...' (a fixed delay) is supported"
        ))
    };
    match &expr {
        e if is_column(e) => Ok(0),
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } if is_column(left) => {
            let mut right = right.as_ref();
            while let SqlExpr::Nested(inner) = right {
                right = inner;
            }
            if !matches!(right, SqlExpr::Interval(_)) {
                return Err(only());
            }
            interval_micros(right)
        }
        _ => Err(only()),
    }
}

/// Whether an Arrow type is an event time (TIMESTAMP or TIMESTAMP_LTZ).
pub(crate) fn is_event_time(data_type: &ArrowType) -> bool {
    matches!(data_type, ArrowType::Timestamp(_, _))
}

/// The watermark a table's options declare, checked against its columns.
/// `None` when no `schema.watermark.0.*` option is set.
pub fn watermark_of(
    options: &BTreeMap<String, String>,
    schema: &Schema,
    table: &str,
) -> Result<Option<WatermarkSpec>> {
    let (Some(column), Some(expr)) = (options.get(ROWTIME_KEY), options.get(EXPR_KEY)) else {
        if options.contains_key(ROWTIME_KEY) || options.contains_key(EXPR_KEY) {
            return Err(SqlError::InvalidParameter(format!(
                "table '{table}' sets only one of '{ROWTIME_KEY}' and '{EXPR_KEY}'; a watermark needs both"
            )));
        }
        return Ok(None);
    };
    let column = column.trim().trim_matches('`').to_string();
    let field = schema.field_with_name(&column).map_err(|_| {
        SqlError::UndefinedColumn(format!(
            "the watermark of table '{table}' is on column '{column}', which the table does not have"
        ))
    })?;
    check_event_time_type(
        field.data_type(),
        &field.data_type().to_string(),
        &column,
        table,
    )?;
    let delay_micros = parse_watermark_expr(&column, expr)?;
    Ok(Some(WatermarkSpec {
        column,
        delay_micros,
    }))
}

/// Refuses a watermark on anything but TIMESTAMP / TIMESTAMP_LTZ.
/// (`type_text`: the type as the message names it).
pub fn check_event_time_type(
    data_type: &ArrowType,
    type_text: &str,
    column: &str,
    table: &str,
) -> Result<()> {
    if is_event_time(data_type) {
        Ok(())
    } else {
        Err(SqlError::InvalidParameter(format!(
            "column '{column}' of table '{table}' is {type_text}, not TIMESTAMP or TIMESTAMP_LTZ: a watermark and a window need an event-time column"
        )))
    }
}

/// The table options of `WATERMARK FOR column AS expr` in CREATE TABLE
/// (`type_text`: the column's type as Paimon spells it).
pub(crate) fn watermark_options(
    column: &str,
    expr: &str,
    type_text: &str,
) -> Result<BTreeMap<String, String>> {
    parse_watermark_expr(column, expr)?;
    Ok(BTreeMap::from([
        (ROWTIME_KEY.to_string(), column.to_string()),
        (EXPR_KEY.to_string(), expr.trim().to_string()),
        (DATA_TYPE_KEY.to_string(), type_text.to_string()),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_read_from_the_forms_flink_writes() {
        assert_eq!(parse_watermark_expr("ts", "ts").unwrap(), 0);
        assert_eq!(
            parse_watermark_expr("ts", "ts - INTERVAL '5' SECOND").unwrap(),
            5_000_000
        );
        assert_eq!(
            parse_watermark_expr("ts", "`ts` - INTERVAL '0.001' SECOND").unwrap(),
            1_000
        );
        assert_eq!(
            parse_watermark_expr("Ts", "\"Ts\" - INTERVAL '2' MINUTE").unwrap(),
            120_000_000
        );
        assert_eq!(
            parse_watermark_expr("ts", "TS - (INTERVAL '1' HOUR)").unwrap(),
            3_600_000_000
        );
        assert_eq!(
            parse_watermark_expr("ts", "ts - INTERVAL '3 seconds'").unwrap(),
            3_000_000
        );
    }

    #[test]
    fn other_watermark_forms_are_refused_with_the_text() {
        for (text, needle) in [
            ("ts + INTERVAL '5' SECOND", "only 'ts' or"),
            ("other - INTERVAL '5' SECOND", "only 'ts' or"),
            ("ts - 5", "only 'ts' or"),
            ("ts - INTERVAL '1' MONTH", "no fixed length"),
            ("ts - INTERVAL 'x' SECOND", "not a whole number"),
            ("ts - INTERVAL '-1' SECOND", "not a whole number"),
            ("ts - INTERVAL '0.0000001' SECOND", "not a whole number"),
            ("ts -", "does not parse"),
        ] {
            let message = parse_watermark_expr("ts", text).unwrap_err().to_string();
            assert!(message.contains(needle), "{text}: {message}");
        }
    }

    #[test]
    fn options_name_a_timestamp_column() {
        let schema = Schema::new(vec![
            datafusion::arrow::datatypes::Field::new(
                "ts",
                ArrowType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, None),
                true,
            ),
            datafusion::arrow::datatypes::Field::new("n", ArrowType::Int64, true),
        ]);
        let options = watermark_options("ts", "ts - INTERVAL '5' SECOND", "TIMESTAMP(3)").unwrap();
        assert_eq!(options[ROWTIME_KEY], "ts");
        assert_eq!(options[DATA_TYPE_KEY], "TIMESTAMP(3)");
        assert_eq!(
            watermark_of(&options, &schema, "db.t").unwrap(),
            Some(WatermarkSpec {
                column: "ts".into(),
                delay_micros: 5_000_000
            })
        );
        assert_eq!(
            watermark_of(&BTreeMap::new(), &schema, "db.t").unwrap(),
            None
        );
        let mut on_number = options.clone();
        on_number.insert(ROWTIME_KEY.into(), "n".into());
        on_number.insert(EXPR_KEY.into(), "n".into());
        let message = watermark_of(&on_number, &schema, "db.t")
            .unwrap_err()
            .to_string();
        assert!(message.contains("not TIMESTAMP"), "{message}");
        let mut half = BTreeMap::new();
        half.insert(ROWTIME_KEY.to_string(), "ts".to_string());
        assert!(watermark_of(&half, &schema, "db.t").is_err());
    }
}
