//! Compaction of tables with deletion vectors (Paimon's lookup compaction).
//!
//! The picked runs R (the newest runs of a bucket, written into output
//! level L ≥ 1) are merged as in any compaction, but older versions of
//! their keys are not left alive in the unpicked runs (all at levels above
//! L): each key of R is looked up there, and its live row, if any, is
//! merged in as the key's oldest version and marked deleted in its file's
//! deletion vector. So every key keeps at most one live row among the
//! levels ≥ 1; a merged result that is a retraction writes nothing (the
//! old row is deleted all the same), so no retraction reaches a level ≥ 1
//! file; and readers read those files without merging.
//!
//! Per bucket:
//! 1. the keys of R: their key columns only, without deleted rows;
//! 2. the unpicked files whose key range holds one of those keys are
//!    probed (key and kind columns only, stopping past the last key),
//!    noting the positions of live rows with a key of R;
//! 3. R is merged with those rows, fetched by position and only when the
//!    merge engine needs old values (deduplicate without `sequence.field`
//!    does not: R's versions are newer and win), and written into L;
//! 4. the bucket's new vectors (old vectors of the files that stay, plus
//!    the new positions; vectors of compacted files are dropped) are
//!    written as one index file, committed with the COMPACT snapshot.
//!
//! First-row tables (which Paimon's readers also read without merging, and
//! which have no vectors) compact the same way, except that the old row
//! wins: R's versions of a key found above are dropped, nothing is marked.
//!
//! Memory: the keys of R (in Arrow's row format) and the positions found;
//! old rows stream through the merge like any other run.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int8Array, RecordBatch};
use arrow_row::{RowConverter, SortField};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use tidelake_format::binary_row::{datums_to_arrow, deserialize_binary_row};
use tidelake_format::deletion_vector::DeletionVector;
use tidelake_format::manifest::{DataFileMeta, IndexManifestEntry};

use super::rewrite::{kv_read_columns, merge_kv_streams, open_run, FileRoller};
use super::BucketTask;
use crate::error::{EngineError, Result};
use crate::options::MergeEngine;
use crate::read::file::{key_columns, output_schema, read_data_file, read_file_rows, ReadColumn};
use crate::read::scan::Split;
use crate::table::Table;

const BATCH_SIZE: usize = 8192;

/// How a compaction changes its bucket's deletion vectors.
#[derive(Clone, Debug, Default)]
pub(crate) struct VectorUpdate {
    /// The bucket's new index file; `None` when no vector remains.
    pub entry: Option<IndexManifestEntry>,
    /// The index files the compaction read the bucket's vectors from.
    pub loaded_from: Vec<String>,
}

/// Merges the task's runs into its output level (≥ 1), deleting the older
/// rows of their keys from the unpicked runs (first-row: dropping the keys
/// found there). Returns the new data files and, for tables with deletion
/// vectors, the bucket's new vectors. On error, files written are deleted.
pub(crate) async fn rewrite_bucket(
    table: &Table,
    split: &Split,
    task: &BucketTask,
) -> Result<(Vec<DataFileMeta>, Option<VectorUpdate>)> {
    let picked: HashSet<&str> = task
        .runs
        .iter()
        .flat_map(|r| r.files.iter().map(|f| f.file_name.as_str()))
        .collect();
    let unpicked: Vec<&DataFileMeta> = split
        .files
        .iter()
        .filter(|f| !picked.contains(f.file_name.as_str()))
        .collect();
    if let Some(f) = unpicked
        .iter()
        .find(|f| f.level <= 0 || (f.level as usize) < task.output_level)
    {
        // Unpicked runs must be older than the output: only then is the
        // looked-up row the oldest version of its key.
        return Err(EngineError::internal(format!(
            "compaction into level {} of bucket {} leaves file {} at level {} below it",
            task.output_level, split.bucket, f.file_name, f.level
        )));
    }
    // Files left at the output level belong to the output's sorted run (a
    // full compaction rewriting files in place): they hold other keys.
    let above: Vec<&DataFileMeta> = unpicked
        .iter()
        .copied()
        .filter(|f| f.level as usize > task.output_level)
        .collect();
    let found = find_old_rows(table, split, task, &above).await?;
    let old_rows = &found.rows;
    let dir = crate::kv::TablePaths::relative_bucket_dir(&split.partition_path, split.bucket);
    let mut roller = FileRoller::new(table, dir, task.output_level);
    let with_vectors = split.deletion_vectors.is_some();
    let result = async {
        write_merged(table, split, task, &found, &mut roller).await?;
        if !with_vectors {
            return Ok(None);
        }
        let vectors = new_vectors(split, &unpicked, old_rows)?;
        let entry = if vectors.is_empty() {
            None
        } else {
            Some(
                crate::index::write_deletion_vectors(
                    table,
                    &split.partition,
                    split.bucket,
                    &vectors,
                )
                .await?,
            )
        };
        Ok(Some(entry))
    }
    .await;
    match result {
        Ok(entry) => {
            tracing::debug!(
                table = %table.id,
                bucket = split.bucket,
                output_level = task.output_level,
                old_rows_deleted = old_rows.iter().map(|o| o.positions.len()).sum::<usize>(),
                "lookup compaction"
            );
            let update = entry.map(|entry| VectorUpdate {
                entry,
                loaded_from: split
                    .deletion_vectors
                    .as_ref()
                    .map(|v| v.index_files().to_vec())
                    .unwrap_or_default(),
            });
            Ok((std::mem::take(&mut roller.files), update))
        }
        Err(e) => {
            roller.delete_written(split).await;
            Err(e)
        }
    }
}

/// What the lookup found in the unpicked runs.
#[derive(Default)]
struct Found {
    rows: Vec<OldRows>,
    /// The keys of the picked runs that have a live row there.
    keys: KeySet,
    /// Converts key columns into `keys`' format.
    converter: Option<RowConverter>,
}

/// The live rows of one unpicked file that hold keys of the picked runs.
struct OldRows {
    file: DataFileMeta,
    /// Ascending row positions within the file.
    positions: Vec<u64>,
}

/// Keys in Arrow's row format (memcmp order), sorted and unique, in one
/// buffer.
#[derive(Default)]
struct KeySet {
    bytes: Vec<u8>,
    /// End offset of each key in `bytes`.
    ends: Vec<usize>,
}

impl KeySet {
    /// Sorts and deduplicates keys given as (start, end) ranges of `buffer`.
    fn new(buffer: &[u8], mut ranges: Vec<(usize, usize)>) -> KeySet {
        ranges.sort_unstable_by(|a, b| buffer[a.0..a.1].cmp(&buffer[b.0..b.1]));
        ranges.dedup_by(|a, b| buffer[a.0..a.1] == buffer[b.0..b.1]);
        let mut set = KeySet::default();
        for (s, e) in ranges {
            set.bytes.extend_from_slice(&buffer[s..e]);
            set.ends.push(set.bytes.len());
        }
        set
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// The keys at the given (ascending) indexes.
    fn subset(&self, indexes: &[usize]) -> KeySet {
        let mut set = KeySet::default();
        for &i in indexes {
            set.bytes.extend_from_slice(self.get(i));
            set.ends.push(set.bytes.len());
        }
        set
    }

    fn contains(&self, key: &[u8]) -> bool {
        let i = self.lower_bound(key);
        i < self.len() && self.get(i) == key
    }

    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    /// The index of the first key not below `key`.
    fn lower_bound(&self, key: &[u8]) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.get(mid) < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

fn key_converter(columns: &[ReadColumn]) -> Result<RowConverter> {
    let schema = output_schema(columns);
    Ok(RowConverter::new(
        schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )?)
}

/// Steps 1 and 2: the live rows of unpicked files with keys of the picked
/// runs.
async fn find_old_rows(
    table: &Table,
    split: &Split,
    task: &BucketTask,
    unpicked: &[&DataFileMeta],
) -> Result<Found> {
    let key_types = &table.layout.key_types;
    // Cheap first: files outside every picked file's key range hold none.
    let picked_ranges: Vec<(&[u8], &[u8])> = task
        .runs
        .iter()
        .flat_map(|r| r.files.iter())
        .map(|f| (f.min_key.as_slice(), f.max_key.as_slice()))
        .collect();
    let overlaps = |f: &DataFileMeta| {
        picked_ranges.iter().any(|(min, max)| {
            let below = crate::lsm::compare_key_rows(&f.max_key, min, key_types)
                == Some(std::cmp::Ordering::Less);
            let above = crate::lsm::compare_key_rows(&f.min_key, max, key_types)
                == Some(std::cmp::Ordering::Greater);
            !below && !above
        })
    };
    let mut candidates: Vec<&DataFileMeta> =
        unpicked.iter().copied().filter(|f| overlaps(f)).collect();
    if candidates.is_empty() {
        return Ok(Found::default());
    }
    let columns = key_columns(table);
    let converter = key_converter(&columns)?;
    let keys = picked_keys(table, split, task, &columns, &converter).await?;
    if keys.len() == 0 {
        return Ok(Found::default());
    }
    candidates.sort_by_key(|f| f.level);
    let mut found = Vec::new();
    let mut found_keys: Vec<usize> = Vec::new();
    for file in candidates {
        let first = match key_bounds(table, &converter, file)? {
            Some((min, max)) => {
                let first = keys.lower_bound(&min);
                if first == keys.len() || keys.get(first) > max.as_slice() {
                    continue;
                }
                first
            }
            None => 0,
        };
        let (positions, matched) =
            probe_file(table, split, file, &columns, &converter, &keys, first).await?;
        found_keys.extend(matched);
        if !positions.is_empty() {
            found.push(OldRows {
                file: file.clone(),
                positions,
            });
        }
    }
    found_keys.sort_unstable();
    found_keys.dedup();
    Ok(Found {
        rows: found,
        keys: keys.subset(&found_keys),
        converter: Some(converter),
    })
}

/// Every key of the picked runs (deleted rows left out, retractions kept:
/// they delete older rows too).
async fn picked_keys(
    table: &Table,
    split: &Split,
    task: &BucketTask,
    columns: &[ReadColumn],
    converter: &RowConverter,
) -> Result<KeySet> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for run in &task.runs {
        let mut batches = open_run(table, split, run, columns);
        while let Some(batch) = batches.try_next().await? {
            let rows = converter.convert_columns(batch.columns())?;
            for row in rows.iter() {
                let start = buffer.len();
                buffer.extend_from_slice(row.as_ref());
                ranges.push((start, buffer.len()));
            }
        }
    }
    Ok(KeySet::new(&buffer, ranges))
}

/// A file's min and max key in the converter's row format; `None` when its
/// metadata cannot be decoded (the file is then probed whole).
fn key_bounds(
    table: &Table,
    converter: &RowConverter,
    file: &DataFileMeta,
) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    let types = &table.layout.key_types;
    let (Ok(min), Ok(max)) = (
        deserialize_binary_row(&file.min_key, types),
        deserialize_binary_row(&file.max_key, types),
    ) else {
        return Ok(None);
    };
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(types.len());
    for (i, t) in types.iter().enumerate() {
        let (Some(lo), Some(hi)) = (min.get(i), max.get(i)) else {
            return Ok(None);
        };
        let array = datums_to_arrow(&[lo.clone(), hi.clone()], t)?;
        let wanted = t.to_arrow();
        arrays.push(if array.data_type() == &wanted {
            array
        } else {
            arrow::compute::cast(&array, &wanted)?
        });
    }
    let rows = converter.convert_columns(&arrays)?;
    Ok(Some((
        rows.row(0).as_ref().to_vec(),
        rows.row(1).as_ref().to_vec(),
    )))
}

/// The positions of the live rows of `file` whose key is in `keys`, and
/// the indexes of those keys, scanning keys from index `first` on (the
/// file is sorted by key).
async fn probe_file(
    table: &Table,
    split: &Split,
    file: &DataFileMeta,
    key_columns: &[ReadColumn],
    converter: &RowConverter,
    keys: &KeySet,
    first: usize,
) -> Result<(Vec<u64>, Vec<usize>)> {
    let nk = key_columns.len();
    let mut columns = key_columns.to_vec();
    columns.push(ReadColumn::ValueKind);
    let path = table
        .paths()
        .data_file(&split.partition_path, split.bucket, &file.file_name);
    let deleted = split
        .deletion_vectors
        .as_ref()
        .and_then(|v| v.get(&file.file_name).cloned());
    // Read whole, not through the vector: positions count every row.
    let mut batches = read_data_file(table, &path, file, &columns, BATCH_SIZE).await?;
    let mut positions = Vec::new();
    let mut matched = Vec::new();
    let mut next_key = first;
    let mut batch_start = 0u64;
    'file: while let Some(batch) = batches.try_next().await? {
        let rows = converter.convert_columns(&batch.columns()[..nk])?;
        let kinds = batch
            .column(nk)
            .as_any()
            .downcast_ref::<Int8Array>()
            .ok_or_else(|| EngineError::internal("value kind column is not TINYINT"))?;
        for (i, row) in rows.iter().enumerate() {
            let row = row.as_ref();
            while next_key < keys.len() && keys.get(next_key) < row {
                next_key += 1;
            }
            if next_key == keys.len() {
                break 'file;
            }
            let position = batch_start + i as u64;
            let live = matches!(kinds.value(i), 0 | 2)
                && !deleted.as_ref().is_some_and(|d| d.is_deleted(position));
            if keys.get(next_key) == row && live {
                positions.push(position);
                matched.push(next_key);
            }
        }
        batch_start += batch.num_rows() as u64;
    }
    Ok((positions, matched))
}

/// Whether the merge engine's result for a key can depend on its older
/// row: deduplicate without `sequence.field` is decided by the newest
/// version alone (R's versions are always newer), first-row by the old row
/// alone (R's versions of its key are dropped).
fn needs_old_values(table: &Table) -> bool {
    let layout = &table.layout;
    match layout.options.merge_engine {
        MergeEngine::Deduplicate => !layout.sequence_indices.is_empty(),
        MergeEngine::FirstRow => false,
        MergeEngine::PartialUpdate | MergeEngine::Aggregation => true,
    }
}

/// Step 3: merges the picked runs with the old rows and writes every
/// result that is not a retraction (first-row: of a key not found above).
async fn write_merged(
    table: &Table,
    split: &Split,
    task: &BucketTask,
    found: &Found,
    roller: &mut FileRoller<'_>,
) -> Result<()> {
    let old_rows = &found.rows;
    let columns = kv_read_columns(table);
    let mut streams: Vec<BoxStream<'static, Result<RecordBatch>>> = task
        .runs
        .iter()
        .map(|r| open_run(table, split, r, &columns))
        .collect();
    if needs_old_values(table) {
        // Each level is one sorted run, so its old rows are one too.
        let mut by_level: BTreeMap<i32, Vec<&OldRows>> = BTreeMap::new();
        for o in old_rows {
            by_level.entry(o.file.level).or_default().push(o);
        }
        for (_, mut files) in by_level {
            crate::lsm::sort_by_min_key(&mut files, &table.layout.key_types, |o| &o.file.min_key);
            streams.push(old_row_stream(table, split, &files, &columns));
        }
    }
    let nk = table.layout.key_indices.len();
    let kind_column = nk + 1;
    let first_row = table.layout.options.merge_engine == MergeEngine::FirstRow;
    let mut merged = merge_kv_streams(table, streams, true);
    while let Some(batch) = merged.try_next().await? {
        let mut batch = additions(&batch, kind_column)?;
        if let (true, Some(converter)) = (first_row, &found.converter) {
            batch = without_keys(&batch, nk, converter, &found.keys)?;
        }
        roller.push(batch).await?;
    }
    roller.finish().await
}

/// The rows of a batch (key columns first) whose key is not in `keys`.
fn without_keys(
    batch: &RecordBatch,
    nk: usize,
    converter: &RowConverter,
    keys: &KeySet,
) -> Result<RecordBatch> {
    if keys.len() == 0 {
        return Ok(batch.clone());
    }
    let rows = converter.convert_columns(&batch.columns()[..nk])?;
    let keep: arrow_array::BooleanArray = rows
        .iter()
        .map(|r| Some(!keys.contains(r.as_ref())))
        .collect();
    Ok(arrow_select::filter::filter_record_batch(batch, &keep)?)
}

/// The old rows of one level's files, read by position, in key order.
fn old_row_stream(
    table: &Table,
    split: &Split,
    files: &[&OldRows],
    columns: &[ReadColumn],
) -> BoxStream<'static, Result<RecordBatch>> {
    let table = table.clone();
    let columns = columns.to_vec();
    let partition_path = split.partition_path.clone();
    let bucket = split.bucket;
    let reads: Vec<(DataFileMeta, Arc<[u64]>)> = files
        .iter()
        .map(|o| (o.file.clone(), Arc::from(o.positions.as_slice())))
        .collect();
    stream::iter(reads)
        .then(move |(file, positions)| {
            let table = table.clone();
            let columns = columns.clone();
            let path = table.paths().data_file(&partition_path, bucket, &file.file_name);
            async move {
                read_file_rows(&table, &path, &file, &columns, BATCH_SIZE, &positions).await
            }
        })
        .try_flatten()
        .boxed()
}

/// The rows of a merged batch that add a value (+I, +U).
fn additions(batch: &RecordBatch, kind_column: usize) -> Result<RecordBatch> {
    let kinds = batch
        .column(kind_column)
        .as_any()
        .downcast_ref::<Int8Array>()
        .ok_or_else(|| EngineError::internal("value kind column is not TINYINT"))?;
    crate::kv::keep_additions(batch.clone(), kinds.values())
}

/// Step 4: the vectors of the files that stay, with the new deletions.
fn new_vectors(
    split: &Split,
    unpicked: &[&DataFileMeta],
    old_rows: &[OldRows],
) -> Result<BTreeMap<String, DeletionVector>> {
    let mut vectors: BTreeMap<String, DeletionVector> = BTreeMap::new();
    if let Some(current) = &split.deletion_vectors {
        for f in unpicked {
            if let Some(v) = current.get(&f.file_name) {
                vectors.insert(f.file_name.clone(), (**v).clone());
            }
        }
    }
    for o in old_rows {
        let vector = vectors.entry(o.file.file_name.clone()).or_default();
        for &p in &o.positions {
            vector
                .delete(p)
                .map_err(|e| EngineError::format(o.file.file_name.clone(), e))?;
        }
    }
    vectors.retain(|_, v| !v.is_empty());
    Ok(vectors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn set(keys: &[&[u8]]) -> KeySet {
        let mut buffer = Vec::new();
        let mut ranges = Vec::new();
        for k in keys {
            let start = buffer.len();
            buffer.extend_from_slice(k);
            ranges.push((start, buffer.len()));
        }
        KeySet::new(&buffer, ranges)
    }

    #[test]
    fn key_sets_sort_deduplicate_and_search() {
        let keys = set(&[b"m", b"b", b"zz", b"b", b"a", b"m"]);
        let all: Vec<&[u8]> = (0..keys.len()).map(|i| keys.get(i)).collect();
        assert_eq!(all, vec![&b"a"[..], b"b", b"m", b"zz"]);
        assert_eq!(keys.lower_bound(b""), 0);
        assert_eq!(keys.lower_bound(b"b"), 1);
        assert_eq!(keys.lower_bound(b"c"), 2);
        assert_eq!(keys.lower_bound(b"zz"), 3);
        assert_eq!(keys.lower_bound(b"zzz"), 4);
        assert_eq!(set(&[]).lower_bound(b"a"), 0);
    }

    #[test]
    fn only_additions_are_written() {
        let schema = Arc::new(arrow_schema::Schema::new(vec![
            arrow_schema::Field::new("k", arrow_schema::DataType::Int64, false),
            arrow_schema::Field::new("kind", arrow_schema::DataType::Int8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(arrow_array::Int64Array::from(vec![1, 2, 3, 4])),
                Arc::new(Int8Array::from(vec![0, 3, 2, 1])),
            ],
        )
        .unwrap();
        let kept = additions(&batch, 1).unwrap();
        let k = kept
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        assert_eq!(k.values().to_vec(), vec![1, 3]);
    }

    /// A table `(k BIGINT primary key, v BIGINT)` with deletion vectors in
    /// one bucket, compacted only when a test says so.
    async fn table() -> Table {
        table_with(&[("deletion-vectors.enabled", "true")]).await
    }

    async fn table_with(extra: &[(&str, &str)]) -> Table {
        let catalog = crate::Catalog::open("memory://").await.unwrap();
        let id = crate::Identifier::new("default", "t");
        let column = |name: &str, nullable| crate::ColumnSpec {
            name: name.into(),
            data_type: crate::DataType::new(crate::DataTypeKind::BigInt, nullable),
            comment: None,
        };
        let options = [("bucket", "1"), ("write-only", "true")];
        let spec = crate::TableSpec {
            columns: vec![column("k", false), column("v", true)],
            primary_keys: vec!["k".into()],
            partition_keys: vec![],
            options: options
                .iter()
                .chain(extra)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            comment: None,
        };
        catalog.create_table(&id, spec, false).await.unwrap();
        catalog.load_table(&id).await.unwrap()
    }

    async fn commit_rows(table: &Table, rows: &[(i64, i64)]) {
        let batch = RecordBatch::try_new(
            table.arrow_schema(),
            vec![
                Arc::new(arrow_array::Int64Array::from_iter_values(
                    rows.iter().map(|r| r.0),
                )),
                Arc::new(arrow_array::Int64Array::from_iter_values(
                    rows.iter().map(|r| r.1),
                )),
            ],
        )
        .unwrap();
        let mut writer = table.writer();
        writer
            .write(batch, crate::kv::RowKind::Insert)
            .await
            .unwrap();
        writer.commit().await.unwrap();
    }

    async fn rows(table: &Table) -> Vec<(i64, i64)> {
        let plan = table.scan().plan().await.unwrap();
        let batches: Vec<RecordBatch> = plan.read_all().try_collect().await.unwrap();
        let mut out = Vec::new();
        for b in batches {
            let col = |i: usize| {
                b.column(i)
                    .as_any()
                    .downcast_ref::<arrow_array::Int64Array>()
                    .unwrap()
                    .clone()
            };
            let (k, v) = (col(0), col(1));
            out.extend((0..b.num_rows()).map(|i| (k.value(i), v.value(i))));
        }
        out.sort_unstable();
        out
    }

    fn universal() -> crate::CompactOptions {
        crate::CompactOptions::default()
    }

    /// The bucket's current deletion-vector index files.
    async fn index_files(table: &Table) -> Vec<String> {
        let plan = table.scan().plan().await.unwrap();
        plan.splits()[0]
            .deletion_vectors
            .as_ref()
            .unwrap()
            .index_files()
            .to_vec()
    }

    /// Level 5 holds keys 0..10; level 0 a newer version of keys 1 and 2.
    async fn with_pending_update() -> Table {
        let table = table().await;
        commit_rows(&table, &(0..10).map(|k| (k, 0)).collect::<Vec<_>>()).await;
        table.compact(universal()).await.unwrap();
        commit_rows(&table, &[(1, 1), (2, 1)]).await;
        table
    }

    #[tokio::test]
    async fn a_lookup_compaction_losing_a_race_leaves_no_trace() {
        let table = with_pending_update().await;
        let first = super::super::prepare(&table, &universal(), None)
            .await
            .unwrap();
        let second = super::super::prepare(&table, &universal(), None)
            .await
            .unwrap();
        assert_eq!(
            second.index_entries.len(),
            1,
            "keys 1 and 2 marked at level 5"
        );
        let index_path = table
            .paths()
            .index(&second.index_entries[0].index_file.file_name);
        crate::orchestrate::commit_prepared(&table, first)
            .await
            .unwrap();
        let err = crate::orchestrate::commit_prepared(&table, second)
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::CommitConflict { .. }), "{err}");
        assert!(
            table.store.get(&index_path).await.is_err(),
            "its index file is deleted"
        );
        let expected: Vec<(i64, i64)> = (0..10).map(|k| (k, i64::from(k == 1 || k == 2))).collect();
        assert_eq!(rows(&table).await, expected);
    }

    #[tokio::test]
    async fn vectors_replaced_meanwhile_fail_the_compaction() {
        let table = with_pending_update().await;
        commit_rows(&table, &[(3, 1)]).await;
        table.compact(universal()).await.unwrap();
        commit_rows(&table, &[(4, 1)]).await;
        let before = index_files(&table).await;
        assert_eq!(before.len(), 1);
        let prepared = super::super::prepare(&table, &universal(), None)
            .await
            .unwrap();
        // Another engine rewrites the bucket's vectors (same deletions, a
        // new index file) without touching the compaction's inputs.
        let plan = table.scan().plan().await.unwrap();
        let split = &plan.splits()[0];
        let vectors: BTreeMap<String, DeletionVector> = split
            .deletion_vectors
            .as_ref()
            .unwrap()
            .iter()
            .map(|(name, v)| (name.to_string(), (**v).clone()))
            .collect();
        let entry = crate::index::write_deletion_vectors(&table, &split.partition, 0, &vectors)
            .await
            .unwrap();
        // It carries a new level-0 file (key 20), as a writer that deletes
        // by vector would.
        let kv = crate::files::kv_file_schema(&table.layout);
        let long = |v: i64| Arc::new(arrow_array::Int64Array::from(vec![v])) as ArrayRef;
        let row = RecordBatch::try_new(
            kv,
            vec![
                long(20),
                long(1_000),
                Arc::new(Int8Array::from(vec![0])),
                long(20),
                long(1),
            ],
        )
        .unwrap();
        let content = crate::files::FileContent {
            batch: row,
            sequence_range: None,
        };
        let file = crate::files::write_data_file(&table, "bucket-0", content)
            .await
            .unwrap();
        let request = crate::commit::CommitRequest {
            watermark: None,
            messages: vec![crate::commit::CommitMessage {
                partition: split.partition.clone(),
                bucket: 0,
                total_buckets: 1,
                new_files: vec![file],
                ..Default::default()
            }],
            kind: tidelake_format::snapshot::CommitKind::Append,
            overwrite_partitions: None,
            base_snapshot_id: plan.snapshot().map(|s| s.id),
            commit_user: "other".into(),
            commit_identifier: i64::MAX,
            properties: Default::default(),
            index_entries: vec![entry],
            index_loaded_from: Default::default(),
            deletion_vectors_replaced: [((split.partition.clone(), 0), before.clone())]
                .into_iter()
                .collect(),
        };
        crate::commit::Committer::new(&table)
            .unwrap()
            .commit(request)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(index_files(&table).await, before);
        let err = crate::orchestrate::commit_prepared(&table, prepared)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("deletion vectors"), "{err}");
    }

    #[tokio::test]
    async fn a_writer_committing_during_a_lookup_compaction_keeps_its_rows() {
        let table = with_pending_update().await;
        let prepared = super::super::prepare(&table, &universal(), None)
            .await
            .unwrap();
        commit_rows(&table, &[(2, 2), (11, 2)]).await;
        crate::orchestrate::commit_prepared(&table, prepared)
            .await
            .unwrap();
        let mut expected: Vec<(i64, i64)> =
            (0..10).map(|k| (k, i64::from(k == 1 || k == 2))).collect();
        assert_eq!(
            rows(&table).await,
            expected,
            "the writer's rows wait at level 0"
        );
        table.compact(universal()).await.unwrap();
        expected[2] = (2, 2);
        expected.push((11, 2));
        assert_eq!(rows(&table).await, expected);
    }

    #[tokio::test]
    async fn first_row_compactions_write_only_keys_not_found_above() {
        let table = table_with(&[("merge-engine", "first-row")]).await;
        commit_rows(&table, &(0..5).map(|k| (k, 0)).collect::<Vec<_>>()).await;
        table.compact(universal()).await.unwrap();
        commit_rows(&table, &[(1, 9), (6, 9), (3, 9)]).await;
        // Level 0 into level 4, above the level-5 file holding keys 1 and 3.
        table.compact(universal()).await.unwrap();
        let plan = table.scan().plan().await.unwrap();
        let split = &plan.splits()[0];
        let mut levels: Vec<(i32, i64)> =
            split.files.iter().map(|f| (f.level, f.row_count)).collect();
        levels.sort_unstable();
        assert_eq!(levels, vec![(4, 1), (5, 5)], "only key 6 is new");
        assert!(split.deletion_vectors.is_none());
        let expected: Vec<(i64, i64)> = (0..5).map(|k| (k, 0)).chain([(6, 9)]).collect();
        assert_eq!(rows(&table).await, expected);
    }
}
