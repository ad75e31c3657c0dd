//! Compaction of primary-key tables: Paimon's universal compaction per
//! bucket. The newest sorted runs of a bucket are merged (the merge engine
//! picks one version per key) and rewritten into a higher level; one COMPACT
//! snapshot deletes the inputs and adds the outputs.
//!
//! Retractions (-U/-D rows) are dropped only when nothing older than the
//! output can exist below it (the output level is the highest non-empty
//! level of the bucket); otherwise they must stay to hide older versions.
//! Files a writer adds while a compaction runs have higher sequence numbers
//! than anything the compaction read, so they stay valid on top of it.
//!
//! Tables with deletion vectors compact differently (`lookup`): older rows
//! of the compacted keys are marked deleted instead of kept below the
//! output, and retractions are never written above level 0.

mod changelog;
mod lookup;
mod pick;
mod queue;
mod rewrite;

use std::collections::{HashMap, HashSet};

use tidelake_format::manifest::{DataFileMeta, IndexManifestEntry};
use tidelake_format::snapshot::CommitKind;

use crate::commit::{CommitMessage, CommitRequest};
use crate::error::{EngineError, Result};
use crate::lsm::{sorted_runs, BucketId, SortedRun};
use crate::options::{ChangelogProducer, MergeEngine};
use crate::read::deletion::BucketVectors;
use crate::read::predicate::Predicate;
use crate::read::scan::Split;
use crate::table::{CompactedBucket, Table};

pub(crate) use pick::{CompactUnit, RunSize, UniversalPicker};
pub(crate) use queue::CompactRequest;
pub use queue::CompactionHandle;

/// What `Table::compact` should do.
#[derive(Clone, Debug, Default)]
pub struct CompactOptions {
    /// Rewrite every bucket into one sorted run at the highest level
    /// (dropping retractions); otherwise only buckets that need it, as
    /// universal compaction picks.
    pub full: bool,
    /// Only partitions matching this predicate, which may name partition
    /// columns only.
    pub partition: Option<Predicate>,
}

/// What a compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactOutcome {
    /// The COMPACT snapshot, or `None` when nothing needed compacting.
    pub snapshot_id: Option<i64>,
    pub files_in: usize,
    pub files_out: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// The work of one bucket: merge `runs` into `output_level`.
#[derive(Clone, Debug)]
pub(crate) struct BucketTask {
    pub runs: Vec<SortedRun>,
    pub output_level: usize,
    pub drop_retracts: bool,
}

/// The highest level of a bucket's LSM tree: `num-levels - 1`, or higher
/// when files written by an engine with more levels are there (they keep
/// their level).
pub(crate) fn bucket_max_level(table: &Table, files: &[DataFileMeta]) -> usize {
    let highest_file_level = files
        .iter()
        .map(|f| f.level.max(0) as usize)
        .max()
        .unwrap_or(0);
    (table.layout.options.num_levels.max(2) - 1).max(highest_file_level)
}

/// Whether compactions must take every level-0 file at once, even below
/// the compaction trigger: the lookup changelog describes level-0 files
/// exactly when they are compacted, and Paimon's readers of first-row
/// tables and of tables with deletion vectors skip level 0 (its rows become
/// visible to them once compacted).
pub(crate) fn forces_level0_compaction(table: &Table) -> bool {
    let options = &table.layout.options;
    options.changelog_producer == ChangelogProducer::Lookup
        || options.merge_engine == MergeEngine::FirstRow
        || options.deletion_vectors_enabled
}

/// Whether compactions into levels ≥ 1 look the keys they write up in the
/// runs they leave (`lookup`): tables with deletion vectors, and first-row
/// tables, whose older rows win and which Paimon's readers read without
/// merging.
fn looks_up(table: &Table) -> bool {
    let options = &table.layout.options;
    table.layout.is_primary_key()
        && (options.deletion_vectors_enabled || options.merge_engine == MergeEngine::FirstRow)
}

/// Decides what to compact in one bucket (`None`: nothing); `vectors` are
/// the bucket's deletion vectors, if the table has them.
pub(crate) fn plan_bucket(
    table: &Table,
    files: &[DataFileMeta],
    full: bool,
    vectors: Option<&BucketVectors>,
) -> Option<BucketTask> {
    let options = &table.layout.options;
    let runs = sorted_runs(files, &table.layout.key_types);
    let highest_file_level = runs.iter().map(|r| r.level).max().unwrap_or(0);
    let max_level = bucket_max_level(table, files);
    if let ([only], Some(vectors)) = (runs.as_slice(), vectors) {
        if full && only.level == max_level {
            // A full compaction leaves no vector: the files of the top run
            // that have one are rewritten in place (their keys are theirs
            // alone), as Paimon does.
            let marked: Vec<DataFileMeta> = only
                .files
                .iter()
                .filter(|f| vectors.get(&f.file_name).is_some())
                .cloned()
                .collect();
            return (!marked.is_empty()).then(|| BucketTask {
                runs: vec![SortedRun {
                    level: max_level,
                    files: marked,
                }],
                output_level: max_level,
                drop_retracts: true,
            });
        }
    }
    let picker = UniversalPicker {
        max_size_amplification_percent: options.compaction_max_size_amplification_percent,
        size_ratio_percent: options.compaction_size_ratio,
        compaction_trigger: options.num_sorted_run_compaction_trigger,
        max_level,
    };
    let sizes: Vec<RunSize> = runs
        .iter()
        .map(|r| RunSize {
            level: r.level,
            bytes: r.bytes(),
        })
        .collect();
    let level0_runs = runs.iter().filter(|r| r.level == 0).count();
    let unit = if full {
        picker.pick_full(&sizes)
    } else {
        picker.pick(&sizes).or_else(|| {
            (forces_level0_compaction(table) && level0_runs > 0)
                .then(|| picker.unit(&sizes, level0_runs))
        })
    }?;
    let CompactUnit {
        run_count,
        output_level,
    } = unit;
    let picked: Vec<SortedRun> = runs.into_iter().take(run_count).collect();
    // A lone run already at the output level would be rewritten as is.
    if let [only] = picked.as_slice() {
        if only.level == output_level && !(full && has_retracts(&only.files)) {
            return None;
        }
    }
    Some(BucketTask {
        runs: picked,
        output_level,
        drop_retracts: output_level >= highest_file_level,
    })
}

fn has_retracts(files: &[DataFileMeta]) -> bool {
    files.iter().any(|f| f.delete_row_count.unwrap_or(1) > 0)
}

/// The table as of its latest schema: a handle loaded before a schema change
/// would otherwise rewrite newer files without their new columns.
pub(crate) async fn with_latest_schema(table: &Table) -> Result<Table> {
    match table.reader.latest_schema().await? {
        Some(schema) if schema.id != table.layout.schema.id => Ok(Table::new(
            table.store.clone(),
            table.id.clone(),
            table.reader.clone(),
            schema,
        )?
        .with_hooks(table.shared_hooks())
        .with_commit_queues(table.shared_commit_queues())
        .with_cache(table.cache.clone())),
        _ => Ok(table.clone()),
    }
}

/// Rewritten buckets waiting for their COMPACT commit.
pub(crate) struct Prepared {
    base_snapshot_id: Option<i64>,
    messages: Vec<CommitMessage>,
    written: Vec<(Split, Vec<DataFileMeta>)>,
    outcome: CompactOutcome,
    /// New deletion-vector index files, one per bucket that keeps vectors.
    index_entries: Vec<IndexManifestEntry>,
    /// Buckets whose vectors are replaced, with the index files they were
    /// read from.
    vectors_replaced: HashMap<BucketId, Vec<String>>,
    /// Index files of `index_entries` that the base snapshot already lists
    /// (kept by a table hook): never deleted when the commit fails.
    index_kept: HashSet<String>,
}

/// Plans from the latest snapshot and writes the output files.
pub(crate) async fn prepare(
    table: &Table,
    options: &CompactOptions,
    only: Option<&HashSet<BucketId>>,
) -> Result<Prepared> {
    let mut scan = table.scan();
    if let Some(p) = &options.partition {
        let partition_keys = &table.layout.schema.partition_keys;
        if !p.columns_all(&|c: &str| partition_keys.iter().any(|k| k == c)) {
            return Err(EngineError::invalid(format!(
                "compaction of table '{}': the partition filter may only name partition columns ({})",
                table.id,
                partition_keys.join(", ")
            )));
        }
        scan = scan.with_predicate(p.clone());
    }
    let plan = scan.plan().await?;
    let base_snapshot_id = plan.snapshot().map(|s| s.id);
    let base_index = if table.hooks().is_empty() {
        Vec::new()
    } else {
        crate::index::index_entries(table, plan.snapshot()).await?
    };
    let mut index_kept: HashSet<String> = HashSet::new();
    let mut outcome = CompactOutcome::default();
    let mut messages: Vec<CommitMessage> = Vec::new();
    let mut written: Vec<(Split, Vec<DataFileMeta>)> = Vec::new();
    let mut index_entries: Vec<IndexManifestEntry> = Vec::new();
    let mut vectors_replaced: HashMap<BucketId, Vec<String>> = HashMap::new();
    let rewritten: Result<()> = async {
        for split in plan.splits() {
            if only.is_some_and(|o| !o.contains(&(split.partition.clone(), split.bucket))) {
                continue;
            }
            let task = if table.layout.is_primary_key() {
                plan_bucket(
                    table,
                    &split.files,
                    options.full,
                    split.deletion_vectors.as_deref(),
                )
            } else {
                rewrite::plan_append_bucket(table, &split.files, options.full)
            };
            let Some(task) = task else {
                continue;
            };
            let inputs: Vec<DataFileMeta> = task
                .runs
                .iter()
                .flat_map(|r| r.files.iter().cloned())
                .collect();
            let outputs = if looks_up(table) && task.output_level > 0 {
                let (outputs, update) = lookup::rewrite_bucket(table, split, &task).await?;
                if let Some(update) = update {
                    index_entries.extend(update.entry);
                    vectors_replaced
                        .insert((split.partition.clone(), split.bucket), update.loaded_from);
                }
                outputs
            } else {
                rewrite::rewrite_bucket(table, split, &task).await?
            };
            written.push((split.clone(), outputs.clone()));
            let (hook_entries, kept) =
                run_hooks(table, split, &inputs, &outputs, &base_index).await?;
            index_entries.extend(hook_entries);
            index_kept.extend(kept);
            let max_level = bucket_max_level(table, &split.files);
            let changelog_files = if table.layout.is_primary_key() {
                changelog::bucket_changelog(table, split, &task, max_level).await?
            } else {
                Vec::new()
            };
            written.push((split.clone(), changelog_files.clone()));
            outcome.files_in += inputs.len();
            outcome.bytes_in += inputs
                .iter()
                .map(|f| f.file_size.max(0) as u64)
                .sum::<u64>();
            outcome.files_out += outputs.len();
            outcome.bytes_out += outputs
                .iter()
                .map(|f| f.file_size.max(0) as u64)
                .sum::<u64>();
            messages.push(CommitMessage {
                partition: split.partition.clone(),
                bucket: split.bucket,
                total_buckets: table.layout.options.bucket,
                new_files: outputs,
                deleted_files: inputs,
                changelog_files,
            });
        }
        Ok(())
    }
    .await;
    if let Err(e) = rewritten {
        delete_outputs(table, &written, &index_entries, &index_kept).await;
        return Err(e);
    }
    Ok(Prepared {
        base_snapshot_id,
        messages,
        written,
        outcome,
        index_entries,
        vectors_replaced,
        index_kept,
    })
}

/// The index entries the table's hooks build for one compacted bucket, and
/// the names of those the base snapshot already lists.
async fn run_hooks(
    table: &Table,
    split: &Split,
    inputs: &[DataFileMeta],
    outputs: &[DataFileMeta],
    base_index: &[IndexManifestEntry],
) -> Result<(Vec<IndexManifestEntry>, Vec<String>)> {
    if table.hooks().is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let removed: HashSet<&str> = inputs.iter().map(|f| f.file_name.as_str()).collect();
    let mut files: Vec<DataFileMeta> = split
        .files
        .iter()
        .filter(|f| !removed.contains(f.file_name.as_str()))
        .cloned()
        .collect();
    files.extend(outputs.iter().cloned());
    let bucket = CompactedBucket {
        partition: split.partition.clone(),
        partition_path: split.partition_path.clone(),
        bucket: split.bucket,
        files,
        written: outputs.to_vec(),
        index_entries: base_index
            .iter()
            .filter(|e| e.partition == split.partition && e.bucket == split.bucket)
            .cloned()
            .collect(),
    };
    let listed: HashSet<&str> = bucket
        .index_entries
        .iter()
        .map(|e| e.index_file.file_name.as_str())
        .collect();
    let mut entries = Vec::new();
    let mut kept = Vec::new();
    for hook in table.hooks() {
        let Some(built) = hook.index_compacted_bucket(table, &bucket).await? else {
            continue;
        };
        for e in built {
            if listed.contains(e.index_file.file_name.as_str()) {
                kept.push(e.index_file.file_name.clone());
            }
            entries.push(e);
        }
    }
    Ok((entries, kept))
}

impl Prepared {
    /// The COMPACT commit of the prepared work; `None` when nothing was
    /// rewritten.
    pub(crate) fn commit_request(&self) -> Option<CommitRequest> {
        if self.messages.is_empty() {
            return None;
        }
        Some(CommitRequest {
            watermark: None,
            messages: self.messages.clone(),
            kind: CommitKind::Compact,
            overwrite_partitions: None,
            base_snapshot_id: self.base_snapshot_id,
            commit_user: uuid::Uuid::new_v4().to_string(),
            commit_identifier: i64::MAX,
            properties: Default::default(),
            index_entries: self.index_entries.clone(),
            index_loaded_from: Default::default(),
            deletion_vectors_replaced: self.vectors_replaced.clone(),
        })
    }

    /// What the compaction did, once committed as `snapshot_id`.
    pub(crate) fn outcome(self, snapshot_id: Option<i64>) -> CompactOutcome {
        CompactOutcome {
            snapshot_id,
            ..self.outcome
        }
    }

    /// Deletes the output files (when the commit failed).
    pub(crate) async fn discard(&self, table: &Table) {
        delete_outputs(table, &self.written, &self.index_entries, &self.index_kept).await;
    }
}

/// Deletes files a compaction wrote but could not commit (best effort: they
/// are unreferenced either way).
async fn delete_outputs(
    table: &Table,
    written: &[(Split, Vec<DataFileMeta>)],
    index_entries: &[IndexManifestEntry],
    index_kept: &HashSet<String>,
) {
    // Paths first: iterator adaptors held across the awaits below would
    // keep this future from being `Send` for every lifetime.
    let mut paths = Vec::new();
    for (split, files) in written {
        for f in files {
            paths.push(
                table
                    .paths()
                    .data_file(&split.partition_path, split.bucket, &f.file_name),
            );
        }
    }
    for e in index_entries {
        if !index_kept.contains(&e.index_file.file_name) {
            paths.push(table.paths().index(&e.index_file.file_name));
        }
    }
    for path in paths {
        if let Err(e) = table.store.delete(&path).await {
            tracing::warn!("could not delete uncommitted compaction output {path}: {e}");
        }
    }
}

/// Whether writers of this table compact inline (primary key, not
/// `write-only`).
pub(crate) fn compacts_inline(table: &Table) -> bool {
    table.layout.is_primary_key() && !table.layout.options.write_only
}

/// Buckets whose sorted runs reached `num-sorted-run.stop-trigger`.
pub(crate) fn buckets_at_stop_trigger(
    table: &Table,
    runs: &HashMap<BucketId, usize>,
) -> HashSet<BucketId> {
    if !compacts_inline(table) {
        return HashSet::new();
    }
    let stop = table.layout.options.num_sorted_run_stop_trigger;
    runs.iter()
        .filter(|(_, n)| **n >= stop)
        .map(|(bucket, _)| bucket.clone())
        .collect()
}

/// Merges a writer's own uncommitted level-0 files of one bucket into as
/// few level-0 files as `target-file-size` allows, keeping retractions (the
/// bucket's committed files lie below). Returns the new files; the caller
/// replaces (and deletes) the old ones.
pub(crate) async fn merge_uncommitted_files(
    table: &Table,
    partition: &[u8],
    partition_path: &str,
    bucket: i32,
    files: &[DataFileMeta],
) -> Result<Vec<DataFileMeta>> {
    let split = Split {
        partition: partition.to_vec(),
        partition_values: Vec::new(),
        partition_path: partition_path.to_string(),
        bucket,
        files: Vec::new(),
        deletion_vectors: None,
        skip_level0: false,
        lookup: None,
    };
    let task = BucketTask {
        runs: files
            .iter()
            .map(|f| SortedRun {
                level: 0,
                files: vec![f.clone()],
            })
            .collect(),
        output_level: 0,
        drop_retracts: false,
    };
    let mut merged = rewrite::rewrite_bucket(table, &split, &task).await?;
    for f in &mut merged {
        // New data of the writer's commit, not a compaction of committed files.
        f.file_source = Some(0);
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidelake_format::types::{DataType, DataTypeKind};

    /// A table `(k BIGINT primary key, v BIGINT)` in one bucket, never
    /// compacted inline, so each test decides when compactions run.
    async fn two_column_table() -> Table {
        let catalog = crate::Catalog::open("memory://").await.unwrap();
        let id = crate::Identifier::new("default", "t");
        let column = |name: &str, nullable| crate::ColumnSpec {
            name: name.into(),
            data_type: DataType::new(DataTypeKind::BigInt, nullable),
            comment: None,
        };
        let spec = crate::TableSpec {
            columns: vec![column("k", false), column("v", true)],
            primary_keys: vec!["k".into()],
            partition_keys: vec![],
            options: [("bucket", "1"), ("write-only", "true")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            comment: None,
        };
        catalog.create_table(&id, spec, false).await.unwrap();
        catalog.load_table(&id).await.unwrap()
    }

    async fn commit_rows(table: &Table, rows: &[(i64, i64)], kind: crate::kv::RowKind) {
        use std::sync::Arc;
        let batch = arrow_array::RecordBatch::try_new(
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
        writer.write(batch, kind).await.unwrap();
        writer.commit().await.unwrap();
    }

    async fn read_rows(table: &Table) -> Vec<(i64, i64)> {
        use arrow_array::{Array, Int64Array};
        use futures::TryStreamExt;
        let plan = table.scan().plan().await.unwrap();
        let batches: Vec<arrow_array::RecordBatch> = plan.read_all().try_collect().await.unwrap();
        let mut out = Vec::new();
        for b in batches {
            let k = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let v = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            out.extend((0..b.num_rows()).map(|i| (k.value(i), v.value(i))));
        }
        out.sort_unstable();
        out
    }

    fn full() -> CompactOptions {
        CompactOptions {
            full: true,
            partition: None,
        }
    }

    #[tokio::test]
    async fn a_writer_committing_during_a_compaction_keeps_its_rows() {
        use crate::kv::RowKind;
        let table = two_column_table().await;
        commit_rows(&table, &[(1, 10), (2, 20)], RowKind::Insert).await;
        commit_rows(&table, &[(2, 21)], RowKind::Insert).await;
        let prepared = prepare(&table, &full(), None).await.unwrap();
        // Lands between the compaction's plan and its commit.
        commit_rows(&table, &[(1, 0)], RowKind::Delete).await;
        commit_rows(&table, &[(3, 30)], RowKind::Insert).await;
        let outcome = crate::orchestrate::commit_prepared(&table, prepared)
            .await
            .unwrap();
        assert_eq!(outcome.snapshot_id, Some(5));
        assert_eq!(read_rows(&table).await, vec![(2, 21), (3, 30)]);
        let split = table.scan().plan().await.unwrap().splits()[0].clone();
        let mut levels: Vec<i32> = split.files.iter().map(|f| f.level).collect();
        levels.sort_unstable();
        assert_eq!(
            levels,
            vec![0, 0, 5],
            "the writer's files stay above the output"
        );
        // The next full compaction applies the delete and drops it.
        crate::orchestrate::compact_table(&table, &full(), None)
            .await
            .unwrap();
        assert_eq!(read_rows(&table).await, vec![(2, 21), (3, 30)]);
        let split = table.scan().plan().await.unwrap().splits()[0].clone();
        assert_eq!(split.files.len(), 1);
        assert_eq!(split.files[0].delete_row_count, Some(0));
    }

    #[tokio::test]
    async fn a_compaction_whose_inputs_were_compacted_meanwhile_fails_cleanly() {
        use crate::kv::RowKind;
        let table = two_column_table().await;
        commit_rows(&table, &[(1, 10), (2, 20)], RowKind::Insert).await;
        commit_rows(&table, &[(1, 11)], RowKind::Insert).await;
        let first = prepare(&table, &full(), None).await.unwrap();
        let second = prepare(&table, &full(), None).await.unwrap();
        let second_outputs: Vec<String> = second
            .written
            .iter()
            .flat_map(|(split, files)| {
                files.iter().map(|f| {
                    table
                        .paths()
                        .data_file(&split.partition_path, split.bucket, &f.file_name)
                })
            })
            .collect();
        assert_eq!(second_outputs.len(), 1);
        crate::orchestrate::commit_prepared(&table, first)
            .await
            .unwrap();
        let err = crate::orchestrate::commit_prepared(&table, second)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, EngineError::CommitConflict { message, .. } if message.contains("removed")),
            "{err}"
        );
        for path in &second_outputs {
            assert!(
                table.store.get(path).await.is_err(),
                "output {path} of the losing compaction is deleted"
            );
        }
        assert_eq!(
            table.snapshots().latest_snapshot_id().await.unwrap(),
            Some(3)
        );
        assert_eq!(read_rows(&table).await, vec![(1, 11), (2, 20)]);
    }

    #[tokio::test]
    async fn outputs_overlapping_within_a_level_are_refused() {
        use crate::kv::RowKind;
        let table = two_column_table().await;
        commit_rows(&table, &[(1, 10), (5, 50)], RowKind::Insert).await;
        commit_rows(&table, &[(3, 30)], RowKind::Insert).await;
        // Both level-0 files, compacted separately into the same level.
        let split = table.scan().plan().await.unwrap().splits()[0].clone();
        let mut prepared = Vec::new();
        for file in &split.files {
            let task = BucketTask {
                runs: vec![SortedRun {
                    level: 0,
                    files: vec![file.clone()],
                }],
                output_level: 2,
                drop_retracts: false,
            };
            let outputs = rewrite::rewrite_bucket(&table, &split, &task)
                .await
                .unwrap();
            prepared.push(Prepared {
                base_snapshot_id: Some(2),
                messages: vec![CommitMessage {
                    partition: split.partition.clone(),
                    bucket: split.bucket,
                    total_buckets: 1,
                    new_files: outputs.clone(),
                    deleted_files: vec![file.clone()],
                    changelog_files: Vec::new(),
                }],
                written: vec![(split.clone(), outputs)],
                outcome: CompactOutcome::default(),
                index_entries: Vec::new(),
                vectors_replaced: HashMap::new(),
                index_kept: HashSet::new(),
            });
        }
        let second = prepared.pop().unwrap();
        crate::orchestrate::commit_prepared(&table, prepared.pop().unwrap())
            .await
            .unwrap();
        let err = crate::orchestrate::commit_prepared(&table, second)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("overlap"), "{err}");
        assert_eq!(read_rows(&table).await, vec![(1, 10), (3, 30), (5, 50)]);
    }
}
