//! Tags: `tag/tag-{name}` files holding a copy of a snapshot's JSON. A tag
//! keeps its snapshot readable (and its files alive) after the snapshot
//! itself expired.

use bytes::Bytes;
use tidelake_format::snapshot::Snapshot;
use tidelake_store::{PutOutcome, StoreError};

use super::refs::{FileRefs, Missing, RefWalker, Unneeded};
use crate::error::{EngineError, Result};
use crate::table::Table;

const TAG_PREFIX: &str = "tag-";

/// Paimon's rules for tag names (see `branches::ref_name_problem`).
fn validate_tag_name(name: &str) -> Result<()> {
    match super::branches::ref_name_problem(name, &[]) {
        Some(p) => Err(EngineError::invalid(format!(
            "invalid tag name '{name}': {p}"
        ))),
        None => Ok(()),
    }
}

impl Table {
    pub(crate) fn tag_dir(&self) -> String {
        self.paths().tag_dir()
    }

    pub(crate) fn tag_path(&self, name: &str) -> String {
        format!("{}/{TAG_PREFIX}{name}", self.tag_dir())
    }

    /// Reads a tag's snapshot; `Ok(None)` when there is no such tag.
    pub async fn tag(&self, name: &str) -> Result<Option<Snapshot>> {
        validate_tag_name(name)?;
        let path = self.tag_path(name);
        match self.store.get(&path).await {
            Ok(bytes) => Snapshot::from_json(&bytes)
                .map(Some)
                .map_err(|e| EngineError::format(path, e)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Tags a snapshot (the latest when `snapshot_id` is `None`).
    pub async fn create_tag(&self, name: &str, snapshot_id: Option<i64>) -> Result<Snapshot> {
        validate_tag_name(name)?;
        let snapshot = match snapshot_id {
            Some(id) => self.reader.snapshot(id).await?.ok_or_else(|| {
                EngineError::invalid(format!(
                    "cannot tag snapshot {id} of table '{}': it does not exist (or has expired)",
                    self.id
                ))
            })?,
            None => self.reader.latest_snapshot().await?.ok_or_else(|| {
                EngineError::invalid(format!(
                    "cannot create tag '{name}': table '{}' has no snapshot yet",
                    self.id
                ))
            })?,
        };
        let path = self.tag_path(name);
        let json = snapshot
            .to_json()
            .map_err(|e| EngineError::format(path.clone(), e))?;
        match self
            .store
            .create_if_absent(&path, Bytes::from(json.into_bytes()))
            .await?
        {
            PutOutcome::Created => Ok(snapshot),
            PutOutcome::AlreadyExists => Err(EngineError::invalid(format!(
                "tag '{name}' of table '{}' already exists",
                self.id
            ))),
        }
    }

    /// Every tag with its snapshot, by snapshot id then name.
    pub async fn list_tags(&self) -> Result<Vec<(String, Snapshot)>> {
        Ok(crate::introspect::list_tag_infos(self)
            .await?
            .into_iter()
            .map(|t| (t.name, t.snapshot))
            .collect())
    }

    /// Deletes a tag. When its snapshot has expired, the files only the tag
    /// kept alive are deleted too.
    pub async fn delete_tag(&self, name: &str) -> Result<()> {
        let Some(snapshot) = self.tag(name).await? else {
            return Err(EngineError::invalid(format!(
                "tag '{name}' of table '{}' does not exist",
                self.id
            )));
        };
        self.store.delete(&self.tag_path(name)).await?;
        if self.reader.snapshot(snapshot.id).await?.is_some() {
            return Ok(());
        }
        let mut walker = RefWalker::new(self)?;
        let candidates = walker.snapshot_refs(&snapshot, Missing::Skip).await?;
        let mut protected = FileRefs::default();
        for id in self.reader.list_snapshot_ids().await? {
            if let Some(s) = self.reader.snapshot(id).await? {
                protected.extend(walker.snapshot_refs(&s, Missing::Fail).await?);
            }
        }
        for (_, tag) in self.list_tags().await? {
            protected.extend(walker.snapshot_refs(&tag, Missing::Fail).await?);
        }
        super::branches::protect_other_branches(self, &mut walker, &mut protected).await?;
        // Data named by other snapshots' old entries may still be expired
        // by them later; keep it rather than reason about it here.
        protected.live_data.extend(protected.all_data.drain());
        Unneeded::between(&candidates, &protected)
            .delete(self)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_are_validated() {
        for ok in ["v1", "release-2024.01", "nightly_3", "a b"] {
            assert!(validate_tag_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "  ", "123", "a/b", "..", ".hidden", " x", "a\nb", "a\\b",
        ] {
            assert!(validate_tag_name(bad).is_err(), "{bad:?}");
        }
    }
}
