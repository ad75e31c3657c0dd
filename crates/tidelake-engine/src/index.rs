//! A snapshot's index files: the dynamic-bucket HASH index and the
//! deletion vectors of primary-key tables (`deletion-vectors.enabled`).
//!
//! Deletion vectors: each bucket has at most one `DELETION_VECTORS` index
//! file, holding one vector per data file of the bucket that has deleted
//! rows. A commit that changes a bucket's vectors (only compaction does)
//! replaces the bucket's index file as a whole, in the same snapshot that
//! changes the data files, so files and vectors always agree.

use std::collections::HashSet;
use tidelake_format::manifest::{read_index_manifest, FileKind, IndexManifestEntry};
use tidelake_format::snapshot::Snapshot;

use crate::error::{EngineError, Result};
use crate::table::Table;

/// Every live entry of a snapshot's index manifest.
pub(crate) async fn index_entries(
    table: &Table,
    snapshot: Option<&Snapshot>,
) -> Result<Vec<IndexManifestEntry>> {
    let Some(name) = snapshot.and_then(|s| s.index_manifest.clone()) else {
        return Ok(Vec::new());
    };
    let path = table.paths().manifest(&name);
    let bytes = table.store.get(&path).await?;
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
