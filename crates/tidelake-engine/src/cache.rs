//! In-memory caches of immutable metadata, shared by every table handle a
//! catalog opens (so by every session of a process that shares the
//! catalog): decoded manifest lists and manifests, index manifests,
//! deletion vectors (decoded per index file), Parquet footers of data files
//! (with their page indexes), key indexes of data files for primary-key
//! lookups, the decoded rows of the data files lookups meet often, the
//! latest snapshot of each table as last seen, and what the read path derives
//! from one snapshot's metadata (the buckets lookups plan from).
//!
//! Why no invalidation is needed: every file cached here is named once
//! and never rewritten (manifest lists, manifests and data files carry a
//! UUID in their name; so do index manifests and index files), so a cached value can only become unused, never
//! wrong. What changes is *which* files a query needs, and that comes
//! from the latest snapshot, which readers still read fresh from the
//! store for every scan: a commit made by another process is seen by the
//! next query. Snapshot files are not trusted from memory: `snapshot-N`
//! can be created again with other contents after a rollback, so the
//! latest snapshot a lookup reuses is checked against the store each time
//! (`snapshot-{N+1}` absent, `snapshot-N` holding the same bytes).
//!
//! Each cache is bounded by an estimate of the bytes its values hold and
//! evicts the least recently used entries beyond it. Hits and misses are
//! counted in [`crate::counters`].

use std::any::Any;
use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use lru::LruCache;
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use std::collections::HashMap;

use tidelake_format::deletion_vector::DeletionVector;
use tidelake_format::manifest::{
    DataFileMeta, IndexManifestEntry, ManifestEntry, ManifestFileMeta,
};
use tidelake_format::snapshot::Snapshot;

use crate::counters;

/// How much the caches of a catalog may hold, in bytes (estimated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Decoded manifest lists and manifests.
    pub manifest_bytes: usize,
    /// Parquet footers (and page indexes) of data files.
    pub footer_bytes: usize,
    /// Key indexes of data files for primary-key lookups (8 bytes a row;
    /// see `read/key_index.rs`). 0: lookups read files without them.
    pub key_index_bytes: usize,
    /// Decoded rows of the data files lookups meet often (Arrow arrays,
    /// about the files' uncompressed size; see `read/key_index.rs`), so
    /// that a lookup decodes no Parquet page. Only files of at most a
    /// sixteenth of this are kept. 0: lookups always read pages.
    pub lookup_rows_bytes: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            manifest_bytes: 64 * 1024 * 1024,
            footer_bytes: 64 * 1024 * 1024,
            key_index_bytes: 128 * 1024 * 1024,
            lookup_rows_bytes: 256 * 1024 * 1024,
        }
    }
}

impl CacheConfig {
    /// No caching at all (every read goes to the store).
    pub fn disabled() -> Self {
        CacheConfig {
            manifest_bytes: 0,
            footer_bytes: 0,
            key_index_bytes: 0,
            lookup_rows_bytes: 0,
        }
    }
}

/// A least-recently-used map bounded by the summed weight (estimated bytes)
/// of its values, safe to share between threads; the catalog's caches and
/// those of crates above the engine (vector searches) are made of it.
pub struct WeightedLru<K: Hash + Eq, V> {
    capacity: usize,
    /// A value weighing more is not kept (nor anything in a disabled cache).
    largest: usize,
    state: Mutex<LruState<K, V>>,
}

struct LruState<K: Hash + Eq, V> {
    map: LruCache<K, (V, usize)>,
    weight: usize,
}

impl<K: Hash + Eq, V: Clone> WeightedLru<K, V> {
    /// A cache of `capacity` in which one value may take at most half.
    pub fn new(capacity: usize) -> Self {
        Self::with_largest(capacity, capacity / 2)
    }

    /// A cache of `capacity` keeping no value heavier than `largest`.
    pub fn with_largest(capacity: usize, largest: usize) -> Self {
        WeightedLru {
            capacity,
            largest,
            state: Mutex::new(LruState {
                map: LruCache::unbounded(),
                weight: 0,
            }),
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // A poisoned lock only means another thread panicked while holding
        // it; the map is still consistent (every update is one call).
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.map.get(key).map(|(v, _)| v.clone())
    }

    /// Keeps `value`, evicting the least recently used beyond the capacity.
    pub fn insert(&self, key: K, value: V, weight: usize) {
        if weight > self.largest {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, old)) = state.map.put(key, (value, weight)) {
            state.weight -= old;
        }
        state.weight += weight;
        while state.weight > self.capacity {
            match state.map.pop_lru() {
                Some((_, (_, w))) => state.weight -= w,
                None => break,
            }
        }
    }

    /// Estimated bytes held.
    pub fn weight(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).weight
    }
}

/// The live data files of one partition of a snapshot, in the order the
/// snapshot's manifests added them.
#[derive(Debug)]
pub(crate) struct PartitionFiles {
    /// Serialized BinaryRow of the partition.
    pub partition: Vec<u8>,
    pub entries: Vec<ManifestEntry>,
}

/// The caches of one catalog (see the module doc).
pub struct MetadataCache {
    lists: WeightedLru<String, Arc<Vec<ManifestFileMeta>>>,
    manifests: WeightedLru<String, Arc<Vec<ManifestEntry>>>,
    /// Each snapshot's live files by partition (folded from its manifests),
    /// keyed by its manifest lists: lookups then skip the fold.
    live: WeightedLru<String, Arc<Vec<PartitionFiles>>>,
    /// Live entries of index manifests (deletion vectors, vector indexes).
    index_manifests: WeightedLru<String, Arc<Vec<IndexManifestEntry>>>,
    /// Deletion vectors by index file: data file name -> its vector.
    deletion_files: WeightedLru<String, Arc<DeletionFile>>,
    footers: WeightedLru<String, ArrowReaderMetadata>,
    /// Key indexes of data files, by reading schema id and path.
    key_indexes: WeightedLru<String, Arc<FileKeyIndex>>,
    /// Decoded rows of data files, by reading schema id and path.
    lookup_rows: WeightedLru<String, Arc<RecordBatch>>,
    /// The latest snapshot each table was last seen at, by snapshot
    /// folder, with the bytes of its file (see [`LatestSnapshot`]).
    latest: WeightedLru<String, Arc<LatestSnapshot>>,
    /// What the read path derives from the cached metadata of one snapshot
    /// and keeps for the next read of it (the buckets lookups planned). Its
    /// type is the read path's own: this module knows only that it is
    /// immutable and how much it weighs.
    derived: WeightedLru<String, Arc<dyn Any + Send + Sync>>,
    config: CacheConfig,
}

/// The key index of one data file (see `read/key_index.rs`): each row's
/// key hash and position, sorted by hash, and how many lookups found rows
/// in it (which decides when its rows are worth keeping decoded).
#[derive(Debug)]
pub(crate) struct FileKeyIndex {
    /// Key hashes, ascending.
    hashes: Vec<u32>,
    /// `positions[i]`: the row whose key hashes to `hashes[i]`.
    positions: Vec<u32>,
    hits: AtomicU32,
}

impl FileKeyIndex {
    /// The index of (hash, position) pairs sorted ascending.
    pub(crate) fn from_sorted(pairs: Vec<(u32, u32)>) -> FileKeyIndex {
        FileKeyIndex {
            hashes: pairs.iter().map(|p| p.0).collect(),
            positions: pairs.iter().map(|p| p.1).collect(),
            hits: AtomicU32::new(0),
        }
    }

    /// Counts a lookup that found rows in the file; returns the count.
    pub(crate) fn hit(&self) -> u32 {
        self.hits.fetch_add(1, Ordering::Relaxed).saturating_add(1)
    }

    /// The positions (ascending) of the rows whose key hashes to `hash`.
    pub(crate) fn rows_of(&self, hash: u32) -> Vec<u64> {
        let start = self.hashes.partition_point(|h| *h < hash);
        let end = start + self.hashes[start..].partition_point(|h| *h == hash);
        let mut rows: Vec<u64> = self.positions[start..end]
            .iter()
            .map(|p| u64::from(*p))
            .collect();
        rows.sort_unstable();
        rows
    }

    /// Estimated bytes held.
    pub(crate) fn weight(&self) -> usize {
        (self.hashes.capacity() + self.positions.capacity()) * 4 + 64
    }
}

/// The snapshot a table was last seen at: a lookup reuses it (and what was
/// planned from it) once it checked that `snapshot-{id + 1}` does not exist
/// and that `snapshot-{id}` still holds these bytes (a rollback may have
/// written it again with other contents).
#[derive(Debug)]
pub(crate) struct LatestSnapshot {
    /// The `N` of the file the bytes were read from.
    pub id: i64,
    pub bytes: bytes::Bytes,
    pub snapshot: Snapshot,
}

impl std::fmt::Debug for MetadataCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataCache")
            .field("config", &self.config)
            .field("manifest_bytes_held", &self.manifest_bytes_held())
            .field("footer_bytes_held", &self.footers.weight())
            .finish()
    }
}

impl Default for MetadataCache {
    fn default() -> Self {
        MetadataCache::new(CacheConfig::default())
    }
}

impl MetadataCache {
    pub fn new(config: CacheConfig) -> Self {
        // Lists are small and read by every scan: a tenth of the budget;
        // folded snapshots (the same entries again) three tenths; index
        // manifests a twentieth and deletion vectors a tenth.
        let lists = config.manifest_bytes / 10;
        let live = config.manifest_bytes / 10 * 3;
        let index = config.manifest_bytes / 20;
        let deletions = config.manifest_bytes / 10;
        MetadataCache {
            lists: WeightedLru::new(lists),
            manifests: WeightedLru::new(config.manifest_bytes - lists - live - index - deletions),
            live: WeightedLru::new(live),
            index_manifests: WeightedLru::new(index),
            deletion_files: WeightedLru::new(deletions),
            footers: WeightedLru::new(config.footer_bytes),
            key_indexes: WeightedLru::new(config.key_index_bytes),
            lookup_rows: WeightedLru::new(config.lookup_rows_bytes),
            // Snapshot files are a few KiB: a 64th of the budget holds
            // hundreds of tables.
            latest: WeightedLru::new(config.manifest_bytes / 64),
            // As much as the folded snapshots: it holds their buckets again.
            derived: WeightedLru::new(live),
            config,
        }
    }

    pub fn config(&self) -> CacheConfig {
        self.config
    }

    /// Estimated bytes held by the manifest caches now.
    pub fn manifest_bytes_held(&self) -> usize {
        self.lists.weight()
            + self.manifests.weight()
            + self.live.weight()
            + self.index_manifests.weight()
            + self.deletion_files.weight()
            + self.derived.weight()
    }

    /// Estimated bytes held by the footer cache now.
    pub fn footer_bytes_held(&self) -> usize {
        self.footers.weight()
    }

    pub(crate) fn manifest_list(&self, path: &str) -> Option<Arc<Vec<ManifestFileMeta>>> {
        let found = self.lists.get(path);
        counters::manifest_cache(found.is_some());
        found
    }

    pub(crate) fn put_manifest_list(&self, path: &str, metas: Arc<Vec<ManifestFileMeta>>) {
        let weight = metas.iter().map(list_entry_weight).sum::<usize>() + 64;
        self.lists.insert(path.to_string(), metas, weight);
    }

    pub(crate) fn manifest(&self, path: &str) -> Option<Arc<Vec<ManifestEntry>>> {
        let found = self.manifests.get(path);
        counters::manifest_cache(found.is_some());
        found
    }

    pub(crate) fn put_manifest(&self, path: &str, entries: Arc<Vec<ManifestEntry>>) {
        let weight = entries.iter().map(entry_weight).sum::<usize>() + 64;
        self.manifests.insert(path.to_string(), entries, weight);
    }

    pub(crate) fn live_files(&self, key: &str) -> Option<Arc<Vec<PartitionFiles>>> {
        let found = self.live.get(key);
        counters::manifest_cache(found.is_some());
        found
    }

    pub(crate) fn put_live_files(&self, key: &str, files: Arc<Vec<PartitionFiles>>) {
        let weight = files
            .iter()
            .map(|p| p.partition.len() + p.entries.iter().map(entry_weight).sum::<usize>())
            .sum::<usize>()
            + 64;
        self.live.insert(key.to_string(), files, weight);
    }

    pub(crate) fn index_manifest(&self, path: &str) -> Option<Arc<Vec<IndexManifestEntry>>> {
        let found = self.index_manifests.get(path);
        counters::manifest_cache(found.is_some());
        found
    }

    pub(crate) fn put_index_manifest(&self, path: &str, entries: Arc<Vec<IndexManifestEntry>>) {
        let weight = entries.iter().map(index_entry_weight).sum::<usize>() + 64;
        self.index_manifests
            .insert(path.to_string(), entries, weight);
    }

    pub(crate) fn deletion_file(&self, path: &str) -> Option<Arc<DeletionFile>> {
        let found = self.deletion_files.get(path);
        counters::manifest_cache(found.is_some());
        found
    }

    pub(crate) fn put_deletion_file(&self, path: &str, file: Arc<DeletionFile>) {
        let weight = file
            .iter()
            .map(|(name, dv)| name.len() + dv.bitmap().serialized_size() + 48)
            .sum::<usize>()
            + 64;
        self.deletion_files.insert(path.to_string(), file, weight);
    }

    pub(crate) fn footer(&self, path: &str) -> Option<ArrowReaderMetadata> {
        let found = self.footers.get(path);
        counters::footer_cache(found.is_some());
        found
    }

    pub(crate) fn put_footer(&self, path: &str, metadata: ArrowReaderMetadata) {
        let weight = metadata.metadata().memory_size() + 256;
        self.footers.insert(path.to_string(), metadata, weight);
    }

    /// Whether key indexes are kept at all.
    pub(crate) fn key_indexes_enabled(&self) -> bool {
        self.config.key_index_bytes > 0
    }

    /// Estimated bytes held by the key indexes now.
    pub fn key_index_bytes_held(&self) -> usize {
        self.key_indexes.weight()
    }

    pub(crate) fn key_index(&self, key: &str) -> Option<Arc<FileKeyIndex>> {
        let found = self.key_indexes.get(key);
        counters::key_index(found.is_some());
        found
    }

    pub(crate) fn put_key_index(&self, key: &str, index: Arc<FileKeyIndex>) {
        let weight = index.weight() + key.len();
        self.key_indexes.insert(key.to_string(), index, weight);
    }

    /// The largest data file (bytes on storage) whose rows are kept
    /// decoded: a sixteenth of the budget, 0 when none are kept.
    pub(crate) fn lookup_rows_file_limit(&self) -> u64 {
        (self.config.lookup_rows_bytes / 16) as u64
    }

    /// Estimated bytes held by the decoded rows of data files now.
    pub fn lookup_rows_bytes_held(&self) -> usize {
        self.lookup_rows.weight()
    }

    pub(crate) fn lookup_rows(&self, key: &str) -> Option<Arc<RecordBatch>> {
        self.lookup_rows.get(key)
    }

    pub(crate) fn put_lookup_rows(&self, key: &str, rows: Arc<RecordBatch>) {
        let weight = rows.get_array_memory_size() + key.len() + 128;
        self.lookup_rows.insert(key.to_string(), rows, weight);
    }

    /// A value derived from a snapshot's metadata (see the field), if it
    /// is cached and of type `T`.
    pub(crate) fn derived<T: Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        let found = self.derived.get(key).and_then(|v| v.downcast::<T>().ok());
        counters::manifest_cache(found.is_some());
        found
    }

    pub(crate) fn put_derived<T: Any + Send + Sync>(
        &self,
        key: &str,
        value: Arc<T>,
        weight: usize,
    ) {
        self.derived
            .insert(key.to_string(), value, weight + key.len() + 64);
    }

    pub(crate) fn latest_snapshot(&self, snapshot_dir: &str) -> Option<Arc<LatestSnapshot>> {
        self.latest.get(snapshot_dir)
    }

    pub(crate) fn put_latest_snapshot(&self, snapshot_dir: &str, latest: Arc<LatestSnapshot>) {
        let weight = latest.bytes.len() * 3 + snapshot_dir.len() + 256;
        self.latest.insert(snapshot_dir.to_string(), latest, weight);
    }
}

/// The decoded vectors of one deletion-vector index file.
pub(crate) type DeletionFile = HashMap<String, Arc<DeletionVector>>;

fn index_entry_weight(e: &IndexManifestEntry) -> usize {
    let ranges = e
        .index_file
        .deletion_vector_ranges
        .as_ref()
        .map_or(0, |r| r.iter().map(|r| r.data_file_name.len() + 32).sum());
    std::mem::size_of::<IndexManifestEntry>()
        + e.partition.len()
        + e.index_file.file_name.len()
        + ranges
        + e.index_file.global_index.as_ref().map_or(0, |_| 256)
}

fn list_entry_weight(m: &ManifestFileMeta) -> usize {
    std::mem::size_of::<ManifestFileMeta>()
        + m.file_name.len()
        + m.partition_stats.min_values.len()
        + m.partition_stats.max_values.len()
        + null_counts_weight(&m.partition_stats)
}

fn null_counts_weight(s: &tidelake_format::manifest::SimpleStats) -> usize {
    s.null_counts.as_ref().map_or(0, |c| c.len() * 16)
}

fn entry_weight(e: &ManifestEntry) -> usize {
    std::mem::size_of::<ManifestEntry>() + e.partition.len() + file_weight(&e.file)
}

pub(crate) fn file_weight(f: &DataFileMeta) -> usize {
    let stats = |s: &tidelake_format::manifest::SimpleStats| {
        s.min_values.len() + s.max_values.len() + null_counts_weight(s)
    };
    f.file_name.len()
        + f.min_key.len()
        + f.max_key.len()
        + stats(&f.key_stats)
        + stats(&f.value_stats)
        + f.extra_files.iter().map(String::len).sum::<usize>()
        + f.embedded_index.as_ref().map_or(0, Vec::len)
        + f.value_stats_cols
            .as_ref()
            .map_or(0, |c| c.iter().map(String::len).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_beyond_the_weight() {
        let lru: WeightedLru<u32, u32> = WeightedLru::new(100);
        lru.insert(1, 10, 40);
        lru.insert(2, 20, 40);
        assert_eq!(lru.get(&1), Some(10)); // 1 is now the most recent
        lru.insert(3, 30, 40);
        assert_eq!(lru.get(&2), None);
        assert_eq!(lru.get(&1), Some(10));
        assert_eq!(lru.get(&3), Some(30));
        assert_eq!(lru.weight(), 80);
        // Too heavy for the cache: not kept, nothing evicted.
        lru.insert(4, 40, 60);
        assert_eq!(lru.get(&4), None);
        assert_eq!(lru.weight(), 80);
        // Replacing a key replaces its weight.
        lru.insert(3, 31, 10);
        assert_eq!(lru.weight(), 50);
    }

    #[test]
    fn a_value_heavier_than_the_largest_allowed_is_not_kept() {
        let lru: WeightedLru<&str, u32> = WeightedLru::with_largest(100, 25);
        lru.insert("a", 1, 25);
        lru.insert("b", 2, 26);
        assert_eq!(lru.get("a"), Some(1));
        assert_eq!(lru.get("b"), None);
        assert_eq!(lru.weight(), 25);
    }

    #[test]
    fn a_disabled_cache_keeps_nothing() {
        let cache = MetadataCache::new(CacheConfig::disabled());
        cache.put_manifest("m", Arc::new(Vec::new()));
        assert!(cache.manifest("m").is_none());
        assert_eq!(cache.manifest_bytes_held(), 0);
    }
}
