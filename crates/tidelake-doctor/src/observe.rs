//! What the doctor looks at: one pass over a table's metadata (latest
//! snapshot's live files per bucket, the retained snapshots, manifests,
//! consumers, tags, orphan candidates, continuous-job positions). No data
//! file is opened; deletion vectors are read from their index files.

use std::collections::{BTreeMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use tidelake_engine::introspect::{manifest_store, CommitKind};
use tidelake_engine::manifests::{self, MAX_ENTRIES_PER_MANIFEST};
use tidelake_engine::options::TableOptions;
use tidelake_engine::{Catalog, Identifier, OrphanOptions, Table};

use crate::error::{DoctorError, Result};

/// The snapshot property a continuous job records its source position in:
/// `tidelake.progress.job.NAME.DB.TABLE = next snapshot to read`.
const JOB_PROGRESS_PREFIX: &str = "tidelake.progress.job.";
/// The snapshot property counting a commit's retries after conflicts.
const RETRIES_PROPERTY: &str = "tidelake.commit.retries";
/// Files younger than this are never orphans (the engine's margin).
pub const ORPHAN_MARGIN_MILLIS: i64 = 24 * 3_600_000;

/// One live data file.
#[derive(Clone, Debug)]
pub struct FileFacts {
    pub size: u64,
    pub rows: u64,
    pub level: i32,
    /// Retraction rows (-U/-D) the file stores.
    pub retractions: u64,
}

/// The live files of one bucket in the latest snapshot.
#[derive(Clone, Debug)]
pub struct BucketFacts {
    pub partition: Vec<u8>,
    /// The partition's path without the trailing '/', `""` when unpartitioned.
    pub partition_name: String,
    pub bucket: i32,
    pub files: Vec<FileFacts>,
    /// Rows its deletion vectors mark deleted.
    pub dv_deleted: u64,
}

impl BucketFacts {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    /// Sorted runs: each level-0 file is one, each higher level one more.
    pub fn sorted_runs(&self) -> usize {
        let level0 = self.files.iter().filter(|f| f.level == 0).count();
        let levels: HashSet<i32> = self
            .files
            .iter()
            .filter(|f| f.level > 0)
            .map(|f| f.level)
            .collect();
        level0 + levels.len()
    }

    pub fn id(&self) -> (Vec<u8>, i32) {
        (self.partition.clone(), self.bucket)
    }
}

/// One retained snapshot.
#[derive(Clone, Debug)]
pub struct SnapshotFacts {
    pub id: i64,
    pub time_millis: i64,
    pub kind: CommitKind,
    pub delta_records: i64,
    pub changelog_records: i64,
    pub retries: u64,
    pub properties: BTreeMap<String, String>,
    /// Partitions its delta touched; read only for snapshots that retried.
    pub partitions: Vec<String>,
}

/// One consumer of the table.
#[derive(Clone, Debug)]
pub struct ConsumerFacts {
    pub id: String,
    pub next_snapshot: i64,
    pub last_modified_millis: i64,
}

/// A continuous job's position in one of its sources, as the latest
/// snapshot of its sink records it.
#[derive(Clone, Debug)]
pub struct JobPosition {
    pub job: String,
    pub source: String,
    pub next_snapshot: i64,
    /// When the sink last saw this position change (the oldest retained
    /// snapshot that carries the current value).
    pub since_millis: i64,
    pub source_facts: Option<SourceFacts>,
}

/// What the lag rules need of a job's source.
#[derive(Clone, Debug)]
pub struct SourceFacts {
    pub earliest: i64,
    pub latest: i64,
    /// Commit time of the job's next snapshot, if it exists.
    pub next_time_millis: Option<i64>,
    pub options: TableOptions,
    pub snapshots: Vec<(i64, i64)>,
}

/// Everything the rules read of one table.
#[derive(Clone, Debug)]
pub struct TableFacts {
    pub name: String,
    pub options: TableOptions,
    pub raw_options: BTreeMap<String, String>,
    pub primary_key: bool,
    pub partitioned: bool,
    pub buckets: Vec<BucketFacts>,
    /// Retained snapshots, oldest first.
    pub snapshots: Vec<SnapshotFacts>,
    /// Sizes of the latest snapshot's data manifests.
    pub manifest_sizes: Vec<u64>,
    /// Whether those manifests are as few as a merge could make them
    /// (no DELETE entries, no more files than their entries need at
    /// `manifest.target-file-size`).
    pub manifests_compact: bool,
    /// How many manifests a merge would leave (an estimate from sizes).
    pub manifests_after_merge: usize,
    pub consumers: Vec<ConsumerFacts>,
    /// Snapshot ids tags point at.
    pub tags: Vec<i64>,
    /// Unreferenced files older than the safety margin.
    pub orphans: Vec<String>,
    pub jobs: Vec<JobPosition>,
    /// The time the doctor judges at (epoch millis).
    pub now_millis: i64,
}

impl TableFacts {
    pub fn total_bytes(&self) -> u64 {
        self.buckets.iter().map(BucketFacts::bytes).sum()
    }

    pub fn total_files(&self) -> usize {
        self.buckets.iter().map(|b| b.files.len()).sum()
    }

    /// A tiny table holds less than one target file: layout problems of
    /// it cost little and never make it unhealthy.
    pub fn is_tiny(&self) -> bool {
        self.total_bytes() < self.options.target_file_size
    }

    /// The buckets grouped by partition, in partition order.
    pub fn partitions(&self) -> BTreeMap<&str, Vec<&BucketFacts>> {
        let mut out: BTreeMap<&str, Vec<&BucketFacts>> = BTreeMap::new();
        for b in &self.buckets {
            out.entry(b.partition_name.as_str()).or_default().push(b);
        }
        out
    }
}

/// Reads the facts of `id` as of `now_millis`.
pub async fn observe(catalog: &Catalog, id: &Identifier, now_millis: i64) -> Result<TableFacts> {
    let table = catalog
        .load_table(id)
        .await
        .map_err(|e| DoctorError::table(id, e))?;
    observe_table(catalog, &table, now_millis)
        .await
        .map_err(|e| DoctorError::table(id, e))
}

async fn observe_table(
    catalog: &Catalog,
    table: &Table,
    now_millis: i64,
) -> tidelake_engine::Result<TableFacts> {
    let snapshots = read_snapshots(table).await?;
    let mut buckets = Vec::new();
    let mut manifest_sizes = Vec::new();
    let mut manifests_compact = true;
    let mut manifests_after_merge = 0;
    if let Some(latest) = table.snapshots().latest_snapshot().await? {
        let plan = table.scan().with_snapshot(Some(latest.id)).plan().await?;
        for split in plan.splits() {
            buckets.push(bucket_facts(split));
        }
        let store = manifest_store(table)?;
        let metas = store.data_manifests(&latest).await?;
        manifest_sizes = metas.iter().map(|m| m.file_size.max(0) as u64).collect();
        let target = table.options().manifest_target_file_size;
        manifests_compact = manifests::manifests_compact(&metas, target, MAX_ENTRIES_PER_MANIFEST);
        let live: i64 = metas
            .iter()
            .map(|m| m.num_added_files - m.num_deleted_files)
            .sum();
        manifests_after_merge = manifests::manifests_needed(
            live.max(0) as usize,
            manifest_sizes.iter().sum(),
            target,
            MAX_ENTRIES_PER_MANIFEST,
        );
    }
    let consumers = read_consumers(table).await?;
    let tags = table
        .list_tags()
        .await?
        .into_iter()
        .map(|(_, s)| s.id)
        .collect();
    let orphans = table
        .remove_orphan_files_with(OrphanOptions {
            older_than: now_millis.saturating_sub(ORPHAN_MARGIN_MILLIS),
            dry_run: true,
        })
        .await?;
    let jobs = job_positions(catalog, &snapshots).await?;
    Ok(TableFacts {
        name: table.identifier().to_string(),
        options: table.options().clone(),
        raw_options: table.schema().options.clone(),
        primary_key: table.is_primary_key_table(),
        partitioned: !table.partition_keys().is_empty(),
        buckets,
        snapshots,
        manifest_sizes,
        manifests_compact,
        manifests_after_merge,
        consumers,
        tags,
        orphans,
        jobs,
        now_millis,
    })
}

fn bucket_facts(split: &tidelake_engine::Split) -> BucketFacts {
    let dv_deleted = split
        .deletion_vectors
        .as_ref()
        .map(|v| {
            split
                .files
                .iter()
                .map(|f| v.deleted_rows(&f.file_name))
                .sum()
        })
        .unwrap_or(0);
    BucketFacts {
        partition: split.partition.clone(),
        partition_name: split.partition_path.trim_end_matches('/').to_string(),
        bucket: split.bucket,
        files: split
            .files
            .iter()
            .map(|f| FileFacts {
                size: f.file_size.max(0) as u64,
                rows: f.row_count.max(0) as u64,
                level: f.level,
                retractions: f.delete_row_count.unwrap_or(0).max(0) as u64,
            })
            .collect(),
        dv_deleted,
    }
}

/// Snapshot files read at once (each is one small JSON file).
const SNAPSHOTS_AT_ONCE: usize = 16;

async fn read_snapshots(table: &Table) -> tidelake_engine::Result<Vec<SnapshotFacts>> {
    let ids = table.snapshots().list_snapshot_ids().await?;
    let read: Vec<Option<SnapshotFacts>> = futures::stream::iter(ids)
        .map(|id| snapshot_facts(table, id))
        .buffered(SNAPSHOTS_AT_ONCE)
        .try_collect()
        .await?;
    Ok(read.into_iter().flatten().collect())
}

/// One snapshot's facts; None when it expired meanwhile.
async fn snapshot_facts(table: &Table, id: i64) -> tidelake_engine::Result<Option<SnapshotFacts>> {
    let Some(s) = table.snapshots().snapshot(id).await? else {
        return Ok(None);
    };
    let properties = s.properties.clone().unwrap_or_default();
    let retries = properties
        .get(RETRIES_PROPERTY)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let partitions = if retries > 0 {
        delta_partitions(table, &s).await?
    } else {
        Vec::new()
    };
    Ok(Some(SnapshotFacts {
        id,
        time_millis: s.time_millis,
        kind: s.commit_kind,
        delta_records: s.delta_record_count.unwrap_or(0),
        changelog_records: s.changelog_record_count.unwrap_or(0),
        retries,
        properties,
        partitions,
    }))
}

/// The partitions (as paths) a snapshot's delta wrote.
async fn delta_partitions(
    table: &Table,
    snapshot: &tidelake_engine::introspect::Snapshot,
) -> tidelake_engine::Result<Vec<String>> {
    let store = manifest_store(table)?;
    let mut seen = std::collections::BTreeSet::new();
    for meta in store.read_list(&snapshot.delta_manifest_list).await? {
        for entry in store.read_manifest(&meta.file_name).await? {
            seen.insert(entry.partition);
        }
    }
    let names = partition_names(table).await?;
    Ok(seen
        .into_iter()
        .map(|p| names.get(&p).cloned().unwrap_or_else(|| format!("{p:?}")))
        .collect())
}

async fn partition_names(table: &Table) -> tidelake_engine::Result<BTreeMap<Vec<u8>, String>> {
    let plan = table.scan().plan().await?;
    Ok(plan
        .splits()
        .iter()
        .map(|s| {
            (
                s.partition.clone(),
                s.partition_path.trim_end_matches('/').to_string(),
            )
        })
        .collect())
}

async fn read_consumers(table: &Table) -> tidelake_engine::Result<Vec<ConsumerFacts>> {
    let listed = table.list_consumers().await?;
    if listed.is_empty() {
        return Ok(Vec::new());
    }
    let dir = table.paths().consumer_dir();
    let entries = table.store().list(&dir).await?;
    Ok(listed
        .into_iter()
        .map(|(id, next)| {
            let suffix = format!("/consumer-{id}");
            let last_modified_millis = entries
                .iter()
                .find(|e| e.path.ends_with(&suffix))
                .map(|e| e.last_modified.timestamp_millis())
                .unwrap_or(0);
            ConsumerFacts {
                id,
                next_snapshot: next,
                last_modified_millis,
            }
        })
        .collect())
}

/// Positions `tidelake.progress.job.NAME.DB.TABLE` in the latest snapshot.
async fn job_positions(
    catalog: &Catalog,
    snapshots: &[SnapshotFacts],
) -> tidelake_engine::Result<Vec<JobPosition>> {
    let Some(latest) = snapshots.last() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (key, value) in &latest.properties {
        let Some(rest) = key.strip_prefix(JOB_PROGRESS_PREFIX) else {
            continue;
        };
        let mut parts = rest.rsplitn(3, '.');
        let (Some(tbl), Some(db), Some(job)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(next) = value.parse::<i64>() else {
            continue;
        };
        let since_millis = snapshots
            .iter()
            .rev()
            .take_while(|s| s.properties.get(key) == Some(value))
            .last()
            .map_or(latest.time_millis, |s| s.time_millis);
        let source = Identifier::new(db, tbl);
        let source_facts = source_facts(catalog, &source, next).await?;
        out.push(JobPosition {
            job: job.to_string(),
            source: source.to_string(),
            next_snapshot: next,
            since_millis,
            source_facts,
        });
    }
    Ok(out)
}

async fn source_facts(
    catalog: &Catalog,
    source: &Identifier,
    next: i64,
) -> tidelake_engine::Result<Option<SourceFacts>> {
    let table = match catalog.load_table(source).await {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!("doctor: job source {source} does not load: {e}");
            return Ok(None);
        }
    };
    let ids = table.snapshots().list_snapshot_ids().await?;
    let (Some(&earliest), Some(&latest)) = (ids.first(), ids.last()) else {
        return Ok(None);
    };
    let mut snapshots = Vec::new();
    for id in &ids {
        if let Some(s) = table.snapshots().snapshot(*id).await? {
            snapshots.push((s.id, s.time_millis));
        }
    }
    let next_time_millis = snapshots.iter().find(|(id, _)| *id == next).map(|s| s.1);
    Ok(Some(SourceFacts {
        earliest,
        latest,
        next_time_millis,
        options: table.options().clone(),
        snapshots,
    }))
}
