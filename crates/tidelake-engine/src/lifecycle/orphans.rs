//! Orphan-file removal: files in the table's data, manifest and index
//! folders that no snapshot or tag references (left by failed or lost
//! commits, or interrupted rollbacks).
//!
//! A writer's files are unreferenced until it commits, so only files older
//! than a safety margin (one day, as Paimon's default) are ever removed.

use super::refs::{FileRefs, Missing, RefWalker};
use crate::error::{EngineError, Result};
use crate::snapshots::file_name;
use crate::table::Table;

/// Files younger than this are never removed, whatever the caller asks.
pub const ORPHAN_SAFETY_MARGIN_MILLIS: i64 = 24 * 3_600_000;

/// How to remove orphan files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrphanOptions {
    /// Only files last modified before this time (epoch millis) are
    /// removed; it is capped at now minus [`ORPHAN_SAFETY_MARGIN_MILLIS`].
    pub older_than: i64,
    /// List what would be removed, remove nothing.
    pub dry_run: bool,
}

/// Folders of table metadata that orphan removal never touches.
const KEPT_FOLDERS: &[&str] = &[
    "snapshot",
    "schema",
    "tag",
    "consumer",
    "changelog",
    "branch",
    "statistics",
];

impl Table {
    /// Removes orphan files older than `older_than` (epoch millis, capped by
    /// the safety margin); returns their paths relative to the warehouse.
    pub async fn remove_orphan_files(&self, older_than: i64) -> Result<Vec<String>> {
        self.remove_orphan_files_with(OrphanOptions {
            older_than,
            dry_run: false,
        })
        .await
    }

    /// Like [`Table::remove_orphan_files`], with a dry-run mode.
    pub async fn remove_orphan_files_with(&self, options: OrphanOptions) -> Result<Vec<String>> {
        let now = chrono::Utc::now().timestamp_millis();
        let cutoff = options
            .older_than
            .min(now.saturating_sub(ORPHAN_SAFETY_MARGIN_MILLIS));
        // Listed before the references are read: a file committed meanwhile
        // is then either young or referenced.
        let root = self.paths().root.clone();
        let listed = self.store.list(&root).await?;
        let referenced = self.all_references().await?;
        let mut orphans = Vec::new();
        for entry in listed {
            if entry.last_modified.timestamp_millis() >= cutoff {
                continue;
            }
            let Some(rel) = entry
                .path
                .strip_prefix(root.as_str())
                .and_then(|r| r.strip_prefix('/'))
            else {
                continue;
            };
            let first = rel.split('/').next().unwrap_or_default();
            let name = file_name(rel);
            let is_orphan = if KEPT_FOLDERS.contains(&first) {
                false
            } else if first == "manifest" && rel.matches('/').count() == 1 {
                !referenced.lists.contains(name) && !referenced.manifests.contains(name)
            } else if first == "index" && rel.matches('/').count() == 1 {
                !referenced.index_files.contains(name)
            } else if is_in_bucket_dir(rel) {
                !referenced.all_data.contains(rel) && !referenced.changelog.contains(rel)
            } else {
                false
            };
            if is_orphan {
                orphans.push(entry.path);
            }
        }
        if !options.dry_run {
            for path in &orphans {
                self.store.delete(path).await?;
            }
        }
        Ok(orphans)
    }

    /// Every file of every snapshot and tag, of every branch; a snapshot
    /// of this branch whose metadata is missing fails the run rather than
    /// making its files look orphaned.
    async fn all_references(&self) -> Result<FileRefs> {
        let broken = super::branches::branches_without_schema(self).await?;
        if !broken.is_empty() {
            return Err(EngineError::invalid(format!(
                "branches {broken:?} of table '{}' have no schema; orphan removal stopped (check those branches by hand)",
                self.id
            )));
        }
        let mut walker = RefWalker::new(self)?;
        let mut refs = FileRefs::default();
        super::branches::protect_other_branches(self, &mut walker, &mut refs).await?;
        for id in self.reader.list_snapshot_ids().await? {
            if let Some(s) = self.reader.snapshot(id).await? {
                refs.extend(walker.snapshot_refs(&s, Missing::Fail).await?);
            }
        }
        for (_, tag) in self.list_tags().await? {
            refs.extend(walker.snapshot_refs(&tag, Missing::Fail).await?);
        }
        Ok(refs)
    }
}

/// A file directly inside a `bucket-*` folder (data and changelog files).
fn is_in_bucket_dir(rel: &str) -> bool {
    let mut parts: Vec<&str> = rel.split('/').collect();
    parts.pop();
    parts.last().is_some_and(|d| d.starts_with("bucket-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_dirs_are_recognised() {
        assert!(is_in_bucket_dir("bucket-0/data-x.parquet"));
        assert!(is_in_bucket_dir("dt=1/bucket-postpone/data-x.parquet"));
        assert!(!is_in_bucket_dir("manifest/manifest-x"));
        assert!(!is_in_bucket_dir("bucket-0"));
        assert!(!is_in_bucket_dir("dt=1/x/data.parquet"));
    }
}
