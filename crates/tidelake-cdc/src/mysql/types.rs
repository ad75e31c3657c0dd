//! MySQL/MariaDB column types mapped to Paimon's, and values decoded into
//! [`CdcValue`]s from the binary protocol (initial snapshot), from text
//! (strings and decimals there, and JSON messages) and from the binlog.
//!
//! The mapping follows Paimon's defaults for MySQL sources: TINYINT(1) and
//! BIT(1) are BOOLEAN; unsigned integers widen one step (BIGINT UNSIGNED is
//! DECIMAL(20, 0)); DECIMAL beyond 38 digits is STRING; DATETIME is
//! TIMESTAMP(p) (wall-clock time, no zone) while TIMESTAMP is TIMESTAMP(p)
//! WITH LOCAL TIME ZONE (an instant: the binlog carries epoch seconds, the
//! snapshot reads it in UTC); YEAR is INT; TEXT, JSON and ENUM are STRING;
//! SET is ARRAY<STRING>; BLOB is BYTES. Zero dates (`0000-00-00`) become
//! NULL.

use chrono::{NaiveDate, NaiveDateTime};
use mysql_common::binlog::value::BinlogValue;
use mysql_common::value::Value;
use tidelake_format::types::{DataType, DataTypeKind, MAX_DECIMAL_PRECISION, MAX_LENGTH};

use crate::event::CdcValue;

/// How a column's values are decoded: the source type reduced to what the
/// decoders need.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnKind {
    Boolean,
    /// A signed or unsigned integer of `bits` width.
    Integer {
        bits: u32,
        unsigned: bool,
    },
    /// BIGINT UNSIGNED, as DECIMAL(20, 0).
    UnsignedBigint,
    Float,
    Double,
    Decimal {
        scale: u32,
    },
    /// DECIMAL beyond Paimon's precision, kept as its text.
    DecimalString,
    Date,
    Time,
    DateTime,
    Timestamp,
    Year,
    Text,
    Enum(Vec<String>),
    Set(Vec<String>),
    Bytes,
    /// BIT(n), n > 1: big-endian bytes.
    Bits,
}

/// One column as information_schema describes it, with its Paimon type.
#[derive(Clone, Debug, PartialEq)]
pub struct MysqlColumn {
    pub name: String,
    pub kind: ColumnKind,
    pub data_type: DataType,
    /// `COLUMN_TYPE`, e.g. `int(10) unsigned`.
    pub source_type: String,
    pub comment: Option<String>,
}

/// What information_schema.COLUMNS says of a column.
#[derive(Clone, Debug, Default)]
pub struct ColumnDef {
    pub name: String,
    /// `DATA_TYPE`, lower case: `int`, `varchar`, `enum`.
    pub data_type: String,
    /// `COLUMN_TYPE`: `tinyint(1)`, `enum('a','b')`, `decimal(10,2) unsigned`.
    pub column_type: String,
    pub nullable: bool,
    pub char_length: Option<u64>,
    pub numeric_precision: Option<u64>,
    pub numeric_scale: Option<u64>,
    pub datetime_precision: Option<u64>,
    pub comment: String,
}

/// Maps a column to its Paimon type, or says why it cannot be.
pub fn map_column(def: &ColumnDef) -> Result<MysqlColumn, String> {
    let ct = def.column_type.to_ascii_lowercase();
    let unsigned = ct.contains("unsigned");
    let precision = def.numeric_precision.unwrap_or(10) as u32;
    let scale = def.numeric_scale.unwrap_or(0) as u32;
    let time_precision = def.datetime_precision.unwrap_or(0).min(9) as u32;
    let length = def
        .char_length
        .map(|n| n.clamp(1, MAX_LENGTH as u64) as u32)
        .unwrap_or(1);
    let int = |bits: u32, signed: DataTypeKind, widened: DataTypeKind| {
        let kind = ColumnKind::Integer { bits, unsigned };
        (kind, if unsigned { widened } else { signed })
    };
    use DataTypeKind as K;
    let (kind, paimon) = match def.data_type.to_ascii_lowercase().as_str() {
        "tinyint" if ct.starts_with("tinyint(1)") && !unsigned => (ColumnKind::Boolean, K::Boolean),
        "bool" | "boolean" => (ColumnKind::Boolean, K::Boolean),
        "tinyint" => int(8, K::TinyInt, K::SmallInt),
        "smallint" => int(16, K::SmallInt, K::Int),
        "mediumint" => int(24, K::Int, K::Int),
        "int" | "integer" => int(32, K::Int, K::BigInt),
        "bigint" if unsigned => (
            ColumnKind::UnsignedBigint,
            K::Decimal {
                precision: 20,
                scale: 0,
            },
        ),
        "bigint" => int(64, K::BigInt, K::BigInt),
        "float" => (ColumnKind::Float, K::Float),
        "double" | "real" | "double precision" => (ColumnKind::Double, K::Double),
        "decimal" | "numeric" | "fixed" if precision > MAX_DECIMAL_PRECISION => {
            (ColumnKind::DecimalString, K::VarChar(MAX_LENGTH))
        }
        "decimal" | "numeric" | "fixed" => (
            ColumnKind::Decimal { scale },
            K::Decimal { precision, scale },
        ),
        "bit" if precision <= 1 => (ColumnKind::Boolean, K::Boolean),
        "bit" => (ColumnKind::Bits, K::Binary(precision.div_ceil(8))),
        "date" => (ColumnKind::Date, K::Date),
        "time" => (ColumnKind::Time, K::Time(time_precision)),
        "datetime" => (ColumnKind::DateTime, K::Timestamp(time_precision)),
        "timestamp" => (ColumnKind::Timestamp, K::TimestampLtz(time_precision)),
        "year" => (ColumnKind::Year, K::Int),
        "char" => (ColumnKind::Text, K::Char(length)),
        "varchar" => (ColumnKind::Text, K::VarChar(length)),
        "tinytext" | "text" | "mediumtext" | "longtext" | "json" => {
            (ColumnKind::Text, K::VarChar(MAX_LENGTH))
        }
        "enum" => (
            ColumnKind::Enum(parse_members(&def.column_type)),
            K::VarChar(MAX_LENGTH),
        ),
        "set" => (
            ColumnKind::Set(parse_members(&def.column_type)),
            K::Array(Box::new(DataType::string())),
        ),
        "binary" => (ColumnKind::Bytes, K::Binary(length)),
        "varbinary" => (ColumnKind::Bytes, K::VarBinary(length)),
        "tinyblob" | "blob" | "mediumblob" | "longblob" | "geometry" | "point" | "linestring"
        | "polygon" | "multipoint" | "multilinestring" | "multipolygon" | "geometrycollection" => {
            (ColumnKind::Bytes, K::VarBinary(MAX_LENGTH))
        }
        other => {
            return Err(format!(
                "column {}: type {other} ({}) has no Paimon mapping",
                def.name, def.column_type
            ))
        }
    };
    Ok(MysqlColumn {
        name: def.name.clone(),
        kind,
        data_type: DataType::new(paimon, def.nullable),
        source_type: def.column_type.clone(),
        comment: (!def.comment.is_empty()).then(|| def.comment.clone()),
    })
}

/// The members of `enum('a','b')` / `set('x','y')`, quotes undone.
pub fn parse_members(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let body = column_type[open + 1..].trim_end_matches(|c| c != ')');
    let body = body.strip_suffix(')').unwrap_or(body);
    let mut members = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut member = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    member.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(next) = chars.next() {
                        member.push(next);
                    }
                }
                c => member.push(c),
            }
        }
        members.push(member);
    }
    members
}

/// Decodes a value from its text (as the server prints it, session time
/// zone UTC): the snapshot's strings and decimals, and JSON messages.
pub fn from_text(kind: &ColumnKind, text: &[u8]) -> Result<CdcValue, String> {
    let s = || String::from_utf8_lossy(text);
    let parse_err = |what: &str| format!("cannot read {:?} as {what}", s());
    Ok(match kind {
        ColumnKind::Boolean => match text {
            [b] if *b <= 1 => CdcValue::Boolean(*b == 1),
            _ => CdcValue::Boolean(
                s().trim()
                    .parse::<i64>()
                    .map_err(|_| parse_err("a boolean"))?
                    != 0,
            ),
        },
        ColumnKind::Integer { .. } | ColumnKind::Year => CdcValue::Int(
            s().trim()
                .parse::<i64>()
                .map_err(|_| parse_err("an integer"))?,
        ),
        ColumnKind::UnsignedBigint => CdcValue::Decimal(
            s().trim()
                .parse::<i128>()
                .map_err(|_| parse_err("an integer"))?,
            0,
        ),
        ColumnKind::Float => CdcValue::Float(s().trim().parse().map_err(|_| parse_err("a float"))?),
        ColumnKind::Double => {
            CdcValue::Double(s().trim().parse().map_err(|_| parse_err("a double"))?)
        }
        ColumnKind::Decimal { scale } => CdcValue::Decimal(
            parse_decimal(&s(), *scale).ok_or_else(|| parse_err("a decimal"))?,
            *scale,
        ),
        ColumnKind::DecimalString | ColumnKind::Text | ColumnKind::Enum(_) => {
            CdcValue::String(s().into_owned())
        }
        ColumnKind::Set(_) => {
            let text = s();
            if text.is_empty() {
                CdcValue::Array(Vec::new())
            } else {
                CdcValue::Array(
                    text.split(',')
                        .map(|m| CdcValue::String(m.to_string()))
                        .collect(),
                )
            }
        }
        ColumnKind::Bytes | ColumnKind::Bits => CdcValue::Bytes(text.to_vec()),
        ColumnKind::Date => match parse_date(&s()) {
            Some(days) => CdcValue::Date(days),
            None if is_zero_date(&s()) => CdcValue::Null,
            None => return Err(parse_err("a date")),
        },
        ColumnKind::DateTime | ColumnKind::Timestamp => {
            let micros = match parse_datetime(&s()) {
                Some(micros) => micros,
                None if is_zero_date(&s()) => return Ok(CdcValue::Null),
                None => return Err(parse_err("a timestamp")),
            };
            if *kind == ColumnKind::Timestamp {
                CdcValue::TimestampUtc(micros)
            } else {
                CdcValue::Timestamp(micros)
            }
        }
        ColumnKind::Time => CdcValue::Time(parse_time(&s()).ok_or_else(|| parse_err("a time"))?),
    })
}

/// Decodes a binary-protocol value (the snapshot's prepared `SELECT`,
/// session time zone UTC). Numbers, dates and times arrive as numbers, so
/// only strings, decimals and bits are read from text.
pub fn from_binary(kind: &ColumnKind, value: Value) -> Result<CdcValue, String> {
    Ok(match (kind, value) {
        (_, Value::NULL) => CdcValue::Null,
        // An instant read in UTC; zero is MySQL's zero timestamp.
        (ColumnKind::Timestamp, Value::Date(y, mo, d, h, mi, s, us)) => {
            match date_time_micros(y, mo, d, h, mi, s, us)? {
                Some(micros) => CdcValue::TimestampUtc(micros),
                None => CdcValue::Null,
            }
        }
        (ColumnKind::Year, Value::Int(year)) => CdcValue::Int(year),
        (ColumnKind::Year, Value::UInt(year)) => CdcValue::Int(year as i64),
        // Text (a SET's members are comma-separated here, not a bit mask).
        (kind, Value::Bytes(bytes)) => from_text(kind, &bytes)?,
        (kind, value) => from_binlog(kind, BinlogValue::Value(value))?,
    })
}

/// Microseconds since the epoch of a wall-clock date and time; `None` for
/// a zero date.
fn date_time_micros(
    y: u16,
    mo: u8,
    d: u8,
    h: u8,
    mi: u8,
    s: u8,
    us: u32,
) -> Result<Option<i64>, String> {
    let Some(date) = NaiveDate::from_ymd_opt(y as i32, mo as u32, d as u32) else {
        return Ok(None);
    };
    let Some(at) = date.and_hms_micro_opt(h as u32, mi as u32, s as u32, us) else {
        return Err(format!("invalid time of day {h}:{mi}:{s}.{us}"));
    };
    Ok(Some(at.and_utc().timestamp_micros()))
}

/// A MySQL binary JSON value as MySQL prints it (what the snapshot reads):
/// `{"k": v, "kk": w}`, `[1, 2]`, object keys by length and then bytes
/// (MySQL's storage order), so that a row reads the same from the snapshot
/// and from the binlog.
fn mysql_json_text(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                mysql_json_text(item, out);
            }
            out.push(']');
        }
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            entries.sort_by(|a, b| (a.0.len(), a.0).cmp(&(b.0.len(), b.0)));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push_str(": ");
                mysql_json_text(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Decodes a binlog row value of a column.
pub fn from_binlog(kind: &ColumnKind, value: BinlogValue<'_>) -> Result<CdcValue, String> {
    let value = match value {
        BinlogValue::Value(value) => value,
        BinlogValue::Jsonb(json) => {
            let json: serde_json::Value = json
                .parse()
                .map_err(|e| format!("cannot read a binary JSON value: {e}"))?
                .into();
            let mut text = String::new();
            mysql_json_text(&json, &mut text);
            return Ok(CdcValue::String(text));
        }
        BinlogValue::JsonDiff(_) => {
            return Err(
                "partial JSON updates are not supported: set binlog_row_value_options=''".into(),
            )
        }
    };
    Ok(match (kind, value) {
        (_, Value::NULL) => CdcValue::Null,
        (ColumnKind::Boolean, Value::Int(v)) => CdcValue::Boolean(v != 0),
        (ColumnKind::Boolean, Value::UInt(v)) => CdcValue::Boolean(v != 0),
        (ColumnKind::Boolean, Value::Bytes(b)) => CdcValue::Boolean(b.iter().any(|b| *b != 0)),
        (ColumnKind::Integer { bits, unsigned }, Value::Int(v)) => {
            CdcValue::Int(reinterpret(v, *bits, *unsigned))
        }
        (ColumnKind::Integer { bits, unsigned }, Value::UInt(v)) => {
            CdcValue::Int(reinterpret(v as i64, *bits, *unsigned))
        }
        (ColumnKind::UnsignedBigint, Value::Int(v)) => CdcValue::Decimal(v as u64 as i128, 0),
        (ColumnKind::UnsignedBigint, Value::UInt(v)) => CdcValue::Decimal(v as i128, 0),
        (ColumnKind::Float, Value::Float(v)) => CdcValue::Float(v),
        (ColumnKind::Float, Value::Double(v)) => CdcValue::Float(v as f32),
        (ColumnKind::Double, Value::Double(v)) => CdcValue::Double(v),
        (ColumnKind::Double, Value::Float(v)) => CdcValue::Double(v as f64),
        (ColumnKind::Enum(members), Value::Int(index)) => {
            match index {
                0 => CdcValue::String(String::new()),
                i => CdcValue::String(members.get(i as usize - 1).cloned().ok_or_else(|| {
                    format!("ENUM index {i} beyond its {} members", members.len())
                })?),
            }
        }
        (ColumnKind::Set(members), Value::Bytes(mask)) => {
            let chosen = members
                .iter()
                .enumerate()
                .filter(|(i, _)| mask.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0))
                .map(|(_, m)| CdcValue::String(m.clone()))
                .collect();
            CdcValue::Array(chosen)
        }
        (ColumnKind::Date, Value::Date(y, mo, d, ..)) => {
            match NaiveDate::from_ymd_opt(y as i32, mo as u32, d as u32) {
                Some(date) => CdcValue::Date(days_since_epoch(date)),
                None => CdcValue::Null, // zero date
            }
        }
        (ColumnKind::DateTime, Value::Date(y, mo, d, h, mi, s, us)) => {
            match date_time_micros(y, mo, d, h, mi, s, us)? {
                Some(micros) => CdcValue::Timestamp(micros),
                None => CdcValue::Null, // zero date
            }
        }
        (ColumnKind::Timestamp, Value::Int(0)) => CdcValue::Null,
        (ColumnKind::Timestamp, Value::Int(secs)) => CdcValue::TimestampUtc(secs * 1_000_000),
        (ColumnKind::Timestamp, Value::Bytes(b)) => {
            // "seconds[.micros]" since the epoch
            let text = String::from_utf8_lossy(&b);
            let micros =
                parse_epoch_micros(&text).ok_or_else(|| format!("bad TIMESTAMP {text:?}"))?;
            if micros == 0 {
                CdcValue::Null
            } else {
                CdcValue::TimestampUtc(micros)
            }
        }
        (ColumnKind::Time, Value::Time(neg, days, h, m, s, us)) => {
            let micros = (((days as i64 * 24 + h as i64) * 60 + m as i64) * 60 + s as i64)
                * 1_000_000
                + us as i64;
            CdcValue::Time(if neg { -micros } else { micros })
        }
        (kind, Value::Bytes(b)) => from_text(kind, &b)?,
        (kind, value) => {
            return Err(format!(
                "unexpected binlog value {value:?} for a {kind:?} column"
            ))
        }
    })
}

/// The binlog reader decodes integers by the TABLE_MAP's signedness
/// metadata, which does not always line up with the columns (MariaDB):
/// re-read the value's `bits` low bits with the column's own signedness.
fn reinterpret(v: i64, bits: u32, unsigned: bool) -> i64 {
    if bits >= 64 {
        return v;
    }
    let mask = (1i64 << bits) - 1;
    let low = v & mask;
    if !unsigned && low >= 1i64 << (bits - 1) {
        low - (1i64 << bits)
    } else {
        low
    }
}

fn days_since_epoch(date: NaiveDate) -> i32 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
}

fn is_zero_date(text: &str) -> bool {
    text.starts_with("0000-00-00")
        || text
            .get(5..10)
            .is_some_and(|md| md.starts_with("00") || md.ends_with("00"))
}

fn parse_date(text: &str) -> Option<i32> {
    let text = text.trim();
    if let Some(date) = fixed_date(text.as_bytes()).filter(|_| text.len() == 10) {
        return Some(days_since_epoch(date));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .map(days_since_epoch)
}

fn parse_datetime(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Some(micros) = fixed_datetime(text.as_bytes()) {
        return Some(micros);
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp_micros())
}

/// The decimal number `bytes` spells, all ASCII digits.
fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |n, b| {
        b.is_ascii_digit()
            .then(|| n.wrapping_mul(10) + u32::from(b - b'0'))
    })
}

/// `YYYY-MM-DD` at the start of `text`, the layout the server prints, read
/// without a format string: a copy reads millions, and chrono's
/// `parse_from_str` costs several times more. `None` for anything else
/// (zero dates among them), which the general parser then judges.
fn fixed_date(text: &[u8]) -> Option<NaiveDate> {
    if text.len() < 10 || text[4] != b'-' || text[7] != b'-' {
        return None;
    }
    let year = digits(&text[0..4])?;
    NaiveDate::from_ymd_opt(year as i32, digits(&text[5..7])?, digits(&text[8..10])?)
}

/// `YYYY-MM-DD HH:MM:SS[.f{1,6}]` in microseconds since the epoch (see
/// [`fixed_date`]).
fn fixed_datetime(text: &[u8]) -> Option<i64> {
    let date = fixed_date(text)?;
    let time = text.get(10..)?;
    if time.len() < 9 || time[0] != b' ' || time[3] != b':' || time[6] != b':' {
        return None;
    }
    let (hour, minute, second) = (
        digits(&time[1..3])?,
        digits(&time[4..6])?,
        digits(&time[7..9])?,
    );
    let micros = match &time[9..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=6).contains(&fraction.len()) => {
            digits(fraction)? * 10u32.pow(6 - fraction.len() as u32)
        }
        _ => return None,
    };
    let at = date.and_hms_micro_opt(hour, minute, second, micros)?;
    Some(at.and_utc().timestamp_micros())
}

/// `[-]HHH:MM:SS[.ffffff]` in microseconds.
fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let (neg, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (hms, frac) = text.split_once('.').unwrap_or((text, ""));
    let mut parts = hms.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let s: i64 = parts.next()?.parse().ok()?;
    let micros = (h * 3600 + m * 60 + s) * 1_000_000 + frac_micros(frac)?;
    Some(if neg { -micros } else { micros })
}

fn frac_micros(frac: &str) -> Option<i64> {
    if frac.is_empty() {
        return Some(0);
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    digits.parse().ok()
}

fn parse_epoch_micros(text: &str) -> Option<i64> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    Some(secs.parse::<i64>().ok()? * 1_000_000 + frac_micros(frac)?)
}

/// `-123.45` at scale 2 is -12345; fewer fraction digits are padded.
pub fn parse_decimal(text: &str, scale: u32) -> Option<i128> {
    let text = text.trim();
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if frac.len() > scale as usize || (int.is_empty() && frac.is_empty()) {
        return None;
    }
    let mut unscaled: i128 = 0;
    let padded = frac
        .chars()
        .chain(std::iter::repeat('0'))
        .take(scale as usize);
    for c in int.chars().chain(padded) {
        unscaled = unscaled
            .checked_mul(10)?
            .checked_add(c.to_digit(10)? as i128)?;
    }
    Some(if neg { -unscaled } else { unscaled })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_json_prints_as_mysql_prints_json() {
        let json =
            serde_json::json!({"bb": [1, 2.5, null], "a": {"z": true, "yy": "x\"y"}, "c": "é"});
        let mut text = String::new();
        mysql_json_text(&json, &mut text);
        assert_eq!(
            text,
            r#"{"a": {"z": true, "yy": "x\"y"}, "c": "é", "bb": [1, 2.5, null]}"#
        );
    }

    #[test]
    fn members_of_enum_and_set() {
        assert_eq!(
            parse_members("enum('a','b''c','d,e')"),
            vec!["a", "b'c", "d,e"]
        );
        assert_eq!(parse_members("set('x')"), vec!["x"]);
    }

    #[test]
    fn decimals_times_and_dates() {
        assert_eq!(parse_decimal("-123.4", 2), Some(-12340));
        assert_eq!(parse_decimal("7", 0), Some(7));
        assert_eq!(parse_decimal("1.234", 2), None);
        assert_eq!(
            parse_time("-838:59:59.5"),
            Some(-(838 * 3600 + 59 * 60 + 59) * 1_000_000 - 500_000)
        );
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert!(is_zero_date("0000-00-00 00:00:00"));
        assert_eq!(
            from_text(&ColumnKind::Date, b"0000-00-00"),
            Ok(CdcValue::Null)
        );
        assert_eq!(parse_epoch_micros("12.5"), Some(12_500_000));
    }

    #[test]
    fn fixed_layout_dates_agree_with_the_general_parser() {
        let general = |text: &str| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc().timestamp_micros())
        };
        for text in [
            "1970-01-01 00:00:00",
            "2024-03-01 12:34:56.5",
            "2024-02-29 23:59:59.999999",
            "1000-01-01 00:00:00.000001",
            "9999-12-31 23:59:59.12",
        ] {
            assert_eq!(fixed_datetime(text.as_bytes()), general(text), "{text}");
            assert!(general(text).is_some(), "{text}");
        }
        // Not the fixed layout, or not a date: left to the general parser.
        for text in [
            "2023-02-29 00:00:00",
            "0000-00-00 00:00:00",
            "2024-03-01 24:00:00",
            "2024-03-01T12:00:00",
            "2024-03-01 12:00:00.1234567",
            "2024-3-01 12:00:00",
            "+024-03-01 12:00:00",
        ] {
            assert_eq!(fixed_datetime(text.as_bytes()), None, "{text}");
        }
        assert_eq!(
            parse_datetime(" 2024-03-01 00:00:01 "),
            Some(1_709_251_201_000_000)
        );
        assert_eq!(parse_date("2024-03-01"), Some(19_783));
        assert_eq!(
            from_text(&ColumnKind::DateTime, b"0000-00-00 00:00:00"),
            Ok(CdcValue::Null)
        );
    }

    #[test]
    fn unsigned_values_read_as_signed_are_unwrapped() {
        let kind = ColumnKind::Integer {
            bits: 8,
            unsigned: true,
        };
        assert_eq!(
            from_binlog(&kind, BinlogValue::Value(Value::Int(-56))),
            Ok(CdcValue::Int(200))
        );
        assert_eq!(
            from_binlog(
                &ColumnKind::UnsignedBigint,
                BinlogValue::Value(Value::Int(-1))
            ),
            Ok(CdcValue::Decimal(u64::MAX as i128, 0))
        );
        let signed24 = ColumnKind::Integer {
            bits: 24,
            unsigned: false,
        };
        assert_eq!(
            from_binlog(&signed24, BinlogValue::Value(Value::Int(8_388_608))),
            Ok(CdcValue::Int(-8_388_608))
        );
    }
}
