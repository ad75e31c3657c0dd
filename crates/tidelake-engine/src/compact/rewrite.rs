//! Rewriting picked runs into new files: the runs are merged as a stream
//! (one batch per run in memory) and the merged rows roll into files of at
//! most `target-file-size`, so a bucket is never held in memory whole.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use tidelake_format::manifest::DataFileMeta;

use super::BucketTask;
use crate::error::{EngineError, Result};
use crate::files::{kv_file_schema, write_changelog_file, write_data_file, FileContent};
use crate::lsm::SortedRun;
use crate::read::file::{output_schema, read_live_file, ReadColumn};
use crate::read::merge::{merge_runs, MergeLayout, Pick};
use crate::read::scan::Split;
use crate::table::Table;

const BATCH_SIZE: usize = 8192;

/// `_FILE_SOURCE` of files written by compaction.
const FILE_SOURCE_COMPACT: i32 = 1;

/// Merges the task's runs and writes the result into its output level.
/// On error, files already written are deleted.
pub(crate) async fn rewrite_bucket(
    table: &Table,
    split: &Split,
    task: &BucketTask,
) -> Result<Vec<DataFileMeta>> {
    let dir = crate::kv::TablePaths::relative_bucket_dir(&split.partition_path, split.bucket);
    let mut roller = FileRoller::new(table, dir, task.output_level);
    let result = async {
        if table.layout.is_primary_key() {
            let mut merged = merged_stream(table, split, &task.runs, !task.drop_retracts);
            while let Some(batch) = merged.try_next().await? {
                roller.push(batch).await?;
            }
        } else {
            let mut rows = append_stream(table, split, &task.runs);
            let mut next_sequence = task
                .runs
                .iter()
                .flat_map(|r| r.files.iter())
                .map(|f| f.min_sequence_number)
                .min()
                .unwrap_or(0);
            while let Some(batch) = rows.try_next().await? {
                let n = batch.num_rows() as i64;
                roller.sequence_range = Some(match roller.sequence_range {
                    Some((first, _)) => (first, next_sequence + n - 1),
                    None => (next_sequence, next_sequence + n - 1),
                });
                next_sequence += n;
                roller.push(batch).await?;
            }
        }
        roller.finish().await
    }
    .await;
    match result {
        Ok(()) => Ok(roller.files),
        Err(e) => {
            roller.delete_written(split).await;
            Err(e)
        }
    }
}

/// The columns of a primary-key file in key-value layout, for reading.
pub(super) fn kv_read_columns(table: &Table) -> Vec<ReadColumn> {
    let layout = &table.layout;
    let mut columns: Vec<ReadColumn> = layout
        .key_indices
        .iter()
        .map(|&i| ReadColumn::Key(layout.schema.fields[i].clone()))
        .collect();
    columns.push(ReadColumn::Sequence);
    columns.push(ReadColumn::ValueKind);
    columns.extend(layout.schema.fields.iter().cloned().map(ReadColumn::Value));
    columns
}

/// Streams the files of one run, one after another, without the rows the
/// split's deletion vectors mark deleted.
pub(super) fn open_run(
    table: &Table,
    split: &Split,
    run: &SortedRun,
    columns: &[ReadColumn],
) -> BoxStream<'static, Result<RecordBatch>> {
    let table = table.clone();
    let columns = columns.to_vec();
    let partition_path = split.partition_path.clone();
    let bucket = split.bucket;
    let vectors = split.deletion_vectors.clone();
    stream::iter(run.files.clone())
        .then(move |f| {
            let table = table.clone();
            let columns = columns.clone();
            let path = table
                .paths()
                .data_file(&partition_path, bucket, &f.file_name);
            let deleted = vectors.as_ref().and_then(|v| v.get(&f.file_name).cloned());
            async move { read_live_file(&table, &path, &f, &columns, BATCH_SIZE, deleted, None).await }
        })
        .try_flatten()
        .boxed()
}

/// The runs merged into one key-ordered stream in key-value layout.
pub(super) fn merged_stream(
    table: &Table,
    split: &Split,
    runs: &[SortedRun],
    keep_retracts: bool,
) -> BoxStream<'static, Result<RecordBatch>> {
    let columns = kv_read_columns(table);
    let streams = runs
        .iter()
        .map(|r| open_run(table, split, r, &columns))
        .collect();
    merge_kv_streams(table, streams, keep_retracts)
}

/// Sorted runs, each a stream of batches in key-value layout (as
/// `kv_read_columns` reads them), merged into one key-ordered stream.
pub(super) fn merge_kv_streams(
    table: &Table,
    streams: Vec<BoxStream<'static, Result<RecordBatch>>>,
    keep_retracts: bool,
) -> BoxStream<'static, Result<RecordBatch>> {
    let layout = &table.layout;
    let columns = kv_read_columns(table);
    let in_schema = output_schema(&columns);
    let nk = layout.key_indices.len();
    let values_start = nk + 2;
    let kv_schema: SchemaRef = kv_file_schema(layout);
    // The merge engine combines versions exactly as reads do.
    let pick = match Pick::for_table(
        layout,
        (values_start..values_start + layout.schema.fields.len()).collect(),
    ) {
        Ok(pick) => pick,
        Err(e) => return stream::once(async move { Err(e) }).boxed(),
    };
    let merge_layout = MergeLayout {
        key_columns: (0..nk).collect(),
        sequence_field_columns: layout
            .sequence_indices
            .iter()
            .map(|i| values_start + i)
            .collect(),
        sequence_column: nk,
        kind_column: nk + 1,
        output_columns: (0..columns.len()).collect(),
        output_schema: kv_schema,
        pick,
        keep_retracts,
        batch_size: BATCH_SIZE,
    };
    let key_types = (0..nk)
        .map(|i| in_schema.field(i).data_type().clone())
        .collect();
    let order_types = merge_layout
        .sequence_field_columns
        .iter()
        .map(|&i| in_schema.field(i).data_type().clone())
        .collect();
    merge_runs(streams, key_types, order_types, merge_layout)
}

/// The rows of append files in sequence order.
fn append_stream(
    table: &Table,
    split: &Split,
    runs: &[SortedRun],
) -> BoxStream<'static, Result<RecordBatch>> {
    let columns: Vec<ReadColumn> = table
        .layout
        .schema
        .fields
        .iter()
        .cloned()
        .map(ReadColumn::Value)
        .collect();
    let streams: Vec<_> = runs
        .iter()
        .map(|r| open_run(table, split, r, &columns))
        .collect();
    stream::iter(streams).flatten().boxed()
}

/// Which small files of an append bucket to merge: with `full`, all files
/// when there are at least two and some are below the target size.
pub(crate) fn plan_append_bucket(
    table: &Table,
    files: &[DataFileMeta],
    full: bool,
) -> Option<BucketTask> {
    let target = table.layout.options.target_file_size;
    let small = files
        .iter()
        .filter(|f| (f.file_size.max(0) as u64) < target)
        .count();
    if !full || files.len() < 2 || small < 2 {
        return None;
    }
    let mut ordered = files.to_vec();
    ordered.sort_by_key(|f| (f.min_sequence_number, f.max_sequence_number));
    Some(BucketTask {
        runs: ordered
            .into_iter()
            .map(|f| SortedRun {
                level: 0,
                files: vec![f],
            })
            .collect(),
        output_level: 0,
        drop_retracts: false,
    })
}

/// Collects batches and writes a file whenever they reach the target size
/// (in memory, which is an upper bound of the encoded size).
pub(super) struct FileRoller<'a> {
    table: &'a Table,
    dir: String,
    /// Data files of this level, or changelog files when `None`.
    level: Option<usize>,
    pending: Vec<RecordBatch>,
    pending_bytes: usize,
    /// Append files: the sequence numbers of the pending rows.
    sequence_range: Option<(i64, i64)>,
    pub files: Vec<DataFileMeta>,
}

impl<'a> FileRoller<'a> {
    pub(super) fn new(table: &'a Table, dir: String, level: usize) -> Self {
        Self::rolling(table, dir, Some(level))
    }

    /// A roller of changelog files (key-value layout, sorted by key).
    pub(super) fn changelog(table: &'a Table, dir: String) -> Self {
        Self::rolling(table, dir, None)
    }

    fn rolling(table: &'a Table, dir: String, level: Option<usize>) -> Self {
        FileRoller {
            table,
            dir,
            level,
            pending: Vec::new(),
            pending_bytes: 0,
            sequence_range: None,
            files: Vec::new(),
        }
    }

    pub(super) async fn push(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.pending_bytes += batch.get_array_memory_size();
        self.pending.push(batch);
        if self.pending_bytes as u64 >= self.table.layout.options.target_file_size {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        let Some(first) = self.pending.first() else {
            return Ok(());
        };
        let batch = arrow_select::concat::concat_batches(&first.schema(), &self.pending)?;
        self.pending.clear();
        self.pending_bytes = 0;
        let Some(level) = self.level else {
            let meta = write_changelog_file(self.table, &self.dir, batch).await?;
            self.files.push(meta);
            return Ok(());
        };
        let sequence_range = self.sequence_range.take();
        let mut meta = write_data_file(
            self.table,
            &self.dir,
            FileContent {
                batch,
                sequence_range,
            },
        )
        .await?;
        meta.level = i32::try_from(level)
            .map_err(|_| EngineError::invalid(format!("level {level} is too high")))?;
        meta.file_source = Some(FILE_SOURCE_COMPACT);
        self.files.push(meta);
        Ok(())
    }

    pub(super) async fn finish(&mut self) -> Result<()> {
        self.flush().await
    }

    /// Deletes the files written so far (best effort: they are unreferenced).
    pub(super) async fn delete_written(&self, split: &Split) {
        for f in &self.files {
            let path =
                self.table
                    .paths()
                    .data_file(&split.partition_path, split.bucket, &f.file_name);
            if let Err(err) = self.table.store.delete(&path).await {
                tracing::warn!("could not delete unused compaction output {path}: {err}");
            }
        }
    }
}
