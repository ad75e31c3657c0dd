//! Arrow values as text: PostgreSQL's text format of each type and JSON
//! (for nested values on the wire and for every value over HTTP). Both
//! front ends use these, so a value reads the same whichever way it comes.

use std::fmt::Write;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryViewArray, BooleanArray, FixedSizeBinaryArray,
    LargeBinaryArray, LargeStringArray, StringArray, StringViewArray,
};
use arrow::datatypes::{
    i256, DataType, Date32Type, Date64Type, Decimal128Type, Decimal256Type, Float16Type,
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit, UInt16Type,
    UInt32Type, UInt64Type, UInt8Type,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{DateTime, NaiveDate, NaiveTime};

/// Microseconds of a timestamp value in `unit`.
pub(crate) fn timestamp_micros(value: i64, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => value.saturating_mul(1_000_000),
        TimeUnit::Millisecond => value.saturating_mul(1_000),
        TimeUnit::Microsecond => value,
        TimeUnit::Nanosecond => value.div_euclid(1_000),
    }
}

/// Microseconds since midnight of a time value.
pub(crate) fn time_micros(array: &ArrayRef, row: usize) -> Option<i64> {
    Some(match array.data_type() {
        DataType::Time32(TimeUnit::Second) => {
            i64::from(array.as_primitive::<Time32SecondType>().value(row)) * 1_000_000
        }
        DataType::Time32(_) => {
            i64::from(array.as_primitive::<Time32MillisecondType>().value(row)) * 1_000
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            array.as_primitive::<Time64MicrosecondType>().value(row)
        }
        DataType::Time64(_) => array.as_primitive::<Time64NanosecondType>().value(row) / 1_000,
        _ => return None,
    })
}

/// Days since 1970-01-01 of a date value.
pub(crate) fn date_days(array: &ArrayRef, row: usize) -> Option<i64> {
    Some(match array.data_type() {
        DataType::Date32 => i64::from(array.as_primitive::<Date32Type>().value(row)),
        DataType::Date64 => array
            .as_primitive::<Date64Type>()
            .value(row)
            .div_euclid(86_400_000),
        _ => return None,
    })
}

/// The unscaled digits of a decimal with `scale`, as exact text (`-12.50`).
pub(crate) fn decimal_text(unscaled: &str, scale: i8) -> String {
    let (sign, digits) = match unscaled.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", unscaled),
    };
    if scale <= 0 {
        let zeros = "0".repeat(scale.unsigned_abs() as usize);
        return if digits == "0" {
            "0".into()
        } else {
            format!("{sign}{digits}{zeros}")
        };
    }
    let scale = scale as usize;
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits.to_string()
    };
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// A decimal value as exact text.
pub(crate) fn decimal_value(array: &ArrayRef, row: usize) -> Option<String> {
    match array.data_type() {
        DataType::Decimal128(_, scale) => Some(decimal_text(
            &array
                .as_primitive::<Decimal128Type>()
                .value(row)
                .to_string(),
            *scale,
        )),
        DataType::Decimal256(_, scale) => {
            let v: i256 = array.as_primitive::<Decimal256Type>().value(row);
            Some(decimal_text(&v.to_string(), *scale))
        }
        _ => None,
    }
}

/// `2026-11-01 10:00:00.5` (no trailing zeros in the fraction), as PostgreSQL prints.
pub(crate) fn timestamp_text(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    match DateTime::from_timestamp(secs, 0) {
        Some(t) => format!("{}{}", t.format("%Y-%m-%d %H:%M:%S"), fraction(frac)),
        None => micros.to_string(),
    }
}

fn fraction(micros: i64) -> String {
    if micros == 0 {
        String::new()
    } else {
        let text = format!(".{micros:06}");
        text.trim_end_matches('0').to_string()
    }
}

pub(crate) fn date_text(days: i64) -> String {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(days)))
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| days.to_string())
}

pub(crate) fn time_text(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    NaiveTime::from_num_seconds_from_midnight_opt(secs as u32, 0)
        .map(|t| format!("{}{}", t.format("%H:%M:%S"), fraction(micros % 1_000_000)))
        .unwrap_or_else(|| micros.to_string())
}

/// A float as PostgreSQL writes it (shortest text that reads back the same).
pub(crate) fn float_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        v.to_string()
    }
}

fn float_text32(v: f32) -> String {
    if v.is_finite() {
        v.to_string()
    } else {
        float_text(f64::from(v))
    }
}

/// The bytes of a binary-like value.
pub(crate) fn binary_value(array: &ArrayRef, row: usize) -> Option<&[u8]> {
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<BinaryArray>() {
        return Some(a.value(row));
    }
    if let Some(a) = any.downcast_ref::<LargeBinaryArray>() {
        return Some(a.value(row));
    }
    if let Some(a) = any.downcast_ref::<BinaryViewArray>() {
        return Some(a.value(row));
    }
    any.downcast_ref::<FixedSizeBinaryArray>()
        .map(|a| a.value(row))
}

/// The text of a string-like value.
pub(crate) fn string_value(array: &ArrayRef, row: usize) -> Option<&str> {
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        return Some(a.value(row));
    }
    if let Some(a) = any.downcast_ref::<LargeStringArray>() {
        return Some(a.value(row));
    }
    any.downcast_ref::<StringViewArray>().map(|a| a.value(row))
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A non-null value in PostgreSQL's text format; nested values as JSON.
pub(crate) fn pg_text(array: &ArrayRef, row: usize) -> String {
    match array.data_type() {
        DataType::Boolean => {
            let b = array.as_any().downcast_ref::<BooleanArray>();
            if b.is_some_and(|b| b.value(row)) {
                "t"
            } else {
                "f"
            }
            .into()
        }
        DataType::Float16 => float_text(f64::from(
            array.as_primitive::<Float16Type>().value(row).to_f32(),
        )),
        DataType::Float32 => float_text32(array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => float_text(array.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(..) | DataType::Decimal256(..) => {
            decimal_value(array, row).unwrap_or_default()
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            string_value(array, row).unwrap_or_default().to_string()
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            format!("\\x{}", hex(binary_value(array, row).unwrap_or_default()))
        }
        DataType::Date32 | DataType::Date64 => date_text(date_days(array, row).unwrap_or(0)),
        DataType::Time32(_) | DataType::Time64(_) => {
            time_text(time_micros(array, row).unwrap_or(0))
        }
        DataType::Timestamp(unit, tz) => {
            let micros = timestamp_micros(array.as_primitive_opt_ts(row), *unit);
            let text = timestamp_text(micros);
            if tz.is_some() {
                format!("{text}+00")
            } else {
                text
            }
        }
        t if is_nested(t) => {
            let mut out = String::new();
            json_value(array, row, &mut out);
            out
        }
        _ => display(array, row),
    }
}

/// Types sent as JSON text.
pub(crate) fn is_nested(t: &DataType) -> bool {
    matches!(
        t,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::ListView(_)
            | DataType::LargeListView(_)
            | DataType::FixedSizeList(..)
            | DataType::Struct(_)
            | DataType::Map(..)
            | DataType::Union(..)
    )
}

/// Arrow's own display of a value (intervals, durations, and anything rare).
fn display(array: &ArrayRef, row: usize) -> String {
    let options = FormatOptions::default();
    match ArrayFormatter::try_new(array.as_ref(), &options) {
        Ok(f) => f.value(row).to_string(),
        Err(_) => String::new(),
    }
}

trait TimestampValue {
    fn as_primitive_opt_ts(&self, row: usize) -> i64;
}

impl TimestampValue for ArrayRef {
    /// The raw i64 of a timestamp array of any unit.
    fn as_primitive_opt_ts(&self, row: usize) -> i64 {
        use arrow::datatypes::{
            TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
            TimestampSecondType,
        };
        match self.data_type() {
            DataType::Timestamp(TimeUnit::Second, _) => {
                self.as_primitive::<TimestampSecondType>().value(row)
            }
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                self.as_primitive::<TimestampMillisecondType>().value(row)
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                self.as_primitive::<TimestampMicrosecondType>().value(row)
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                self.as_primitive::<TimestampNanosecondType>().value(row)
            }
            _ => 0,
        }
    }
}

/// Microseconds since the epoch of a timestamp value.
pub(crate) fn timestamp_value(array: &ArrayRef, row: usize) -> Option<i64> {
    match array.data_type() {
        DataType::Timestamp(unit, _) => {
            Some(timestamp_micros(array.as_primitive_opt_ts(row), *unit))
        }
        _ => None,
    }
}

fn json_string(s: &str, out: &mut String) {
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("null"),
    }
}

/// Whether a value is NULL (a `Null`-typed column has no validity buffer).
pub(crate) fn is_null(array: &ArrayRef, row: usize) -> bool {
    array.is_null(row) || array.data_type() == &DataType::Null
}

/// Writes one value as JSON: NULL as `null`, integers and decimals as
/// numbers with their exact digits, floats as numbers (or the strings
/// "NaN", "Infinity", "-Infinity"), temporal values as ISO-8601 strings,
/// binary as a `\x…` hex string, lists as arrays, structs and maps as
/// objects.
pub(crate) fn json_value(array: &ArrayRef, row: usize, out: &mut String) {
    if is_null(array, row) {
        out.push_str("null");
        return;
    }
    macro_rules! int {
        ($t:ty) => {{
            let _ = write!(out, "{}", array.as_primitive::<$t>().value(row));
        }};
    }
    match array.data_type() {
        DataType::Null => out.push_str("null"),
        DataType::Boolean => out.push_str(if pg_text(array, row) == "t" {
            "true"
        } else {
            "false"
        }),
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let text = pg_text(array, row);
            if text.parse::<f64>().is_ok_and(f64::is_finite) {
                out.push_str(&text);
            } else {
                json_string(&text, out);
            }
        }
        DataType::Decimal128(..) | DataType::Decimal256(..) => {
            out.push_str(&decimal_value(array, row).unwrap_or_else(|| "null".into()))
        }
        DataType::Timestamp(_, tz) => {
            let text =
                timestamp_text(timestamp_value(array, row).unwrap_or(0)).replacen(' ', "T", 1);
            json_string(&if tz.is_some() { text + "Z" } else { text }, out);
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            let values = list_values(array, row);
            json_array(values.as_ref(), out);
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            out.push('{');
            for (i, (field, column)) in fields.iter().zip(s.columns()).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(field.name(), out);
                out.push(':');
                json_value(column, row, out);
            }
            out.push('}');
        }
        DataType::Map(..) => {
            let map = array.as_map();
            let entries = map.value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            out.push('{');
            for i in 0..entries.len() {
                if i > 0 {
                    out.push(',');
                }
                let key = if keys.is_null(i) {
                    "null".to_string()
                } else {
                    pg_text(keys, i)
                };
                json_string(&key, out);
                out.push(':');
                json_value(values, i, out);
            }
            out.push('}');
        }
        _ => json_string(&pg_text(array, row), out),
    }
}

fn list_values(array: &ArrayRef, row: usize) -> Option<ArrayRef> {
    match array.data_type() {
        DataType::List(_) => Some(array.as_list::<i32>().value(row)),
        DataType::LargeList(_) => Some(array.as_list::<i64>().value(row)),
        DataType::FixedSizeList(..) => Some(array.as_fixed_size_list().value(row)),
        _ => None,
    }
}

fn json_array(values: Option<&ArrayRef>, out: &mut String) {
    out.push('[');
    if let Some(values) = values {
        for i in 0..values.len() {
            if i > 0 {
                out.push(',');
            }
            json_value(values, i, out);
        }
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_their_digits() {
        assert_eq!(decimal_text("1250", 2), "12.50");
        assert_eq!(decimal_text("-5", 2), "-0.05");
        assert_eq!(decimal_text("0", 3), "0.000");
        assert_eq!(decimal_text("12", -2), "1200");
        assert_eq!(
            decimal_text("12345678901234567890123456789012345678", 10),
            "1234567890123456789012345678.9012345678"
        );
    }

    #[test]
    fn timestamps_print_like_postgres() {
        assert_eq!(timestamp_text(0), "1970-01-01 00:00:00");
        assert_eq!(timestamp_text(1_500_000), "1970-01-01 00:00:01.5");
        assert_eq!(timestamp_text(-1), "1969-12-31 23:59:59.999999");
        assert_eq!(date_text(-1), "1969-12-31");
        assert_eq!(time_text(3_600_000_001), "01:00:00.000001");
    }
}
