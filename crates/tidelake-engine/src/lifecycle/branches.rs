//! Branches, in Paimon's file-system layout (its `FileSystemBranchManager`):
//! a branch is the folder `{table}/branch/branch-{name}/` with its own
//! `snapshot/`, `schema/`, `tag/` and `consumer/` folders; manifests, index
//! and data files stay in the table's folders and are shared by every
//! branch, so Flink, Spark and pypaimon read and write the same branches.
//!
//! - A branch made from a tag starts with copies of the tag file, of the
//!   tagged snapshot and of the schemas up to the snapshot's; one made
//!   without a tag gets the schemas up to the latest and no snapshot (an
//!   empty table).
//! - Deleting a branch deletes its folder only; the data it alone wrote is
//!   left for orphan removal, as in Paimon.
//! - Fast-forward makes main the branch: main's snapshots, schemas and tags
//!   from the branch's earliest snapshot (and its schema) on are replaced by
//!   the branch's. Like Paimon's, it is not atomic against concurrent
//!   writers of main.
//!
//! Files are shared, so removing files on one branch must respect the
//! others: expiration, tag deletion, rollback and orphan removal protect
//! everything any other branch's snapshots and tags name. (Paimon's
//! expiration only respects its own branch's tags; protecting more only
//! keeps files longer.)

use bytes::Bytes;
use tidelake_store::{PutOutcome, StoreError};

use super::refs::{FileRefs, Missing, RefWalker};
use crate::error::{EngineError, Result};
use crate::introspect::list_tag_infos_at;
use crate::kv::{TablePaths, BRANCH_PREFIX};
use crate::snapshots::{file_name, SnapshotReader};
use crate::table::Table;

/// The name of the default branch; never a branch folder.
pub const MAIN_BRANCH: &str = "main";

/// One branch of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchInfo {
    pub name: String,
    /// When its folder was created: the oldest modification time of its
    /// files (object stores have no folder times), epoch millis.
    pub create_time_millis: Option<i64>,
}

/// What makes `name` unusable as a tag or branch name. Paimon refuses
/// blank and purely numeric names (a number means a snapshot id in time
/// travel); a name is also one path segment, without any of `forbidden`.
pub(super) fn ref_name_problem(name: &str, forbidden: &[char]) -> Option<String> {
    let bad_char = name
        .chars()
        .find(|c| matches!(c, '/' | '\\') || forbidden.contains(c) || c.is_control());
    if name.trim().is_empty() {
        Some("it is blank".into())
    } else if name.chars().all(|c| c.is_ascii_digit()) {
        Some("a purely numeric name would read as a snapshot id".into())
    } else if let Some(c) = bad_char {
        Some(format!("it contains {c:?}"))
    } else if name.starts_with('.') || name != name.trim() {
        Some("it starts with '.' or has leading or trailing spaces".into())
    } else {
        None
    }
}

/// Paimon's rules (not `main`, not blank, not purely numeric: a number
/// reads as a snapshot id), plus what keeps the name one path segment and
/// one `t$branch_{name}` suffix: no '/', '\\', '$', ',' (Paimon's
/// `delete_branch` splits its argument on commas) or control characters.
pub fn validate_branch_name(name: &str) -> Result<()> {
    let problem = if name == MAIN_BRANCH {
        Some("'main' is the default branch and cannot be used as a branch name".to_string())
    } else {
        ref_name_problem(name, &['$', ','])
    };
    match problem {
        Some(p) => Err(EngineError::invalid(format!(
            "invalid branch name '{name}': {p}"
        ))),
        None => Ok(()),
    }
}

impl Table {
    /// The branch this handle reads and writes; `None` is main.
    pub fn branch(&self) -> Option<&str> {
        self.paths().branch.as_deref()
    }

    /// `db.t` on main, `db.t$branch_dev` on a branch (Paimon's spelling).
    pub fn display_name(&self) -> String {
        match self.branch() {
            Some(b) => format!("{}$branch_{b}", self.id),
            None => self.id.to_string(),
        }
    }

    fn require_main(&self, what: &str) -> Result<()> {
        match self.branch() {
            None => Ok(()),
            Some(b) => Err(EngineError::invalid(format!(
                "{what} works on the main branch: name table '{}', not its branch '{b}'",
                self.id
            ))),
        }
    }

    fn branch_paths(&self, name: &str) -> TablePaths {
        self.paths().on_branch(Some(name))
    }

    /// The branches' names and folders (one listing), by name.
    async fn branch_dirs(&self) -> Result<Vec<(String, String)>> {
        let dir = self.paths().branches_dir();
        let (dirs, _) = match self.store.list_dir(&dir).await {
            Ok(listed) => listed,
            Err(StoreError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut branches: Vec<(String, String)> = dirs
            .iter()
            .filter_map(|d| {
                let name = file_name(d.trim_end_matches('/')).strip_prefix(BRANCH_PREFIX)?;
                Some((name.to_string(), d.clone()))
            })
            .collect();
        branches.sort();
        Ok(branches)
    }

    /// Every branch of the table, by name.
    pub async fn list_branches(&self) -> Result<Vec<BranchInfo>> {
        let mut branches = Vec::new();
        for (name, dir) in self.branch_dirs().await? {
            let created = self
                .store
                .list(&dir)
                .await?
                .iter()
                .map(|e| e.last_modified.timestamp_millis())
                .min();
            branches.push(BranchInfo {
                name,
                create_time_millis: created,
            });
        }
        Ok(branches)
    }

    pub async fn branch_exists(&self, name: &str) -> Result<bool> {
        Ok(self.branch_dirs().await?.iter().any(|(b, _)| b == name))
    }

    async fn require_branch(&self, name: &str) -> Result<()> {
        if self.branch_exists(name).await? {
            return Ok(());
        }
        Err(EngineError::invalid(format!(
            "branch '{name}' of table '{}' does not exist",
            self.id
        )))
    }

    /// Creates branch `name` from tag `tag`, or empty (the latest schema,
    /// no snapshot) without one.
    pub async fn create_branch(&self, name: &str, tag: Option<&str>) -> Result<()> {
        self.require_main("creating a branch")?;
        validate_branch_name(name)?;
        let already = || {
            EngineError::invalid(format!(
                "branch '{name}' of table '{}' already exists",
                self.id
            ))
        };
        if self.branch_exists(name).await? {
            return Err(already());
        }
        let tagged = match tag {
            None => None,
            Some(t) => Some(self.tag(t).await?.ok_or_else(|| {
                EngineError::invalid(format!(
                    "cannot create branch '{name}' from tag '{t}': table '{}' has no such tag",
                    self.id
                ))
            })?),
        };
        let last_schema = match &tagged {
            Some(s) => s.schema_id,
            None => self
                .reader
                .list_schema_ids()
                .await?
                .last()
                .copied()
                .unwrap_or(0),
        };
        let target = self.branch_paths(name);
        // Schemas first: the first one created claims the name (a racing
        // create of the same branch fails on it), and a branch with
        // schemas but no snapshot is a valid empty branch.
        let mut claimed = false;
        for id in self.reader.list_schema_ids().await? {
            if id > last_schema {
                break;
            }
            let bytes = self.store.get(&self.paths().schema(id)).await?;
            if !claimed {
                if self
                    .store
                    .create_if_absent(&target.schema(id), bytes)
                    .await?
                    == PutOutcome::AlreadyExists
                {
                    return Err(already());
                }
                claimed = true;
            } else {
                self.store.put(&target.schema(id), bytes).await?;
            }
        }
        if let (Some(snapshot), Some(tag)) = (&tagged, tag) {
            let json = match self.store.get(&self.paths().snapshot(snapshot.id)).await {
                Ok(bytes) => bytes,
                // Expired: the tag keeps its content.
                Err(StoreError::NotFound { .. }) => {
                    let path = target.snapshot(snapshot.id);
                    Bytes::from(
                        snapshot
                            .to_json()
                            .map_err(|e| EngineError::format(path, e))?
                            .into_bytes(),
                    )
                }
                Err(e) => return Err(e.into()),
            };
            self.store.put(&target.snapshot(snapshot.id), json).await?;
            let tag_file = self.store.get(&self.tag_path(tag)).await?;
            self.store
                .put(&format!("{}/tag-{tag}", target.tag_dir()), tag_file)
                .await?;
        }
        tracing::info!(table = %self.id, branch = name, tag, "created branch");
        Ok(())
    }

    /// Checks that this is main and `name` an existing branch other than
    /// main (`main_problem` says why main cannot be `name`).
    async fn require_other_branch(&self, what: &str, name: &str, main_problem: &str) -> Result<()> {
        self.require_main(what)?;
        if name == MAIN_BRANCH {
            return Err(EngineError::invalid(main_problem));
        }
        self.require_branch(name).await
    }

    /// Deletes a branch's folder (its data files are left for orphan removal).
    pub async fn delete_branch(&self, name: &str) -> Result<()> {
        self.require_other_branch(
            "deleting a branch",
            name,
            "the main branch cannot be deleted (drop the table instead)",
        )
        .await?;
        self.store
            .delete_dir(&self.branch_paths(name).meta_root())
            .await?;
        tracing::info!(table = %self.id, branch = name, "deleted branch");
        Ok(())
    }

    /// Makes main the branch `name` (Paimon's `fast_forward`).
    pub async fn fast_forward(&self, name: &str) -> Result<()> {
        self.require_other_branch(
            "fast-forward",
            name,
            "fast-forward needs a branch other than 'main' (main cannot be fast-forwarded to itself)",
        )
        .await?;
        let branch = SnapshotReader::new(self.store.clone(), self.branch_paths(name));
        let branch_ids = branch.list_snapshot_ids().await?;
        let (Some(&earliest), Some(&latest)) = (branch_ids.first(), branch_ids.last()) else {
            return Err(EngineError::invalid(format!(
                "cannot fast-forward table '{}' to branch '{name}': the branch has no snapshot",
                self.id
            )));
        };
        let earliest_schema = branch
            .snapshot(earliest)
            .await?
            .ok_or_else(|| {
                EngineError::invalid(format!(
                    "snapshot {earliest} of branch '{name}' vanished during fast-forward"
                ))
            })?
            .schema_id;
        // Main from the branch's start on goes (metadata only: files the
        // branch does not share are left for orphan removal, as in Paimon).
        for tag in self.list_tags().await? {
            if tag.1.id >= earliest {
                self.store.delete(&self.tag_path(&tag.0)).await?;
            }
        }
        let main_ids = self.reader.list_snapshot_ids().await?;
        for id in main_ids.iter().rev().filter(|id| **id >= earliest) {
            self.store.delete(&self.paths().snapshot(*id)).await?;
        }
        for id in self.reader.list_schema_ids().await? {
            if id >= earliest_schema {
                self.store.delete(&self.paths().schema(id)).await?;
            }
        }
        self.store.delete(&self.paths().latest_hint()).await?;
        // Schemas before the snapshots that name them, tags last.
        let from = self.branch_paths(name);
        for (src, dst) in [
            (from.schema_dir(), self.paths().schema_dir()),
            (from.snapshot_dir(), self.paths().snapshot_dir()),
            (from.tag_dir(), self.paths().tag_dir()),
        ] {
            self.copy_numbered_files(&src, &dst).await?;
        }
        let first = main_ids.first().copied().unwrap_or(earliest).min(earliest);
        self.store
            .put(&self.paths().latest_hint(), Bytes::from(latest.to_string()))
            .await?;
        self.write_earliest_hint(first).await;
        tracing::info!(table = %self.id, branch = name, latest, "fast-forwarded main");
        Ok(())
    }

    /// Copies the files of folder `src` into `dst` (overwriting), ascending
    /// by name; the LATEST/EARLIEST hints are not copied (main's are
    /// written after).
    async fn copy_numbered_files(&self, src: &str, dst: &str) -> Result<()> {
        let mut entries = match self.store.list(src).await {
            Ok(entries) => entries,
            Err(StoreError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        // snapshot-2 before snapshot-10.
        entries.sort_by_key(|e| {
            let name = file_name(&e.path);
            let number = name.rsplit('-').next().and_then(|n| n.parse::<i64>().ok());
            (number, name.to_string())
        });
        for e in entries {
            let name = file_name(&e.path);
            if name == "LATEST" || name == "EARLIEST" {
                continue;
            }
            let bytes = self.store.get(&e.path).await?;
            self.store.put(&format!("{dst}/{name}"), bytes).await?;
        }
        Ok(())
    }
}

/// The paths of every branch of the table except `table`'s own, main
/// included when `table` is a branch.
async fn other_branches(table: &Table) -> Result<Vec<TablePaths>> {
    let mut out = Vec::new();
    if table.branch().is_some() {
        out.push(table.paths().on_branch(None));
    }
    for (name, _) in table.branch_dirs().await? {
        if table.branch() != Some(name.as_str()) {
            out.push(table.paths().on_branch(Some(&name)));
        }
    }
    Ok(out)
}

/// Adds to `protected` every file the snapshots and tags of the table's
/// other branches name (all entries, not only live ones: those branches
/// expire their own history later).
pub(crate) async fn protect_other_branches(
    table: &Table,
    walker: &mut RefWalker<'_>,
    protected: &mut FileRefs,
) -> Result<()> {
    for paths in other_branches(table).await? {
        let reader = SnapshotReader::new(table.store.clone(), paths.clone());
        let mut refs = FileRefs::default();
        for id in reader.list_snapshot_ids().await? {
            if let Some(s) = reader.snapshot(id).await? {
                // What is already gone cannot be protected; what is there is.
                refs.extend(walker.snapshot_refs(&s, Missing::Skip).await?);
            }
        }
        for tag in list_tag_infos_at(&table.store, &paths).await? {
            refs.extend(walker.snapshot_refs(&tag.snapshot, Missing::Skip).await?);
        }
        let all_data = refs.all_data.clone();
        refs.live_data.extend(all_data);
        protected.extend(refs);
    }
    Ok(())
}

/// Branches whose folder holds no schema: orphan removal stops rather than
/// guess what they reference (as Paimon's does).
pub(crate) async fn branches_without_schema(table: &Table) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (name, _) in table.branch_dirs().await? {
        let reader = SnapshotReader::new(table.store.clone(), table.branch_paths(&name));
        if reader.list_schema_ids().await?.is_empty() {
            out.push(name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_follow_paimon_rules() {
        for ok in ["dev", "b1", "feature-x", "a.b", "x y"] {
            assert!(validate_branch_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "main", "", "  ", "123", "a/b", "a$b", "a,b", ".x", " x", "a\nb",
        ] {
            assert!(validate_branch_name(bad).is_err(), "{bad:?}");
        }
        let err = validate_branch_name("42").unwrap_err().to_string();
        assert!(err.contains("numeric"), "{err}");
    }
}
