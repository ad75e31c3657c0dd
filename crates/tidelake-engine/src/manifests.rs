//! Reading and writing a table's manifests through the warehouse store, and
//! folding manifest entries into the set of live data files of a snapshot.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tidelake_format::manifest::{
    read_manifest_entries, read_manifest_list, write_manifest_entries, write_manifest_list,
    FileKind, ManifestCodec, ManifestEntry, ManifestFileMeta, SimpleStats,
};
use tidelake_format::snapshot::Snapshot;
use tidelake_store::WarehouseStore;

use crate::cache::{MetadataCache, PartitionFiles};
use crate::error::{EngineError, Result};
use crate::kv::TablePaths;

/// Upper bound of entries in one manifest file.
pub const MAX_ENTRIES_PER_MANIFEST: usize = 20_000;

/// Manifest I/O for one table.
#[derive(Clone)]
pub struct ManifestStore {
    store: WarehouseStore,
    paths: TablePaths,
    codec: ManifestCodec,
    /// Decoded lists and manifests by path (they are never rewritten).
    cache: Option<Arc<MetadataCache>>,
}

/// Identity of a data file within a table: a DELETE entry cancels the ADD
/// entry with the same identity.
type FileIdentity = (Vec<u8>, i32, i32, String);

fn identity(e: &ManifestEntry) -> FileIdentity {
    (
        e.partition.clone(),
        e.bucket,
        e.file.level,
        e.file.file_name.clone(),
    )
}

impl ManifestStore {
    pub fn new(store: WarehouseStore, paths: TablePaths, codec_option: &str) -> Result<Self> {
        let codec = ManifestCodec::from_option(codec_option)
            .map_err(|e| EngineError::format("manifest.compression", e))?;
        Ok(ManifestStore {
            store,
            paths,
            codec,
            cache: None,
        })
    }

    /// The same store, reading lists and manifests through `cache`.
    pub fn with_cache(mut self, cache: Arc<MetadataCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    pub async fn read_list(&self, name: &str) -> Result<Vec<ManifestFileMeta>> {
        Ok(self.read_list_shared(name).await?.as_ref().clone())
    }

    async fn read_list_shared(&self, name: &str) -> Result<Arc<Vec<ManifestFileMeta>>> {
        let path = self.paths.manifest(name);
        if let Some(found) = self.cache.as_ref().and_then(|c| c.manifest_list(&path)) {
            return Ok(found);
        }
        let bytes = self.store.get(&path).await?;
        let metas =
            Arc::new(read_manifest_list(&bytes).map_err(|e| EngineError::format(&path, e))?);
        if let Some(cache) = &self.cache {
            cache.put_manifest_list(&path, metas.clone());
        }
        Ok(metas)
    }

    pub async fn read_manifest(&self, name: &str) -> Result<Vec<ManifestEntry>> {
        Ok(self.read_manifest_shared(name).await?.as_ref().clone())
    }

    async fn read_manifest_shared(&self, name: &str) -> Result<Arc<Vec<ManifestEntry>>> {
        let path = self.paths.manifest(name);
        if let Some(found) = self.cache.as_ref().and_then(|c| c.manifest(&path)) {
            return Ok(found);
        }
        let bytes = self.store.get(&path).await?;
        let entries =
            Arc::new(read_manifest_entries(&bytes).map_err(|e| EngineError::format(&path, e))?);
        if let Some(cache) = &self.cache {
            cache.put_manifest(&path, entries.clone());
        }
        Ok(entries)
    }

    /// All manifests of a snapshot, base first, in commit order.
    pub async fn data_manifests(&self, snapshot: &Snapshot) -> Result<Vec<ManifestFileMeta>> {
        let mut metas = self.read_list(&snapshot.base_manifest_list).await?;
        metas.extend(self.read_list(&snapshot.delta_manifest_list).await?);
        Ok(metas)
    }

    /// Reads the given manifests (concurrently) and folds ADD/DELETE entries
    /// into the live files, in a stable order. `keep` filters entries early.
    pub async fn live_entries(
        &self,
        metas: &[ManifestFileMeta],
        keep: &(dyn Fn(&ManifestEntry) -> bool + Send + Sync),
    ) -> Result<Vec<ManifestEntry>> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        // Owned futures: a stream of futures borrowing `self` is not `Send`
        // for every lifetime, which callers spawned on tokio need.
        let reads: Vec<_> = metas
            .iter()
            .map(|m| {
                let this = self.clone();
                let name = m.file_name.clone();
                async move { this.read_manifest_shared(&name).await }
            })
            .collect();
        let lists: Vec<Arc<Vec<ManifestEntry>>> =
            stream::iter(reads).buffered(8).try_collect().await?;
        // Only the entries kept are copied out of the (shared) manifests.
        Ok(fold_entries(
            lists
                .iter()
                .flat_map(|l| l.iter())
                .filter(|e| keep(e))
                .cloned(),
        ))
    }

    /// Every live data file of a snapshot, grouped by partition (in order of
    /// first appearance, files in the order `live_entries` gives), shared
    /// through the cache by every reader of the snapshot.
    pub(crate) async fn live_by_partition(
        &self,
        snapshot: &Snapshot,
    ) -> Result<Arc<Vec<PartitionFiles>>> {
        // Manifest lists are named once (UUIDs): they identify the files.
        let key = format!(
            "{}|{}",
            self.paths.manifest(&snapshot.base_manifest_list),
            snapshot.delta_manifest_list
        );
        if let Some(found) = self.cache.as_ref().and_then(|c| c.live_files(&key)) {
            return Ok(found);
        }
        let metas = self.data_manifests(snapshot).await?;
        let live = self.live_entries(&metas, &|_| true).await?;
        let mut position: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut grouped: Vec<PartitionFiles> = Vec::new();
        for e in live {
            let i = *position.entry(e.partition.clone()).or_insert_with(|| {
                grouped.push(PartitionFiles {
                    partition: e.partition.clone(),
                    entries: Vec::new(),
                });
                grouped.len() - 1
            });
            grouped[i].entries.push(e);
        }
        let grouped = Arc::new(grouped);
        if let Some(cache) = &self.cache {
            cache.put_live_files(&key, grouped.clone());
        }
        Ok(grouped)
    }

    /// Writes entries as one or more manifest files (split so that no file
    /// holds more than `max_entries`), returning their metas.
    pub(crate) async fn write_manifests(
        &self,
        entries: &[ManifestEntry],
        schema_id: i64,
        partition_stats: &(dyn Fn(&[ManifestEntry]) -> SimpleStats + Send + Sync),
        max_entries: usize,
    ) -> Result<Vec<ManifestFileMeta>> {
        let mut metas = Vec::new();
        let prefix = uuid::Uuid::new_v4();
        for (i, chunk) in entries.chunks(max_entries.max(1)).enumerate() {
            let name = format!("manifest-{prefix}-{i}");
            let path = self.paths.manifest(&name);
            let bytes = write_manifest_entries(chunk, self.codec)
                .map_err(|e| EngineError::format(path.clone(), e))?;
            let size = bytes.len() as i64;
            self.store.put(&path, Bytes::from(bytes)).await?;
            metas.push(ManifestFileMeta {
                file_name: name,
                file_size: size,
                num_added_files: chunk.iter().filter(|e| e.kind == FileKind::Add).count() as i64,
                num_deleted_files: chunk.iter().filter(|e| e.kind == FileKind::Delete).count()
                    as i64,
                partition_stats: partition_stats(chunk),
                schema_id,
                min_bucket: chunk.iter().map(|e| e.bucket).min(),
                max_bucket: chunk.iter().map(|e| e.bucket).max(),
                min_level: chunk.iter().map(|e| e.file.level).min(),
                max_level: chunk.iter().map(|e| e.file.level).max(),
                min_row_id: None,
                max_row_id: None,
            });
        }
        Ok(metas)
    }

    /// Writes entries as the fewest manifest files of about `target_bytes`
    /// each (`manifest.target-file-size`) that hold at most `max_entries`
    /// entries: the entries are encoded once to learn their size, then
    /// split evenly into that many files, in order.
    pub(crate) async fn write_manifests_sized(
        &self,
        entries: &[ManifestEntry],
        schema_id: i64,
        partition_stats: &(dyn Fn(&[ManifestEntry]) -> SimpleStats + Send + Sync),
        target_bytes: u64,
        max_entries: usize,
    ) -> Result<Vec<ManifestFileMeta>> {
        let per_file = entries_per_manifest(
            entries.len(),
            self.encoded_size(entries)?,
            target_bytes,
            max_entries,
        );
        self.write_manifests(entries, schema_id, partition_stats, per_file)
            .await
    }

    fn encoded_size(&self, entries: &[ManifestEntry]) -> Result<u64> {
        if entries.is_empty() {
            return Ok(0);
        }
        write_manifest_entries(entries, self.codec)
            .map(|bytes| bytes.len() as u64)
            .map_err(|e| EngineError::format("manifest (size estimate)", e))
    }

    pub(crate) async fn write_list(&self, metas: &[ManifestFileMeta]) -> Result<(String, i64)> {
        let name = format!("manifest-list-{}-0", uuid::Uuid::new_v4());
        let path = self.paths.manifest(&name);
        let bytes = write_manifest_list(metas, self.codec)
            .map_err(|e| EngineError::format(path.clone(), e))?;
        let size = bytes.len() as i64;
        self.store.put(&path, Bytes::from(bytes)).await?;
        Ok((name, size))
    }

    /// Deletes manifest files written by a commit attempt that lost.
    pub(crate) async fn delete_quietly(&self, names: &[String]) {
        for n in names {
            if let Err(e) = self.store.delete(&self.paths.manifest(n)).await {
                tracing::warn!("could not delete unused manifest {n}: {e}");
            }
        }
    }
}

/// The fewest manifest files `entries` entries of `bytes` encoded bytes fit
/// in, with at most `target_bytes` (about) and `max_entries` per file.
pub fn manifests_needed(
    entries: usize,
    bytes: u64,
    target_bytes: u64,
    max_entries: usize,
) -> usize {
    if entries == 0 {
        return 0;
    }
    let by_size = usize::try_from(bytes.div_ceil(target_bytes.max(1))).unwrap_or(usize::MAX);
    by_size
        .max(entries.div_ceil(max_entries.max(1)))
        .clamp(1, entries)
}

/// Entries per file when `entries` are split evenly into
/// [`manifests_needed`] files.
fn entries_per_manifest(
    entries: usize,
    bytes: u64,
    target_bytes: u64,
    max_entries: usize,
) -> usize {
    let files = manifests_needed(entries, bytes, target_bytes, max_entries).max(1);
    entries.div_ceil(files).max(1)
}

/// Whether a snapshot's data manifests are already as few as a rewrite
/// could make them: none holds a DELETE entry (so every entry is live) and
/// there are no more of them than their entries need at the target size.
/// Judged from the manifest list alone; the summed sizes overstate what
/// one file would take (each file repeats the Avro header), so a set this
/// accepts is never rewritten into fewer files.
pub fn manifests_compact(
    metas: &[ManifestFileMeta],
    target_bytes: u64,
    max_entries: usize,
) -> bool {
    if metas.iter().any(|m| m.num_deleted_files > 0) {
        return false;
    }
    let entries: i64 = metas.iter().map(|m| m.num_added_files.max(0)).sum();
    let bytes: i64 = metas.iter().map(|m| m.file_size.max(0)).sum();
    let needed = manifests_needed(
        usize::try_from(entries).unwrap_or(usize::MAX),
        u64::try_from(bytes).unwrap_or(0),
        target_bytes,
        max_entries,
    );
    metas.len() <= needed.max(1)
}

/// Folds entries in commit order: an ADD is live until a DELETE of the same
/// file follows it. The result keeps the order in which files were added.
pub(crate) fn fold_entries(entries: impl Iterator<Item = ManifestEntry>) -> Vec<ManifestEntry> {
    let mut live: Vec<Option<ManifestEntry>> = Vec::new();
    let mut position: HashMap<FileIdentity, usize> = HashMap::new();
    for e in entries {
        let id = identity(&e);
        match e.kind {
            FileKind::Add => {
                position.insert(id, live.len());
                live.push(Some(e));
            }
            FileKind::Delete => {
                if let Some(i) = position.remove(&id) {
                    live[i] = None;
                }
            }
        }
    }
    live.into_iter().flatten().collect()
}
