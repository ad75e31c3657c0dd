//! Partition directory names: `k1=v1/k2=v2/` under the table root.
//!
//! Paimon renders each value with its partition computer (Java
//! `InternalRowPartitionComputer`, pypaimon `FileStorePathFactory`) and then
//! escapes keys and values with `PartitionPathUtils.escapePathName`. The
//! rendering depends on the table option `partition.legacy-name`, which
//! defaults to true:
//!
//! | type | legacy (default) | `partition.legacy-name` = false |
//! |---|---|---|
//! | DATE | days since epoch (`19797`) | `2024-03-15` |
//! | TIME | millis of day (`3723400`) | `01:02:03[.f]` by precision |
//! | TIMESTAMP | `2024-03-15T13:45[:30[.123]]` (Java `LocalDateTime.toString`) | `2024-03-15 13:45:30.123000` (padded to the precision) |
//! | DECIMAL | plain (`12.500`) | same |
//! | FLOAT/DOUBLE | Java `Float/Double.toString` (`1.5`, `1.0E10`) | same |
//! | BOOLEAN, integers, strings | as is | same |
//!
//! Readers find data files by recomputing this path from the partition row,
//! so it must match byte for byte.

use std::fmt;

use crate::binary_row::{normalize, type_name, Datum, ValueRef};
use crate::error::{FormatError, Result};
use crate::types::{DataType, DataTypeKind};

const MILLIS_PER_DAY: i64 = 86_400_000;
const NANOS_PER_MILLI: i64 = 1_000_000;

/// Paimon's default for `partition.default-name`.
pub const DEFAULT_PARTITION_NAME: &str = "__DEFAULT_PARTITION__";

/// "k1=v1/k2=v2/" (trailing slash) for a partition, "" for an unpartitioned
/// table. NULL (or empty or whitespace-only string) values use
/// `default_name`. Values are rendered as Paimon does with its default
/// `partition.legacy-name = true` (see the module docs; use
/// [`partition_path_with_legacy_name`] for tables that set it to false), then
/// escaped like `PartitionPathUtils.escapePathName`.
pub fn partition_path(
    keys: &[String],
    values: &[Datum],
    types: &[DataType],
    default_name: &str,
) -> Result<String> {
    partition_path_with_legacy_name(keys, values, types, default_name, true)
}

/// [`partition_path`] for a given `partition.legacy-name` option.
pub fn partition_path_with_legacy_name(
    keys: &[String],
    values: &[Datum],
    types: &[DataType],
    default_name: &str,
    legacy_name: bool,
) -> Result<String> {
    if keys.len() != values.len() || keys.len() != types.len() {
        return Err(FormatError::Invalid(format!(
            "partition path needs as many values and types as keys: {} keys, {} values, {} types",
            keys.len(),
            values.len(),
            types.len()
        )));
    }
    if default_name.is_empty() {
        return Err(FormatError::Invalid(
            "partition default name is empty".to_string(),
        ));
    }
    let mut path = String::new();
    for ((key, value), ty) in keys.iter().zip(values).zip(types) {
        if key.is_empty() {
            return Err(FormatError::Invalid(
                "partition key name is empty".to_string(),
            ));
        }
        let text = partition_value_string(value, ty, legacy_name)?
            .filter(|text| !is_java_whitespace_only(text));
        path.push_str(&escape_path_name(key));
        path.push('=');
        path.push_str(&escape_path_name(text.as_deref().unwrap_or(default_name)));
        path.push('/');
    }
    Ok(path)
}

/// The unescaped text Paimon uses for one partition value, None for NULL
/// (the caller substitutes the default partition name, as it also does for
/// empty and whitespace-only strings).
pub fn partition_value_string(
    value: &Datum,
    ty: &DataType,
    legacy_name: bool,
) -> Result<Option<String>> {
    use DataTypeKind as K;
    let value = normalize(value.as_value_ref(), ty)?;
    let text = match value {
        ValueRef::Null => return Ok(None),
        ValueRef::Boolean(v) => v.to_string(),
        ValueRef::Integer(v) => v.to_string(),
        ValueRef::Float(v) => java_float_to_string(v),
        ValueRef::Double(v) => java_double_to_string(v),
        ValueRef::Decimal(unscaled, scale) => decimal_plain_string(unscaled, scale),
        ValueRef::Text(v) => v.to_string(),
        ValueRef::Bytes(v) => {
            if legacy_name {
                // Java would print the byte array's identity, which no reader can recompute.
                return Err(FormatError::Unsupported(format!(
                    "{} partition values with partition.legacy-name = true",
                    type_name(ty)
                )));
            }
            String::from_utf8_lossy(v).into_owned()
        }
        ValueRef::Date(days) if legacy_name => days.to_string(),
        ValueRef::Date(days) => format_date(days),
        ValueRef::Time(millis) if legacy_name => millis.to_string(),
        ValueRef::Time(millis) => {
            let precision = match ty.kind {
                K::Time(p) => p,
                _ => 0,
            };
            format_time_with_precision(millis, precision)
        }
        ValueRef::Timestamp(millis, nanos_of_milli) if legacy_name => {
            java_local_date_time_string(millis, nanos_of_milli).ok_or_else(|| {
                FormatError::ValueMismatch {
                    ty: type_name(ty),
                    message: format!("timestamp {millis} ms is out of range"),
                }
            })?
        }
        ValueRef::Timestamp(millis, nanos_of_milli) => {
            // TIMESTAMP WITH LOCAL TIME ZONE renders in UTC: Java uses the JVM's zone.
            let precision = match ty.kind {
                K::Timestamp(p) | K::TimestampLtz(p) => p as usize,
                _ => 0,
            };
            format_timestamp_sql(millis, nanos_of_milli, precision)
        }
    };
    Ok(Some(text))
}

/// Whether a byte is escaped in partition path components (Paimon's
/// `PartitionPathUtils.CHAR_TO_ESCAPE`; only ASCII is ever escaped).
fn needs_escaping(c: char) -> bool {
    matches!(
        c,
        '\u{0}'
            ..='\u{1F}'
                | '"'
                | '#'
                | '%'
                | '\''
                | '*'
                | '/'
                | ':'
                | '='
                | '?'
                | '\\'
                | '\u{7F}'
                | '{'
                | '}'
                | '['
                | ']'
                | '^'
    )
}

/// Escapes a partition key or value: each special ASCII character becomes
/// `%XX` (upper-case hex); everything else, spaces and non-ASCII included,
/// stays as is.
pub fn escape_path_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if needs_escaping(c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The inverse of the escaping: `%XX` with two hex digits becomes the
/// character U+00XX (as Java's `(char) code`); anything else stays.
pub fn unescape_path_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let hex = after
            .get(..2)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(code) => {
                out.push(char::from(code));
                rest = &after[2..];
            }
            None => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Java's `Character.isWhitespace` over every char (and true when empty).
fn is_java_whitespace_only(s: &str) -> bool {
    s.chars().all(|c| {
        matches!(
            c,
            '\t' | '\n' | '\u{B}' | '\u{C}' | '\r' | '\u{1C}'..='\u{1F}'
        ) || (c.is_whitespace()
            && !matches!(c, '\u{85}' | '\u{A0}' | '\u{2007}' | '\u{202F}')
            && !c.is_ascii_control())
    })
}

/// Java's `LocalDateTime.toString()`: `yyyy-MM-ddTHH:mm`, then `:ss` when
/// seconds or nanos are non-zero, then 3, 6 or 9 fraction digits as needed.
fn java_local_date_time_string(millis: i64, nanos_of_milli: i32) -> Option<String> {
    use chrono::{Datelike, Timelike};
    let (date_time, nano) = timestamp_parts(millis, nanos_of_milli)?;
    let year = date_time.year();
    let year = if year.abs() < 1000 {
        format!("{}{:04}", if year < 0 { "-" } else { "" }, year.abs())
    } else if year > 9999 {
        format!("+{year}")
    } else {
        year.to_string()
    };
    let mut text = format!(
        "{year}-{:02}-{:02}T{:02}:{:02}",
        date_time.month(),
        date_time.day(),
        date_time.hour(),
        date_time.minute()
    );
    let second = date_time.second();
    if second > 0 || nano > 0 {
        text.push_str(&format!(":{second:02}"));
        if nano % 1_000_000 == 0 && nano > 0 {
            text.push_str(&format!(".{:03}", nano / 1_000_000));
        } else if nano % 1000 == 0 && nano > 0 {
            text.push_str(&format!(".{:06}", nano / 1000));
        } else if nano > 0 {
            text.push_str(&format!(".{nano:09}"));
        }
    }
    Some(text)
}

/// Paimon's TIME-to-string cast (`DateTimeUtils.formatTimestampMillis`):
/// `HH:mm:ss`, then for precision > 0 millisecond digits until only zeros
/// are left, always at least one (`00:00:00.0`).
fn format_time_with_precision(millis: i32, precision: u32) -> String {
    let total = millis.rem_euclid(86_400_000);
    let seconds = total / 1000;
    let mut text = format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if precision > 0 {
        text.push('.');
        let mut rest = total % 1000;
        let mut digits_left = precision;
        while digits_left > 0 {
            text.push(char::from(b'0' + (rest / 100) as u8));
            rest = rest % 100 * 10;
            if rest == 0 {
                break;
            }
            digits_left -= 1;
        }
    }
    text
}

/// Java's `Float.toString` (JDK 19+ shortest form).
pub fn java_float_to_string(value: f32) -> String {
    java_floating_string(
        f64::from(value),
        value.is_nan(),
        value.is_infinite(),
        format!("{value:e}"),
        format!("{value:.1e}"),
        |text| text.parse::<f32>().is_ok_and(|parsed| parsed == value),
    )
}

/// Java's `Double.toString` (JDK 19+ shortest form).
pub fn java_double_to_string(value: f64) -> String {
    java_floating_string(
        value,
        value.is_nan(),
        value.is_infinite(),
        format!("{value:e}"),
        format!("{value:.1e}"),
        |text| text.parse::<f64>().is_ok_and(|parsed| parsed == value),
    )
}

/// Lays out shortest digits the way Java does: plain for 1e-3 <= |v| < 1e7
/// (at least one fraction digit), else `d.dddE[-]n`. Java picks the closest
/// two-digit decimal when a one-digit one is shortest (`4.9E-324`).
fn java_floating_string(
    value: f64,
    is_nan: bool,
    is_infinite: bool,
    shortest: String,
    two_digits: String,
    round_trips: impl Fn(&str) -> bool,
) -> String {
    if is_nan {
        return "NaN".to_string();
    }
    if is_infinite {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .to_string();
    }
    let (sign, shortest) = match shortest.strip_prefix('-') {
        Some(rest) => ("-", rest.to_string()),
        None => ("", shortest),
    };
    let (mut digits, mut exponent) = split_scientific(&shortest);
    if digits.len() == 1 && round_trips(&two_digits) {
        let (two, two_exponent) = split_scientific(two_digits.trim_start_matches('-'));
        digits = two.trim_end_matches('0').to_string();
        if digits.is_empty() {
            digits.push('0');
        }
        exponent = two_exponent;
    }
    let text = if (-3..7).contains(&exponent) {
        if exponent >= 0 {
            let int_len = exponent as usize + 1;
            let padded = format!("{digits:0<int_len$}");
            let (int_part, frac_part) = padded.split_at(int_len);
            format!(
                "{int_part}.{}",
                if frac_part.is_empty() { "0" } else { frac_part }
            )
        } else {
            format!("0.{}{digits}", "0".repeat((-exponent - 1) as usize))
        }
    } else {
        let (first, rest) = digits.split_at(1);
        format!(
            "{first}.{}E{exponent}",
            if rest.is_empty() { "0" } else { rest }
        )
    };
    format!("{sign}{text}")
}

/// "1.2345e-5" into ("12345", -5).
fn split_scientific(text: &str) -> (String, i32) {
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exponent.parse().unwrap_or(0))
}

// ---------------------------------------------------------------------------
// Rendering values as text, shared with `binary_row` and `Display`.

/// A readable, SQL-like rendering: `NULL`, numbers, decimals in plain
/// notation, strings as they are, bytes as `X'0A1B'`, dates `yyyy-MM-dd`,
/// times `HH:mm:ss[.fff]`, timestamps `yyyy-MM-dd HH:mm:ss[.fraction]`.
impl fmt::Display for Datum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Datum::Null => f.write_str("NULL"),
            Datum::Boolean(v) => write!(f, "{v}"),
            Datum::TinyInt(v) => write!(f, "{v}"),
            Datum::SmallInt(v) => write!(f, "{v}"),
            Datum::Int(v) => write!(f, "{v}"),
            Datum::BigInt(v) => write!(f, "{v}"),
            Datum::Float(v) => write!(f, "{v}"),
            Datum::Double(v) => write!(f, "{v}"),
            Datum::Decimal {
                unscaled, scale, ..
            } => f.write_str(&decimal_plain_string(*unscaled, *scale)),
            Datum::String(v) => f.write_str(v),
            Datum::Bytes(v) => {
                f.write_str("X'")?;
                for byte in v {
                    write!(f, "{byte:02X}")?;
                }
                f.write_str("'")
            }
            Datum::Date(days) => f.write_str(&format_date(*days)),
            Datum::Time(millis) => f.write_str(&format_time_of_day(*millis, 3)),
            Datum::Timestamp {
                millis,
                nanos_of_milli,
            } => f.write_str(&format_timestamp_sql(*millis, *nanos_of_milli, 0)),
        }
    }
}

/// A decimal in plain notation, as Java's `BigDecimal.toPlainString`.
pub(crate) fn decimal_plain_string(unscaled: i128, scale: u32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    let scale = scale as usize;
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    if digits.len() > scale {
        let (int_part, frac_part) = digits.split_at(digits.len() - scale);
        format!("{sign}{int_part}.{frac_part}")
    } else {
        format!("{sign}0.{}{digits}", "0".repeat(scale - digits.len()))
    }
}

/// Days since the epoch as `yyyy-MM-dd` (the day number when out of range).
pub(crate) fn format_date(days: i32) -> String {
    match chrono::NaiveDate::from_num_days_from_ce_opt(days.saturating_add(719_163)) {
        Some(date) => format!("{}", date.format("%Y-%m-%d")),
        None => days.to_string(),
    }
}

/// Milliseconds of the day as `HH:mm:ss` plus up to `max_fraction_digits`
/// digits of milliseconds (trailing zeros dropped).
pub(crate) fn format_time_of_day(millis: i32, max_fraction_digits: usize) -> String {
    let total = i64::from(millis).rem_euclid(MILLIS_PER_DAY);
    let (seconds, milli) = (total / 1000, total % 1000);
    let base = format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    let fraction = format!("{milli:03}");
    let fraction = fraction[..max_fraction_digits.min(3)].trim_end_matches('0');
    if fraction.is_empty() {
        base
    } else {
        format!("{base}.{fraction}")
    }
}

/// The UTC date-time of a timestamp and its nanosecond of the second; None
/// when out of chrono's range.
pub(crate) fn timestamp_parts(
    millis: i64,
    nanos_of_milli: i32,
) -> Option<(chrono::NaiveDateTime, u32)> {
    let date_time = chrono::DateTime::from_timestamp_millis(millis)?.naive_utc();
    let nano = (millis.rem_euclid(1000) * NANOS_PER_MILLI + i64::from(nanos_of_milli)) as u32;
    Some((date_time, nano))
}

/// `yyyy-MM-dd HH:mm:ss[.fraction]` with the nine-digit fraction stripped of
/// trailing zeros down to `min_fraction_digits` (Paimon's
/// `DateTimeUtils.formatTimestamp(ts, precision)`).
pub(crate) fn format_timestamp_sql(
    millis: i64,
    nanos_of_milli: i32,
    min_fraction_digits: usize,
) -> String {
    let Some((date_time, nano)) = timestamp_parts(millis, nanos_of_milli) else {
        return format!("{millis}ms");
    };
    let mut fraction = format!("{nano:09}");
    while fraction.len() > min_fraction_digits && fraction.ends_with('0') {
        fraction.pop();
    }
    let base = date_time.format("%Y-%m-%d %H:%M:%S").to_string();
    if fraction.is_empty() {
        base
    } else {
        format!("{base}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::MAX_LENGTH;
    use proptest::prelude::*;

    use DataTypeKind as K;

    fn t(kind: DataTypeKind) -> DataType {
        DataType::new(kind, true)
    }

    fn ts(millis: i64, nanos_of_milli: i32) -> Datum {
        Datum::Timestamp {
            millis,
            nanos_of_milli,
        }
    }

    fn dec(unscaled: i128) -> Datum {
        Datum::Decimal {
            unscaled,
            precision: 10,
            scale: 3,
        }
    }

    /// Directories pypaimon 2.1 created for these partitions, with default options and
    /// with `partition.legacy-name = false`.
    #[test]
    fn matches_pypaimon_directories() {
        let keys: Vec<String> = ["s", "i", "b", "d", "ts", "dec", "f"]
            .map(String::from)
            .to_vec();
        let types = [
            t(K::VarChar(MAX_LENGTH)),
            t(K::Int),
            t(K::Boolean),
            t(K::Date),
            t(K::Timestamp(6)),
            t(K::Decimal {
                precision: 10,
                scale: 3,
            }),
            t(K::Double),
        ];
        let s = |v: &str| Datum::String(v.to_string());
        let rows = [
            (
                vec![s("a/b:c=d"), Datum::Int(1), Datum::Boolean(true), Datum::Date(19797), ts(1710510300000, 0), dec(12500), Datum::Double(1.5)],
                "s=a%2Fb%3Ac%3Dd/i=1/b=true/d=19797/ts=2024-03-15T13%3A45/dec=12.500/f=1.5/",
                "s=a%2Fb%3Ac%3Dd/i=1/b=true/d=2024-03-15/ts=2024-03-15 13%3A45%3A00.000000/dec=12.500/f=1.5/",
            ),
            (
                vec![Datum::Null, Datum::Null, Datum::Boolean(false), Datum::Date(0), ts(1710510330000, 0), dec(-1), Datum::Double(1e10)],
                "s=__DEFAULT_PARTITION__/i=__DEFAULT_PARTITION__/b=false/d=0/ts=2024-03-15T13%3A45%3A30/dec=-0.001/f=1.0E10/",
                "s=__DEFAULT_PARTITION__/i=__DEFAULT_PARTITION__/b=false/d=1970-01-01/ts=2024-03-15 13%3A45%3A30.000000/dec=-0.001/f=1.0E10/",
            ),
            (
                vec![s(""), Datum::Int(-3), Datum::Null, Datum::Null, ts(1710510330123, 0), dec(0), Datum::Double(0.0001)],
                "s=__DEFAULT_PARTITION__/i=-3/b=__DEFAULT_PARTITION__/d=__DEFAULT_PARTITION__/ts=2024-03-15T13%3A45%3A30.123/dec=0.000/f=1.0E-4/",
                "s=__DEFAULT_PARTITION__/i=-3/b=__DEFAULT_PARTITION__/d=__DEFAULT_PARTITION__/ts=2024-03-15 13%3A45%3A30.123000/dec=0.000/f=1.0E-4/",
            ),
            (
                vec![s("Ünï cödé %#?"), Datum::Int(4), Datum::Boolean(true), Datum::Date(-1), ts(1710510330123, 456000), Datum::Null, Datum::Double(123456789.0)],
                "s=Ünï cödé %25%23%3F/i=4/b=true/d=-1/ts=2024-03-15T13%3A45%3A30.123456/dec=__DEFAULT_PARTITION__/f=1.23456789E8/",
                "s=Ünï cödé %25%23%3F/i=4/b=true/d=1969-12-31/ts=2024-03-15 13%3A45%3A30.123456/dec=__DEFAULT_PARTITION__/f=1.23456789E8/",
            ),
            (
                vec![s(" "), Datum::Int(5), Datum::Boolean(false), Datum::Date(11016), Datum::Null, dec(1234567000), Datum::Null],
                "s=__DEFAULT_PARTITION__/i=5/b=false/d=11016/ts=__DEFAULT_PARTITION__/dec=1234567.000/f=__DEFAULT_PARTITION__/",
                "s=__DEFAULT_PARTITION__/i=5/b=false/d=2000-02-29/ts=__DEFAULT_PARTITION__/dec=1234567.000/f=__DEFAULT_PARTITION__/",
            ),
        ];
        for (values, legacy, cast) in rows {
            assert_eq!(
                partition_path(&keys, &values, &types, DEFAULT_PARTITION_NAME).unwrap(),
                legacy
            );
            let path = partition_path_with_legacy_name(
                &keys,
                &values,
                &types,
                DEFAULT_PARTITION_NAME,
                false,
            );
            assert_eq!(path.unwrap(), cast);
        }
        let keys: Vec<String> = ["ts3", "t", "f32"].map(String::from).to_vec();
        let types = [t(K::Timestamp(3)), t(K::Time(0)), t(K::Float)];
        let rows = [
            (
                vec![
                    ts(1704164645006, 0),
                    Datum::Time(3723400),
                    Datum::Float(0.1),
                ],
                "ts3=2024-01-02T03%3A04%3A05.006/t=3723400/f32=0.1/",
                "ts3=2024-01-02 03%3A04%3A05.006/t=01%3A02%3A03/f32=0.1/",
            ),
            (
                vec![ts(1704164640000, 0), Datum::Time(0), Datum::Float(-2.5)],
                "ts3=2024-01-02T03%3A04/t=0/f32=-2.5/",
                "ts3=2024-01-02 03%3A04%3A00.000/t=00%3A00%3A00/f32=-2.5/",
            ),
        ];
        for (values, legacy, cast) in rows {
            assert_eq!(
                partition_path(&keys, &values, &types, DEFAULT_PARTITION_NAME).unwrap(),
                legacy
            );
            let path = partition_path_with_legacy_name(
                &keys,
                &values,
                &types,
                DEFAULT_PARTITION_NAME,
                false,
            );
            assert_eq!(path.unwrap(), cast);
        }
    }

    #[test]
    fn renders_edge_values_like_java() {
        let render = |value: Datum, kind: DataTypeKind, legacy: bool| {
            partition_value_string(&value, &t(kind), legacy)
                .unwrap()
                .unwrap()
        };
        // LocalDateTime.toString: 9 digits when the micros are not whole, years padded.
        assert_eq!(
            render(ts(0, 1), K::Timestamp(9), true),
            "1970-01-01T00:00:00.000000001"
        );
        assert_eq!(
            render(ts(-62135596800000, 0), K::Timestamp(3), true),
            "0001-01-01T00:00"
        );
        assert_eq!(
            render(ts(-1, 999_999), K::Timestamp(9), false),
            "1969-12-31 23:59:59.999999999"
        );
        assert_eq!(
            render(ts(1500, 0), K::TimestampLtz(3), false),
            "1970-01-01 00:00:01.500"
        );
        // DateTimeUtils.formatTimestampMillis keeps at least one digit and stops at zeros.
        assert_eq!(render(Datum::Time(0), K::Time(3), false), "00:00:00.0");
        assert_eq!(
            render(Datum::Time(3_723_400), K::Time(3), false),
            "01:02:03.4"
        );
        assert_eq!(render(Datum::Time(101), K::Time(2), false), "00:00:00.10");
        assert_eq!(
            render(Datum::Bytes(b"raw".to_vec()), K::VarBinary(9), false),
            "raw"
        );
        assert!(partition_value_string(&Datum::Bytes(vec![1]), &t(K::VarBinary(9)), true).is_err());
        assert_eq!(render(Datum::Int(7), K::BigInt, true), "7");
        assert_eq!(
            partition_value_string(&Datum::Null, &t(K::Int), true).unwrap(),
            None
        );
    }

    #[test]
    fn formats_floats_like_java() {
        let doubles = [
            (1.5, "1.5"),
            (100.0, "100.0"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (9999999.0, "9999999.0"),
            (1e7, "1.0E7"),
            (123456789.0, "1.23456789E8"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (f64::MAX, "1.7976931348623157E308"),
            (5e-324, "4.9E-324"),
            (1e23, "1.0E23"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
            (-12.25, "-12.25"),
            (0.1 + 0.2, "0.30000000000000004"),
        ];
        for (value, text) in doubles {
            assert_eq!(java_double_to_string(value), text, "{value:e}");
        }
        let floats = [
            (0.1f32, "0.1"),
            (1.4e-45, "1.4E-45"),
            (3.4028235e38, "3.4028235E38"),
            (1e10, "1.0E10"),
        ];
        for (value, text) in floats {
            assert_eq!(java_float_to_string(value), text, "{value:e}");
        }
    }

    #[test]
    fn validates_arguments() {
        let keys = vec!["k".to_string()];
        assert_eq!(
            partition_path(&[], &[], &[], DEFAULT_PARTITION_NAME).unwrap(),
            ""
        );
        assert!(partition_path(&keys, &[], &[], DEFAULT_PARTITION_NAME).is_err());
        assert!(partition_path(&keys, &[Datum::Int(1)], &[t(K::Int)], "").is_err());
        assert!(partition_path(&[String::new()], &[Datum::Int(1)], &[t(K::Int)], "x").is_err());
        assert!(partition_path(&keys, &[Datum::String("x".into())], &[t(K::Int)], "d").is_err());
        let custom = partition_path(&keys, &[Datum::Null], &[t(K::Int)], "none").unwrap();
        assert_eq!(custom, "k=none/");
    }

    #[test]
    fn escapes_like_paimon() {
        assert_eq!(
            escape_path_name("a b{c}[d]^e\u{1}\u{7f}\"'*\\"),
            "a b%7Bc%7D%5Bd%5D%5Ee%01%7F%22%27%2A%5C"
        );
        assert_eq!(escape_path_name("plain-_.~é"), "plain-_.~é");
        assert_eq!(unescape_path_name("%2F%zz%4"), "/%zz%4");
        assert_eq!(unescape_path_name("100%"), "100%");
    }

    #[test]
    fn displays_datums() {
        let cases = [
            (Datum::Null, "NULL"),
            (
                Datum::Decimal {
                    unscaled: -5,
                    precision: 5,
                    scale: 3,
                },
                "-0.005",
            ),
            (Datum::Bytes(vec![0x0A, 0xFF]), "X'0AFF'"),
            (Datum::Date(19797), "2024-03-15"),
            (Datum::Time(3_723_400), "01:02:03.4"),
            (ts(1710510330123, 456000), "2024-03-15 13:45:30.123456"),
            (ts(0, 0), "1970-01-01 00:00:00"),
        ];
        for (datum, text) in cases {
            assert_eq!(datum.to_string(), text);
        }
    }

    proptest! {
        #[test]
        fn unescape_inverts_escape(text in "\\PC{0,30}|[%/:=?#{}\\[\\]^\\x00-\\x1f]{0,10}") {
            prop_assert_eq!(unescape_path_name(&escape_path_name(&text)), text);
        }

        #[test]
        fn float_strings_parse_back(value in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
            let text = java_double_to_string(value);
            prop_assert_eq!(text.parse::<f64>().unwrap(), value);
            prop_assert!(text.contains('.'));
        }
    }
}
