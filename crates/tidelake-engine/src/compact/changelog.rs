//! Changelog produced by compaction (`changelog-producer` = `lookup` or
//! `full-compaction`).
//!
//! Both producers emit the difference between two states of a bucket, each
//! the merge of some of its sorted runs:
//! - `lookup`, when a compaction consumes level-0 files: *before* is the
//!   merge of every level ≥ 1 run (what earlier changelog already
//!   described), *after* the merge of all runs. Only keys of level-0 files
//!   can differ, so higher-level files outside their key range are skipped.
//! - `full-compaction`, when a compaction writes the highest level: *before*
//!   is the previous highest level, *after* the merge of all runs.
//!
//! A key only before is `-D`, only after `+I`, in both with other values
//! `-U` then `+U`; a key whose value did not change emits nothing (as
//! Paimon's `changelog-producer.row-deduplicate`). The changelog files are
//! committed in the same COMPACT snapshot as the compaction, so they exist
//! exactly when the compaction does.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int8Array, RecordBatch};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::SchemaRef;
use futures::stream::BoxStream;
use futures::StreamExt;
use tidelake_format::manifest::DataFileMeta;

use super::rewrite::{merged_stream, FileRoller};
use super::BucketTask;
use crate::error::Result;
use crate::files::kv_file_schema;
use crate::kv::{keep_additions, RowKind};
use crate::lsm::{compare_key_rows, sorted_runs, SortedRun};
use crate::options::ChangelogProducer;
use crate::read::scan::Split;
use crate::table::Table;

/// The changelog files of compacting `task` in the bucket of `split` (whose
/// `files` are all its live files), or none when the producer makes none.
/// On error, files already written are deleted.
pub(crate) async fn bucket_changelog(
    table: &Table,
    split: &Split,
    task: &BucketTask,
    max_level: usize,
) -> Result<Vec<DataFileMeta>> {
    let Some((before, after)) = states_to_compare(table, split, task, max_level) else {
        return Ok(Vec::new());
    };
    let dir = crate::kv::TablePaths::relative_bucket_dir(&split.partition_path, split.bucket);
    let mut writer = FileRoller::changelog(table, dir);
    let before = merged_stream(table, split, &before, false);
    let after = merged_stream(table, split, &after, false);
    let result = diff(table, before, after, &mut writer).await;
    let result = match result {
        Ok(()) => writer.finish().await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(writer.files),
        Err(e) => {
            writer.delete_written(split).await;
            Err(e)
        }
    }
}

/// The runs whose merges are compared: (before, after).
fn states_to_compare(
    table: &Table,
    split: &Split,
    task: &BucketTask,
    max_level: usize,
) -> Option<(Vec<SortedRun>, Vec<SortedRun>)> {
    let key_types = &table.layout.key_types;
    match table.layout.options.changelog_producer {
        ChangelogProducer::Lookup => {
            let level0: Vec<&DataFileMeta> = task
                .runs
                .iter()
                .filter(|r| r.level == 0)
                .flat_map(|r| r.files.iter())
                .collect();
            if level0.is_empty() {
                return None;
            }
            let min = level0
                .iter()
                .map(|f| &f.min_key)
                .min_by(|a, b| compare_key_rows(a, b, key_types).unwrap_or(Ordering::Equal))?;
            let max = level0
                .iter()
                .map(|f| &f.max_key)
                .max_by(|a, b| compare_key_rows(a, b, key_types).unwrap_or(Ordering::Equal))?;
            // Higher-level files entirely outside the level-0 key range hold
            // the same values before and after.
            let overlaps = |f: &DataFileMeta| {
                f.level <= 0
                    || !(compare_key_rows(&f.max_key, min, key_types) == Some(Ordering::Less)
                        || compare_key_rows(&f.min_key, max, key_types) == Some(Ordering::Greater))
            };
            let files: Vec<DataFileMeta> = split
                .files
                .iter()
                .filter(|f| overlaps(f))
                .cloned()
                .collect();
            let after = sorted_runs(&files, key_types);
            let before = after.iter().filter(|r| r.level > 0).cloned().collect();
            Some((before, after))
        }
        ChangelogProducer::FullCompaction if task.output_level >= max_level => {
            let after = sorted_runs(&split.files, key_types);
            let before = after
                .iter()
                .filter(|r| r.level > 0 && r.level >= max_level)
                .cloned()
                .collect();
            Some((before, after))
        }
        _ => None,
    }
}

/// One side of the comparison: the current batch of a merged stream.
struct Side {
    stream: BoxStream<'static, Result<RecordBatch>>,
    batch: RecordBatch,
    keys: Option<Rows>,
    values: Option<Rows>,
    pos: usize,
    done: bool,
}

impl Side {
    fn new(stream: BoxStream<'static, Result<RecordBatch>>, schema: &SchemaRef) -> Side {
        Side {
            stream,
            batch: RecordBatch::new_empty(schema.clone()),
            keys: None,
            values: None,
            pos: 0,
            done: false,
        }
    }

    fn has_row(&self) -> bool {
        !self.done && self.pos < self.batch.num_rows()
    }
}

/// Converts the columns a diff compares into Arrow's row format.
struct Comparer {
    keys: RowConverter,
    key_columns: Vec<usize>,
    /// `None` when a value type has no row format (e.g. MAP): values then
    /// always count as changed, which is safe (a redundant -U/+U pair).
    values: Option<RowConverter>,
    value_columns: Vec<usize>,
    kind_column: usize,
}

/// The rows of a merged batch that are not retractions.
fn visible(batch: RecordBatch, kind_column: usize) -> Result<RecordBatch> {
    let Some(kinds) = batch
        .column(kind_column)
        .as_any()
        .downcast_ref::<Int8Array>()
    else {
        return Ok(batch);
    };
    let kinds = kinds.clone();
    keep_additions(batch, kinds.values())
}

impl Comparer {
    fn new(table: &Table, schema: &SchemaRef) -> Result<Comparer> {
        let nk = table.layout.key_indices.len();
        let key_columns: Vec<usize> = (0..nk).collect();
        let value_columns: Vec<usize> = (nk + 2..schema.fields().len()).collect();
        let field = |i: &usize| SortField::new(schema.field(*i).data_type().clone());
        let keys = RowConverter::new(key_columns.iter().map(field).collect())?;
        let values = RowConverter::new(value_columns.iter().map(field).collect()).ok();
        Ok(Comparer {
            keys,
            key_columns,
            values,
            value_columns,
            kind_column: nk + 1,
        })
    }

    fn convert(&self, batch: &RecordBatch) -> Result<(Rows, Option<Rows>)> {
        let pick = |cols: &[usize]| -> Vec<ArrayRef> {
            cols.iter().map(|&i| batch.column(i).clone()).collect()
        };
        let keys = self.keys.convert_columns(&pick(&self.key_columns))?;
        let values = match &self.values {
            Some(c) => Some(c.convert_columns(&pick(&self.value_columns))?),
            None => None,
        };
        Ok((keys, values))
    }
}

/// Rows picked for output: (0 = before, 1 = after, row, kind).
type Picked = Vec<(usize, usize, RowKind)>;

async fn diff(
    table: &Table,
    before: BoxStream<'static, Result<RecordBatch>>,
    after: BoxStream<'static, Result<RecordBatch>>,
    writer: &mut FileRoller<'_>,
) -> Result<()> {
    let schema = kv_file_schema(&table.layout);
    let comparer = Comparer::new(table, &schema)?;
    let mut sides = [Side::new(before, &schema), Side::new(after, &schema)];
    let mut picked: Picked = Vec::new();
    loop {
        for s in 0..2 {
            if !sides[s].has_row() && !sides[s].done {
                // The picked rows point into the batch about to be replaced.
                if let Some(batch) = assemble(&sides, &mut picked, table)? {
                    writer.push(batch).await?;
                }
                advance(&mut sides[s], &comparer).await?;
            }
        }
        let [b, a] = &mut sides;
        match (b.has_row(), a.has_row()) {
            (false, false) => break,
            (true, false) => {
                picked.push((0, b.pos, RowKind::Delete));
                b.pos += 1;
            }
            (false, true) => {
                picked.push((1, a.pos, RowKind::Insert));
                a.pos += 1;
            }
            (true, true) => {
                let (Some(bk), Some(ak)) = (&b.keys, &a.keys) else {
                    break;
                };
                match bk.row(b.pos).cmp(&ak.row(a.pos)) {
                    Ordering::Less => {
                        picked.push((0, b.pos, RowKind::Delete));
                        b.pos += 1;
                    }
                    Ordering::Greater => {
                        picked.push((1, a.pos, RowKind::Insert));
                        a.pos += 1;
                    }
                    Ordering::Equal => {
                        let same = match (&b.values, &a.values) {
                            (Some(bv), Some(av)) => bv.row(b.pos) == av.row(a.pos),
                            _ => false,
                        };
                        if !same {
                            picked.push((0, b.pos, RowKind::UpdateBefore));
                            picked.push((1, a.pos, RowKind::UpdateAfter));
                        }
                        b.pos += 1;
                        a.pos += 1;
                    }
                }
            }
        }
    }
    if let Some(batch) = assemble(&sides, &mut picked, table)? {
        writer.push(batch).await?;
    }
    Ok(())
}

/// Loads the next non-empty batch of a side (or marks it done). Merged
/// retractions are left out: they are no visible row (a key whose versions
/// are all retractions, kept in files for later merges).
async fn advance(side: &mut Side, comparer: &Comparer) -> Result<()> {
    while let Some(batch) = side.stream.next().await {
        let batch = visible(batch?, comparer.kind_column)?;
        if batch.num_rows() == 0 {
            continue;
        }
        let (keys, values) = comparer.convert(&batch)?;
        side.batch = batch;
        side.keys = Some(keys);
        side.values = values;
        side.pos = 0;
        return Ok(());
    }
    side.done = true;
    side.keys = None;
    side.values = None;
    side.batch = RecordBatch::new_empty(side.batch.schema());
    side.pos = 0;
    Ok(())
}

/// Assembles the picked rows (with their new kinds) into one batch. Not
/// async: the sides hold streams that must not be borrowed across awaits.
fn assemble(sides: &[Side; 2], picked: &mut Picked, table: &Table) -> Result<Option<RecordBatch>> {
    if picked.is_empty() {
        return Ok(None);
    }
    let schema = sides[0].batch.schema();
    let nk = table.layout.key_indices.len();
    let kind_column = nk + 1;
    let indices: Vec<(usize, usize)> = picked.iter().map(|(s, r, _)| (*s, *r)).collect();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for c in 0..schema.fields().len() {
        if c == kind_column {
            columns.push(Arc::new(Int8Array::from_iter_values(
                picked.iter().map(|(_, _, k)| k.to_byte()),
            )));
            continue;
        }
        let arrays: [&dyn Array; 2] = [
            sides[0].batch.column(c).as_ref(),
            sides[1].batch.column(c).as_ref(),
        ];
        columns.push(arrow_select::interleave::interleave(&arrays, &indices)?);
    }
    picked.clear();
    Ok(Some(RecordBatch::try_new(schema, columns)?))
}
