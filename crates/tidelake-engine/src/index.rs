//! A snapshot's index files: the dynamic-bucket HASH index and the
//! deletion vectors of primary-key tables (`deletion-vectors.enabled`).
//!
//! Deletion vectors: each bucket has at most one `DELETION_VECTORS` index
//! file, holding one vector per data file of the bucket that has deleted
//! rows. A commit that changes a bucket's vectors (only compaction does)
//! replaces the bucket's index file as a whole, in the same snapshot that
//! changes the data files, so files and vectors always agree. Readers load
//! them with `crate::read::deletion`; `crate::compact::lookup` writes them.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use tidelake_format::deletion_vector::{encode_index_file, DeletionVector};
use tidelake_format::manifest::{read_index_manifest, FileKind, IndexFileMeta, IndexManifestEntry};
use tidelake_format::snapshot::Snapshot;

use crate::error::{EngineError, Result};
use crate::table::Table;

/// Every live entry of a snapshot's index manifest (cached by the
/// catalog: index manifests are written once under a unique name).
pub(crate) async fn index_entries(
    table: &Table,
    snapshot: Option<&Snapshot>,
) -> Result<Vec<IndexManifestEntry>> {
    let Some(name) = snapshot.and_then(|s| s.index_manifest.clone()) else {
        return Ok(Vec::new());
    };
    let path = table.paths().manifest(&name);
    if let Some(found) = table.cache.index_manifest(&path) {
        return Ok(found.as_ref().clone());
    }
    let live = read_live_entries(table, &path).await?;
    table
        .cache
        .put_index_manifest(&path, std::sync::Arc::new(live.clone()));
    Ok(live)
}

async fn read_live_entries(table: &Table, path: &str) -> Result<Vec<IndexManifestEntry>> {
    let bytes = table.store.get(path).await?;
    let entries = read_index_manifest(&bytes).map_err(|e| EngineError::format(path, e))?;
    // An index manifest is written whole; DELETE entries only appear in
    // manifests of other writers that list changes, and cancel their ADD.
    let deleted: HashSet<(Vec<u8>, i32, String)> = entries
        .iter()
        .filter(|e| e.kind == FileKind::Delete)
        .map(|e| {
            (
                e.partition.clone(),
                e.bucket,
                e.index_file.file_name.clone(),
            )
        })
        .collect();
    Ok(entries
        .into_iter()
        .filter(|e| {
            e.kind == FileKind::Add
                && !deleted.contains(&(
                    e.partition.clone(),
                    e.bucket,
                    e.index_file.file_name.clone(),
                ))
        })
        .collect())
}

/// Writes the deletion vectors of one bucket (data file name -> vector, all
/// non-empty) as one index file in `index/`, vectors in file-name order as
/// pypaimon writes them; returns its index manifest entry.
pub(crate) async fn write_deletion_vectors(
    table: &Table,
    partition: &[u8],
    bucket: i32,
    vectors: &BTreeMap<String, DeletionVector>,
) -> Result<IndexManifestEntry> {
    let name = format!("index-{}-0", uuid::Uuid::new_v4());
    let path = table.paths().index(&name);
    let listed: Vec<(&str, &DeletionVector)> =
        vectors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let (bytes, ranges) = encode_index_file(&listed).map_err(|e| EngineError::format(&path, e))?;
    let file_size = bytes.len() as i64;
    table.store.put(&path, Bytes::from(bytes)).await?;
    Ok(IndexManifestEntry {
        kind: FileKind::Add,
        partition: partition.to_vec(),
        bucket,
        index_file: IndexFileMeta {
            index_type: IndexFileMeta::DELETION_VECTORS.to_string(),
            file_name: name,
            file_size,
            row_count: ranges.len() as i64,
            deletion_vector_ranges: Some(ranges),
            external_path: None,
            global_index: None,
        },
    })
}
