//! The write path: rows are routed to (partition, bucket), buffered in
//! memory, and flushed as sorted level-0 files when the buffer outgrows
//! `write-buffer-size` or at commit. Primary-key rows get per-bucket sequence
//! numbers that continue from the bucket's current maximum.

mod dynamic;
mod rewrite;
mod route;
mod sort;

pub use rewrite::{BatchChange, PreparedAppendRewrite, RewriteOutcome};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, Int8Array, RecordBatch};
use arrow_schema::SchemaRef;
use tidelake_format::manifest::DataFileMeta;
use tidelake_format::snapshot::CommitKind;

use crate::commit::{CommitMessage, CommitRequest};
use crate::compact::CompactionHandle;
use crate::error::{EngineError, Result};
use crate::files::kv_file_schema;
use crate::kv::{RowKind, TablePaths};
use crate::lsm::{runs_per_bucket, BucketId};
use crate::table::Table;

/// Which partitions an INSERT OVERWRITE replaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OverwriteScope {
    /// Those it writes to (Paimon's dynamic partition overwrite, the
    /// default); every partition when `dynamic-partition-overwrite` is false.
    Written,
    /// These (serialized partition values), and those it writes to (a
    /// static `PARTITION (...)` spec: the live partitions it names).
    Partitions(Vec<Vec<u8>>),
}

/// Rows of one bucket not yet written, and the files already written.
struct BucketBuffer {
    partition_path: String,
    batches: Vec<RecordBatch>,
    bytes: usize,
    next_sequence: i64,
    files: Vec<DataFileMeta>,
    /// Changelog files written at flush (input producer).
    changelog: Vec<DataFileMeta>,
}

/// Writes rows into a table and commits them as one snapshot.
pub struct TableWriter {
    table: Table,
    commit_user: String,
    base: Option<BaseState>,
    buckets: HashMap<BucketId, BucketBuffer>,
    buffered_bytes: usize,
    overwrite: bool,
    overwrite_scope: OverwriteScope,
    written_partitions: BTreeMap<Vec<u8>, ()>,
    kv_schema: SchemaRef,
    dynamic: Option<dynamic::DynamicBucketAssigner>,
    /// Where committed buckets go for compaction, when not compacted before
    /// `commit` returns (see [`TableWriter::compact_in_background`]).
    background: Option<CompactionHandle>,
    /// See [`TableWriter::set_watermark`].
    watermark: Option<i64>,
    /// See [`TableWriter::start_from`].
    pinned_base: Option<Option<i64>>,
}

/// What the writer read from the snapshot it started from.
struct BaseState {
    snapshot_id: Option<i64>,
    max_sequence: HashMap<BucketId, i64>,
    /// Sorted runs of each bucket (for `num-sorted-run.stop-trigger`).
    runs: HashMap<BucketId, usize>,
}

impl Table {
    pub fn writer(&self) -> TableWriter {
        TableWriter::new(self.clone())
    }
}

impl TableWriter {
    fn new(table: Table) -> Self {
        let kv_schema = kv_file_schema(&table.layout);
        TableWriter {
            table,
            commit_user: uuid::Uuid::new_v4().to_string(),
            base: None,
            buckets: HashMap::new(),
            buffered_bytes: 0,
            overwrite: false,
            overwrite_scope: OverwriteScope::Written,
            written_partitions: BTreeMap::new(),
            kv_schema,
            dynamic: None,
            background: None,
            watermark: None,
            pinned_base: None,
        }
    }

    /// Starts from snapshot `snapshot` (`None`: the table had none) rather
    /// than the latest one when the first row comes: a statement that
    /// computed its rows from what it read at `snapshot` (UPDATE, DELETE)
    /// takes its sequence numbers from there, so the commit conflicts if
    /// another writer wrote one of its buckets since, instead of silently
    /// replacing that writer's rows with values computed without them.
    pub fn start_from(&mut self, snapshot: Option<i64>) {
        self.pinned_base = Some(snapshot);
    }

    /// The event-time watermark (epoch millis) the written data reaches,
    /// recorded in the snapshot's `watermark` field at commit (which never
    /// moves back).
    pub fn set_watermark(&mut self, millis: i64) {
        self.watermark = Some(millis);
    }

    /// INSERT OVERWRITE: the commit replaces every partition written to (the
    /// whole table when it is not partitioned, or when the table sets
    /// `dynamic-partition-overwrite` to false).
    pub fn set_overwrite(&mut self, overwrite: bool) {
        self.overwrite = overwrite;
    }

    /// INSERT OVERWRITE replacing `scope` (a static `PARTITION (...)`).
    pub fn set_overwrite_scope(&mut self, scope: OverwriteScope) {
        self.overwrite = true;
        self.overwrite_scope = scope;
    }

    /// The partitions the commit replaces (`Some(vec![])`: all of them);
    /// `None` when it replaces none.
    fn overwritten_partitions(&self) -> Option<Vec<Vec<u8>>> {
        if !self.overwrite {
            return None;
        }
        if self.table.partition_keys().is_empty() {
            return Some(Vec::new());
        }
        let dynamic = self
            .table
            .layout
            .schema
            .options
            .get("dynamic-partition-overwrite")
            .is_none_or(|v| !v.trim().eq_ignore_ascii_case("false"));
        let written = self.written_partitions.keys().cloned();
        let partitions: Vec<Vec<u8>> = match &self.overwrite_scope {
            OverwriteScope::Written if !dynamic => return Some(Vec::new()),
            OverwriteScope::Written => written.collect(),
            OverwriteScope::Partitions(listed) => {
                let mut all: std::collections::BTreeSet<Vec<u8>> = listed.iter().cloned().collect();
                all.extend(written);
                all.into_iter().collect()
            }
        };
        // Paimon's dynamic overwrite deletes nothing when nothing was
        // written; an empty list would mean every partition here.
        (!partitions.is_empty()).then_some(partitions)
    }

    /// Compaction after each commit runs in the background task of `handle`
    /// instead of before `commit` returns (a long-running writer writes its
    /// next batch meanwhile). Tables whose readers need level 0 compacted at
    /// each commit (deletion vectors, first-row, the lookup changelog) still
    /// compact before `commit` returns.
    pub fn compact_in_background(&mut self, handle: CompactionHandle) {
        self.background = Some(handle);
    }

    /// Reads the state the writer starts from (once per commit). With
    /// `stop_trigger`, buckets whose sorted runs reached
    /// `num-sorted-run.stop-trigger` are returned instead and no state is
    /// kept: the caller compacts them before accepting data, then asks again.
    pub(crate) async fn load_base(&mut self, stop_trigger: bool) -> Result<HashSet<BucketId>> {
        if self.base.is_some() {
            return Ok(HashSet::new());
        }
        let snapshot = match self.pinned_base {
            None => self.table.reader.latest_snapshot().await?,
            Some(None) => None,
            Some(Some(id)) => Some(self.table.reader.snapshot(id).await?.ok_or_else(|| {
                EngineError::CommitConflict {
                    table: self.table.id.to_string(),
                    message: format!(
                        "snapshot {id}, which the statement read, expired before it could commit"
                    ),
                }
            })?),
        };
        let mut max_sequence = HashMap::new();
        let mut runs = HashMap::new();
        if let Some(s) = &snapshot {
            let ms = self.table.manifest_store()?;
            let metas = ms.data_manifests(s).await?;
            let live = ms.live_entries(&metas, &|_| true).await?;
            runs = runs_per_bucket(&live);
            if stop_trigger {
                let stalled = crate::compact::buckets_at_stop_trigger(&self.table, &runs);
                if !stalled.is_empty() {
                    return Ok(stalled);
                }
            }
            for e in live {
                let m = max_sequence.entry((e.partition, e.bucket)).or_insert(-1i64);
                *m = (*m).max(e.file.max_sequence_number);
            }
        }
        self.base = Some(BaseState {
            snapshot_id: snapshot.map(|s| s.id),
            max_sequence,
            runs,
        });
        Ok(HashSet::new())
    }

    /// Checks rows to write and conforms them to the table's columns;
    /// `None` when there is nothing to write.
    pub(crate) fn accept(
        &self,
        batch: RecordBatch,
        kinds: &[RowKind],
    ) -> Result<Option<RecordBatch>> {
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        if kinds.len() != batch.num_rows() {
            return Err(EngineError::invalid(format!(
                "{} row kinds given for {} rows",
                kinds.len(),
                batch.num_rows()
            )));
        }
        let batch = route::conform(&self.table, batch)?;
        if !self.table.is_primary_key_table() && kinds.iter().any(|k| k.is_retract()) {
            return Err(EngineError::invalid(format!(
                "table '{}' has no primary key, so rows cannot be deleted or retracted by key",
                self.table.id
            )));
        }
        for hook in self.table.hooks() {
            hook.check_rows(&self.table, &batch, kinds)?;
        }
        Ok(Some(batch))
    }

    /// Routes accepted rows to their buckets and buffers them (after
    /// [`TableWriter::load_base`]), spilling when over budget.
    pub(crate) async fn buffer(&mut self, batch: RecordBatch, kinds: &[RowKind]) -> Result<()> {
        if self.base.is_none() {
            return Err(EngineError::internal("writer base missing"));
        }
        let mut routing = route::route(&self.table, &batch)?;
        if let Some(hashes) = routing.key_hashes.take() {
            if self.overwrite {
                return Err(EngineError::Unsupported(
                    "INSERT OVERWRITE into a dynamic-bucket table ('bucket' = '-1') is not supported yet: the key index of the replaced partitions would have to be rebuilt (a table with a fixed 'bucket' count can be overwritten)".into(),
                ));
            }
            let assigner = match &mut self.dynamic {
                Some(a) => a,
                None => {
                    let base = match self.base.as_ref().and_then(|b| b.snapshot_id) {
                        Some(id) => self.table.reader.snapshot(id).await?,
                        None => None,
                    };
                    self.dynamic.insert(
                        dynamic::DynamicBucketAssigner::new(&self.table, base.as_ref()).await?,
                    )
                }
            };
            for (p, (partition, _)) in routing.partitions.iter().enumerate() {
                let rows: Vec<usize> = (0..hashes.len())
                    .filter(|r| routing.partition_of_row[*r] as usize == p)
                    .collect();
                let part_hashes: Vec<i32> = rows.iter().map(|r| hashes[*r]).collect();
                let assigned = assigner
                    .assign(&self.table, partition, &part_hashes)
                    .await?;
                for (r, b) in rows.into_iter().zip(assigned) {
                    routing.buckets[r] = b;
                }
            }
        }
        let groups = route::group(&routing);
        let kind_bytes: Vec<i8> = kinds.iter().map(|k| k.to_byte()).collect();
        for group in groups {
            let bucket_id = (group.partition.clone(), group.bucket);
            self.written_partitions.insert(group.partition.clone(), ());
            let start = self
                .base
                .as_ref()
                .and_then(|b| b.max_sequence.get(&bucket_id).copied())
                .unwrap_or(-1)
                + 1;
            let buffer = self
                .buckets
                .entry(bucket_id)
                .or_insert_with(|| BucketBuffer {
                    partition_path: group.partition_path.clone(),
                    batches: Vec::new(),
                    bytes: 0,
                    next_sequence: start,
                    files: Vec::new(),
                    changelog: Vec::new(),
                });
            let rows = group.indices.len();
            let seq: ArrayRef = Arc::new(Int64Array::from_iter_values(
                buffer.next_sequence..buffer.next_sequence + rows as i64,
            ));
            buffer.next_sequence += rows as i64;
            let taken = arrow_select::take::take_record_batch(&batch, &group.indices)?;
            let kinds: ArrayRef = Arc::new(Int8Array::from_iter_values(
                group
                    .indices
                    .values()
                    .iter()
                    .map(|i| kind_bytes[*i as usize]),
            ));
            let mut cols = taken.columns().to_vec();
            cols.push(seq);
            cols.push(kinds);
            let staged = RecordBatch::try_new(sort::staged_schema(&self.table.layout), cols)?;
            let size = staged.get_array_memory_size();
            buffer.bytes += size;
            buffer.batches.push(staged);
            self.buffered_bytes += size;
        }
        if self.buffered_bytes > self.table.layout.options.write_buffer_size {
            self.spill().await?;
        }
        Ok(())
    }

    /// Flushes the largest buffers until half the budget is free.
    async fn spill(&mut self) -> Result<()> {
        let target = self.table.layout.options.write_buffer_size / 2;
        while self.buffered_bytes > target {
            let Some(largest) = self
                .buckets
                .iter()
                .filter(|(_, b)| b.bytes > 0)
                .max_by_key(|(_, b)| b.bytes)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.flush_bucket(&largest).await?;
        }
        Ok(())
    }

    async fn flush_bucket(&mut self, id: &BucketId) -> Result<()> {
        let Some(buffer) = self.buckets.get_mut(id) else {
            return Ok(());
        };
        let batches = std::mem::take(&mut buffer.batches);
        self.buffered_bytes -= buffer.bytes;
        buffer.bytes = 0;
        let dir = TablePaths::relative_bucket_dir(&buffer.partition_path, id.1);
        let flushed = sort::flush(&self.table, &self.kv_schema, &dir, batches).await?;
        if let Some(buffer) = self.buckets.get_mut(id) {
            buffer.files.extend(flushed.data);
            buffer.changelog.extend(flushed.changelog);
        }
        self.merge_files_at_stop_trigger(id).await
    }

    /// When a bucket's committed runs plus this writer's own level-0 files
    /// reach `num-sorted-run.stop-trigger`, merges its own files before
    /// accepting more data, so that reads never face unbounded runs.
    async fn merge_files_at_stop_trigger(&mut self, id: &BucketId) -> Result<()> {
        if !crate::compact::compacts_inline(&self.table) {
            return Ok(());
        }
        let options = &self.table.layout.options;
        let committed = self
            .base
            .as_ref()
            .and_then(|b| b.runs.get(id).copied())
            .unwrap_or(0);
        let Some(buffer) = self.buckets.get_mut(id) else {
            return Ok(());
        };
        let own = buffer.files.len();
        let bytes: u64 = buffer.files.iter().map(|f| f.file_size.max(0) as u64).sum();
        // Merging only helps when it makes fewer files than there are.
        let merged_files = bytes / options.target_file_size.max(1) + 1;
        if committed + own < options.num_sorted_run_stop_trigger || own as u64 <= merged_files {
            return Ok(());
        }
        let merged = crate::compact::merge_uncommitted_files(
            &self.table,
            &id.0,
            &buffer.partition_path,
            id.1,
            &buffer.files,
        )
        .await?;
        let old = std::mem::replace(&mut buffer.files, merged);
        for f in old {
            let path = self
                .table
                .paths()
                .data_file(&buffer.partition_path, id.1, &f.file_name);
            if let Err(e) = self.table.store.delete(&path).await {
                tracing::warn!("could not delete merged uncommitted file {path}: {e}");
            }
        }
        Ok(())
    }

    /// Flushes everything and describes it as a commit request (the
    /// commit itself, and what follows it, is run by the orchestrator).
    pub(crate) async fn prepare_commit(
        &mut self,
        kind: CommitKind,
        properties: BTreeMap<String, String>,
    ) -> Result<CommitRequest> {
        let ids: Vec<BucketId> = self.buckets.keys().cloned().collect();
        for id in ids {
            self.flush_bucket(&id).await?;
        }
        let total_buckets = self.table.layout.options.bucket;
        let messages: Vec<CommitMessage> = self
            .buckets
            .iter()
            .filter(|(_, b)| !b.files.is_empty() || !b.changelog.is_empty())
            .map(|((partition, bucket), b)| CommitMessage {
                partition: partition.clone(),
                bucket: *bucket,
                total_buckets,
                new_files: b.files.clone(),
                deleted_files: Vec::new(),
                changelog_files: b.changelog.clone(),
            })
            .collect();
        let overwrite_partitions = self.overwritten_partitions();
        let (index_entries, index_loaded_from) = match &self.dynamic {
            Some(a) if !messages.is_empty() => {
                (a.write_index_files(&self.table).await?, a.loaded_files())
            }
            _ => (Vec::new(), Default::default()),
        };
        Ok(CommitRequest {
            index_entries,
            index_loaded_from,
            deletion_vectors_replaced: Default::default(),
            messages,
            kind,
            overwrite_partitions,
            base_snapshot_id: self.base.as_ref().and_then(|b| b.snapshot_id),
            commit_user: self.commit_user.clone(),
            commit_identifier: i64::MAX,
            properties,
            watermark: self.watermark,
        })
    }

    /// After a successful commit: forgets the committed files and the
    /// state read for them; returns the buckets that got data files.
    pub(crate) fn finish_commit(&mut self) -> HashSet<BucketId> {
        let written: HashSet<BucketId> = self
            .buckets
            .iter()
            .filter(|(_, b)| !b.files.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        self.buckets.clear();
        self.base = None;
        self.pinned_base = None;
        self.dynamic = None;
        written
    }

    pub(crate) fn table(&self) -> &Table {
        &self.table
    }

    /// Where committed buckets go for compaction, if given.
    pub(crate) fn background(&self) -> Option<&CompactionHandle> {
        self.background.as_ref()
    }

    /// Deletes the files written but not committed.
    pub(crate) async fn delete_written_files(&mut self) {
        for ((_, bucket), b) in self.buckets.drain() {
            for f in b.files.iter().chain(&b.changelog) {
                let path = self
                    .table
                    .paths()
                    .data_file(&b.partition_path, bucket, &f.file_name);
                if let Err(e) = self.table.store.delete(&path).await {
                    tracing::warn!("could not delete uncommitted file {path}: {e}");
                }
            }
        }
    }

    /// Forgets the files written, keeping them: after a commit whose
    /// outcome is unknown, a live snapshot may reference them.
    pub(crate) fn forget_written_files(&mut self) {
        self.buckets.clear();
    }

    /// Drops buffered rows and deletes files written but not committed.
    pub async fn abort(mut self) {
        self.delete_written_files().await;
    }
}
