//! Flushing a bucket's buffer: sort by key (then user sequence field, then
//! arrival), reduce each key to one row as the merge engine says (the last
//! or first version for deduplicate and first-row; the merge function's
//! combination for partial-update and aggregation), and roll the result into
//! level-0 files of at most `target-file-size`. `ignore-delete` drops -U/-D
//! rows first.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, Int8Array, RecordBatch, UInt32Array};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{DataType as ArrowType, Field, Schema, SchemaRef};
use tidelake_format::manifest::DataFileMeta;

use crate::error::{EngineError, Result};
use crate::files::{kv_batch, write_changelog_file, write_data_file, FileContent};
use crate::kv::{is_retraction, keep_additions, SEQUENCE_COLUMN, VALUE_KIND_COLUMN};
use crate::layout::TableLayout;
use crate::mergefn::{ignore_delete, MergeFunction, MergedRows, Version, VersionColumns};
use crate::options::{ChangelogProducer, MergeEngine};
use crate::table::Table;

/// Buffered rows: the table's columns, then sequence number and kind.
pub(crate) fn staged_schema(layout: &TableLayout) -> SchemaRef {
    let mut fields: Vec<Field> = layout
        .arrow_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(SEQUENCE_COLUMN, ArrowType::Int64, false));
    fields.push(Field::new(VALUE_KIND_COLUMN, ArrowType::Int8, false));
    Arc::new(Schema::new(fields))
}

/// Sort order of a bucket's rows (key, then `sequence.field`, then arrival)
/// and the ranges of that order that share a key.
fn sorted_key_groups(
    layout: &TableLayout,
    values: &[ArrayRef],
) -> Result<(Vec<u32>, Vec<std::ops::Range<usize>>)> {
    if layout.sequence_indices.is_empty() && layout.key_indices.len() == 1 {
        if let Some(keys) = integer_keys(&values[layout.key_indices[0]]) {
            return Ok(sorted_integer_groups(keys));
        }
    }
    let keys = comparable_rows(values, &layout.key_indices)?;
    let mut idx: Vec<u32> = (0..values[0].len() as u32).collect();
    // Unstable sorts with the row number as the last tie-breaker: the same
    // order as a stable sort, at the speed of pattern-defeating quicksort.
    if layout.sequence_indices.is_empty() {
        idx.sort_unstable_by(|a, b| {
            keys.row(*a as usize)
                .cmp(&keys.row(*b as usize))
                .then(a.cmp(b))
        });
    } else {
        let seqs = comparable_rows(values, &layout.sequence_indices)?;
        idx.sort_unstable_by(|a, b| {
            keys.row(*a as usize)
                .cmp(&keys.row(*b as usize))
                .then_with(|| seqs.row(*a as usize).cmp(&seqs.row(*b as usize)))
                .then(a.cmp(b))
        });
    }
    let mut groups = Vec::new();
    let mut i = 0;
    while i < idx.len() {
        let mut j = i + 1;
        while j < idx.len() && keys.row(idx[j] as usize) == keys.row(idx[i] as usize) {
            j += 1;
        }
        groups.push(i..j);
        i = j;
    }
    Ok((idx, groups))
}

/// The given columns in Arrow's row format, compared with one memcmp.
fn comparable_rows(values: &[ArrayRef], columns: &[usize]) -> Result<arrow_row::Rows> {
    let cols: Vec<ArrayRef> = columns.iter().map(|&i| values[i].clone()).collect();
    let converter = RowConverter::new(
        cols.iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )?;
    Ok(converter.convert_columns(&cols)?)
}

/// A single non-null integer key column as i64s: the common case of a
/// numeric id, sorted without the row format.
fn integer_keys(column: &ArrayRef) -> Option<Vec<i64>> {
    if column.null_count() > 0 {
        return None;
    }
    let any = column.as_any();
    if let Some(a) = any.downcast_ref::<Int64Array>() {
        return Some(a.values().to_vec());
    }
    if let Some(a) = any.downcast_ref::<arrow_array::Int32Array>() {
        return Some(a.values().iter().map(|v| i64::from(*v)).collect());
    }
    None
}

fn sorted_integer_groups(keys: Vec<i64>) -> (Vec<u32>, Vec<std::ops::Range<usize>>) {
    let mut pairs: Vec<(i64, u32)> = keys.into_iter().zip(0u32..).collect();
    pairs.sort_unstable();
    let mut groups = Vec::new();
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i + 1;
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            j += 1;
        }
        groups.push(i..j);
        i = j;
    }
    (pairs.into_iter().map(|(_, row)| row).collect(), groups)
}

/// Sort order of a bucket's rows, one row per key as the merge engine
/// deduplicate or first-row says (the last, or the first).
pub(crate) fn sorted_indices(layout: &TableLayout, values: &[ArrayRef]) -> Result<Vec<u32>> {
    let (idx, groups) = sorted_key_groups(layout, values)?;
    Ok(one_row_per_key(layout, &idx, groups))
}

/// The row of each key group the merge engine keeps (the last, or the
/// first for first-row).
fn one_row_per_key(
    layout: &TableLayout,
    idx: &[u32],
    groups: Vec<std::ops::Range<usize>>,
) -> Vec<u32> {
    let keep_first = layout.options.merge_engine == MergeEngine::FirstRow;
    groups
        .into_iter()
        .map(|g| {
            if keep_first {
                idx[g.start]
            } else {
                idx[g.end - 1]
            }
        })
        .collect()
}

/// The staged batch seen as the only slot of versions.
struct StagedColumns<'a>(&'a RecordBatch);

impl VersionColumns for StagedColumns<'_> {
    fn column(&self, _slot: usize, field: usize) -> &dyn Array {
        self.0.column(field).as_ref()
    }
}

/// Combines the rows of each key with the table's merge function: the
/// result has one row per key, in key order, with the newest version's
/// sequence number.
fn merge_staged(
    layout: &TableLayout,
    function: &MergeFunction,
    staged: &RecordBatch,
) -> Result<RecordBatch> {
    let nv = layout.schema.fields.len();
    let (idx, groups) = sorted_key_groups(layout, &staged.columns()[..nv])?;
    let kinds = staged
        .column(nv + 1)
        .as_any()
        .downcast_ref::<Int8Array>()
        .ok_or_else(|| EngineError::internal("value kind column is not TINYINT"))?;
    let cols = StagedColumns(staged);
    let mut merged = MergedRows::default();
    let mut versions = Vec::new();
    for g in groups {
        versions.clear();
        versions.extend(idx[g].iter().map(|&r| Version {
            slot: 0,
            row: r as usize,
            kind: kinds.value(r as usize),
        }));
        function.merge_key(&versions, &cols, &mut merged)?;
    }
    let mut columns = Vec::with_capacity(nv + 2);
    for field in 0..nv {
        columns.push(merged.build_column(function, field, &[staged.column(field).as_ref()])?);
    }
    let newest = UInt32Array::from(
        merged
            .newest
            .iter()
            .map(|(_, r)| *r as u32)
            .collect::<Vec<_>>(),
    );
    columns.push(arrow_select::take::take(staged.column(nv), &newest, None)?);
    columns.push(Arc::new(Int8Array::from(merged.kinds().to_vec())));
    Ok(RecordBatch::try_new_with_options(
        staged.schema(),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(merged.len())),
    )?)
}

fn kinds_of(staged: &RecordBatch, kind_column: usize) -> Result<&Int8Array> {
    staged
        .column(kind_column)
        .as_any()
        .downcast_ref::<Int8Array>()
        .ok_or_else(|| EngineError::internal("value kind column is not TINYINT"))
}

fn has_retractions(staged: &RecordBatch, kind_column: usize) -> Result<bool> {
    Ok(kinds_of(staged, kind_column)?
        .values()
        .iter()
        .any(|k| is_retraction(*k)))
}

/// Drops -U/-D rows (`ignore-delete`).
fn drop_retractions(staged: RecordBatch, kind_column: usize) -> Result<RecordBatch> {
    let kinds = kinds_of(&staged, kind_column)?.clone();
    keep_additions(staged, kinds.values())
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

/// The files one flush wrote.
#[derive(Default)]
pub(crate) struct Flushed {
    pub data: Vec<DataFileMeta>,
    /// Changelog files (`changelog-producer` = `input`).
    pub changelog: Vec<DataFileMeta>,
}

/// Writes a bucket's buffered batches as level-0 files under `dir` (and,
/// with the input changelog producer, the rows as they came as changelog
/// files).
pub(crate) async fn flush(
    table: &Table,
    kv_schema: &SchemaRef,
    dir: &str,
    batches: Vec<RecordBatch>,
) -> Result<Flushed> {
    let mut flushed = Flushed::default();
    if batches.is_empty() {
        return Ok(flushed);
    }
    let layout = &table.layout;
    let staged = arrow_select::concat::concat_batches(&batches[0].schema(), &batches)?;
    drop(batches);
    let nv = layout.schema.fields.len();
    let mut files = Vec::new();
    if layout.is_primary_key() {
        let staged = if ignore_delete(&layout.schema.options)? {
            drop_retractions(staged, nv + 1)?
        } else {
            staged
        };
        if layout.options.merge_engine == MergeEngine::FirstRow && has_retractions(&staged, nv + 1)?
        {
            return Err(EngineError::invalid(format!(
                "table '{}': the first-row merge engine cannot apply -U/-D rows; set 'ignore-delete' = 'true' to ignore them",
                table.id
            )));
        }
        // The input changelog needs every row in key order; deduplicate and
        // first-row then pick from the same order instead of sorting again.
        let mut key_order = None;
        if layout.options.changelog_producer == ChangelogProducer::Input && staged.num_rows() > 0 {
            let (order, groups) = sorted_key_groups(layout, &staged.columns()[..nv])?;
            flushed.changelog =
                write_input_changelog(table, kv_schema, dir, &staged, &order).await?;
            key_order = Some((order, groups));
        }
        let sorted = match MergeFunction::for_table(layout)? {
            Some(function) => merge_staged(layout, &function, &staged).map_err(|e| match e {
                EngineError::InvalidInput(m) => {
                    EngineError::invalid(format!("table '{}': {m}", table.id))
                }
                other => other,
            })?,
            None => {
                let kept = match key_order {
                    Some((order, groups)) => one_row_per_key(layout, &order, groups),
                    None => sorted_indices(layout, &staged.columns()[..nv])?,
                };
                arrow_select::take::take_record_batch(&staged, &UInt32Array::from(kept))?
            }
        };
        drop(staged);
        if sorted.num_rows() == 0 {
            return Ok(flushed);
        }
        files = write_kv_files(table, kv_schema, dir, &sorted, FileKindToWrite::Data).await?;
    } else {
        let bytes = staged.get_array_memory_size();
        for (offset, len) in chunk_bounds(staged.num_rows(), bytes, layout.options.target_file_size)
        {
            let part = staged.slice(offset, len);
            let seq = part
                .column(nv)
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| EngineError::internal("sequence column is not BIGINT"))?;
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
    flushed.data = files;
    Ok(flushed)
}

/// Every buffered row, in key order (then `sequence.field`, then arrival),
/// unmerged: Paimon's `input` changelog.
async fn write_input_changelog(
    table: &Table,
    kv_schema: &SchemaRef,
    dir: &str,
    staged: &RecordBatch,
    order: &[u32],
) -> Result<Vec<DataFileMeta>> {
    let sorted = arrow_select::take::take_record_batch(staged, &UInt32Array::from(order.to_vec()))?;
    write_kv_files(table, kv_schema, dir, &sorted, FileKindToWrite::Changelog).await
}

/// Which files `write_kv_files` writes.
#[derive(Clone, Copy)]
enum FileKindToWrite {
    Data,
    Changelog,
}

/// Rolls key-ordered staged rows (table columns, sequence, kind) into
/// key-value files of about `target-file-size` each.
async fn write_kv_files(
    table: &Table,
    kv_schema: &SchemaRef,
    dir: &str,
    sorted: &RecordBatch,
    kind: FileKindToWrite,
) -> Result<Vec<DataFileMeta>> {
    let layout = &table.layout;
    let nv = layout.schema.fields.len();
    let bytes = sorted.get_array_memory_size();
    let mut files = Vec::new();
    for (offset, len) in chunk_bounds(sorted.num_rows(), bytes, layout.options.target_file_size) {
        let part = sorted.slice(offset, len);
        let cols = part.columns();
        let batch = kv_batch(
            layout,
            kv_schema,
            &cols[..nv],
            cols[nv].clone(),
            cols[nv + 1].clone(),
        )?;
        files.push(match kind {
            FileKindToWrite::Data => {
                let content = FileContent {
                    batch,
                    sequence_range: None,
                };
                write_data_file(table, dir, content).await?
            }
            FileKindToWrite::Changelog => write_changelog_file(table, dir, batch).await?,
        });
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
