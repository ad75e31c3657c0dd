//! Which files a snapshot (or tag) needs: its manifest lists, manifests,
//! index manifest and index files, and the data and changelog files its
//! manifests name. Expiration, rollback, tag deletion and orphan removal all
//! decide by comparing such sets.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tidelake_format::manifest::{read_index_manifest, FileKind, ManifestEntry};
use tidelake_format::snapshot::Snapshot;
use tidelake_store::StoreError;

use crate::error::{EngineError, Result};
use crate::kv::TablePaths;
use crate::manifests::{fold_entries, ManifestStore};
use crate::table::Table;

/// Files named by one or more snapshots. Metadata files are names inside
/// `manifest/`, index files names inside `index/`, data files paths relative
/// to the table root.
#[derive(Debug, Default, Clone)]
pub(crate) struct FileRefs {
    /// Manifest lists and index manifests.
    pub lists: HashSet<String>,
    /// Data and changelog manifests.
    pub manifests: HashSet<String>,
    pub index_files: HashSet<String>,
    /// Data files live in the snapshot (what a read of it opens).
    pub live_data: HashSet<String>,
    /// Every data file any entry (ADD or DELETE) of its manifests names.
    pub all_data: HashSet<String>,
    /// Changelog files of its changelog manifests.
    pub changelog: HashSet<String>,
}

impl FileRefs {
    pub fn extend(&mut self, other: FileRefs) {
        self.lists.extend(other.lists);
        self.manifests.extend(other.manifests);
        self.index_files.extend(other.index_files);
        self.live_data.extend(other.live_data);
        self.all_data.extend(other.all_data);
        self.changelog.extend(other.changelog);
    }
}

/// Whether a missing metadata file is an error (a snapshot that must stay
/// readable) or expected (a snapshot an interrupted run already half removed).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    Fail,
    Skip,
}

/// Reads manifests once, however many snapshots share them.
pub(crate) struct RefWalker<'a> {
    table: &'a Table,
    manifests: ManifestStore,
    cache: HashMap<String, Arc<Vec<ManifestEntry>>>,
    partition_dirs: HashMap<Vec<u8>, String>,
}

fn not_found(e: &EngineError) -> bool {
    matches!(e, EngineError::Store(s) if s.is_not_found())
}

impl<'a> RefWalker<'a> {
    pub fn new(table: &'a Table) -> Result<Self> {
        let manifests = table.manifest_store()?;
        Ok(RefWalker {
            table,
            manifests,
            cache: HashMap::new(),
            partition_dirs: HashMap::new(),
        })
    }

    async fn manifest(&mut self, name: &str) -> Result<Arc<Vec<ManifestEntry>>> {
        if let Some(e) = self.cache.get(name) {
            return Ok(e.clone());
        }
        let entries = Arc::new(self.manifests.read_manifest(name).await?);
        self.cache.insert(name.to_string(), entries.clone());
        Ok(entries)
    }

    /// `{partition path}bucket-{b}/{file}` relative to the table root.
    fn data_path(&mut self, entry: &ManifestEntry, file_name: &str) -> Result<String> {
        if !self.partition_dirs.contains_key(&entry.partition) {
            let (_, dir) = self
                .table
                .layout
                .partition_location(&entry.partition, file_name)?;
            self.partition_dirs.insert(entry.partition.clone(), dir);
        }
        let dir = &self.partition_dirs[&entry.partition];
        let bucket_dir = TablePaths::relative_bucket_dir(dir, entry.bucket);
        Ok(format!("{bucket_dir}/{file_name}"))
    }

    /// The paths of an entry's data file and its extra files; files stored
    /// outside the table (external paths) are never ours to delete.
    fn entry_paths(&mut self, entry: &ManifestEntry) -> Result<Vec<String>> {
        if entry.file.external_path.is_some() {
            return Ok(Vec::new());
        }
        let mut out = vec![self.data_path(entry, &entry.file.file_name)?];
        for extra in &entry.file.extra_files {
            out.push(self.data_path(entry, extra)?);
        }
        Ok(out)
    }

    async fn list(&mut self, name: &str, missing: Missing) -> Result<Vec<String>> {
        match self.manifests.read_list(name).await {
            Ok(metas) => Ok(metas.into_iter().map(|m| m.file_name).collect()),
            Err(e) if missing == Missing::Skip && not_found(&e) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    async fn entries_of(
        &mut self,
        manifests: &[String],
        missing: Missing,
    ) -> Result<Vec<Arc<Vec<ManifestEntry>>>> {
        let mut out = Vec::with_capacity(manifests.len());
        for m in manifests {
            match self.manifest(m).await {
                Ok(e) => out.push(e),
                Err(e) if missing == Missing::Skip && not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Every file `snapshot` references.
    pub async fn snapshot_refs(
        &mut self,
        snapshot: &Snapshot,
        missing: Missing,
    ) -> Result<FileRefs> {
        let mut refs = FileRefs::default();
        refs.lists.insert(snapshot.base_manifest_list.clone());
        refs.lists.insert(snapshot.delta_manifest_list.clone());
        let mut data_manifests = self.list(&snapshot.base_manifest_list, missing).await?;
        data_manifests.extend(self.list(&snapshot.delta_manifest_list, missing).await?);
        refs.manifests.extend(data_manifests.iter().cloned());
        let lists = self.entries_of(&data_manifests, missing).await?;
        let mut ordered = Vec::new();
        for entries in &lists {
            for e in entries.iter() {
                for p in self.entry_paths(e)? {
                    refs.all_data.insert(p);
                }
                ordered.push(e.clone());
            }
        }
        for e in fold_entries(ordered.into_iter()) {
            for p in self.entry_paths(&e)? {
                refs.live_data.insert(p);
            }
        }
        if let Some(changelog_list) = &snapshot.changelog_manifest_list {
            refs.lists.insert(changelog_list.clone());
            let manifests = self.list(changelog_list, missing).await?;
            refs.manifests.extend(manifests.iter().cloned());
            for entries in self.entries_of(&manifests, missing).await? {
                for e in entries.iter() {
                    for p in self.entry_paths(e)? {
                        refs.changelog.insert(p);
                    }
                }
            }
        }
        if let Some(index_manifest) = &snapshot.index_manifest {
            refs.lists.insert(index_manifest.clone());
            let path = self.table.paths().manifest(index_manifest);
            match self.table.store.get(&path).await {
                Ok(bytes) => {
                    let entries = read_index_manifest(&bytes)
                        .map_err(|e| EngineError::format(path.clone(), e))?;
                    for e in entries {
                        if e.kind == FileKind::Add && e.index_file.external_path.is_none() {
                            refs.index_files.insert(e.index_file.file_name);
                        }
                    }
                }
                Err(StoreError::NotFound { .. }) if missing == Missing::Skip => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(refs)
    }
}

/// The files of `candidates` that nothing in `protected` needs, by kind, in
/// the order they may be deleted safely: data, index, manifests, lists. A
/// protected snapshot only ever opens its live data files, so data named
/// only by old (cancelled) entries of its manifests is not needed.
pub(crate) struct Unneeded {
    pub data: Vec<String>,
    pub index_files: Vec<String>,
    pub manifests: Vec<String>,
    pub lists: Vec<String>,
}

impl Unneeded {
    pub fn between(candidates: &FileRefs, protected: &FileRefs) -> Unneeded {
        let keep_data =
            |p: &&String| !protected.live_data.contains(*p) && !protected.changelog.contains(*p);
        let mut data: Vec<String> = candidates
            .all_data
            .iter()
            .chain(candidates.changelog.iter())
            .filter(keep_data)
            .cloned()
            .collect();
        data.sort();
        data.dedup();
        let diff = |a: &HashSet<String>, b: &HashSet<String>| {
            let mut v: Vec<String> = a.difference(b).cloned().collect();
            v.sort();
            v
        };
        Unneeded {
            data,
            index_files: diff(&candidates.index_files, &protected.index_files),
            manifests: diff(&candidates.manifests, &protected.manifests),
            lists: diff(&candidates.lists, &protected.lists),
        }
    }

    /// Deletes in the safe order; stops at the first failure (a later run
    /// finds what is left). Returns how many files were deleted.
    pub async fn delete(&self, table: &Table) -> Result<usize> {
        let root = &table.paths().root;
        let mut deleted = 0;
        for p in &self.data {
            table.store.delete(&format!("{root}/{p}")).await?;
            deleted += 1;
        }
        for name in &self.index_files {
            table.store.delete(&table.paths().index(name)).await?;
            deleted += 1;
        }
        for name in self.manifests.iter().chain(self.lists.iter()) {
            table.store.delete(&table.paths().manifest(name)).await?;
            deleted += 1;
        }
        Ok(deleted)
    }
}
