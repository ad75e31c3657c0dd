//! Rollback (Paimon's `RollbackHelper` semantics): snapshots newer than the
//! target are removed, with tags on them and the files only they needed, and
//! LATEST points at the target again.
//!
//! Snapshot files go first, newest first, so that a reader never sees a gap
//! and a run that stops half way leaves at most unreferenced files (which
//! orphan removal collects).

use bytes::Bytes;
use tidelake_format::snapshot::Snapshot;
use tidelake_store::PutOutcome;

use super::refs::{FileRefs, Missing, RefWalker, Unneeded};
use crate::error::{EngineError, Result};
use crate::table::Table;

impl Table {
    /// Rolls the table back to snapshot `snapshot_id`, which must still exist.
    pub async fn rollback_to_snapshot(&self, snapshot_id: i64) -> Result<()> {
        let Some(target) = self.reader.snapshot(snapshot_id).await? else {
            return Err(EngineError::invalid(format!(
                "cannot roll table '{}' back to snapshot {snapshot_id}: it does not exist or has expired (tag it to keep it)",
                self.id
            )));
        };
        self.rollback_to(&target).await
    }

    /// Rolls the table back to a tag. When the tagged snapshot has expired it
    /// is restored from the tag and becomes the only snapshot.
    pub async fn rollback_to_tag(&self, tag_name: &str) -> Result<()> {
        let Some(tagged) = self.tag(tag_name).await? else {
            return Err(EngineError::invalid(format!(
                "cannot roll table '{}' back to tag '{tag_name}': no such tag",
                self.id
            )));
        };
        if self.reader.snapshot(tagged.id).await?.is_none() {
            let path = self.paths().snapshot(tagged.id);
            let json = tagged
                .to_json()
                .map_err(|e| EngineError::format(path.clone(), e))?;
            if self
                .store
                .create_if_absent(&path, Bytes::from(json.into_bytes()))
                .await?
                == PutOutcome::AlreadyExists
            {
                return Err(EngineError::CommitConflict {
                    table: self.id.to_string(),
                    message: format!("snapshot {} appeared during rollback", tagged.id),
                });
            }
        }
        self.rollback_to(&tagged).await
    }

    async fn rollback_to(&self, target: &Snapshot) -> Result<()> {
        let ids = self.reader.list_snapshot_ids().await?;
        let (newer, older): (Vec<i64>, Vec<i64>) = ids.iter().partition(|id| **id > target.id);
        let mut walker = RefWalker::new(self)?;
        let mut candidates = FileRefs::default();
        for id in newer.iter().rev() {
            if let Some(s) = self.reader.snapshot(*id).await? {
                candidates.extend(walker.snapshot_refs(&s, Missing::Skip).await?);
            }
        }
        let mut protected = FileRefs::default();
        for id in &older {
            if let Some(s) = self.reader.snapshot(*id).await? {
                protected.extend(walker.snapshot_refs(&s, Missing::Skip).await?);
            }
        }
        let tags = self.list_tags().await?;
        for (_, tag) in &tags {
            if tag.id > target.id {
                candidates.extend(walker.snapshot_refs(tag, Missing::Skip).await?);
            } else {
                protected.extend(walker.snapshot_refs(tag, Missing::Fail).await?);
            }
        }
        super::branches::protect_other_branches(self, &mut walker, &mut protected).await?;
        // Older snapshots' cancelled entries are left for expiration to judge.
        protected.live_data.extend(protected.all_data.drain());

        for id in newer.iter().rev() {
            self.store.delete(&self.paths().snapshot(*id)).await?;
        }
        self.store
            .put(
                &self.paths().latest_hint(),
                Bytes::from(target.id.to_string()),
            )
            .await?;
        if older.iter().all(|id| *id >= target.id) {
            self.write_earliest_hint(target.id).await;
        }
        for (name, tag) in &tags {
            if tag.id > target.id {
                self.store.delete(&self.tag_path(name)).await?;
            }
        }
        Unneeded::between(&candidates, &protected)
            .delete(self)
            .await?;
        Ok(())
    }
}
