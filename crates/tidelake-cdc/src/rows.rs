//! Rows of an initial copy built straight into Arrow columns of the source
//! table's Paimon types ([`SourceEvent::Rows`](crate::event::SourceEvent)):
//! a copy moves millions of rows, and a value per row in a
//! `Vec<CdcValue>`, converted to Arrow again by the sink, costs more than
//! reading it. Scalar columns go to Arrow builders as they are read;
//! strings and bytes are appended from the source's buffer without a copy
//! of their own; other types (times, other timestamp units, arrays) are
//! collected as values and converted by [`to_arrow`] at the end.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use crate::event::{CdcValue, SourceSchema};
use crate::values::{from_arrow, to_arrow};

/// One column being built.
enum Builder {
    Boolean(BooleanBuilder),
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Date32(Date32Builder),
    /// Microsecond timestamps, with the column's zone (if any).
    Micros(TimestampMicrosecondBuilder, Option<Arc<str>>),
    /// Any other type: the values, converted by [`to_arrow`] at the end.
    Values(Vec<CdcValue>),
}

impl Builder {
    fn new(arrow_type: &ArrowType, capacity: usize) -> Builder {
        match arrow_type {
            ArrowType::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(capacity)),
            ArrowType::Int8 => Builder::Int8(Int8Builder::with_capacity(capacity)),
            ArrowType::Int16 => Builder::Int16(Int16Builder::with_capacity(capacity)),
            ArrowType::Int32 => Builder::Int32(Int32Builder::with_capacity(capacity)),
            ArrowType::Int64 => Builder::Int64(Int64Builder::with_capacity(capacity)),
            ArrowType::Float32 => Builder::Float32(Float32Builder::with_capacity(capacity)),
            ArrowType::Float64 => Builder::Float64(Float64Builder::with_capacity(capacity)),
            ArrowType::Decimal128(p, s) => {
                match Decimal128Builder::with_capacity(capacity).with_precision_and_scale(*p, *s) {
                    Ok(b) => Builder::Decimal(b),
                    // to_arrow reports the bad precision at the end.
                    Err(_) => Builder::Values(Vec::with_capacity(capacity)),
                }
            }
            ArrowType::Utf8 => Builder::Utf8(StringBuilder::with_capacity(capacity, capacity * 16)),
            ArrowType::Binary => {
                Builder::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            ArrowType::Date32 => Builder::Date32(Date32Builder::with_capacity(capacity)),
            ArrowType::Timestamp(TimeUnit::Microsecond, zone) => Builder::Micros(
                TimestampMicrosecondBuilder::with_capacity(capacity),
                zone.clone(),
            ),
            _ => Builder::Values(Vec::with_capacity(capacity)),
        }
    }

    fn len(&self) -> usize {
        use arrow::array::ArrayBuilder;
        match self {
            Builder::Boolean(b) => b.len(),
            Builder::Int8(b) => b.len(),
            Builder::Int16(b) => b.len(),
            Builder::Int32(b) => b.len(),
            Builder::Int64(b) => b.len(),
            Builder::Float32(b) => b.len(),
            Builder::Float64(b) => b.len(),
            Builder::Decimal(b) => b.len(),
            Builder::Utf8(b) => b.len(),
            Builder::Binary(b) => b.len(),
            Builder::Date32(b) => b.len(),
            Builder::Micros(b, _) => b.len(),
            Builder::Values(v) => v.len(),
        }
    }
}

/// Builds batches of rows of one source table, value by value, row by row.
/// Each row gets exactly one value per column, in column order.
pub struct RowsBuilder {
    schema: SchemaRef,
    columns: Vec<Builder>,
    capacity: usize,
    rows: usize,
}

impl RowsBuilder {
    /// A builder for rows of `schema`, sized for `capacity` rows per batch.
    pub fn new(schema: &SourceSchema, capacity: usize) -> RowsBuilder {
        let fields: Vec<Field> = schema
            .columns
            .iter()
            .map(|c| Field::new(&c.name, c.data_type.to_arrow(), true))
            .collect();
        let columns = fields
            .iter()
            .map(|f| Builder::new(f.data_type(), capacity))
            .collect();
        RowsBuilder {
            schema: Arc::new(Schema::new(fields)),
            columns,
            capacity,
            rows: 0,
        }
    }

    /// Rows ended since the last batch.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The name of column `column` (for error messages).
    pub fn column_name(&self, column: usize) -> &str {
        self.schema
            .fields()
            .get(column)
            .map_or("?", |f| f.name().as_str())
    }

    /// Ends the current row.
    pub fn end_row(&mut self) {
        self.rows += 1;
    }

    /// Appends a NULL to `column`.
    pub fn push_null(&mut self, column: usize) -> Result<(), String> {
        self.push(column, CdcValue::Null)
    }

    /// Appends text to `column` (copied into the column's buffer at once
    /// when it holds strings).
    pub fn push_str(&mut self, column: usize, text: &str) -> Result<(), String> {
        match self.columns.get_mut(column) {
            Some(Builder::Utf8(b)) => {
                b.append_value(text);
                Ok(())
            }
            _ => self.push(column, CdcValue::String(text.to_string())),
        }
    }

    /// Appends bytes to `column` (copied into the column's buffer at once
    /// when it holds bytes).
    pub fn push_bytes(&mut self, column: usize, bytes: &[u8]) -> Result<(), String> {
        match self.columns.get_mut(column) {
            Some(Builder::Binary(b)) => {
                b.append_value(bytes);
                Ok(())
            }
            _ => self.push(column, CdcValue::Bytes(bytes.to_vec())),
        }
    }

    /// Appends a value to `column`; an error (as [`to_arrow`] words it)
    /// when the value does not fit the column's type.
    pub fn push(&mut self, column: usize, value: CdcValue) -> Result<(), String> {
        let arrow_type = self
            .schema
            .fields()
            .get(column)
            .map(|f| f.data_type())
            .ok_or_else(|| format!("no column {column}"))?;
        let Some(builder) = self.columns.get_mut(column) else {
            return Err(format!("no column {column}"));
        };
        let out_of_range = |i: i64| format!("{i} is out of range for {arrow_type}");
        match (builder, value) {
            (Builder::Values(v), value) => v.push(value),
            (b, CdcValue::Null | CdcValue::Unchanged) => append_null(b),
            (Builder::Boolean(b), CdcValue::Boolean(v)) => b.append_value(v),
            (Builder::Int8(b), CdcValue::Int(i)) => {
                b.append_value(i8::try_from(i).map_err(|_| out_of_range(i))?)
            }
            (Builder::Int16(b), CdcValue::Int(i)) => {
                b.append_value(i16::try_from(i).map_err(|_| out_of_range(i))?)
            }
            (Builder::Int32(b), CdcValue::Int(i)) => {
                b.append_value(i32::try_from(i).map_err(|_| out_of_range(i))?)
            }
            (Builder::Int64(b), CdcValue::Int(i)) => b.append_value(i),
            (Builder::Float32(b), CdcValue::Float(f)) => b.append_value(f),
            (Builder::Float64(b), CdcValue::Double(f)) => b.append_value(f),
            (Builder::Decimal(b), CdcValue::Decimal(unscaled, _)) => b.append_value(unscaled),
            (Builder::Utf8(b), CdcValue::String(s)) => b.append_value(s),
            (Builder::Binary(b), CdcValue::Bytes(v)) => b.append_value(v),
            (Builder::Date32(b), CdcValue::Date(d)) => b.append_value(d),
            (Builder::Micros(b, _), CdcValue::Timestamp(m) | CdcValue::TimestampUtc(m)) => {
                b.append_value(m)
            }
            (_, other) => return Err(format!("{other:?} is not a {arrow_type}")),
        }
        Ok(())
    }

    /// The rows since the last batch as a batch (the builder starts over).
    pub fn finish(&mut self) -> Result<RecordBatch, String> {
        let rows = std::mem::take(&mut self.rows);
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (builder, field) in self.columns.iter_mut().zip(self.schema.fields()) {
            if builder.len() != rows {
                return Err(format!(
                    "column {} has {} values for {rows} rows",
                    field.name(),
                    builder.len()
                ));
            }
            arrays.push(match builder {
                Builder::Boolean(b) => Arc::new(b.finish()),
                Builder::Int8(b) => Arc::new(b.finish()),
                Builder::Int16(b) => Arc::new(b.finish()),
                Builder::Int32(b) => Arc::new(b.finish()),
                Builder::Int64(b) => Arc::new(b.finish()),
                Builder::Float32(b) => Arc::new(b.finish()),
                Builder::Float64(b) => Arc::new(b.finish()),
                Builder::Decimal(b) => Arc::new(b.finish()),
                Builder::Utf8(b) => Arc::new(b.finish()),
                Builder::Binary(b) => Arc::new(b.finish()),
                Builder::Date32(b) => Arc::new(b.finish()),
                Builder::Micros(b, zone) => Arc::new(b.finish().with_timezone_opt(zone.clone())),
                Builder::Values(values) => {
                    let taken = std::mem::replace(values, Vec::with_capacity(self.capacity));
                    let refs: Vec<&CdcValue> = taken.iter().collect();
                    to_arrow(&refs, field.data_type())
                        .map_err(|e| format!("column {}: {e}", field.name()))?
                }
            });
        }
        let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
            .map_err(|e| e.to_string())
    }
}

fn append_null(builder: &mut Builder) {
    match builder {
        Builder::Boolean(b) => b.append_null(),
        Builder::Int8(b) => b.append_null(),
        Builder::Int16(b) => b.append_null(),
        Builder::Int32(b) => b.append_null(),
        Builder::Int64(b) => b.append_null(),
        Builder::Float32(b) => b.append_null(),
        Builder::Float64(b) => b.append_null(),
        Builder::Decimal(b) => b.append_null(),
        Builder::Utf8(b) => b.append_null(),
        Builder::Binary(b) => b.append_null(),
        Builder::Date32(b) => b.append_null(),
        Builder::Micros(b, _) => b.append_null(),
        Builder::Values(v) => v.push(CdcValue::Null),
    }
}

/// The rows of a batch as values, row by row (the inverse of
/// [`RowsBuilder`], for consumers that take rows one at a time).
pub fn rows_of(batch: &RecordBatch) -> Vec<Vec<CdcValue>> {
    (0..batch.num_rows())
        .map(|r| {
            batch
                .columns()
                .iter()
                .map(|c| from_arrow(c.as_ref(), r))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SourceColumn;
    use tidelake_format::types::DataType;

    fn schema(types: &[&str]) -> SourceSchema {
        SourceSchema {
            columns: types
                .iter()
                .enumerate()
                .map(|(i, t)| SourceColumn {
                    name: format!("c{i}"),
                    data_type: DataType::parse_sql(t).unwrap(),
                    source_type: t.to_string(),
                    comment: None,
                })
                .collect(),
            primary_key: vec!["c0".into()],
        }
    }

    #[test]
    fn values_round_trip_through_batches() {
        let types = [
            "BIGINT",
            "SMALLINT",
            "STRING",
            "DECIMAL(12, 2)",
            "DOUBLE",
            "BOOLEAN",
            "TIMESTAMP(6)",
            "TIMESTAMP_LTZ(3)",
            "DATE",
            "TIME",
            "BYTES",
            "ARRAY<INT>",
        ];
        let rows = vec![
            vec![
                CdcValue::Int(1),
                CdcValue::Int(-7),
                CdcValue::String("a\tb".into()),
                CdcValue::Decimal(-1234, 2),
                CdcValue::Double(0.25),
                CdcValue::Boolean(true),
                CdcValue::Timestamp(1_700_000_000_123_456),
                CdcValue::TimestampUtc(1_700_000_000_123_000),
                CdcValue::Date(19_000),
                CdcValue::Time(3_600_000_000),
                CdcValue::Bytes(vec![0, 255]),
                CdcValue::Array(vec![CdcValue::Int(1), CdcValue::Null]),
            ],
            vec![CdcValue::Int(2); 1]
                .into_iter()
                .chain(std::iter::repeat_n(CdcValue::Null, types.len() - 1))
                .collect(),
        ];
        let mut builder = RowsBuilder::new(&schema(&types), 4);
        for _ in 0..2 {
            for row in &rows {
                for (c, v) in row.iter().enumerate() {
                    match v {
                        CdcValue::String(s) => builder.push_str(c, s).unwrap(),
                        CdcValue::Bytes(b) => builder.push_bytes(c, b).unwrap(),
                        v => builder.push(c, v.clone()).unwrap(),
                    }
                }
                builder.end_row();
            }
            // The builder starts over after each batch.
            let batch = builder.finish().unwrap();
            assert_eq!(rows_of(&batch), rows);
        }
    }

    #[test]
    fn values_that_do_not_fit_are_errors() {
        let mut builder = RowsBuilder::new(&schema(&["SMALLINT", "DATE"]), 1);
        assert!(builder.push(0, CdcValue::Int(70_000)).is_err());
        assert!(builder.push(1, CdcValue::Int(1)).is_err());
        assert!(builder.push_str(1, "2024-01-01").is_err());
        builder.push(0, CdcValue::Int(1)).unwrap();
        builder.end_row();
        // A row short of a value is refused.
        assert!(builder.finish().is_err());
    }
}
