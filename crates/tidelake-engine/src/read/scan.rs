//! Planning a read: which files of which buckets, after partition pruning
//! and statistics-based skipping; and reading a planned split.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow_array::{Int8Array, RecordBatch};
use arrow_schema::SchemaRef;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use tidelake_format::binary_row::{deserialize_binary_row, encode_binary_row, Datum};
use tidelake_format::bucket::{bucket_of, hash_binary_row};
use tidelake_format::manifest::{DataFileMeta, ManifestEntry};
use tidelake_format::snapshot::Snapshot;

use super::deletion::load_bucket_vectors;
use super::file::{key_columns, output_schema, read_data_file, read_live_file, ReadColumn};
use super::key::KeyFilter;
use super::key_index::indexed_rows;
use super::key_plan::{plan_key, KeyPlanInput};
use super::merge::{merge_runs, MergeLayout, Pick};
use super::predicate::Predicate;
pub use super::split::Split;
use super::split::{has_no_retractions, KeyRows};
use crate::error::{EngineError, Result};
use crate::lsm::section_indices;
use crate::options::MergeEngine;
use crate::stats::decode_stats;
use crate::table::Table;

const BATCH_SIZE: usize = 8192;

/// Builds a scan of a table.
pub struct ScanBuilder {
    table: Table,
    projection: Option<Vec<usize>>,
    predicate: Option<Predicate>,
    snapshot_id: Option<i64>,
    tag: Option<String>,
    limit: Option<usize>,
    /// Read level-0 files of deletion-vector tables too, merging (streaming
    /// reads, which must see rows not compacted yet).
    merge_level0: bool,
    levels: Levels,
    /// A lookup's key: only its rows are read (see `key.rs`).
    key: Option<Arc<KeyFilter>>,
    /// The snapshot to read, already resolved (a lookup of several keys).
    resolved: Option<Snapshot>,
}

/// Which LSM levels a scan reads: a streaming start of a table whose
/// changelog describes only some levels reads only those.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Levels {
    All,
    /// Levels 1 and up (`lookup` changelog producer).
    AboveZero,
    /// Each bucket's highest level (`full-compaction` changelog producer).
    Top,
}

/// A planned scan: splits that can be read independently, in parallel.
pub struct ScanPlan {
    table: Table,
    snapshot: Option<Snapshot>,
    splits: Vec<Split>,
    projection: Vec<usize>,
    projected_schema: SchemaRef,
    stats: ScanStats,
    key: Option<Arc<KeyFilter>>,
}

/// What planning a scan read and skipped (for `EXPLAIN ANALYZE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Data manifests of the snapshot.
    pub manifests: usize,
    /// Manifests skipped by their partition statistics.
    pub manifests_pruned: usize,
    /// Live files of the partitions and levels read, before file skipping.
    pub files_considered: usize,
    /// Files skipped by bucket, key or value statistics.
    pub files_pruned: usize,
}

impl Table {
    pub fn scan(&self) -> ScanBuilder {
        ScanBuilder::new(self.clone())
    }
}

impl ScanBuilder {
    fn new(table: Table) -> Self {
        ScanBuilder {
            table,
            projection: None,
            predicate: None,
            snapshot_id: None,
            tag: None,
            limit: None,
            merge_level0: false,
            levels: Levels::All,
            key: None,
            resolved: None,
        }
    }

    /// Reads this snapshot, already read by the caller.
    pub(crate) fn with_resolved_snapshot(mut self, snapshot: Option<Snapshot>) -> Self {
        self.resolved = snapshot;
        self
    }

    /// Reads only the rows of one primary key (a lookup), whose predicate
    /// the scan is also given.
    pub(crate) fn only_key(mut self, key: Arc<KeyFilter>) -> Self {
        self.key = Some(key);
        self
    }

    /// Reads only the files of these levels.
    pub(crate) fn only_levels(mut self, levels: Levels) -> Self {
        self.levels = levels;
        self
    }

    /// Reads every level of deletion-vector tables, merging (as streaming
    /// reads must), instead of only the compacted levels.
    pub(crate) fn merging_level0(mut self) -> Self {
        self.merge_level0 = true;
        self
    }

    /// Column indexes (into the table schema) to return, in order.
    pub fn with_projection(mut self, projection: Option<Vec<usize>>) -> Self {
        self.projection = projection;
        self
    }

    pub fn with_predicate(mut self, predicate: Predicate) -> Self {
        self.predicate = Some(predicate);
        self
    }

    /// Reads this snapshot instead of the latest (time travel).
    pub fn with_snapshot(mut self, snapshot_id: Option<i64>) -> Self {
        self.snapshot_id = snapshot_id;
        self
    }

    /// Reads the snapshot of this tag (time travel); wins over `with_snapshot`.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// A hint: the reader may stop once this many rows were produced.
    pub fn with_limit(mut self, limit: Option<usize>) -> Self {
        self.limit = limit;
        self
    }

    pub async fn plan(self) -> Result<ScanPlan> {
        let table = self.table;
        let layout = table.layout.clone();
        let nfields = layout.schema.fields.len();
        let projection = self.projection.unwrap_or_else(|| (0..nfields).collect());
        if let Some(bad) = projection.iter().find(|i| **i >= nfields) {
            return Err(EngineError::invalid(format!(
                "projection index {bad} is out of range"
            )));
        }
        let projected_schema = Arc::new(layout.arrow_schema.project(&projection)?);
        let snapshot = match (&self.tag, self.snapshot_id) {
            (None, _) if self.resolved.is_some() => self.resolved.clone(),
            (Some(tag), _) => Some(table.tag(tag).await?.ok_or_else(|| {
                EngineError::invalid(format!(
                    "tag '{tag}' of table '{}' does not exist",
                    table.id
                ))
            })?),
            (None, Some(id)) => Some(table.reader.snapshot(id).await?.ok_or_else(|| {
                EngineError::invalid(format!(
                    "snapshot {id} of table '{}' does not exist (or has expired)",
                    table.id
                ))
            })?),
            // A lookup reuses the latest snapshot it saw, once checked.
            (None, None) if self.key.is_some() => table.fresh_latest_snapshot().await?,
            (None, None) => table.reader.latest_snapshot().await?,
        };
        let Some(snap) = snapshot.clone() else {
            return Ok(ScanPlan {
                table,
                snapshot: None,
                splits: Vec::new(),
                projection,
                projected_schema,
                stats: ScanStats::default(),
                key: self.key,
            });
        };
        let ms = table.manifest_store()?;
        let partition_names = layout.schema.partition_keys.clone();
        let partition_pred = self
            .predicate
            .as_ref()
            .and_then(|p| p.restrict(&|c: &str| partition_names.iter().any(|n| n == c)));
        // A lookup reads the snapshot's files folded and cached (below), so
        // it neither copies nor judges the manifests' metadata.
        let mut metas = if self.key.is_some() {
            Vec::new()
        } else {
            ms.data_manifests(&snap).await?
        };
        let mut stats = ScanStats {
            manifests: metas.len(),
            ..ScanStats::default()
        };
        if let Some(pp) = partition_pred.as_ref().filter(|_| !metas.is_empty()) {
            metas.retain(
                |m| match decode_stats(&m.partition_stats, &layout.partition_types) {
                    Some(stats) => pp.may_match(
                        &|c: &str| {
                            partition_names
                                .iter()
                                .position(|n| n == c)
                                .map(|i| stats[i].clone())
                        },
                        m.num_added_files + m.num_deleted_files,
                    ),
                    None => true,
                },
            );
        }
        let partition_types = layout.partition_types.clone();
        let keep_partition_row = |partition: &[u8]| -> bool {
            let Some(pp) = &partition_pred else {
                return true;
            };
            match deserialize_binary_row(partition, &partition_types) {
                Ok(values) => pp.eval(&|c: &str| {
                    partition_names
                        .iter()
                        .position(|n| n == c)
                        .map(|i| values[i].clone())
                }),
                Err(_) => true,
            }
        };
        let keep_partition = |e: &ManifestEntry| keep_partition_row(&e.partition);
        stats.manifests_pruned = stats.manifests - metas.len();
        let key_hash = self
            .predicate
            .as_ref()
            .and_then(|p| pinned_bucket_key_hash(&table, p));
        // File skipping by statistics: key columns for primary-key tables
        // (other versions of a key share its key), every column otherwise.
        let file_pred = self.predicate.as_ref().and_then(|p| {
            if layout.is_primary_key() {
                let keys = layout.schema.trimmed_primary_keys();
                p.restrict(&|c: &str| keys.iter().any(|k| k == c))
            } else {
                Some(p.clone())
            }
        });
        let with_vectors = layout.options.deletion_vectors_enabled && layout.is_primary_key();
        let skip_level0 = with_vectors && !self.merge_level0;
        if let (Some(key), Some(key_hash), Levels::All) = (&self.key, key_hash, self.levels) {
            // A lookup of a fixed bucket: planned from the bucket as
            // prepared for the snapshot (see `key_plan.rs`).
            let input = KeyPlanInput {
                snapshot: &snap,
                key,
                key_hash,
                file_predicate: file_pred.as_ref(),
                skip_level0,
            };
            let partitions = ms.live_by_partition(&snap).await?;
            if let Some((splits, considered)) =
                plan_key(&table, &partitions, &keep_partition_row, &input).await?
            {
                stats.files_considered = considered;
                let read = splits.iter().map(|s| s.files.len()).sum::<usize>();
                stats.files_pruned = considered.saturating_sub(read);
                return Ok(ScanPlan {
                    table,
                    snapshot,
                    splits,
                    projection,
                    projected_schema,
                    stats,
                    key: self.key,
                });
            }
        }
        let mut considered = None;
        let mut live = if self.key.is_some() {
            // A lookup takes the snapshot's files folded once and cached,
            // judging each partition once instead of each file, and copies
            // only the entries of the key's bucket.
            let mut live = Vec::new();
            let mut count = 0;
            for part in ms.live_by_partition(&snap).await?.iter() {
                if keep_partition_row(&part.partition) {
                    count += part.entries.len();
                    live.extend(
                        part.entries
                            .iter()
                            .filter(|e| key_hash.is_none_or(|h| entry_may_hold_hash(&table, e, h)))
                            .cloned(),
                    );
                }
            }
            considered = Some(count);
            live
        } else {
            ms.live_entries(&metas, &keep_partition).await?
        };
        keep_levels(&table, &mut live, self.levels);
        stats.files_considered = live.len();

        // Without merging, a key's one live row is in one file: a file whose
        // values cannot match holds no visible row that matches.
        let value_pred = self.predicate.as_ref().filter(|_| skip_level0);
        let mut groups: BTreeMap<(Vec<u8>, i32), Vec<DataFileMeta>> = BTreeMap::new();
        for e in live {
            if let Some(hash) = key_hash {
                if !entry_may_hold_hash(&table, &e, hash) {
                    continue;
                }
            }
            if let Some(fp) = &file_pred {
                if !file_may_match(&table, fp, &e.file) {
                    continue;
                }
            }
            groups
                .entry((e.partition, e.bucket))
                .or_default()
                .push(e.file);
        }
        if let Some(vp) = value_pred {
            for files in groups.values_mut() {
                // Buckets that need merging after all keep every file.
                if files.iter().filter(|f| f.level > 0).all(has_no_retractions) {
                    files.retain(|f| f.level <= 0 || values_may_match(&table, vp, f));
                }
            }
            groups.retain(|_, files| !files.is_empty());
        }
        if let Some(count) = considered {
            // A lookup's entries of other buckets were never copied.
            stats.files_considered = count;
        }
        stats.files_pruned = stats.files_considered - groups.values().map(Vec::len).sum::<usize>();
        let mut vectors = if with_vectors {
            load_bucket_vectors(&table, &snap, &file_names(&groups)).await?
        } else {
            HashMap::new()
        };
        let mut splits = Vec::with_capacity(groups.len());
        for ((partition, bucket), files) in groups {
            let deletion_vectors = vectors.remove(&(partition.clone(), bucket)).map(Arc::new);
            let (partition_values, partition_path) =
                layout.partition_location(&partition, format_args!("bucket {bucket}"))?;
            splits.push(Split {
                partition,
                partition_values,
                partition_path,
                bucket,
                files,
                deletion_vectors,
                skip_level0,
                lookup: None,
            });
        }
        Ok(ScanPlan {
            table,
            snapshot,
            splits,
            projection,
            projected_schema,
            stats,
            key: self.key,
        })
    }
}

fn keep_levels(table: &Table, live: &mut Vec<ManifestEntry>, levels: Levels) {
    match levels {
        Levels::All => {}
        Levels::AboveZero => live.retain(|e| e.file.level > 0),
        Levels::Top => {
            // The top as compaction sees it: `num-levels - 1`, or higher
            // when files of an engine with more levels are there.
            let floor = table.layout.options.num_levels.max(2) as i32 - 1;
            let mut top: HashMap<(Vec<u8>, i32), i32> = HashMap::new();
            for e in live.iter() {
                let t = top.entry((e.partition.clone(), e.bucket)).or_insert(floor);
                *t = (*t).max(e.file.level);
            }
            live.retain(|e| top.get(&(e.partition.clone(), e.bucket)) == Some(&e.file.level));
        }
    }
}

/// The names of each bucket's files. (A plain function: with a closure over
/// borrowed files here, rustc could not prove `plan`'s future `Send` for
/// every lifetime, which writers spawned on a runtime need.)
fn file_names(
    groups: &BTreeMap<(Vec<u8>, i32), Vec<DataFileMeta>>,
) -> HashMap<(Vec<u8>, i32), HashSet<String>> {
    let mut out = HashMap::with_capacity(groups.len());
    for (id, files) in groups {
        let mut names = HashSet::with_capacity(files.len());
        for f in files {
            names.insert(f.file_name.clone());
        }
        out.insert(id.clone(), names);
    }
    out
}

/// Paimon's bucket hash of the bucket key a predicate pins (every bucket-key
/// column equal to one value), on fixed-bucket tables: a point lookup then
/// reads one bucket per partition instead of all of them. `None` (no
/// pruning) whenever the key is not fully pinned or its values do not fit
/// the columns' types.
fn pinned_bucket_key_hash(table: &Table, pred: &Predicate) -> Option<i32> {
    let layout = &table.layout;
    if layout.options.bucket <= 0 || layout.bucket_key_indices.is_empty() {
        return None;
    }
    let values = layout
        .bucket_key_indices
        .iter()
        .map(|&i| pred.pinned_value(&layout.schema.fields[i].name).cloned())
        .collect::<Option<Vec<Datum>>>()?;
    let row = encode_binary_row(&values, &layout.bucket_key_types).ok()?;
    Some(hash_binary_row(&row))
}

/// Whether a manifest entry's bucket is the one a key with this hash goes
/// to. Files of an older schema (whose bucket-key types may differ) and of
/// tables without fixed buckets are always kept.
fn entry_may_hold_hash(table: &Table, entry: &ManifestEntry, hash: i32) -> bool {
    if entry.file.schema_id != table.layout.schema.id {
        return true;
    }
    let buckets = if entry.total_buckets > 0 {
        entry.total_buckets
    } else {
        table.layout.options.bucket
    };
    buckets <= 0 || bucket_of(hash, buckets) == entry.bucket
}

fn file_may_match(table: &Table, pred: &Predicate, file: &DataFileMeta) -> bool {
    let layout = &table.layout;
    // Stats are written for the schema the file was written with; only use
    // them when that is the current one (or trivially compatible).
    if file.schema_id != layout.schema.id {
        return true;
    }
    if layout.is_primary_key() {
        let Some(stats) = decode_stats(&file.key_stats, &layout.key_types) else {
            return true;
        };
        let keys = layout.schema.trimmed_primary_keys();
        pred.may_match(
            &|c: &str| keys.iter().position(|k| k == c).map(|i| stats[i].clone()),
            file.row_count,
        )
    } else {
        values_may_match(table, pred, file)
    }
}

/// Whether a file's value statistics allow a row matching `pred`.
fn values_may_match(table: &Table, pred: &Predicate, file: &DataFileMeta) -> bool {
    let layout = &table.layout;
    if file.schema_id != layout.schema.id || file.value_stats_cols.is_some() {
        return true;
    }
    let types: Vec<_> = layout
        .schema
        .fields
        .iter()
        .map(|f| f.data_type.clone())
        .collect();
    let Some(stats) = decode_stats(&file.value_stats, &types) else {
        return true;
    };
    pred.may_match(
        &|c: &str| {
            layout
                .schema
                .fields
                .iter()
                .position(|f| f.name == c)
                .map(|i| stats[i].clone())
        },
        file.row_count,
    )
}

impl ScanPlan {
    pub fn splits(&self) -> &[Split] {
        &self.splits
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The table the plan reads.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// What planning read and skipped.
    pub fn stats(&self) -> ScanStats {
        self.stats
    }

    /// Whether reading `split` merges its sorted runs (primary-key tables,
    /// unless deletion vectors let the compacted levels be read as they are).
    pub fn merges(&self, split: &Split) -> bool {
        self.table.layout.is_primary_key() && !split.reads_without_merge()
    }

    pub fn projected_schema(&self) -> SchemaRef {
        self.projected_schema.clone()
    }

    /// Streams the rows of split `i` (merged, for primary-key tables).
    pub fn read_split(&self, i: usize) -> BoxStream<'static, Result<RecordBatch>> {
        let Some(split) = self.splits.get(i).cloned() else {
            return stream::once(async move { Err(EngineError::invalid(format!("no split {i}"))) })
                .boxed();
        };
        let table = self.table.clone();
        let projection = self.projection.clone();
        let schema = self.projected_schema.clone();
        if table.layout.is_primary_key() {
            read_pk_split(table, split, projection, schema, self.key.clone())
        } else {
            read_append_split(table, split, projection, schema)
        }
    }

    /// Streams every split, one after another.
    /// Streams every split, several at once on the runtime's worker threads
    /// (one per core), so decoding and merging use every core. Batches of
    /// different splits interleave; a bounded channel keeps memory bounded.
    /// Outside a tokio runtime the splits are read one after another.
    pub fn read_all(&self) -> BoxStream<'static, Result<RecordBatch>> {
        let streams: Vec<_> = (0..self.splits.len()).map(|i| self.read_split(i)).collect();
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(streams.len());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return stream::iter(streams).flatten().boxed();
        };
        if workers <= 1 {
            return stream::iter(streams).flatten().boxed();
        }
        let queue = Arc::new(std::sync::Mutex::new(streams.into_iter()));
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(workers * 2);
        for _ in 0..workers {
            let queue = queue.clone();
            let sender = sender.clone();
            runtime.spawn(async move {
                loop {
                    let next = match queue.lock() {
                        Ok(mut q) => q.next(),
                        Err(_) => None,
                    };
                    let Some(mut split) = next else { return };
                    while let Some(batch) = split.next().await {
                        let failed = batch.is_err();
                        // A dropped receiver means the reader stopped: so do we.
                        if sender.send(batch).await.is_err() || failed {
                            return;
                        }
                    }
                }
            });
        }
        stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|batch| (batch, receiver))
        })
        .boxed()
    }
}

fn value_columns(table: &Table, projection: &[usize]) -> Vec<ReadColumn> {
    projection
        .iter()
        .map(|&i| ReadColumn::Value(table.layout.schema.fields[i].clone()))
        .collect()
}

fn read_append_split(
    table: Table,
    split: Split,
    projection: Vec<usize>,
    schema: SchemaRef,
) -> BoxStream<'static, Result<RecordBatch>> {
    let columns = value_columns(&table, &projection);
    stream::iter(split.files.clone())
        .then(move |f| {
            let table = table.clone();
            let columns = columns.clone();
            let path = table
                .paths()
                .data_file(&split.partition_path, split.bucket, &f.file_name);
            async move { read_data_file(&table, &path, &f, &columns, BATCH_SIZE).await }
        })
        .try_flatten()
        .map_ok(move |b| {
            // Zero-column projections (COUNT(*)) keep their row count.
            let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(b.num_rows()));
            RecordBatch::try_new_with_options(schema.clone(), b.columns().to_vec(), &options)
                .unwrap_or(b)
        })
        .boxed()
}

/// A deletion-vector split read file by file: only the files above level
/// 0, each without its deleted rows (and retractions), no key or sequence
/// column read.
fn read_unmerged_split(
    table: Table,
    split: Split,
    projection: Vec<usize>,
    schema: SchemaRef,
    key: Option<Arc<KeyFilter>>,
    key_rows: Option<Arc<KeyRows>>,
) -> BoxStream<'static, Result<RecordBatch>> {
    let mut columns = vec![ReadColumn::ValueKind];
    if key.is_some() {
        // A lookup filters rows by their key columns.
        columns.extend(key_columns(&table));
    }
    let first_value = columns.len();
    columns.extend(value_columns(&table, &projection));
    let output_columns: Vec<usize> = (first_value..columns.len()).collect();
    let files: Vec<DataFileMeta> = split
        .files_to_read()
        .filter(|f| holds_key(key_rows.as_deref(), f))
        .cloned()
        .collect();
    stream::iter(files)
        .then(move |f| {
            let table = table.clone();
            let columns = columns.clone();
            let path = table
                .paths()
                .data_file(&split.partition_path, split.bucket, &f.file_name);
            let deleted = split.vector(&f);
            let key = key.clone();
            let rows = key_rows.clone();
            async move {
                if let (Some(key), Some(rows)) = (&key, &rows) {
                    let hits = rows.get(&f.file_name);
                    return indexed_rows(&table, &path, &f, &columns, key, hits).await;
                }
                read_live_file(
                    &table,
                    &path,
                    &f,
                    &columns,
                    BATCH_SIZE,
                    deleted,
                    key.as_ref(),
                )
                .await
            }
        })
        .try_flatten()
        .and_then(move |b| futures::future::ready(visible_rows(&b, 0, &output_columns, &schema)))
        .boxed()
}

fn holds_key(rows: Option<&KeyRows>, file: &DataFileMeta) -> bool {
    rows.is_none_or(|r| r.contains_key(&file.file_name))
}

fn read_pk_split(
    table: Table,
    split: Split,
    projection: Vec<usize>,
    schema: SchemaRef,
    key: Option<Arc<KeyFilter>>,
) -> BoxStream<'static, Result<RecordBatch>> {
    let indexed = key
        .clone()
        .filter(|k| k.hashed().is_some() && table.cache.key_indexes_enabled());
    if let Some(planned) = split.lookup.clone() {
        // A lookup planned its key's files and their rows already.
        let rows = planned.key_rows.clone();
        return read_pk_split_rows(table, split, projection, schema, key, rows);
    }
    let Some(filter) = indexed else {
        return read_pk_split_rows(table, split, projection, schema, key, None);
    };
    // A lookup first asks the files' key indexes which rows may hold the
    // key, then reads only those.
    stream::once(async move {
        let rows = async {
            let keys: Vec<String> = split
                .files_to_read()
                .map(|f| {
                    let path =
                        table
                            .paths()
                            .data_file(&split.partition_path, split.bucket, &f.file_name);
                    super::key_index::cache_key(&table, &path)
                })
                .collect();
            let files: Vec<(&DataFileMeta, &str)> = split
                .files_to_read()
                .zip(keys.iter().map(String::as_str))
                .collect();
            let bucket = super::key_index::BucketFiles {
                partition_path: &split.partition_path,
                bucket: split.bucket,
                deletion_vectors: split.deletion_vectors.as_deref(),
            };
            let columns = key_columns(&table);
            let rows = match filter.hashed() {
                Some((hasher, hash)) => {
                    super::key_index::key_rows(&table, &bucket, &files, &columns, hasher, hash)
                        .await?
                }
                None => None,
            };
            if let Some(r) = &rows {
                crate::counters::lookup_files_skipped(files.len() - r.len());
            }
            Ok::<_, EngineError>(rows)
        }
        .await;
        match rows {
            Ok(rows) => {
                read_pk_split_rows(table, split, projection, schema, key, rows.map(Arc::new))
            }
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        }
    })
    .flatten()
    .boxed()
}

fn read_pk_split_rows(
    table: Table,
    split: Split,
    projection: Vec<usize>,
    schema: SchemaRef,
    key: Option<Arc<KeyFilter>>,
    key_rows: Option<Arc<KeyRows>>,
) -> BoxStream<'static, Result<RecordBatch>> {
    if split.reads_without_merge() {
        return read_unmerged_split(table, split, projection, schema, key, key_rows);
    }
    // Level-0 files stay unread in batch reads even when the rest merges.
    // Shared, not copied, by every run's reader (a bucket may hold dozens
    // of runs, each of which would otherwise copy every file's metadata).
    let mut split = split;
    if split.skip_level0 {
        split.files.retain(|f| f.level > 0);
    }
    let split = Arc::new(split);
    let layout = table.layout.clone();
    let nk = layout.key_indices.len();
    let mut columns = key_columns(&table);
    columns.push(ReadColumn::Sequence);
    columns.push(ReadColumn::ValueKind);
    for &i in &layout.sequence_indices {
        columns.push(ReadColumn::Value(layout.schema.fields[i].clone()));
    }
    let seqf_start = nk + 2;
    let values_start = seqf_start + layout.sequence_indices.len();
    // Merge functions (partial-update, aggregation) read every field, since
    // one field's merge can depend on another (sequence groups).
    let merges_fields = matches!(
        layout.options.merge_engine,
        MergeEngine::PartialUpdate | MergeEngine::Aggregation
    );
    let (read_fields, output_columns): (Vec<usize>, Vec<usize>) = if merges_fields {
        (
            (0..layout.schema.fields.len()).collect(),
            projection.iter().map(|&i| values_start + i).collect(),
        )
    } else {
        (
            projection.clone(),
            (values_start..values_start + projection.len()).collect(),
        )
    };
    columns.extend(value_columns(&table, &read_fields));
    let in_schema = output_schema(&columns);
    let pick = match Pick::for_table(
        &layout,
        (values_start..values_start + read_fields.len()).collect(),
    ) {
        Ok(pick) => pick,
        Err(e) => return stream::once(async move { Err(e) }).boxed(),
    };
    let merge_layout = MergeLayout {
        key_columns: (0..nk).collect(),
        sequence_field_columns: (seqf_start..values_start).collect(),
        sequence_column: nk,
        kind_column: nk + 1,
        output_columns,
        output_schema: schema.clone(),
        pick,
        keep_retracts: false,
        batch_size: BATCH_SIZE,
    };
    let key_types: Vec<_> = (0..nk)
        .map(|i| in_schema.field(i).data_type().clone())
        .collect();
    let order_types: Vec<_> = (seqf_start..values_start)
        .map(|i| in_schema.field(i).data_type().clone())
        .collect();
    let sections: Vec<(bool, Vec<Vec<usize>>)> = match &split.lookup {
        Some(planned) => planned.sections.clone(),
        None => section_indices(&split.files, &layout.key_types)
            .into_iter()
            .map(|runs| (runs.len() == 1, runs))
            .collect(),
    };
    stream::iter(sections)
        .flat_map(move |(single, runs)| {
            // Whether a section merges depends on its runs, not on which of
            // their files hold the key: decided before files are left out
            // (and only the files holding it are copied).
            let runs: Vec<Vec<DataFileMeta>> = runs
                .into_iter()
                .map(|run| {
                    run.into_iter()
                        .map(|f| &split.files[f])
                        .filter(|f| holds_key(key_rows.as_deref(), f))
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .filter(|run| single || !run.is_empty())
                .collect();
            let open = |files: Vec<DataFileMeta>| -> BoxStream<'static, Result<RecordBatch>> {
                let table = table.clone();
                let columns = columns.clone();
                let split = split.clone();
                let key = key.clone();
                let key_rows = key_rows.clone();
                stream::iter(files)
                    .then(move |f| {
                        let table = table.clone();
                        let columns = columns.clone();
                        let path = table.paths().data_file(
                            &split.partition_path,
                            split.bucket,
                            &f.file_name,
                        );
                        let deleted = split.vector(&f);
                        let key = key.clone();
                        let rows = key_rows.clone();
                        async move {
                            if let (Some(key), Some(rows)) = (&key, &rows) {
                                let hits = rows.get(&f.file_name);
                                return indexed_rows(&table, &path, &f, &columns, key, hits).await;
                            }
                            let key = key.as_ref();
                            read_live_file(&table, &path, &f, &columns, BATCH_SIZE, deleted, key)
                                .await
                        }
                    })
                    .try_flatten()
                    .boxed()
            };
            if runs.is_empty() {
                // No file of the section holds the lookup's key.
                return stream::empty().boxed();
            }
            if single {
                // Keys are unique within a run: drop retractions and project.
                let layout = merge_layout.clone();
                let single = runs.into_iter().next().unwrap_or_default();
                open(single)
                    .and_then(move |b| futures::future::ready(live_rows(&b, &layout)))
                    .boxed()
            } else {
                let streams = runs.into_iter().map(&open).collect();
                merge_runs(
                    streams,
                    key_types.clone(),
                    order_types.clone(),
                    merge_layout.clone(),
                )
            }
        })
        .boxed()
}

/// The rows of a batch that are not retractions, projected to the output.
fn live_rows(batch: &RecordBatch, layout: &MergeLayout) -> Result<RecordBatch> {
    visible_rows(
        batch,
        layout.kind_column,
        &layout.output_columns,
        &layout.output_schema,
    )
}

/// The rows of a batch whose kind (column `kind_column`) is not a
/// retraction, as `output_columns` of `output_schema`.
fn visible_rows(
    batch: &RecordBatch,
    kind_column: usize,
    output_columns: &[usize],
    output_schema: &SchemaRef,
) -> Result<RecordBatch> {
    let kinds = batch
        .column(kind_column)
        .as_any()
        .downcast_ref::<Int8Array>()
        .ok_or_else(|| EngineError::internal("value kind column is not TINYINT"))?;
    let projected = batch.project(output_columns)?;
    let projected = RecordBatch::try_new_with_options(
        output_schema.clone(),
        projected.columns().to_vec(),
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?;
    crate::kv::keep_additions(projected, kinds.values())
}
