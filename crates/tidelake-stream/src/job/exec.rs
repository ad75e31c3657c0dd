//! Running a job's query over a batch of changes with DataFusion.
//!
//! The source is a memory table of the batch: the source's columns, then
//! the hidden row kind, sign and position. Lookup tables are the warehouse's
//! tables, read at their latest snapshot each time the query runs. Each run
//! plans the prepared statement again (the memory table changes), which
//! costs little next to reading and writing the rows.

use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, Int64Array, Int8Array, RecordBatch,
};
use datafusion::arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use tidelake_engine::RowKind;

use super::analyze::{KIND_COLUMN, SEQ_COLUMN, SIGN_COLUMN};
use crate::row_kinds::{kind_column, row_kinds};
use tidelake_sql::{Result, SqlError};

/// The source's columns followed by the hidden ones.
pub(crate) fn input_schema(source: &Schema) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = source.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(KIND_COLUMN, DataType::Int8, false)));
    fields.push(Arc::new(Field::new(SIGN_COLUMN, DataType::Int8, false)));
    fields.push(Arc::new(Field::new(SEQ_COLUMN, DataType::Int64, false)));
    Arc::new(Schema::new(fields))
}

/// A change batch (`_row_kind`, then the source's columns) as input rows,
/// numbered from `first_seq`.
pub(crate) fn input_batch(
    schema: &SchemaRef,
    change: &RecordBatch,
    first_seq: i64,
) -> Result<RecordBatch> {
    let kinds = kind_column(change)?;
    let signs: Int8Array = row_kinds(change)?
        .map(|kind| kind.map(|k| if k.is_retract() { -1i8 } else { 1i8 }))
        .collect::<Result<Vec<i8>>>()?
        .into();
    let rows = change.num_rows() as i64;
    let seq = Int64Array::from_iter_values(first_seq..first_seq + rows);
    let mut columns: Vec<ArrayRef> = change.columns().iter().skip(1).cloned().collect();
    columns.push(Arc::new(kinds.clone()));
    columns.push(Arc::new(signs));
    columns.push(Arc::new(seq));
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Whether any input row is a retraction.
pub(crate) fn has_retractions(batches: &[RecordBatch]) -> bool {
    batches.iter().any(|b| {
        b.column_by_name(SIGN_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<Int8Array>())
            .is_some_and(|s| s.values().iter().any(|v| *v < 0))
    })
}

/// How query output becomes sink rows.
#[derive(Clone, Debug)]
pub(crate) struct SinkMapping {
    /// Per sink column (in order), the query output feeding it (or NULL).
    pub columns: Vec<Option<usize>>,
    pub sink_schema: SchemaRef,
}

impl SinkMapping {
    /// Sink rows from query output whose columns start at `offset`. The
    /// engine casts them to the sink's types (and checks NOT NULL).
    pub fn sink_batch(&self, output: &RecordBatch, offset: usize) -> Result<RecordBatch> {
        let rows = output.num_rows();
        let mut fields = Vec::with_capacity(self.columns.len());
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (field, source) in self.sink_schema.fields().iter().zip(&self.columns) {
            let column = match source {
                Some(i) => output.column(offset + i).clone(),
                None => new_null_array(field.data_type(), rows),
            };
            fields.push(Field::new(field.name(), column.data_type().clone(), true));
            columns.push(column);
        }
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }
}

/// Per-row output sorted back into input order (a join may reorder rows;
/// the sink applies a key's changes in the order they are written), and
/// its row kinds.
pub(crate) fn per_row_output(
    batches: &[RecordBatch],
) -> Result<Option<(RecordBatch, Vec<RowKind>)>> {
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let all = concat_batches(&first.schema(), batches)?;
    if all.num_rows() == 0 {
        return Ok(None);
    }
    let order = sort_to_indices(all.column(1), None, None)?;
    let sorted = take_record_batch(&all, &order)?;
    let kinds = sorted
        .column(0)
        .as_any()
        .downcast_ref::<Int8Array>()
        .ok_or_else(|| SqlError::Internal("the job's row kinds are not bytes".into()))?
        .values()
        .iter()
        .map(|k| {
            RowKind::from_byte(*k).ok_or_else(|| SqlError::Corrupt(format!("unknown row kind {k}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some((sorted, kinds)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;
    use tidelake_engine::ROW_KIND_COLUMN;

    fn change(kinds: &[i8], ids: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(ROW_KIND_COLUMN, DataType::Int8, false),
            Field::new("id", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int8Array::from(kinds.to_vec())),
                Arc::new(Int64Array::from(ids.to_vec())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn input_rows_carry_kind_sign_and_position() {
        let source = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        let schema = input_schema(&source);
        let batch = input_batch(&schema, &change(&[0, 1, 2, 3], &[1, 2, 3, 4]), 10).unwrap();
        let column = |name: &str| batch.column_by_name(name).unwrap().clone();
        let signs = column(SIGN_COLUMN);
        let signs = signs.as_any().downcast_ref::<Int8Array>().unwrap();
        assert_eq!(signs.values(), &[1, -1, 1, -1]);
        let seq = column(SEQ_COLUMN);
        let seq = seq.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(seq.values(), &[10, 11, 12, 13]);
        assert!(has_retractions(&[batch]));
        assert!(input_batch(&schema, &change(&[9], &[1]), 0).is_err());
    }

    #[test]
    fn per_row_output_returns_to_input_order_and_maps_to_the_sink() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int8, false),
            Field::new("s", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
        ]));
        let out = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int8Array::from(vec![3, 0, 2])),
                Arc::new(Int64Array::from(vec![7, 1, 4])),
                Arc::new(StringArray::from(vec!["c", "a", "b"])),
            ],
        )
        .unwrap();
        let (sorted, kinds) = per_row_output(&[out]).unwrap().unwrap();
        assert_eq!(
            kinds,
            vec![RowKind::Insert, RowKind::UpdateAfter, RowKind::Delete]
        );
        let mapping = SinkMapping {
            columns: vec![None, Some(0)],
            sink_schema: Arc::new(Schema::new(vec![
                Field::new("n", DataType::Int32, true),
                Field::new("v", DataType::Utf8, true),
            ])),
        };
        let sink = mapping.sink_batch(&sorted, 2).unwrap();
        assert_eq!(sink.column(0).null_count(), 3);
        let v = sink
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(v.iter().flatten().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert!(per_row_output(&[]).unwrap().is_none());
    }
}
