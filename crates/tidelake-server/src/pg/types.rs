//! Arrow types as PostgreSQL types, and Arrow values in PostgreSQL's text
//! and binary formats.
//!
//! | Arrow (Paimon)                         | PostgreSQL                  |
//! |----------------------------------------|-----------------------------|
//! | Boolean                                | `bool`                      |
//! | Int8 (TINYINT), Int16, UInt8           | `int2` (never `"char"`)     |
//! | Int32, UInt16                          | `int4`                      |
//! | Int64, UInt32                          | `int8`                      |
//! | UInt64                                 | `numeric`                   |
//! | Float16, Float32                       | `float4`                    |
//! | Float64                                | `float8`                    |
//! | Decimal128/256(p, s)                   | `numeric(p, s)` (exact)     |
//! | Utf8, LargeUtf8, Utf8View (CHAR, VARCHAR, STRING) | `text`           |
//! | Binary, LargeBinary, BinaryView, FixedSizeBinary  | `bytea`          |
//! | Date32, Date64                         | `date`                      |
//! | Time32, Time64                         | `time` (microseconds)       |
//! | Timestamp without a zone               | `timestamp` (microseconds)  |
//! | Timestamp with a zone (LOCAL ZONED)    | `timestamptz`, shown in UTC |
//! | List, Struct, Map, Union (ARRAY, ROW, MAP, MULTISET) | `json` text   |
//! | Interval, Duration, anything else      | `text` (Arrow's display)    |
//!
//! Nanosecond timestamps lose their last three digits, as PostgreSQL keeps
//! microseconds.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    Schema, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use bytes::{BufMut, BytesMut};
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::api::Type;
use pgwire::messages::data::DataRow;

use crate::values::{
    binary_value, date_days, decimal_value, is_nested, is_null, pg_text, string_value, time_micros,
    timestamp_value,
};

/// Days and microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_DAYS: i64 = 10_957;
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * 86_400_000_000;

/// The PostgreSQL type of an Arrow type.
pub fn pg_type(t: &DataType) -> Type {
    match t {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 => Type::INT8,
        DataType::UInt64 | DataType::Decimal128(..) | DataType::Decimal256(..) => Type::NUMERIC,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => Type::BYTEA,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Dictionary(_, value) => pg_type(value),
        t if is_nested(t) => Type::JSON,
        _ => Type::TEXT,
    }
}

/// `pg_attribute.atttypmod` of a type: precision and scale of a numeric.
fn type_modifier(t: &DataType) -> i32 {
    match t {
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            ((i32::from(*p) << 16) | (i32::from(*s) & 0xffff)) + 4
        }
        _ => -1,
    }
}

fn type_size(t: &Type) -> i16 {
    match *t {
        Type::BOOL => 1,
        Type::INT2 => 2,
        Type::INT4 | Type::FLOAT4 | Type::DATE => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => 8,
        _ => -1,
    }
}

/// The row description of a schema, with each column's format.
pub fn fields(schema: &Schema, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let t = pg_type(f.data_type());
            let size = type_size(&t);
            FieldInfo::new(f.name().clone(), None, None, t, format_of(format, i))
                .with_type_modifier(type_modifier(f.data_type()))
                .with_type_size(size)
        })
        .collect()
}

/// A format code list shorter than the columns would be a client error;
/// PostgreSQL rejects it at Bind, here the missing ones are text.
fn format_of(format: &Format, i: usize) -> FieldFormat {
    match format {
        Format::Individual(codes) if i >= codes.len() => FieldFormat::Text,
        f => f.format_for(i),
    }
}

/// Dictionary columns as their values, so that each type has one encoding.
fn plain(column: &ArrayRef) -> ArrayRef {
    match column.data_type() {
        DataType::Dictionary(_, value) => {
            arrow::compute::cast(column, value).unwrap_or_else(|_| column.clone())
        }
        _ => column.clone(),
    }
}

/// The rows of a batch as DataRow messages.
pub fn encode_batch(batch: &RecordBatch, fields: &[FieldInfo]) -> Vec<DataRow> {
    let columns: Vec<ArrayRef> = batch.columns().iter().map(plain).collect();
    let mut rows = Vec::with_capacity(batch.num_rows());
    let mut buf = BytesMut::with_capacity(64 * columns.len().max(1));
    for row in 0..batch.num_rows() {
        for (column, field) in columns.iter().zip(fields) {
            encode_value(column, row, field, &mut buf);
        }
        rows.push(DataRow::new(buf.split(), columns.len() as i16));
    }
    rows
}

fn encode_value(column: &ArrayRef, row: usize, field: &FieldInfo, buf: &mut BytesMut) {
    if is_null(column, row) {
        buf.put_i32(-1);
        return;
    }
    let start = buf.len();
    buf.put_i32(0);
    if field.format() == FieldFormat::Binary {
        encode_binary(column, row, field.datatype(), buf);
    } else {
        buf.put_slice(pg_text(column, row).as_bytes());
    }
    let len = (buf.len() - start - 4) as i32;
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

fn encode_binary(column: &ArrayRef, row: usize, t: &Type, buf: &mut BytesMut) {
    macro_rules! prim {
        ($t:ty) => {
            column.as_primitive::<$t>().value(row)
        };
    }
    match (column.data_type(), t) {
        (DataType::Boolean, _) => buf.put_u8(u8::from(column.as_boolean().value(row))),
        (DataType::Int8, _) => buf.put_i16(i16::from(prim!(Int8Type))),
        (DataType::UInt8, _) => buf.put_i16(i16::from(prim!(UInt8Type))),
        (DataType::Int16, _) => buf.put_i16(prim!(Int16Type)),
        (DataType::UInt16, _) => buf.put_i32(i32::from(prim!(UInt16Type))),
        (DataType::Int32, _) => buf.put_i32(prim!(Int32Type)),
        (DataType::UInt32, _) => buf.put_i64(i64::from(prim!(UInt32Type))),
        (DataType::Int64, _) => buf.put_i64(prim!(Int64Type)),
        (DataType::UInt64, _) => put_numeric(&prim!(UInt64Type).to_string(), buf),
        (DataType::Float16, _) => buf.put_f32(prim!(Float16Type).to_f32()),
        (DataType::Float32, _) => buf.put_f32(prim!(Float32Type)),
        (DataType::Float64, _) => buf.put_f64(prim!(Float64Type)),
        (DataType::Decimal128(..) | DataType::Decimal256(..), _) => {
            put_numeric(&decimal_value(column, row).unwrap_or_default(), buf)
        }
        (DataType::Date32 | DataType::Date64, _) => {
            let days = date_days(column, row).unwrap_or(0) - PG_EPOCH_DAYS;
            buf.put_i32(days.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
        }
        (DataType::Time32(_) | DataType::Time64(_), _) => {
            buf.put_i64(time_micros(column, row).unwrap_or(0))
        }
        (DataType::Timestamp(..), _) => {
            buf.put_i64(timestamp_value(column, row).unwrap_or(0) - PG_EPOCH_MICROS)
        }
        (_, &Type::BYTEA) => buf.put_slice(binary_value(column, row).unwrap_or_default()),
        (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View, _) => {
            buf.put_slice(string_value(column, row).unwrap_or_default().as_bytes())
        }
        // json and text: the binary format is the text.
        _ => buf.put_slice(pg_text(column, row).as_bytes()),
    }
}

/// PostgreSQL's binary numeric: base-10000 digits around the decimal point.
pub fn put_numeric(text: &str, buf: &mut BytesMut) {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let dscale = frac.len() as i16;
    let int = int.trim_start_matches('0');
    // Pad the integer part on the left and the fraction on the right to
    // whole groups of four digits.
    let int_pad = (4 - int.len() % 4) % 4;
    let frac_pad = (4 - frac.len() % 4) % 4;
    let all = format!("{}{int}{frac}{}", "0".repeat(int_pad), "0".repeat(frac_pad));
    let mut groups: Vec<i16> = all
        .as_bytes()
        .chunks(4)
        .map(|c| {
            c.iter()
                .fold(0i16, |acc, d| acc * 10 + i16::from(d.wrapping_sub(b'0')))
        })
        .collect();
    let mut weight = ((int.len() + int_pad) / 4) as i16 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    buf.put_i16(groups.len() as i16);
    buf.put_i16(weight);
    buf.put_u16(if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    });
    buf.put_i16(dscale);
    for g in groups {
        buf.put_i16(g);
    }
}

/// Shared row descriptions.
pub fn shared(fields: Vec<FieldInfo>) -> Arc<Vec<FieldInfo>> {
    Arc::new(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(text: &str) -> Vec<i16> {
        let mut buf = BytesMut::new();
        put_numeric(text, &mut buf);
        buf.chunks(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn numerics_in_base_10000() {
        // ndigits, weight, sign, dscale, digits...
        assert_eq!(numeric("12.50"), vec![2, 0, 0, 2, 12, 5000]);
        assert_eq!(numeric("-12345.6"), vec![3, 1, 0x4000, 1, 1, 2345, 6000]);
        assert_eq!(numeric("0.0001"), vec![1, -1, 0, 4, 1]);
        assert_eq!(numeric("0"), vec![0, 0, 0, 0]);
        assert_eq!(numeric("10000"), vec![1, 1, 0, 0, 1]);
    }

    #[test]
    fn tinyint_is_int2_and_decimals_are_numeric() {
        assert_eq!(pg_type(&DataType::Int8), Type::INT2);
        assert_eq!(pg_type(&DataType::Decimal128(10, 2)), Type::NUMERIC);
        assert_eq!(
            type_modifier(&DataType::Decimal128(10, 2)),
            (10 << 16 | 2) + 4
        );
        assert_eq!(
            pg_type(&DataType::Timestamp(
                arrow::datatypes::TimeUnit::Millisecond,
                None
            )),
            Type::TIMESTAMP
        );
    }
}
