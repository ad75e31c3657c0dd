//! Process-wide counters of the engine's work, for a server's metrics:
//! commits made and lost, rows and bytes read from data files, hits and
//! misses of the metadata caches, primary-key lookups. Plain
//! atomics that only grow (Prometheus counters); [`engine_counters`] reads
//! them. They count every caller in the process: statements, continuous
//! jobs, compaction and maintenance alike.
//!
//! The engine knows no metrics library: whoever serves metrics reads the
//! values and names them.

use std::sync::atomic::{AtomicU64, Ordering};

static COMMITS: AtomicU64 = AtomicU64::new(0);
static COMMIT_CONFLICTS: AtomicU64 = AtomicU64::new(0);
static COMMIT_RETRIES: AtomicU64 = AtomicU64::new(0);
static ROWS_SCANNED: AtomicU64 = AtomicU64::new(0);
static BYTES_SCANNED: AtomicU64 = AtomicU64::new(0);
static DATA_FILES_OPENED: AtomicU64 = AtomicU64::new(0);
static GROUP_COMMITS: AtomicU64 = AtomicU64::new(0);
static GROUP_COMMIT_STATEMENTS: AtomicU64 = AtomicU64::new(0);
static MANIFEST_CACHE_HITS: AtomicU64 = AtomicU64::new(0);
static MANIFEST_CACHE_MISSES: AtomicU64 = AtomicU64::new(0);
static FOOTER_CACHE_HITS: AtomicU64 = AtomicU64::new(0);
static FOOTER_CACHE_MISSES: AtomicU64 = AtomicU64::new(0);
static PK_LOOKUPS: AtomicU64 = AtomicU64::new(0);
static ROW_GROUPS_PRUNED: AtomicU64 = AtomicU64::new(0);
static KEY_INDEX_HITS: AtomicU64 = AtomicU64::new(0);
static KEY_INDEX_MISSES: AtomicU64 = AtomicU64::new(0);
static LOOKUP_ROWS_HITS: AtomicU64 = AtomicU64::new(0);
static LOOKUP_ROWS_MISSES: AtomicU64 = AtomicU64::new(0);
static LOOKUP_FILES_SKIPPED: AtomicU64 = AtomicU64::new(0);
static SNAPSHOT_REUSES: AtomicU64 = AtomicU64::new(0);

/// The counters' values at one moment (each only grows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Snapshots this process committed (any kind: appends, overwrites,
    /// compactions, progress records).
    pub commits: u64,
    /// Commit attempts refused by a conflict check (a file removed or a
    /// bucket written concurrently, a fence): the caller may have retried.
    pub commit_conflicts: u64,
    /// Commit attempts that lost the race for the next snapshot id and
    /// were tried again inside the commit.
    pub commit_retries: u64,
    /// Rows decoded from data files (before merging and filtering).
    pub rows_scanned: u64,
    /// Bytes read from data files (footers included).
    pub bytes_scanned: u64,
    /// Data files opened for reading.
    pub data_files_opened: u64,
    /// Snapshots made by group commit (the write statements of SQL
    /// sessions), each holding one or more statements.
    pub group_commits: u64,
    /// Statements those snapshots hold: against `group_commits`, how well
    /// concurrent small writes were grouped.
    pub group_commit_statements: u64,
    /// Manifest lists and manifests found in the metadata cache.
    pub manifest_cache_hits: u64,
    /// Manifest lists and manifests read from the store (then cached).
    pub manifest_cache_misses: u64,
    /// Parquet footers of data files found in the metadata cache.
    pub footer_cache_hits: u64,
    /// Parquet footers read from the store (then cached).
    pub footer_cache_misses: u64,
    /// Keys looked up through `Table::lookup` (the primary-key fast path).
    pub primary_key_lookups: u64,
    /// Row groups a key lookup skipped by statistics or bloom filters.
    pub row_groups_pruned: u64,
    /// Key indexes of data files found in the cache by a lookup.
    pub key_index_hits: u64,
    /// Key indexes of data files built (their key columns read).
    pub key_index_misses: u64,
    /// Lookups answered from a data file's decoded rows in the cache.
    pub lookup_rows_hits: u64,
    /// Data files decoded whole into the cache for lookups.
    pub lookup_rows_misses: u64,
    /// Data files a lookup skipped because their key index lacks the key.
    pub lookup_files_skipped: u64,
    /// Lookups that reused the latest snapshot seen before (checked
    /// against the store) instead of reading it again.
    pub snapshot_reuses: u64,
}

/// The counters now.
pub fn engine_counters() -> EngineCounters {
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    EngineCounters {
        commits: get(&COMMITS),
        commit_conflicts: get(&COMMIT_CONFLICTS),
        commit_retries: get(&COMMIT_RETRIES),
        rows_scanned: get(&ROWS_SCANNED),
        bytes_scanned: get(&BYTES_SCANNED),
        data_files_opened: get(&DATA_FILES_OPENED),
        group_commits: get(&GROUP_COMMITS),
        group_commit_statements: get(&GROUP_COMMIT_STATEMENTS),
        manifest_cache_hits: get(&MANIFEST_CACHE_HITS),
        manifest_cache_misses: get(&MANIFEST_CACHE_MISSES),
        footer_cache_hits: get(&FOOTER_CACHE_HITS),
        footer_cache_misses: get(&FOOTER_CACHE_MISSES),
        primary_key_lookups: get(&PK_LOOKUPS),
        row_groups_pruned: get(&ROW_GROUPS_PRUNED),
        key_index_hits: get(&KEY_INDEX_HITS),
        key_index_misses: get(&KEY_INDEX_MISSES),
        lookup_rows_hits: get(&LOOKUP_ROWS_HITS),
        lookup_rows_misses: get(&LOOKUP_ROWS_MISSES),
        lookup_files_skipped: get(&LOOKUP_FILES_SKIPPED),
        snapshot_reuses: get(&SNAPSHOT_REUSES),
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn committed() {
    add(&COMMITS, 1);
}

pub(crate) fn conflict() {
    add(&COMMIT_CONFLICTS, 1);
}

pub(crate) fn retried() {
    add(&COMMIT_RETRIES, 1);
}

pub(crate) fn scanned_rows(n: usize) {
    add(&ROWS_SCANNED, n as u64);
}

pub(crate) fn scanned_bytes(n: usize) {
    add(&BYTES_SCANNED, n as u64);
}

pub(crate) fn opened_file() {
    add(&DATA_FILES_OPENED, 1);
}

pub(crate) fn group_committed(statements: usize) {
    add(&GROUP_COMMITS, 1);
    add(&GROUP_COMMIT_STATEMENTS, statements as u64);
}

pub(crate) fn manifest_cache(hit: bool) {
    add(
        if hit {
            &MANIFEST_CACHE_HITS
        } else {
            &MANIFEST_CACHE_MISSES
        },
        1,
    );
}

pub(crate) fn footer_cache(hit: bool) {
    add(
        if hit {
            &FOOTER_CACHE_HITS
        } else {
            &FOOTER_CACHE_MISSES
        },
        1,
    );
}

pub(crate) fn looked_up(keys: usize) {
    add(&PK_LOOKUPS, keys as u64);
}

pub(crate) fn pruned_row_groups(n: usize) {
    add(&ROW_GROUPS_PRUNED, n as u64);
}

pub(crate) fn key_index(hit: bool) {
    add(
        if hit {
            &KEY_INDEX_HITS
        } else {
            &KEY_INDEX_MISSES
        },
        1,
    );
}

pub(crate) fn lookup_rows(hit: bool) {
    add(
        if hit {
            &LOOKUP_ROWS_HITS
        } else {
            &LOOKUP_ROWS_MISSES
        },
        1,
    );
}

pub(crate) fn lookup_files_skipped(n: usize) {
    add(&LOOKUP_FILES_SKIPPED, n as u64);
}

pub(crate) fn snapshot_reused() {
    add(&SNAPSHOT_REUSES, 1);
}
