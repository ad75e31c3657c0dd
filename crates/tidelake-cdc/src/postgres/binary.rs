//! COPY's binary format, read straight into Arrow columns
//! ([`RowsBuilder`]): integers, floats, booleans, numerics, text, bytea,
//! dates, times and timestamps as the server sends them (no text to print
//! and parse again); every other type is selected as `::text` and read
//! from its text output as the text protocol reads it.
//!
//! The format: a header (`PGCOPY\n\377\r\n\0`, flags, an extension area),
//! then per row a 16-bit field count and per field a 32-bit length (-1:
//! NULL) and the value's bytes, then a count of -1. Rows may span
//! CopyData messages; a row is added only once all its bytes are in.

use std::borrow::Cow;

use tidelake_format::types::{DataType, DataTypeKind};

use super::types::{oid, parse_value};
use crate::event::CdcValue;
use crate::rows::RowsBuilder;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const EPOCH_MICROS: i64 = 946_684_800_000_000;

/// How a column's value is sent and read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    /// NUMERIC read as a DECIMAL of this scale.
    Numeric(u32),
    Text,
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    /// Selected as `::text`: the type's text output, parsed.
    AsText,
}

impl Wire {
    /// The binary form of a column of type `type_oid` mapped to `data_type`.
    pub fn of(type_oid: u32, data_type: &DataType) -> Wire {
        use DataTypeKind as K;
        match (type_oid, &data_type.kind) {
            (oid::BOOL, K::Boolean) => Wire::Bool,
            (oid::INT2, K::SmallInt) => Wire::Int2,
            (oid::INT4, K::Int) => Wire::Int4,
            (oid::INT8, K::BigInt) => Wire::Int8,
            (oid::OID, K::BigInt) => Wire::Oid,
            (oid::FLOAT4, K::Float) => Wire::Float4,
            (oid::FLOAT8, K::Double) => Wire::Float8,
            (oid::NUMERIC, K::Decimal { scale, .. }) => Wire::Numeric(*scale),
            // bpchar is sent with its padding, as its text output has it
            // (a `::text` cast would cut it).
            (oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME, K::Char(_) | K::VarChar(_)) => {
                Wire::Text
            }
            (oid::BYTEA, K::Binary(_) | K::VarBinary(_)) => Wire::Bytea,
            (oid::DATE, K::Date) => Wire::Date,
            (oid::TIME, K::Time(_)) => Wire::Time,
            (oid::TIMESTAMP, K::Timestamp(_)) => Wire::Timestamp,
            (oid::TIMESTAMPTZ, K::TimestampLtz(_)) => Wire::TimestampTz,
            _ => Wire::AsText,
        }
    }
}

/// Reads a binary COPY of columns `types` (each with its wire form).
pub(crate) struct BinaryRows {
    wires: Vec<Wire>,
    types: Vec<DataType>,
    /// Bytes of a row (or header) not complete in the last message.
    pending: Vec<u8>,
    header_done: bool,
    ended: bool,
    /// (offset, length) of each field of the row being read; `None`: NULL.
    fields: Vec<Option<(usize, usize)>>,
}

/// An error reading a column: its index and what went wrong.
pub(crate) type FieldError = (Option<usize>, String);

impl BinaryRows {
    pub fn new(columns: impl IntoIterator<Item = (Wire, DataType)>) -> BinaryRows {
        let (wires, types): (Vec<Wire>, Vec<DataType>) = columns.into_iter().unzip();
        BinaryRows {
            fields: Vec::with_capacity(wires.len()),
            wires,
            types,
            pending: Vec::new(),
            header_done: false,
            ended: false,
        }
    }

    /// Whether the end of the copy (its trailer) was read, with nothing
    /// left over.
    pub fn complete(&self) -> bool {
        self.ended && self.pending.is_empty()
    }

    /// Reads the rows one CopyData message completes into `rows`.
    pub fn feed(&mut self, data: &[u8], rows: &mut RowsBuilder) -> Result<(), FieldError> {
        if self.pending.is_empty() {
            let used = self.read(data, rows)?;
            self.pending.extend_from_slice(&data[used..]);
        } else {
            let mut joined = std::mem::take(&mut self.pending);
            joined.extend_from_slice(data);
            let used = self.read(&joined, rows)?;
            joined.drain(..used);
            self.pending = joined;
        }
        Ok(())
    }

    /// Reads the complete rows at the start of `data`; returns the bytes used.
    fn read(&mut self, data: &[u8], rows: &mut RowsBuilder) -> Result<usize, FieldError> {
        let mut at = 0;
        if !self.header_done {
            match header_len(data)? {
                Some(len) => at = len,
                None => return Ok(0),
            }
            self.header_done = true;
        }
        while !self.ended {
            let Some(len) = self.split_row(&data[at..])? else {
                break;
            };
            if len == 2 {
                self.ended = true;
            } else {
                self.add_row(&data[at..at + len], rows)?;
            }
            at += len;
        }
        if self.ended && at < data.len() {
            return Err((None, "data after the end of the binary COPY".into()));
        }
        Ok(at)
    }

    /// Finds the fields of the row at the start of `data`: its length once
    /// complete (2 for the trailer), `None` when more bytes are needed.
    fn split_row(&mut self, data: &[u8]) -> Result<Option<usize>, FieldError> {
        let Some(count) = data.get(..2) else {
            return Ok(None);
        };
        let count = i16::from_be_bytes([count[0], count[1]]);
        if count == -1 {
            return Ok(Some(2));
        }
        if count as usize != self.wires.len() {
            return Err((
                None,
                format!("a row of {count} values for {} columns", self.wires.len()),
            ));
        }
        self.fields.clear();
        let mut at = 2;
        for _ in 0..count {
            let Some(len) = data.get(at..at + 4) else {
                return Ok(None);
            };
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            at += 4;
            if len < 0 {
                self.fields.push(None);
                continue;
            }
            let len = len as usize;
            if data.len() < at + len {
                return Ok(None);
            }
            self.fields.push(Some((at, len)));
            at += len;
        }
        Ok(Some(at))
    }

    fn add_row(&mut self, row: &[u8], rows: &mut RowsBuilder) -> Result<(), FieldError> {
        for (column, field) in self.fields.iter().enumerate() {
            let pushed = match field {
                None => rows.push_null(column),
                Some((at, len)) => push_value(
                    rows,
                    column,
                    self.wires[column],
                    &self.types[column],
                    &row[*at..at + len],
                ),
            };
            pushed.map_err(|e| (Some(column), e))?;
        }
        rows.end_row();
        Ok(())
    }
}

/// The header's length once `data` holds all of it, `None` before.
fn header_len(data: &[u8]) -> Result<Option<usize>, FieldError> {
    let fixed = SIGNATURE.len() + 8;
    if data.len() < fixed {
        return Ok(None);
    }
    if &data[..SIGNATURE.len()] != SIGNATURE {
        return Err((None, "not a binary COPY (no PGCOPY signature)".into()));
    }
    let at = SIGNATURE.len() + 4;
    let extension = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
    let len = fixed + extension as usize;
    Ok((data.len() >= len).then_some(len))
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("a value of {} bytes where {N} were expected", bytes.len()))
}

/// Appends one non-NULL value in its binary form.
fn push_value(
    rows: &mut RowsBuilder,
    column: usize,
    wire: Wire,
    data_type: &DataType,
    bytes: &[u8],
) -> Result<(), String> {
    let value = match wire {
        Wire::Bool => CdcValue::Boolean(fixed::<1>(bytes)?[0] != 0),
        Wire::Int2 => CdcValue::Int(i16::from_be_bytes(fixed(bytes)?).into()),
        Wire::Int4 => CdcValue::Int(i32::from_be_bytes(fixed(bytes)?).into()),
        Wire::Int8 => CdcValue::Int(i64::from_be_bytes(fixed(bytes)?)),
        Wire::Oid => CdcValue::Int(u32::from_be_bytes(fixed(bytes)?).into()),
        Wire::Float4 => CdcValue::Float(f32::from_be_bytes(fixed(bytes)?)),
        Wire::Float8 => CdcValue::Double(f64::from_be_bytes(fixed(bytes)?)),
        Wire::Numeric(scale) => match numeric(bytes, scale)? {
            Some(unscaled) => CdcValue::Decimal(unscaled, scale),
            // NaN and infinities: a DECIMAL cannot hold them (NULL).
            None => CdcValue::Null,
        },
        Wire::Text => return rows.push_str(column, &text(bytes)),
        Wire::Bytea => return rows.push_bytes(column, bytes),
        Wire::Date => match i32::from_be_bytes(fixed(bytes)?) {
            // -infinity and infinity, NULL as their text is.
            i32::MIN | i32::MAX => CdcValue::Null,
            days => CdcValue::Date(
                days.checked_add(EPOCH_DAYS)
                    .ok_or_else(|| format!("date {days} is out of range"))?,
            ),
        },
        Wire::Time => CdcValue::Time(i64::from_be_bytes(fixed(bytes)?)),
        Wire::Timestamp | Wire::TimestampTz => match i64::from_be_bytes(fixed(bytes)?) {
            i64::MIN | i64::MAX => CdcValue::Null,
            micros => {
                let micros = micros
                    .checked_add(EPOCH_MICROS)
                    .ok_or_else(|| format!("timestamp {micros} is out of range"))?;
                if wire == Wire::Timestamp {
                    CdcValue::Timestamp(micros)
                } else {
                    CdcValue::TimestampUtc(micros)
                }
            }
        },
        Wire::AsText => {
            let text = text(bytes);
            if matches!(
                data_type.kind,
                DataTypeKind::Char(_) | DataTypeKind::VarChar(_)
            ) {
                return rows.push_str(column, &text);
            }
            parse_value(&text, data_type)?
        }
    };
    rows.push(column, value)
}

/// Text in the connection's encoding (UTF-8), borrowed when valid.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// A binary NUMERIC as an unscaled value at `scale`, digits past the scale
/// cut (as a cast does, and as the text protocol's reading does); `None`
/// for NaN and the infinities. The form: digit count, weight (the power of
/// 10000 of the first digit), sign, display scale, then base-10000 digits.
pub(crate) fn numeric(bytes: &[u8], scale: u32) -> Result<Option<i128>, String> {
    let word = |i: usize| -> Result<u16, String> {
        bytes
            .get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "a truncated numeric".to_string())
    };
    let digits = word(0)? as usize;
    let weight = word(2)? as i16 as i32;
    let negative = match word(4)? {
        0x0000 => false,
        0x4000 => true,
        // NaN, +infinity, -infinity.
        0xC000 | 0xD000 | 0xF000 => return Ok(None),
        other => return Err(format!("a numeric with sign {other:#x}")),
    };
    if bytes.len() != 8 + 2 * digits {
        return Err("a numeric of the wrong length".into());
    }
    let overflow = || "a numeric out of range".to_string();
    let mut value: i128 = 0;
    for i in 0..digits {
        let digit = word(8 + 2 * i)? as i128;
        // The power of ten of this digit's last decimal place, in units of
        // 10^-scale. Digits cut by the scale add less than one unit in all
        // (they are the places after it), so cutting each one is exact.
        let power = 4 * (weight - i as i32) + scale as i32;
        if power >= 0 {
            let place = 10i128.checked_pow(power as u32).ok_or_else(overflow)?;
            value = digit
                .checked_mul(place)
                .and_then(|d| value.checked_add(d))
                .ok_or_else(overflow)?;
        } else if power > -4 {
            value += digit / 10i128.pow(power.unsigned_abs());
        } else {
            break;
        }
    }
    Ok(Some(if negative { -value } else { value }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{SourceColumn, SourceSchema};
    use crate::rows::rows_of;
    use crate::values::parse_decimal;

    /// NUMERIC's binary form of a decimal text, as the server builds it.
    fn numeric_bytes(text: &str) -> Vec<u8> {
        let (negative, text) = match text.strip_prefix('-') {
            Some(t) => (true, t),
            None => (false, text),
        };
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let whole = whole.trim_start_matches('0');
        // Pad both sides to groups of four digits.
        let lead = (4 - whole.len() % 4) % 4;
        let trail = (4 - fraction.len() % 4) % 4;
        let all = format!("{}{whole}{fraction}{}", "0".repeat(lead), "0".repeat(trail));
        let groups: Vec<u16> = all
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
            .collect();
        let weight = ((lead + whole.len()) / 4) as i16 - 1;
        let mut out = Vec::new();
        out.extend((groups.len() as u16).to_be_bytes());
        out.extend(weight.to_be_bytes());
        out.extend((if negative { 0x4000u16 } else { 0 }).to_be_bytes());
        out.extend((fraction.len() as u16).to_be_bytes());
        for g in groups {
            out.extend(g.to_be_bytes());
        }
        out
    }

    #[test]
    fn numerics_read_as_their_text_reads() {
        for text in [
            "0",
            "12345678.90",
            "-0.05",
            "1.999999",
            "99999999999999999999.123456789012345678",
            "-12.345",
            "10000",
            "0.0001",
        ] {
            for scale in [0, 2, 5, 18] {
                assert_eq!(
                    numeric(&numeric_bytes(text), scale).unwrap(),
                    parse_decimal(text, scale),
                    "{text} at scale {scale}"
                );
            }
        }
        let nan = [0, 0, 0, 0, 0xC0, 0, 0, 0];
        assert_eq!(numeric(&nan, 2), Ok(None));
        assert!(numeric(&numeric_bytes("1.5")[..9], 2).is_err());
        // Past i128 is an error, as the text's reading is.
        assert!(numeric(&numeric_bytes(&"9".repeat(40)), 2).is_err());
    }

    fn column(name: &str, sql: &str) -> SourceColumn {
        SourceColumn {
            name: name.into(),
            data_type: DataType::parse_sql(sql).unwrap(),
            source_type: sql.into(),
            comment: None,
        }
    }

    fn field(out: &mut Vec<u8>, value: Option<&[u8]>) {
        match value {
            Some(v) => {
                out.extend((v.len() as i32).to_be_bytes());
                out.extend(v);
            }
            None => out.extend((-1i32).to_be_bytes()),
        }
    }

    #[test]
    fn rows_split_across_messages_are_read_once_whole() {
        let schema = SourceSchema {
            columns: vec![
                column("id", "BIGINT"),
                column("name", "STRING"),
                column("at", "TIMESTAMP(6)"),
                column("tags", "ARRAY<INT>"),
            ],
            primary_key: vec!["id".into()],
        };
        let wires = [
            (oid::INT8, Wire::Int8),
            (oid::TEXT, Wire::Text),
            (oid::TIMESTAMP, Wire::Timestamp),
            (1007, Wire::AsText),
        ];
        for ((type_oid, wire), c) in wires.iter().zip(&schema.columns) {
            assert_eq!(Wire::of(*type_oid, &c.data_type), *wire, "{}", c.name);
        }
        let mut stream = SIGNATURE.to_vec();
        stream.extend([0u8; 8]);
        for id in 1..=3i64 {
            stream.extend(4i16.to_be_bytes());
            field(&mut stream, Some(&id.to_be_bytes()));
            field(&mut stream, (id != 2).then_some("héllo".as_bytes()));
            field(&mut stream, Some(&0i64.to_be_bytes()));
            field(&mut stream, Some(b"{1,NULL}"));
        }
        stream.extend((-1i16).to_be_bytes());
        // Any split into messages reads the same rows.
        for size in [1, 7, 30, stream.len()] {
            let mut reader = BinaryRows::new(
                wires
                    .iter()
                    .zip(&schema.columns)
                    .map(|((_, w), c)| (*w, c.data_type.clone())),
            );
            let mut rows = RowsBuilder::new(&schema, 4);
            for chunk in stream.chunks(size) {
                reader.feed(chunk, &mut rows).unwrap();
            }
            assert!(reader.complete(), "split by {size}");
            let read = rows_of(&rows.finish().unwrap());
            assert_eq!(read.len(), 3);
            assert_eq!(
                read[0],
                vec![
                    CdcValue::Int(1),
                    CdcValue::String("héllo".into()),
                    CdcValue::Timestamp(EPOCH_MICROS),
                    CdcValue::Array(vec![CdcValue::Int(1), CdcValue::Null]),
                ]
            );
            assert_eq!(read[1][1], CdcValue::Null);
        }
    }
}
