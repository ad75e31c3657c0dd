//! Values of change events: parsed from text (a source's text protocol, a
//! `cast` constant), rendered as text (`to-string`), and converted to and
//! from Arrow columns of a Paimon type (the sink's writes and lookups).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder,
    StringBuilder, Time32MillisecondBuilder, TimestampMicrosecondBuilder,
    TimestampMillisecondBuilder, TimestampNanosecondBuilder,
};
use arrow::array::{
    AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, Int8Array, ListArray, StringArray, Time32MillisecondArray,
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
};
use arrow::datatypes::{DataType as ArrowType, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use tidelake_format::types::{DataType, DataTypeKind};

use crate::event::CdcValue;

const MICROS_PER_DAY: i64 = 86_400_000_000;

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

/// Parses `text` as a value of `data_type` (Paimon's and PostgreSQL's text
/// forms: `t`/`true`, `2024-01-31`, `2024-01-31 12:00:00.5+02`, ...).
pub fn parse_text(text: &str, data_type: &DataType) -> Result<CdcValue, String> {
    let bad = |what: &str| format!("'{text}' is not {what}");
    let int = || text.trim().parse::<i64>().map_err(|_| bad("an integer"));
    Ok(match &data_type.kind {
        DataTypeKind::Boolean => {
            let word = text.trim();
            let is = |options: &[&str]| options.iter().any(|o| word.eq_ignore_ascii_case(o));
            if is(&["t", "true", "1", "y", "yes", "on"]) {
                CdcValue::Boolean(true)
            } else if is(&["f", "false", "0", "n", "no", "off"]) {
                CdcValue::Boolean(false)
            } else {
                return Err(bad("a boolean"));
            }
        }
        DataTypeKind::TinyInt
        | DataTypeKind::SmallInt
        | DataTypeKind::Int
        | DataTypeKind::BigInt => CdcValue::Int(int()?),
        DataTypeKind::Float => {
            CdcValue::Float(parse_float(text).ok_or_else(|| bad("a number"))? as f32)
        }
        DataTypeKind::Double => CdcValue::Double(parse_float(text).ok_or_else(|| bad("a number"))?),
        DataTypeKind::Decimal { scale, .. } => {
            if text.trim().eq_ignore_ascii_case("nan") || text.contains("Infinity") {
                // A DECIMAL cannot hold NaN or infinities (Paimon writes NULL).
                CdcValue::Null
            } else {
                CdcValue::Decimal(
                    parse_decimal(text, *scale).ok_or_else(|| bad("a decimal"))?,
                    *scale,
                )
            }
        }
        DataTypeKind::Char(_) | DataTypeKind::VarChar(_) => CdcValue::String(text.to_string()),
        DataTypeKind::Binary(_) | DataTypeKind::VarBinary(_) => {
            CdcValue::Bytes(parse_bytes(text).ok_or_else(|| bad("bytes (\\x...)"))?)
        }
        DataTypeKind::Date => match parse_date(text) {
            Some(d) => CdcValue::Date(d),
            None if is_infinity(text) => CdcValue::Null,
            None => return Err(bad("a date")),
        },
        DataTypeKind::Time(_) => CdcValue::Time(parse_time(text).ok_or_else(|| bad("a time"))?),
        DataTypeKind::Timestamp(_) => match parse_timestamp(text) {
            Some((micros, _)) => CdcValue::Timestamp(micros),
            None if is_infinity(text) => CdcValue::Null,
            None => return Err(bad("a timestamp")),
        },
        DataTypeKind::TimestampLtz(_) => match parse_timestamp(text) {
            Some((micros, offset)) => CdcValue::TimestampUtc(micros - offset * 1_000_000),
            None if is_infinity(text) => CdcValue::Null,
            None => return Err(bad("a timestamp")),
        },
        DataTypeKind::Array(element) => CdcValue::Array(
            parse_array(text)
                .ok_or_else(|| bad("an array"))?
                .into_iter()
                .map(|item| match item {
                    Some(item) => parse_text(&item, element),
                    None => Ok(CdcValue::Null),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        _ => return Err(format!("type {data_type:?} is not read from text")),
    })
}

fn is_infinity(text: &str) -> bool {
    matches!(text.trim(), "infinity" | "-infinity")
}

fn parse_float(text: &str) -> Option<f64> {
    match text.trim() {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

/// `-12.345` at scale 2 is `-1234` (extra digits are cut, as a cast does).
pub fn parse_decimal(text: &str, scale: u32) -> Option<i128> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let mut value: i128 = 0;
    for c in whole.chars() {
        value = value
            .checked_mul(10)?
            .checked_add(c.to_digit(10)? as i128)?;
    }
    let mut taken = 0;
    for c in fraction.chars() {
        let digit = c.to_digit(10)?;
        if taken < scale {
            value = value.checked_mul(10)?.checked_add(digit as i128)?;
            taken += 1;
        }
    }
    for _ in taken..scale {
        value = value.checked_mul(10)?;
    }
    Some(if negative { -value } else { value })
}

fn parse_bytes(text: &str) -> Option<Vec<u8>> {
    let Some(hex) = text.strip_prefix("\\x") else {
        return Some(text.as_bytes().to_vec());
    };
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

fn parse_date(text: &str) -> Option<i32> {
    let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    Some((date - epoch()).num_days() as i32)
}

fn parse_time(text: &str) -> Option<i64> {
    let t = NaiveTime::parse_from_str(text.trim(), "%H:%M:%S%.f").ok()?;
    Some(t.num_seconds_from_midnight() as i64 * 1_000_000 + t.nanosecond() as i64 / 1_000)
}

/// Microseconds since the epoch as written, and the UTC offset in seconds
/// written after it (`+02`, `+05:30`, `Z`; 0 when none).
fn parse_timestamp(text: &str) -> Option<(i64, i64)> {
    let text = text.trim();
    let (body, offset) = split_offset(text);
    let t = match plain_datetime(body) {
        Some(t) => t,
        None => NaiveDateTime::parse_from_str(body, "%Y-%m-%d %H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(body, "%Y-%m-%dT%H:%M:%S%.f"))
            .ok()?,
    };
    Some((t.and_utc().timestamp_micros(), offset))
}

/// `YYYY-MM-DD HH:MM:SS[.fraction]` (or with `T`) read by position: what
/// servers write for almost every value, many times faster than chrono's
/// format-string parser (a copied table of timestamps spends much of its
/// parsing there). Anything else is `None`, for the general parser.
fn plain_datetime(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + (d - b'0') as u32)
        })
    };
    let mut nanos = 0u32;
    if b.len() > 19 {
        let fraction = &b[20..];
        if b[19] != b'.' || fraction.is_empty() || fraction.len() > 9 {
            return None;
        }
        for (i, d) in fraction.iter().enumerate() {
            if !d.is_ascii_digit() {
                return None;
            }
            nanos += (d - b'0') as u32 * 10u32.pow(8 - i as u32);
        }
    }
    NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?.and_hms_nano_opt(
        number(11..13)?,
        number(14..16)?,
        number(17..19)?,
        nanos,
    )
}

fn split_offset(text: &str) -> (&str, i64) {
    if let Some(body) = text.strip_suffix('Z') {
        return (body, 0);
    }
    // The offset starts at the last '+' or '-' after the time's ':'.
    let Some(colon) = text.find(':') else {
        return (text, 0);
    };
    let Some(at) = text[colon..].rfind(['+', '-']).map(|i| i + colon) else {
        return (text, 0);
    };
    let sign = if text.as_bytes()[at] == b'-' { -1 } else { 1 };
    let mut parts = text[at + 1..]
        .split(':')
        .map(|p| p.parse::<i64>().unwrap_or(0));
    let hours = parts.next().unwrap_or(0);
    let minutes = parts.next().unwrap_or(0);
    let seconds = parts.next().unwrap_or(0);
    (&text[..at], sign * (hours * 3600 + minutes * 60 + seconds))
}

/// A one-dimensional PostgreSQL array literal: `{1,2,NULL,"a,b"}`.
pub fn parse_array(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut items = Vec::new();
    if inner.is_empty() {
        return Some(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' {
                    return None; // more than one dimension
                }
                item.push(c);
                chars.next();
            }
        }
        items.push((quoted || item != "NULL").then_some(item));
        match chars.next() {
            Some(',') => continue,
            None => return Some(items),
            Some(_) => return None,
        }
    }
}

/// A value as text (`to-string`, computed columns over non-strings).
pub fn render_text(value: &CdcValue) -> String {
    match value {
        CdcValue::Null | CdcValue::Unchanged => String::new(),
        CdcValue::Boolean(b) => b.to_string(),
        CdcValue::Int(i) => i.to_string(),
        CdcValue::Float(f) => f.to_string(),
        CdcValue::Double(f) => f.to_string(),
        CdcValue::Decimal(unscaled, scale) => render_decimal(*unscaled, *scale),
        CdcValue::String(s) => s.clone(),
        CdcValue::Bytes(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!("\\x{hex}")
        }
        CdcValue::Date(d) => epoch()
            .checked_add_signed(chrono::TimeDelta::days(*d as i64))
            .map_or_else(|| d.to_string(), |d| d.format("%Y-%m-%d").to_string()),
        CdcValue::Time(us) => NaiveTime::from_num_seconds_from_midnight_opt(
            (us / 1_000_000) as u32,
            ((us % 1_000_000) * 1_000) as u32,
        )
        .map_or_else(|| us.to_string(), |t| t.format("%H:%M:%S%.f").to_string()),
        CdcValue::Timestamp(us) => DateTime::from_timestamp_micros(*us).map_or_else(
            || us.to_string(),
            |t| t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string(),
        ),
        CdcValue::TimestampUtc(us) => DateTime::from_timestamp_micros(*us).map_or_else(
            || us.to_string(),
            |t| t.format("%Y-%m-%d %H:%M:%S%.fZ").to_string(),
        ),
        CdcValue::Array(items) => {
            let inner: Vec<String> = items
                .iter()
                .map(|i| match i {
                    CdcValue::Null => "NULL".to_string(),
                    i => render_text(i),
                })
                .collect();
            format!("[{}]", inner.join(","))
        }
    }
}

fn render_decimal(unscaled: i128, scale: u32) -> String {
    if scale == 0 {
        return unscaled.to_string();
    }
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    let sign = if unscaled < 0 { "-" } else { "" };
    format!("{sign}{whole}.{fraction}")
}

/// `value` as a value of `data_type`: integers and decimals rescaled,
/// anything to text for string columns. `None`: it does not fit.
pub fn coerce(value: &CdcValue, data_type: &DataType) -> Option<CdcValue> {
    use DataTypeKind as K;
    Some(match (&data_type.kind, value) {
        (_, CdcValue::Null | CdcValue::Unchanged) => CdcValue::Null,
        (K::Char(_) | K::VarChar(_), CdcValue::String(_)) => value.clone(),
        (K::Char(_) | K::VarChar(_), v) => CdcValue::String(render_text(v)),
        (K::Decimal { scale, .. }, CdcValue::Decimal(u, s)) => {
            CdcValue::Decimal(rescale(*u, *s, *scale)?, *scale)
        }
        (K::Decimal { scale, .. }, CdcValue::Int(i)) => {
            CdcValue::Decimal(rescale(*i as i128, 0, *scale)?, *scale)
        }
        (K::Float, CdcValue::Int(i)) => CdcValue::Float(*i as f32),
        (K::Double, CdcValue::Int(i)) => CdcValue::Double(*i as f64),
        (K::Double, CdcValue::Float(f)) => CdcValue::Double(*f as f64),
        (K::TimestampLtz(_), CdcValue::Timestamp(m)) => CdcValue::TimestampUtc(*m),
        (K::Timestamp(_), CdcValue::TimestampUtc(m)) => CdcValue::Timestamp(*m),
        (K::Timestamp(_) | K::TimestampLtz(_), CdcValue::Date(d)) => {
            CdcValue::Timestamp(*d as i64 * MICROS_PER_DAY)
        }
        _ => value.clone(),
    })
}

/// [`coerce`] of an owned value: a string, bytes or an array that `coerce`
/// would copy unchanged is moved instead (the copy path's rows go through
/// here twice, and a copy per text value per pass is measurable).
pub fn coerce_owned(value: CdcValue, data_type: &DataType) -> Option<CdcValue> {
    use DataTypeKind as K;
    let to_text = matches!(data_type.kind, K::Char(_) | K::VarChar(_));
    match value {
        CdcValue::String(_) => Some(value),
        CdcValue::Bytes(_) | CdcValue::Array(_) if !to_text => Some(value),
        _ => coerce(&value, data_type),
    }
}

fn rescale(unscaled: i128, from: u32, to: u32) -> Option<i128> {
    if to >= from {
        unscaled.checked_mul(10i128.checked_pow(to - from)?)
    } else {
        Some(unscaled / 10i128.checked_pow(from - to)?)
    }
}

/// An Arrow column of `arrow_type` (the Paimon type's) from `values`.
/// Errors name the first value that does not fit.
pub fn to_arrow(values: &[&CdcValue], arrow_type: &ArrowType) -> Result<ArrayRef, String> {
    macro_rules! build {
        ($builder:expr, $pattern:pat => $value:expr) => {{
            let mut b = $builder;
            for v in values {
                match v {
                    CdcValue::Null | CdcValue::Unchanged => b.append_null(),
                    $pattern => b.append_value($value),
                    other => return Err(format!("{other:?} is not a {arrow_type}")),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    let int_fits = |i: i64, min: i64, max: i64| -> Result<(), String> {
        if i < min || i > max {
            Err(format!("{i} is out of range for {arrow_type}"))
        } else {
            Ok(())
        }
    };
    Ok(match arrow_type {
        ArrowType::Boolean => build!(BooleanBuilder::new(), CdcValue::Boolean(b) => *b),
        ArrowType::Int8 => {
            for v in values {
                if let CdcValue::Int(i) = v {
                    int_fits(*i, i8::MIN as i64, i8::MAX as i64)?;
                }
            }
            build!(Int8Builder::new(), CdcValue::Int(i) => *i as i8)
        }
        ArrowType::Int16 => {
            for v in values {
                if let CdcValue::Int(i) = v {
                    int_fits(*i, i16::MIN as i64, i16::MAX as i64)?;
                }
            }
            build!(Int16Builder::new(), CdcValue::Int(i) => *i as i16)
        }
        ArrowType::Int32 => {
            for v in values {
                if let CdcValue::Int(i) = v {
                    int_fits(*i, i32::MIN as i64, i32::MAX as i64)?;
                }
            }
            build!(Int32Builder::new(), CdcValue::Int(i) => *i as i32)
        }
        ArrowType::Int64 => build!(Int64Builder::new(), CdcValue::Int(i) => *i),
        ArrowType::Float32 => build!(Float32Builder::new(), CdcValue::Float(f) => *f),
        ArrowType::Float64 => build!(Float64Builder::new(), CdcValue::Double(f) => *f),
        ArrowType::Decimal128(p, s) => {
            let b = Decimal128Builder::new()
                .with_precision_and_scale(*p, *s)
                .map_err(|e| e.to_string())?;
            build!(b, CdcValue::Decimal(u, _) => *u)
        }
        ArrowType::Utf8 => build!(StringBuilder::new(), CdcValue::String(s) => s),
        ArrowType::Binary => build!(BinaryBuilder::new(), CdcValue::Bytes(b) => b),
        ArrowType::Date32 => build!(Date32Builder::new(), CdcValue::Date(d) => *d),
        ArrowType::Time32(TimeUnit::Millisecond) => {
            build!(Time32MillisecondBuilder::new(), CdcValue::Time(us) => (*us / 1_000) as i32)
        }
        ArrowType::Timestamp(unit, zone) => {
            let micros = |v: &CdcValue| match v {
                CdcValue::Timestamp(m) | CdcValue::TimestampUtc(m) => Some(*m),
                _ => None,
            };
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    CdcValue::Null | CdcValue::Unchanged => out.push(None),
                    v => out.push(Some(
                        micros(v).ok_or_else(|| format!("{v:?} is not a {arrow_type}"))?,
                    )),
                }
            }
            let array: ArrayRef = match unit {
                TimeUnit::Millisecond => {
                    let mut b = TimestampMillisecondBuilder::new();
                    out.iter()
                        .for_each(|m| b.append_option(m.map(|m| m.div_euclid(1_000))));
                    Arc::new(b.finish().with_timezone_opt(zone.clone()))
                }
                TimeUnit::Microsecond => {
                    let mut b = TimestampMicrosecondBuilder::new();
                    out.iter().for_each(|m| b.append_option(*m));
                    Arc::new(b.finish().with_timezone_opt(zone.clone()))
                }
                _ => {
                    let mut b = TimestampNanosecondBuilder::new();
                    out.iter()
                        .for_each(|m| b.append_option(m.map(|m| m.saturating_mul(1_000))));
                    Arc::new(b.finish().with_timezone_opt(zone.clone()))
                }
            };
            array
        }
        ArrowType::List(field) => {
            let mut lengths = Vec::with_capacity(values.len());
            let mut items: Vec<&CdcValue> = Vec::new();
            for v in values {
                match v {
                    CdcValue::Array(a) => {
                        lengths.push(Some(a.len()));
                        items.extend(a.iter());
                    }
                    CdcValue::Null | CdcValue::Unchanged => lengths.push(None),
                    other => return Err(format!("{other:?} is not an array")),
                }
            }
            let child = to_arrow(&items, field.data_type())?;
            let offsets =
                arrow::buffer::OffsetBuffer::from_lengths(lengths.iter().map(|l| l.unwrap_or(0)));
            let nulls = arrow::buffer::NullBuffer::from(
                lengths.iter().map(Option::is_some).collect::<Vec<_>>(),
            );
            Arc::new(
                ListArray::try_new(field.clone(), offsets, child, Some(nulls))
                    .map_err(|e| e.to_string())?,
            )
        }
        other => return Err(format!("columns of type {other} are not written by CDC")),
    })
}

/// The value at `row` of an Arrow column (the inverse of [`to_arrow`]).
pub fn from_arrow(array: &dyn Array, row: usize) -> CdcValue {
    if array.is_null(row) {
        return CdcValue::Null;
    }
    macro_rules! get {
        ($t:ty) => {
            array.as_any().downcast_ref::<$t>().map(|a| a.value(row))
        };
    }
    let value = match array.data_type() {
        ArrowType::Boolean => get!(BooleanArray).map(CdcValue::Boolean),
        ArrowType::Int8 => get!(Int8Array).map(|v| CdcValue::Int(v as i64)),
        ArrowType::Int16 => get!(Int16Array).map(|v| CdcValue::Int(v as i64)),
        ArrowType::Int32 => get!(Int32Array).map(|v| CdcValue::Int(v as i64)),
        ArrowType::Int64 => get!(Int64Array).map(CdcValue::Int),
        ArrowType::Float32 => get!(Float32Array).map(CdcValue::Float),
        ArrowType::Float64 => get!(Float64Array).map(CdcValue::Double),
        ArrowType::Decimal128(_, s) => {
            get!(Decimal128Array).map(|v| CdcValue::Decimal(v, (*s).max(0) as u32))
        }
        ArrowType::Utf8 => get!(StringArray).map(|v| CdcValue::String(v.to_string())),
        ArrowType::Binary => get!(BinaryArray).map(|v| CdcValue::Bytes(v.to_vec())),
        ArrowType::Date32 => get!(Date32Array).map(CdcValue::Date),
        ArrowType::Time32(TimeUnit::Millisecond) => {
            get!(Time32MillisecondArray).map(|v| CdcValue::Time(v as i64 * 1_000))
        }
        ArrowType::Timestamp(unit, zone) => {
            let micros = match unit {
                TimeUnit::Millisecond => get!(TimestampMillisecondArray).map(|v| v * 1_000),
                TimeUnit::Microsecond => get!(TimestampMicrosecondArray),
                TimeUnit::Nanosecond => get!(TimestampNanosecondArray).map(|v| v / 1_000),
                TimeUnit::Second => None,
            };
            micros.map(|m| {
                if zone.is_some() {
                    CdcValue::TimestampUtc(m)
                } else {
                    CdcValue::Timestamp(m)
                }
            })
        }
        ArrowType::List(_) => {
            let list = array.as_list::<i32>();
            let items = list.value(row);
            Some(CdcValue::Array(
                (0..items.len())
                    .map(|i| from_arrow(items.as_ref(), i))
                    .collect(),
            ))
        }
        _ => None,
    };
    value.unwrap_or(CdcValue::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(sql: &str) -> DataType {
        DataType::parse_sql(sql).unwrap()
    }

    #[test]
    fn plain_datetimes_read_as_chrono_reads_them() {
        for text in [
            "2024-02-29 12:34:56",
            "2024-02-29T12:34:56.1",
            "1969-12-31 23:59:59.999999",
            "0001-01-01 00:00:00.123456789",
            "2024-03-01 00:00:00.000001",
        ] {
            let chrono = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
                .unwrap();
            assert_eq!(plain_datetime(text), Some(chrono), "{text}");
        }
        for other in [
            "2024-02-30 00:00:00",
            "2024-02-29 12:34:56.",
            "12024-02-29 12:34:56",
            "2024-02-29 1:34:56",
            "2024-02-29 23:59:60",
        ] {
            assert_eq!(plain_datetime(other), None, "{other}");
        }
        assert_eq!(
            parse_timestamp("2024-02-29 12:34:56.5+02"),
            Some((1_709_210_096_500_000, 7_200))
        );
    }

    #[test]
    fn owned_coercion_moves_what_it_can() {
        let s = CdcValue::String("x".into());
        assert_eq!(
            coerce_owned(s.clone(), &t("STRING")),
            coerce(&s, &t("STRING"))
        );
        let i = CdcValue::Int(3);
        assert_eq!(
            coerce_owned(i.clone(), &t("DECIMAL(10, 2)")),
            coerce(&i, &t("DECIMAL(10, 2)"))
        );
        let b = CdcValue::Bytes(vec![1]);
        assert_eq!(
            coerce_owned(b.clone(), &t("STRING")),
            coerce(&b, &t("STRING"))
        );
        assert_eq!(
            coerce_owned(b.clone(), &t("BYTES")),
            coerce(&b, &t("BYTES"))
        );
        assert_eq!(
            coerce_owned(CdcValue::Unchanged, &t("INT")),
            Some(CdcValue::Null)
        );
    }

    #[test]
    fn text_parses_as_postgres_writes_it() {
        assert_eq!(parse_text("t", &t("BOOLEAN")), Ok(CdcValue::Boolean(true)));
        assert_eq!(
            parse_text("-12.345", &t("DECIMAL(10, 2)")),
            Ok(CdcValue::Decimal(-1234, 2))
        );
        assert_eq!(parse_text("NaN", &t("DECIMAL(10, 2)")), Ok(CdcValue::Null));
        assert!(matches!(parse_text("NaN", &t("DOUBLE")), Ok(CdcValue::Double(f)) if f.is_nan()));
        assert_eq!(parse_text("1970-01-02", &t("DATE")), Ok(CdcValue::Date(1)));
        assert_eq!(
            parse_text("1970-01-01 02:00:00+02", &t("TIMESTAMP_LTZ(6)")),
            Ok(CdcValue::TimestampUtc(0))
        );
        assert_eq!(
            parse_text("1970-01-01 00:00:01.5", &t("TIMESTAMP(6)")),
            Ok(CdcValue::Timestamp(1_500_000))
        );
        assert_eq!(
            parse_text("\\x0aff", &t("BYTES")),
            Ok(CdcValue::Bytes(vec![10, 255]))
        );
        assert_eq!(
            parse_text("{1,NULL,3}", &t("ARRAY<INT>")),
            Ok(CdcValue::Array(vec![
                CdcValue::Int(1),
                CdcValue::Null,
                CdcValue::Int(3)
            ]))
        );
        assert_eq!(
            parse_array(r#"{"a,b","c\"d",NULL,"NULL"}"#),
            Some(vec![
                Some("a,b".into()),
                Some("c\"d".into()),
                None,
                Some("NULL".into())
            ])
        );
        assert_eq!(render_decimal(-5, 2), "-0.05");
    }

    #[test]
    fn arrow_round_trips() {
        for (sql, value) in [
            ("INT", CdcValue::Int(7)),
            ("DECIMAL(10, 2)", CdcValue::Decimal(1234, 2)),
            ("TIMESTAMP(3)", CdcValue::Timestamp(1_000)),
            ("TIMESTAMP_LTZ(6)", CdcValue::TimestampUtc(1_234_567)),
            ("TIME", CdcValue::Time(3_000_000)),
            (
                "ARRAY<STRING>",
                CdcValue::Array(vec![CdcValue::String("x".into())]),
            ),
        ] {
            let arrow_type = t(sql).to_arrow();
            let array = to_arrow(&[&value, &CdcValue::Null], &arrow_type).unwrap();
            assert_eq!(from_arrow(array.as_ref(), 0), value, "{sql}");
            assert_eq!(from_arrow(array.as_ref(), 1), CdcValue::Null);
        }
        assert!(to_arrow(&[&CdcValue::Int(300)], &ArrowType::Int8).is_err());
    }
}
