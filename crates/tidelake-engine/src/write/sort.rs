//! Flushing a bucket's buffer: sort by key (then user sequence field, then
//! arrival), keep one row per key as the merge engine says, and roll the
//! result into level-0 files of at most `target-file-size`.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, UInt32Array};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{DataType as ArrowType, Field, Schema, SchemaRef};
use tidelake_format::manifest::DataFileMeta;

use super::file::{kv_batch, write_data_file, FileContent};
use crate::error::{EngineError, Result};
use crate::options::MergeEngine;
use crate::table::{Table, TableLayout};

/// Buffered rows: the table's columns, then sequence number and kind.
pub(crate) fn staged_schema(layout: &TableLayout) -> SchemaRef {
    let mut fields: Vec<Field> = layout
        .arrow_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(super::SEQUENCE_COLUMN, ArrowType::Int64, false));
    fields.push(Field::new(super::VALUE_KIND_COLUMN, ArrowType::Int8, false));
    Arc::new(Schema::new(fields))
}

/// Sort order of a bucket's rows: key, then `sequence.field`, then arrival.
pub(crate) fn sorted_indices(layout: &TableLayout, values: &[ArrayRef]) -> Result<Vec<u32>> {
    let key_cols: Vec<ArrayRef> = layout
        .key_indices
        .iter()
        .map(|&i| values[i].clone())
        .collect();
    let converter = RowConverter::new(
        key_cols
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )?;
    let keys = converter.convert_columns(&key_cols)?;
    let mut idx: Vec<u32> = (0..values[0].len() as u32).collect();
    if layout.sequence_indices.is_empty() {
        idx.sort_by(|a, b| keys.row(*a as usize).cmp(&keys.row(*b as usize)));
    } else {
        let seq_cols: Vec<ArrayRef> = layout
            .sequence_indices
            .iter()
            .map(|&i| values[i].clone())
            .collect();
        let sc = RowConverter::new(
            seq_cols
                .iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect(),
        )?;
        let seqs = sc.convert_columns(&seq_cols)?;
        idx.sort_by(|a, b| {
            keys.row(*a as usize)
                .cmp(&keys.row(*b as usize))
                .then_with(|| seqs.row(*a as usize).cmp(&seqs.row(*b as usize)))
        });
    }
    // Keep one row per key: the merge engine decides which.
    let keep_first = layout.options.merge_engine == MergeEngine::FirstRow;
    let mut out = Vec::with_capacity(idx.len());
    let mut i = 0;
    while i < idx.len() {
        let mut j = i + 1;
        while j < idx.len() && keys.row(idx[j] as usize) == keys.row(idx[i] as usize) {
            j += 1;
        }
        out.push(if keep_first { idx[i] } else { idx[j - 1] });
        i = j;
    }
    Ok(out)
}

/// Splits `rows` into chunks whose in-memory size is near `target` bytes.
fn chunk_bounds(rows: usize, bytes: usize, target: u64) -> Vec<(usize, usize)> {
    let per_row = (bytes / rows.max(1)).max(1) as u64;
    let per_chunk = ((target / per_row).max(1024) as usize).min(rows.max(1));
    (0..rows)
        .step_by(per_chunk)
        .map(|s| (s, per_chunk.min(rows - s)))
        .collect()
}

/// Writes a bucket's buffered batches as level-0 files under `dir`.
pub(crate) async fn flush(
    table: &Table,
    kv_schema: &SchemaRef,
    dir: &str,
    batches: Vec<RecordBatch>,
) -> Result<Vec<DataFileMeta>> {
    if batches.is_empty() {
        return Ok(Vec::new());
    }
    let layout = &table.layout;
    let staged = arrow_select::concat::concat_batches(&batches[0].schema(), &batches)?;
    drop(batches);
    let nv = layout.schema.fields.len();
    let mut files = Vec::new();
    if layout.is_primary_key() {
        if !matches!(
            layout.options.merge_engine,
            MergeEngine::Deduplicate | MergeEngine::FirstRow
        ) {
            return Err(EngineError::Unsupported(format!(
                "merge engine {:?} of table '{}' is not supported by this writer yet",
                layout.options.merge_engine, table.id
            )));
        }
        let order = UInt32Array::from(sorted_indices(layout, &staged.columns()[..nv])?);
        let sorted = arrow_select::take::take_record_batch(&staged, &order)?;
        drop(staged);
        let bytes = sorted.get_array_memory_size();
        for (offset, len) in chunk_bounds(sorted.num_rows(), bytes, layout.options.target_file_size)
        {
            let part = sorted.slice(offset, len);
            let cols = part.columns();
            let batch = kv_batch(
                layout,
                kv_schema,
                &cols[..nv],
                cols[nv].clone(),
                cols[nv + 1].clone(),
            )?;
            files.push(
                write_data_file(
                    table,
                    dir,
                    FileContent {
                        batch,
                        sequence_range: None,
                    },
                )
                .await?,
            );
        }
    } else {
        let bytes = staged.get_array_memory_size();
        for (offset, len) in chunk_bounds(staged.num_rows(), bytes, layout.options.target_file_size)
        {
            let part = staged.slice(offset, len);
            let seq = part
                .column(nv)
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| EngineError::invalid("internal: sequence column is not BIGINT"))?;
            let range = (seq.value(0), seq.value(seq.len() - 1));
            let batch =
                RecordBatch::try_new(layout.arrow_schema.clone(), part.columns()[..nv].to_vec())?;
            files.push(
                write_data_file(
                    table,
                    dir,
                    FileContent {
                        batch,
                        sequence_range: Some(range),
                    },
                )
                .await?,
            );
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::chunk_bounds;

    #[test]
    fn chunks_cover_all_rows() {
        let c = chunk_bounds(10_000, 10_000 * 100, 100 * 3000);
        assert_eq!(c.iter().map(|(_, l)| l).sum::<usize>(), 10_000);
        assert_eq!(c[0], (0, 3000));
        assert_eq!(chunk_bounds(5, 50, 1 << 30), vec![(0, 5)]);
    }
}
