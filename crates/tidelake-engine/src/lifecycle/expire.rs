//! Snapshot expiration (Paimon's `ExpireSnapshotsImpl` semantics).
//!
//! Snapshots `[earliest, end)` expire, where `end` keeps at least
//! `retain_min` snapshots, lets at most `retain_max` stay, keeps any snapshot
//! committed at or after `older_than`, stops at the oldest snapshot a
//! consumer still has to read, and moves at most `max_deletes` snapshots.
//! Files are deleted data first, then index files, manifests, manifest
//! lists, and the snapshot files last: if the run stops half way, every
//! snapshot that stays is intact and a later run finishes the work.

use bytes::Bytes;

use super::refs::{FileRefs, Missing, RefWalker, Unneeded};
use crate::error::{EngineError, Result};
use crate::table::Table;

/// How many snapshots to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpireOptions {
    /// Snapshots beyond this many (newest first) expire whatever their age.
    pub retain_max: usize,
    /// At least this many snapshots (and always the latest) stay.
    pub retain_min: usize,
    /// Snapshots between `retain_min` and `retain_max` expire only if
    /// committed before this time (epoch millis); `None`: none of them do,
    /// only `retain_max` counts.
    pub older_than: Option<i64>,
    /// At most this many snapshots expire in one run.
    pub max_deletes: usize,
}

impl ExpireOptions {
    /// The table's `snapshot.*` options, with `now` in epoch millis.
    pub fn from_table(table: &Table, now_millis: i64) -> ExpireOptions {
        let o = table.options();
        ExpireOptions {
            retain_max: o.snapshot_num_retained_max,
            retain_min: o.snapshot_num_retained_min,
            older_than: Some(now_millis.saturating_sub(o.snapshot_time_retained_millis)),
            max_deletes: o.snapshot_expire_limit,
        }
    }
}

/// What one expiration run removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpireOutcome {
    pub snapshots_deleted: usize,
    /// Data, changelog, index and manifest files (not snapshot files).
    pub files_deleted: usize,
}

/// Runs expiration with the table's options after a commit, as Paimon does
/// unless `write-only` is set. Failures are logged, never fail the commit.
pub(crate) async fn expire_after_commit(table: &Table) {
    if table.options().write_only {
        return;
    }
    let now = chrono::Utc::now().timestamp_millis();
    if let Err(e) = table.expire_consumers(now).await {
        tracing::warn!(table = %table.id, "consumer expiration after commit failed: {e}");
    }
    let options = ExpireOptions::from_table(table, now);
    if let Err(e) = table.expire_snapshots(options).await {
        tracing::warn!(table = %table.id, "snapshot expiration after commit failed: {e}");
    }
}

impl Table {
    /// Expires old snapshots and deletes the files only they needed.
    pub async fn expire_snapshots(&self, options: ExpireOptions) -> Result<ExpireOutcome> {
        if options.retain_min < 1 || options.retain_max < options.retain_min {
            return Err(EngineError::invalid(format!(
                "snapshot retention of table '{}': need 1 <= snapshot.num-retained.min ({}) <= snapshot.num-retained.max ({})",
                self.id, options.retain_min, options.retain_max
            )));
        }
        let ids = self.reader.list_snapshot_ids().await?;
        let (Some(&earliest), Some(&latest)) = (ids.first(), ids.last()) else {
            return Ok(ExpireOutcome::default());
        };
        let Some(end) = self.expire_end(&options, earliest, latest).await? else {
            return Ok(ExpireOutcome::default());
        };
        let expired: Vec<i64> = ids.iter().copied().filter(|id| *id < end).collect();
        let retained: Vec<i64> = ids.iter().copied().filter(|id| *id >= end).collect();

        let mut walker = RefWalker::new(self)?;
        let mut protected = FileRefs::default();
        for id in &retained {
            let snapshot = self.reader.snapshot(*id).await?.ok_or_else(|| {
                EngineError::invalid(format!(
                    "snapshot {id} of table '{}' vanished during expiration (concurrent rollback?)",
                    self.id
                ))
            })?;
            protected.extend(walker.snapshot_refs(&snapshot, Missing::Fail).await?);
        }
        for (_, tag) in self.list_tags().await? {
            protected.extend(walker.snapshot_refs(&tag, Missing::Fail).await?);
        }
        super::branches::protect_other_branches(self, &mut walker, &mut protected).await?;
        let mut candidates = FileRefs::default();
        for id in &expired {
            // Missing files are skipped: an engine that deletes files
            // before snapshots (as Paimon's Java does) may have been
            // interrupted, leaving the snapshot file only.
            if let Some(snapshot) = self.reader.snapshot(*id).await? {
                candidates.extend(walker.snapshot_refs(&snapshot, Missing::Skip).await?);
            }
        }
        let unneeded = Unneeded::between(&candidates, &protected);
        // Snapshot files go first, oldest first: a run killed part-way then
        // leaves only unreferenced files (for orphan removal), never a
        // listed snapshot whose manifests or data are gone.
        for id in &expired {
            self.store.delete(&self.paths().snapshot(*id)).await?;
        }
        self.write_earliest_hint(end).await;
        let files_deleted = unneeded.delete(self).await?;
        tracing::debug!(table = %self.id, snapshots = expired.len(), files = files_deleted, "expired snapshots");
        Ok(ExpireOutcome {
            snapshots_deleted: expired.len(),
            files_deleted,
        })
    }

    /// The first snapshot to keep, or `None` when nothing expires.
    async fn expire_end(
        &self,
        options: &ExpireOptions,
        earliest: i64,
        latest: i64,
    ) -> Result<Option<i64>> {
        let retain_min = i64::try_from(options.retain_min).unwrap_or(i64::MAX);
        let retain_max = i64::try_from(options.retain_max).unwrap_or(i64::MAX);
        let mut end = latest.saturating_sub(retain_min).saturating_add(1);
        if end <= earliest {
            // The common case after a commit: nothing to do, and no need
            // to list consumers.
            return Ok(None);
        }
        if let Some(consumer) = super::min_consumer_snapshot(self).await? {
            end = end.min(consumer);
        }
        // Snapshots past `retain_max` expire whatever their age; the others
        // only once old enough (never, without an age limit).
        let older_than = options.older_than.unwrap_or(i64::MIN);
        let forced_before = latest.saturating_sub(retain_max).saturating_add(1);
        for id in forced_before.max(earliest)..end {
            match self.reader.snapshot(id).await? {
                Some(s) if s.time_millis >= older_than => {
                    end = id;
                    break;
                }
                _ => {}
            }
        }
        let limit = i64::try_from(options.max_deletes).unwrap_or(i64::MAX);
        end = end.min(earliest.saturating_add(limit));
        Ok((end > earliest).then_some(end))
    }

    pub(crate) async fn write_earliest_hint(&self, id: i64) {
        let hint = self.paths().earliest_hint();
        if let Err(e) = self.store.put(&hint, Bytes::from(id.to_string())).await {
            tracing::warn!("could not update {hint}: {e}");
        }
    }
}
